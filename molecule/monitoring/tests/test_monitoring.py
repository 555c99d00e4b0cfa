"""Role monitoring: Prometheus scrapes the model's targets and evaluates the rules; Alertmanager is
reachable from its own host alone."""

from __future__ import annotations

import json
import time

from ailab.monitoring import ALERTMANAGER_PORT, PROMETHEUS_PORT

testinfra_hosts = ["ctl01"]


def api(host, path: str) -> dict:
    out = host.check_output(f"curl -fsS --max-time 10 'http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/{path}'")
    data = json.loads(out)
    assert data["status"] == "success", data
    return data["data"]


def test_the_daemons_run_with_checked_configuration(host):
    for unit in ("prometheus", "prometheus-alertmanager"):
        assert host.service(unit).is_running and host.service(unit).is_enabled
    host.run_expect([0], "promtool check config /etc/prometheus/prometheus.yml")
    host.run_expect([0], "amtool check-config /etc/prometheus/alertmanager.yml")


def test_prometheus_scrapes_every_host_of_the_model(host, cluster):
    for _ in range(60):
        targets = api(host, "targets")["activeTargets"]
        node = {t["labels"]["instance"]: t["health"] for t in targets if t["labels"]["job"] == "node"}
        if node.get("fe01") == "up" and node.get("ctl01") == "up":
            break
        time.sleep(2)
    assert set(node) == set(cluster.hosts), node
    assert node["fe01"] == node["ctl01"] == "up", node
    jobs = {t["labels"]["job"] for t in targets}
    assert {"prometheus", "alertmanager", "node", "ailab", "ceph"} <= jobs, jobs


def test_the_alert_rules_are_loaded_and_a_missing_node_fires(host, cluster):
    rules = {r["name"] for g in api(host, "rules")["groups"] for r in g["rules"]}
    for name in (
        "NodeDown",
        "SlurmNodeDrained",
        "GpuDrainedByHealthCheck",
        "SlurmctldDown",
        "SlurmdbdDown",
        "CephNotHealthy",
        "CephFSFull",
        "JobGpuIdle",
    ):
        assert name in rules, rules
    # The compute nodes are not created in this scenario: their node exporters never answer.
    missing = sorted(h.name for h in cluster.compute)[0]
    deadline = time.monotonic() + 60 * cluster.monitoring.node_down_minutes + 90
    while time.monotonic() < deadline:
        alerts = api(host, "alerts")["alerts"]
        down = {
            a["labels"]["instance"]
            for a in alerts
            if a["labels"]["alertname"] == "NodeDown" and a["state"] == "firing"
        }
        if missing in down:
            break
        time.sleep(5)
    assert missing in down and "fe01" not in down, alerts
    got = host.check_output(f"curl -fsS --max-time 10 http://127.0.0.1:{ALERTMANAGER_PORT}/api/v2/alerts")
    assert any(a["labels"]["alertname"] == "NodeDown" for a in json.loads(got)), got


def test_prometheus_and_alertmanager_answer_on_loopback_alone(host, cluster):
    """The job metrics name users and their jobs (Slurm's PrivateData hides them from other students), and
    no one else may silence an alert: neither listens on the cluster network."""
    me = cluster.hosts["ctl01"]
    for port in (PROMETHEUS_PORT, ALERTMANAGER_PORT):
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
        assert host.run(f"curl -fsS --max-time 5 http://{me.address}:{port}/").rc != 0, port
    out = host.run(
        f"curl -sS --max-time 5 -X POST http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/admin/tsdb/snapshot"
    )
    assert "admin APIs disabled" in out.stdout, out.stdout


def test_the_idle_gpu_mail_runs_every_minute_with_a_private_configuration(host, cluster):
    """Rule 6 for running jobs: ailab-idle-gpus' timer is active, its configuration (every user's address) is
    root's alone and says what the policy says, and a run with no job at all does nothing and succeeds."""
    timer = host.service("ailab-idle-gpus.timer")
    assert timer.is_running and timer.is_enabled
    config = host.file("/etc/ailab/idle-gpus.json")
    assert (config.user, config.mode) == ("root", 0o600)
    data = json.loads(config.content_string)
    assert data["mail_minutes"] == cluster.policy.idle_gpu_mail_minutes
    assert data["cancel_minutes"] == cluster.policy.idle_gpu_cancel_minutes
    assert set(data["users"]) == set(cluster.users)
    host.run_expect([0], "systemctl start ailab-idle-gpus.service")
    assert host.run("/usr/local/sbin/ailab-idle-gpus --dry-run").stdout == ""
