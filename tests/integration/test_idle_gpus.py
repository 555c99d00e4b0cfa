"""Issue 13 part 4 (rule 6 for running jobs) on the simulator: ailab-idle-gpus on the monitoring host mails
the owner of a job whose GPU stays at 0 % exactly once, through the front-end's MTA, and leaves a job
whose GPU is busy alone; with cancelling opted in (a test copy of its configuration) it cancels the idle
job, says so by mail, and still leaves the busy one running.

inventory/sim mails after 1 minute (ailab_policy.idle_gpu_mail_minutes) and cancels never; the timer runs
the tool every minute.  GPU load comes from the nvidia-smi stand-in (``sim.gpu_load``), read by the real
ailab-exporter and Prometheus.
"""

from __future__ import annotations

import json
import time

import pytest

from ailab.monitoring import IDLE_GPUS_STATE
from tests.integration.conftest import record_timing
from tests.integration.ops_helpers import wait_for_mail
from tests.integration.slurm_helpers import submit, submitted, wait_for

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

CONFIG = "/etc/ailab/idle-gpus.json"
TEST_CONFIG = "/tmp/ailab-test-idle-gpus.json"
TEST_STATE = "/tmp/ailab-test-idle-gpus-state.json"


def notices(sim, fe: str, user: str, tag: str, count: int, timeout: float) -> list:
    return wait_for_mail(sim, fe, user, lambda m: m.get("X-Ailab-Notice") == tag, count, timeout)


def job_gpu(sim, ctl: str, job: str) -> int:
    detail = sim.exec(ctl, f"scontrol -d -o show job {job}").stdout
    gpu = detail.split("(IDX:", 1)[1].split(")", 1)[0]
    assert gpu.isdigit(), detail
    return int(gpu)


def running(sim, ctl: str, job: str) -> bool:
    return sim.exec(ctl, f"squeue -h -j {job} -o %T", check=False).stdout.strip() == "RUNNING"


def test_an_idle_gpu_mails_its_owner_once_and_an_opted_in_cancel_ends_the_job(sim, fe, ctl):
    (monitor,) = sim.cluster.monitoring_hosts
    assert monitor.name == ctl  # the cancel needs scancel there (the inventory check says so)
    policy = sim.cluster.policy
    assert policy.idle_gpu_mail_minutes and not policy.idle_gpu_cancel_minutes
    assert sim.exec(ctl, "systemctl is-active ailab-idle-gpus.timer").stdout.strip() == "active"
    node = next(h for h in sorted(sim.cluster.compute, key=lambda h: h.name) if h.hardware.gpu.count >= 2)
    script = "#!/bin/bash\nsleep 900\n"
    idle_job = submitted(submit(sim, fe, "student1", f"-w {node.name} --gres=gpu:1 -t 20", script))
    busy_job = submitted(submit(sim, fe, "student2", f"-w {node.name} --gres=gpu:1 -t 20", script))
    busy_gpu = None
    try:
        wait_for(
            "both jobs running", lambda: running(sim, ctl, idle_job) and running(sim, ctl, busy_job), 120
        )
        started = time.monotonic()
        busy_gpu = job_gpu(sim, ctl, busy_job)
        sim.gpu_load(node.name, busy_gpu, 40)

        # The timer's own run: one mail to the idle job's owner, none about the busy job.
        mails = notices(sim, fe, "student1", f"idle-gpu-mail {idle_job}", 1, timeout=240)
        record_timing("idle_gpu_job_start_to_mail_seconds", time.monotonic() - started)
        assert len(mails) == 1, [m["Subject"] for m in mails]
        body = mails[0].get_content()
        assert f"scancel {idle_job}" in body and f"GPU {job_gpu(sim, ctl, idle_job)} on {node.name}" in body
        assert mails[0]["Subject"] == f"[{sim.cluster.name}] Job {idle_job} holds an idle GPU (usage rule 6)"
        state = json.loads(sim.exec(ctl, f"cat {IDLE_GPUS_STATE}").stdout)
        assert "mailed" in state[idle_job] and busy_job not in state

        # Another run, by hand: still one mail (the state says it went out).
        sim.exec(ctl, "systemctl start ailab-idle-gpus.service")
        assert len(notices(sim, fe, "student1", f"idle-gpu-mail {idle_job}", 2, timeout=10)) == 1
        assert notices(sim, fe, "student2", f"idle-gpu-mail {busy_job}", 1, timeout=2) == []

        # Cancelling opted in (2 minutes, above the mail's 1): the tool run with a test copy of its
        # configuration, and of its state (the job was mailed), until the idle job is cancelled.
        config = json.loads(sim.exec(ctl, f"cat {CONFIG}").stdout)
        config.update(cancel_minutes=2, state=TEST_STATE)
        sim.exec(ctl, f"umask 077; cat > {TEST_CONFIG}", input=json.dumps(config))
        sim.exec(ctl, f"cp {IDLE_GPUS_STATE} {TEST_STATE}")

        def cancelled():
            sim.exec(ctl, f"/usr/local/sbin/ailab-idle-gpus --config {TEST_CONFIG}")
            return not running(sim, ctl, idle_job)

        wait_for(f"job {idle_job} cancelled for its idle GPU", cancelled, timeout=180, interval=10)
        record_timing("idle_gpu_job_start_to_cancel_seconds", time.monotonic() - started)
        state = sim.exec(ctl, f"sacct -X -n -j {idle_job} -o State%20").stdout.split()
        assert state and state[0] == "CANCELLED", state
        (done,) = notices(sim, fe, "student1", f"idle-gpu-cancel {idle_job}", 1, timeout=60)
        assert "had been at 0 % utilisation for 2 minutes" in " ".join(done.get_content().split())
        assert running(sim, ctl, busy_job)  # its GPU is busy: never mailed, never cancelled
    finally:
        if busy_gpu is not None:
            sim.gpu_load(node.name, busy_gpu, 0)
        sim.exec(ctl, f"scancel {idle_job} {busy_job}; rm -f {TEST_CONFIG} {TEST_STATE}", check=False)
