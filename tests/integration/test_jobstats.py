"""Issue 13, job efficiency for students, on the simulator: a student's GPU job runs with a known load on
its GPU (the nvidia-smi stand-in) for a few scrapes; while it runs `jobstats JOBID` shows the GPU's load now
(srun --overlap inside the job), after it ends the controller's EpilogSlurmctld has stored the GPU average
from Prometheus in the job's AdminComment and `jobstats JOBID` on the front-end prints the job's CPU, memory
and GPU figures; another student cannot see the job; the login line shows it.
"""

from __future__ import annotations

import re
import time

import pytest

from ailab.nodetools.jobstats import human_bytes
from tests.integration.conftest import record_timing
from tests.integration.slurm_helpers import TERMINAL, submit, submitted, wait_for

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

LOAD, MEMORY_MIB = 70, 3072
# Busy for ~20 s (CPU figure), holds ~200 MiB, runs ~55 s: three or four scrapes at 15 s.
SCRIPT = """#!/bin/bash
python3 - <<'PY'
import time
block = bytearray(200 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.time()
while time.time() - start < 20:
    pass
time.sleep(35)
PY
"""


def state(sim, ctl: str, job: str) -> str:
    return sim.exec(ctl, f"sacct -X -n -P -j {job} -o State").stdout.strip().split(" ")[0]


# The memory line: "<size> peak   <percentage>" (human_bytes of the largest MaxRSS, its share of the memory).
PEAK = re.compile(r"([0-9.]+) (MiB|GiB) peak\s+([0-9]+) %")


def peak_mib(line: str) -> tuple[float, int] | None:
    """(the peak in MiB, its percentage of the allocation) printed on jobstats' Memory line."""
    match = PEAK.search(line)
    if not match:
        return None
    return float(match.group(1)) * (1024 if match.group(2) == "GiB" else 1), int(match.group(3))


def memory_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip().startswith("Memory")), "")


def test_jobstats_of_a_finished_gpu_job(sim, fe, ctl):
    node = sorted((h for h in sim.cluster.compute if h.hardware.gpu.model == "t4"), key=lambda h: h.name)[0]
    # Every GPU of the node carries the load from the start, so each sample of the job's GPU (whichever
    # Slurm picks) is LOAD and the average must come out as LOAD.
    gpus = range(node.hardware.gpu.count)
    try:
        for index in gpus:
            sim.gpu_load(node.name, index, LOAD, memory_mib=MEMORY_MIB)
        job = submitted(submit(sim, fe, "student1", f"-w {node.name} --gres=gpu:1 -t 5 -J effdemo", SCRIPT))
        wait_for(f"job {job} running", lambda: state(sim, ctl, job) == "RUNNING", timeout=120)
        detail = sim.exec(ctl, f"scontrol -d -o show job {job}").stdout
        gpu = detail.split("(IDX:", 1)[1].split(")", 1)[0]

        # Running: the job's own GPU, now, through srun --overlap as the student; its memory peak so far
        # (sstat makes slurmstepd sample at once; the script holds its 200 MiB within a second of starting).
        now = wait_for(
            "jobstats of the running job",
            lambda: (
                (r := sim.exec(fe, f"jobstats {job}", user="student1", check=False)).returncode == 0
                and "% now" in r.stdout
                and peak_mib(memory_line(r.stdout))
                and r.stdout
            ),
            timeout=60,
        )
        assert "RUNNING" in now and f"{node.name} GPU {gpu}: {LOAD} % now, 3.0 GiB used" in now, now
        so_far = peak_mib(memory_line(now))
        assert so_far and 150 <= so_far[0] <= 400, now

        wait_for(f"job {job} finished", lambda: state(sim, ctl, job) in TERMINAL, timeout=150)
        comment = wait_for(
            "the epilog's AdminComment",
            lambda: sim.exec(fe, f"sacct -X -n -P -j {job} -o AdminComment", user="student1").stdout.strip(),
            timeout=30,
        )
        assert comment.startswith(f"js1:{node.name}/{gpu}:"), comment
    finally:
        for index in gpus:
            sim.gpu_load(node.name, index, 0)

    started = time.monotonic()
    result = sim.exec(fe, f"jobstats {job}", user="student1", check=False)
    record_timing("jobstats_finished_job_seconds", time.monotonic() - started)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "COMPLETED, exit code 0" in text and "effdemo" in text, text
    # CPU: about 20 s of CPU time out of the job's run time on its one core.
    cpu = re.search(r"CPU\s+1 core\s+(\d\d):(\d\d):(\d\d) CPU time of \S+\s+(\d+) %", lines["CPU"])
    assert cpu, text
    assert 5 <= int(cpu.group(2)) * 60 + int(cpu.group(3)) <= 40, text
    # Memory: what the job was given (DefMemPerGPU), and its peak as far as Slurm recorded it.
    given = human_bytes(sim.cluster.slurm.def_mem_per_gpu_mb << 20)
    assert re.match(rf"\s*Memory\s+{re.escape(given)}\s+.*peak", lines["Memory"]), text
    # The peak Slurm recorded (MaxRSS of the batch step): the 200 MiB the script held, and its percentage.
    peak = peak_mib(lines["Memory"])
    assert peak and 150 <= peak[0] <= 400, text
    assert abs(peak[1] - peak[0] / sim.cluster.slurm.def_mem_per_gpu_mb * 100) <= 1, text
    # GPU: the average over the job's samples is the load that was set, its peak memory the memory.
    average = re.search(rf"{node.name} GPU {gpu}: (\d+) % average, 3\.0 GiB peak", lines["GPU"])
    assert average and abs(int(average.group(1)) - LOAD) <= 2, text

    # Another student: Slurm hides the job (PrivateData); jobstats says so and exits 3.
    other = sim.exec(fe, f"jobstats {job}", user="student2", check=False)
    assert other.returncode == 3 and "belongs to another user" in other.stderr, other
    bad = sim.exec(fe, "jobstats 12x", user="student1", check=False)
    assert bad.returncode == 2 and "is not a job id" in bad.stderr, bad

    # The login line: an interactive login shell (profile.d hook) shows the job in one line.
    started = time.monotonic()
    login = sim.exec(fe, "bash -lic true", user="student1", check=False)
    record_timing("login_shell_with_jobstats_seconds", time.monotonic() - started)
    line = next((x for x in login.stdout.splitlines() if x.split()[:1] == [job]), "")
    assert "effdemo" in line and "COMPLETED" in line and f"GPU {LOAD:>3} %" in line, login.stdout
    quiet = sim.exec(fe, "bash -lc true", user="student1")  # not interactive: silent (scripts, scp)
    assert quiet.stdout == ""

    # The epilog's own run time, from its log line on the controller.
    log = sim.exec(ctl, f"journalctl -t ailab-jobstats-epilog --no-pager -o cat | grep 'job {job}:'").stdout
    seconds = re.search(r"\((\d+\.\d+) s\)", log)
    assert seconds and "stored js1:" in log, log
    record_timing("jobstats_epilog_seconds", float(seconds.group(1)))
