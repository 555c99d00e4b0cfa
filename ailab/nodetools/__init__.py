"""Stand-alone scripts that roles copy onto nodes.

Each module here uses the standard library only (nodes have python3, not the ailab package), so the same
file is unit-tested here and executed there.  The one exception is exporter.py (ailab-exporter), which
also uses prometheus_client: on the nodes Debian's python3-prometheus-client (0.16 in bookworm), here the
dev extra's prometheus-client.
"""
