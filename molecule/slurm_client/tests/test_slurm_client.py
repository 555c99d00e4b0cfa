"""Role slurm_client: students' commands on the front-end (moved here from the whole-cluster suite)."""

from __future__ import annotations

testinfra_hosts = ["fe01"]


def test_slurm_commands_reach_the_controller(host, cluster):
    partitions = set(host.check_output("sinfo -h -o %R").split())
    assert {p.name for p in cluster.partitions} <= partitions
    assert host.file("/etc/slurm/slurm.conf").contains(f"ClusterName={cluster.slurm.cluster_name}")


def test_no_slurm_daemon_on_the_front_end(host):
    for service in ("slurmd", "slurmctld", "slurmdbd"):
        assert not host.service(service).is_running, service
