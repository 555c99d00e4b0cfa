"""``lookup('ailab_node_package')``: the node package's archive, built in the controller from the source;
``lookup('ailab_node_package', 'version')``: its version.

The archive (ailab/nodepkg.py) holds every program ailab-iac runs on a node and the modules they import;
role common copies it to every host, where it installs itself.  Built once per version of the source into
the controller's temporary directory; the same source gives the same bytes, so an unchanged package is not
copied again.
"""

from __future__ import annotations

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: ailab_node_package
short_description: the path of the ailab node package archive, built in the controller
description:
  - Builds (once per version of the source) the zip of ailab/nodepkg.py and returns its path, or with the
    term C(version) its version.
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if list(terms) not in ([], ["archive"], ["version"]):
            raise AnsibleLookupError(
                f"ailab_node_package: unknown terms {terms!r} -- fix: lookup('ailab_node_package') for the "
                "archive's path or lookup('ailab_node_package', 'version')"
            )
        try:
            from ailab import nodepkg
        except ImportError as exc:  # pragma: no cover - depends on the controller's environment
            raise AnsibleLookupError(
                "the ailab Python package is not importable by Ansible: run Ansible from the project venv "
                "(make venv; .venv/bin/ansible-playbook ...) or `pip install -e .` into Ansible's Python"
            ) from exc
        try:
            archive = nodepkg.build()
            return [nodepkg.archive_version(archive) if list(terms) == ["version"] else str(archive)]
        except OSError as exc:
            raise AnsibleLookupError(
                f"cannot build the node package: {exc} -- fix: free space in, or permissions of, $TMPDIR"
            ) from exc
