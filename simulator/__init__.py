"""The ailab cluster simulator: every host of a simulated inventory as a systemd container on one machine.

:mod:`simulator.api` is the Python API (``Sim``), :mod:`simulator.cli` the ``ailab sim`` commands; the pure
parts (container arguments, node configuration, image hashes, cgroup clean-up) live in their own modules
and do no I/O.  See simulator/README.md.
"""
