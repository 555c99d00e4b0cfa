"""Stand-alone scripts that roles copy onto nodes.

Each module here uses the standard library only (nodes have python3, not the ailab package), so the same
file is unit-tested here and executed there.
"""
