"""The programs that run only on nodes, each a module with a ``main()``: the login message (motd), the
status page, jobstats, the container tool, ailab-exporter, ailab-idle-gpus, the CephFS mount watchdog
(cephfscheck) and the GPU health check (gpuhealth).

They are part of the node package (:mod:`ailab.nodepkg`, which names each program's command), together
with the modules they share with the controller.  Standard library only, with one exception: exporter.py
(ailab-exporter) also uses prometheus_client: on the nodes Debian's python3-prometheus-client (0.16 in
bookworm), here the dev extra's prometheus-client.
"""
