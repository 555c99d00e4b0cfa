"""Role metrics: the exporters answer on the cluster address only, with what the model says."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ailab.monitoring import EXPORTER_PORT, NODE_EXPORTER_PORT

testinfra_hosts = ["fe01", "mol-t4-01"]


def scrape(host, address: str, port: int) -> dict[str, list]:
    text = host.check_output(f"curl -fsS --max-time 10 http://{address}:{port}/metrics")
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_node_exporter_serves_the_cluster_address_alone(host, cluster):
    me = cluster.hosts[host.backend.get_hostname()]
    assert host.service("prometheus-node-exporter").is_running
    assert host.service("prometheus-node-exporter").is_enabled
    metrics = scrape(host, me.address, NODE_EXPORTER_PORT)
    for name in (
        "node_cpu_seconds",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "node_filesystem_avail_bytes",
    ):
        assert name in metrics, sorted(metrics)[:40]
    assert "node_systemd_unit_state" not in metrics  # the default collectors are off
    fstypes = {s.labels["fstype"] for s in metrics["node_filesystem_avail_bytes"]}
    assert not any(t.startswith(("fuse", "ceph")) for t in fstypes), fstypes
    assert host.run(f"curl -fsS --max-time 5 http://127.0.0.1:{NODE_EXPORTER_PORT}/metrics").rc != 0


def once(host, node: str) -> dict[str, list]:
    """What ailab-exporter serves the monitoring host (not created in this scenario), from the same code."""
    text = host.check_output(f"/usr/local/sbin/ailab-exporter --once --collect gpu --node {node} || true")
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_only_gpu_nodes_run_the_ailab_exporter(host, cluster):
    me = cluster.hosts[host.backend.get_hostname()]
    unit = host.service("ailab-exporter")
    if not me.in_group("compute"):
        assert not host.file("/etc/systemd/system/ailab-exporter.service").exists
        return
    assert unit.is_running and unit.is_enabled
    metrics = once(host, me.name)
    gpus = {s.labels["gpu"]: s for s in metrics["ailab_gpu_memory_total_bytes"]}
    assert len(gpus) == me.hardware.gpu.count, gpus
    assert all(s.value > 0 for s in gpus.values())
    assert {s.labels["node"] for s in gpus.values()} == {me.name}


def test_the_ailab_exporter_answers_the_monitoring_host_alone(host, cluster):
    """Its job metrics name users and their jobs: anyone else (here the node itself, from its cluster
    address, as a student with a job there would) gets 403."""
    me = cluster.hosts[host.backend.get_hostname()]
    if not me.in_group("compute"):
        return
    (monitor,) = cluster.monitoring_hosts
    assert (
        f"--allow {monitor.address}" in host.file("/etc/systemd/system/ailab-exporter.service").content_string
    )
    code = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://{me.address}:{EXPORTER_PORT}/metrics"
    )
    assert code == "403", code


def test_a_busy_gpu_shows_its_utilisation(host, cluster):
    me = cluster.hosts[host.backend.get_hostname()]
    if not me.in_group("compute"):
        return
    host.run_expect([0], "mkdir -p /var/lib/ailab-sim/load && echo '73 1024' > /var/lib/ailab-sim/load/1")
    try:
        metrics = once(host, me.name)
        util = {s.labels["gpu"]: s.value for s in metrics["ailab_gpu_utilization_percent"]}
        used = {s.labels["gpu"]: s.value for s in metrics["ailab_gpu_memory_used_bytes"]}
        assert util["1"] == 73 and util["0"] == 0, util
        assert used["1"] == 1024 * 2**20, used
    finally:
        host.run("rm -f /var/lib/ailab-sim/load/1")
    util = {s.labels["gpu"]: s.value for s in once(host, me.name)["ailab_gpu_utilization_percent"]}
    assert util["1"] == 0, util
