"""Pulumi components that build the cluster described by an ailab inventory on GCP or OpenStack.

Lives under pulumi/ (the Pulumi project directory), which has no __init__.py on purpose: a package named
`pulumi` here would shadow the Pulumi SDK.
"""
