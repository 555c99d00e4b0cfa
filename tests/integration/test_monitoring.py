"""Issue 13 (metrics and alerts) on the simulator: Prometheus scrapes every exporter the model names, a
running job's GPU shows with its user, a GPU made busy in the nvidia-smi stand-in shows its utilisation, and
a stopped compute node fires NodeDown, whose mail reaches the operators' mailbox (root's on the front-end:
the simulator's MTA delivers outside addresses there) and which resolves when the node is back.

Prometheus is queried on the monitoring host, where it listens (loopback), as an operator's tunnel would.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.parse

import pytest

from ailab.monitoring import EXPORTER_PORT, PROMETHEUS_PORT
from tests.integration.conftest import record_timing
from tests.integration.slurm_helpers import submit, submitted, wait_for

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")


def api(sim, path: str, **params: str) -> dict:
    """Prometheus' HTTP API, asked on the monitoring host (it listens on loopback alone)."""
    (host,) = sim.cluster.monitoring_hosts
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    reply = sim.exec(host.name, f"curl -fsS --max-time 10 {shlex.quote(url)}", timeout=30)
    data = json.loads(reply.stdout)
    assert data["status"] == "success", data
    return data["data"]


def query(sim, expr: str) -> list[dict]:
    return api(sim, "query", query=expr)["result"]


def firing(sim, alert: str) -> dict[str, dict]:
    return {
        a["labels"].get("instance", a["labels"].get("node", "")): a
        for a in api(sim, "alerts")["alerts"]
        if a["labels"]["alertname"] == alert and a["state"] == "firing"
    }


def test_every_target_is_scraped(sim):
    """`up == 1` for every target: node-exporter on each host, ours on GPU nodes and the controller, the
    Ceph mgr, Prometheus and Alertmanager; and the scrape durations, for the closing numbers."""
    expected = len(sim.cluster.hosts) + len(sim.cluster.compute) + len(sim.cluster.controllers) + 3

    def all_up():
        targets = api(sim, "targets")["activeTargets"]
        down = [(t["labels"]["job"], t["labels"]["instance"], t.get("lastError")) for t in targets
                if t["health"] != "up"]  # fmt: skip
        return (len(targets) == expected and not down and targets) or False

    targets = wait_for("every target up", all_up, timeout=120)
    for t in targets:
        record_timing(
            f"scrape_{t['labels']['job']}_{t['labels']['instance']}_seconds", t["lastScrapeDuration"]
        )
    assert {r["metric"]["instance"] for r in query(sim, 'up{job="node"} == 1')} == set(sim.cluster.hosts)


def test_the_job_metrics_are_the_monitoring_hosts_alone(sim, fe):
    """They name users and their jobs, which Slurm shows a student only for their own: a student on the
    front-end reaches neither Prometheus nor a GPU node's exporter."""
    (monitor,) = sim.cluster.monitoring_hosts
    node = sorted(sim.cluster.compute, key=lambda h: h.name)[0]
    for url in (f"http://{monitor.address}:{PROMETHEUS_PORT}/api/v1/targets",
                f"http://{node.address}:{EXPORTER_PORT}/metrics"):  # fmt: skip
        got = sim.exec(fe, f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 {url}", user="student1",
                       check=False)  # fmt: skip
        assert got.stdout.strip() in ("000", "403"), (url, got.stdout, got.stderr)


def test_slurm_metrics_name_every_gpu_type(sim):
    total = {r["metric"]["gpu_type"]: float(r["value"][1]) for r in query(sim, "ailab_slurm_gpus_total")}
    want: dict[str, float] = {}
    for h in sim.cluster.compute:
        want[h.hardware.gpu.model] = want.get(h.hardware.gpu.model, 0) + h.hardware.gpu.count
    assert total == want
    assert {r["metric"]["daemon"] for r in query(sim, "ailab_slurm_daemon_up == 1")} == {
        "slurmctld",
        "slurmdbd",
    }


def test_a_running_jobs_gpu_shows_its_user_and_load(sim, fe, ctl):
    node = sorted(h.name for h in sim.cluster.compute)[0]
    job = submitted(submit(sim, fe, "student1", f"-w {node} --gres=gpu:1 -t 5", "#!/bin/bash\nsleep 300\n"))
    try:
        state = f"squeue -h -j {job} -o %T"
        wait_for(f"job {job} running", lambda: sim.exec(ctl, state).stdout.strip() == "RUNNING", timeout=120)
        detail = sim.exec(ctl, f"scontrol -d -o show job {job}").stdout
        gpu = detail.split("(IDX:", 1)[1].split(")", 1)[0]
        assert gpu.isdigit(), detail

        def job_series():
            return query(sim, f'ailab_job_gpu_utilization_percent{{jobid="{job}"}}')

        (series,) = wait_for("the job's GPU in Prometheus", job_series, timeout=90)
        assert series["metric"]["user"] == "student1" and series["metric"]["node"] == node
        assert series["metric"]["gpu"] == gpu and float(series["value"][1]) == 0
        sim.gpu_load(node, int(gpu), 64, memory_mib=2048)
        try:
            busy = wait_for(
                "the load set in nvidia-smi",
                lambda: [s for s in job_series() if float(s["value"][1]) == 64],
                timeout=90,
            )
            assert busy
            used = query(sim, f'ailab_job_gpu_memory_used_bytes{{jobid="{job}"}}')
            assert float(used[0]["value"][1]) == 2048 * 2**20
            per_gpu = query(sim, f'ailab_gpu_utilization_percent{{instance="{node}",gpu="{gpu}"}}')
            assert float(per_gpu[0]["value"][1]) == 64
        finally:
            sim.gpu_load(node, int(gpu), 0)
    finally:
        sim.exec(ctl, f"scancel {job}", check=False)
    allocated = wait_for(
        "the GPU released in the Slurm metrics",
        lambda: sum(float(r["value"][1]) for r in query(sim, "ailab_slurm_gpus_allocated")) == 0 or None,
        timeout=90,
    )
    assert allocated


def mailbox(sim, fe: str) -> str:
    return sim.exec(fe, "cat /var/mail/root 2>/dev/null || true").stdout


def test_a_stopped_node_fires_node_down_and_the_operators_get_mail(sim, fe, ctl):
    # Not the node test_cephfs reboots (the last): a NodeDown already mailed and not yet resolved by mail is
    # not mailed again (Alertmanager's deduplication).
    node = sorted(h.name for h in sim.cluster.compute)[0]
    before = len(mailbox(sim, fe))
    started = time.monotonic()
    sim.stop(node)
    try:
        wait_for(f"NodeDown firing for {node}", lambda: node in firing(sim, "NodeDown"),
                 timeout=60 * sim.cluster.monitoring.node_down_minutes + 120)  # fmt: skip
        record_timing("node_stop_to_alert_seconds", time.monotonic() - started)

        def mailed():
            new = mailbox(sim, fe)[before:]
            return "NodeDown" in new and node in new and new

        mail = wait_for("the NodeDown mail in the operators' mailbox", mailed, timeout=180)
        record_timing("node_stop_to_alert_mail_seconds", time.monotonic() - started)
        assert "[FIRING" in mail and "ailab-ops@example.org" in mail, mail[-3000:]
        assert "SlurmNodeDown" not in mail  # inhibited by the NodeDown of the same node
    finally:
        sim.start(node, timeout=420)
    wait_for(f"NodeDown resolved for {node}", lambda: node not in firing(sim, "NodeDown"), timeout=180)
    wait_for(
        f"{node} back in Slurm",
        lambda: sim.exec(ctl, f"sinfo -h -n {node} -o %T").stdout.strip() in ("idle", "mixed", "allocated"),
        timeout=300,
    )
