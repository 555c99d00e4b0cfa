"""Role slurm_compute: slurmd and its GPUs."""

from __future__ import annotations

import time

testinfra_hosts = ["mol-t4-01"]


def test_slurmd_runs_with_the_nodes_gres(host, cluster):
    assert host.service("slurmd").is_running
    node = cluster.hosts["mol-t4-01"]
    gres = host.file("/etc/slurm/gres.conf").content_string
    assert f"Type={node.hardware.gpu.model}" in gres
    for index in range(node.hardware.gpu.count):
        assert host.run(f"test -c /dev/nvidia{index}").rc == 0, index


def test_the_node_registers_and_goes_idle(host):
    state = ""
    for _ in range(60):
        state = host.check_output("sinfo -h -n mol-t4-01 -o %T").strip()
        if state.startswith("idle"):
            break
        time.sleep(1)
    assert state.startswith("idle"), state
