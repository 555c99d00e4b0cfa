"""Issue 15, part 1: inventory/production's scheduler at full size (`ailab sim emulate`): real slurmctld,
slurmdbd + MariaDB and one slurmd per production node, configured by the same renderers, used as a
student would.  Needs only the node image, not the simulated cluster; the emulation is removed at the end.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from ailab.maintenance import create_command
from ailab.model import Cluster
from ailab.slurm import job_submit_messages
from simulator.emulate import Emulation
from tests.integration.slurm_helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "inventory" / "production"
PREFIX = "ailab-it-emu"  # not the default: an operator's own emulation may run beside the suite


@pytest.fixture(scope="module")
def prod() -> Cluster:
    cluster, _ = load_cluster(PRODUCTION)
    return cluster


@pytest.fixture(scope="module")
def emu(prod) -> Iterator[Emulation]:
    emulation = Emulation(prod, str(PRODUCTION), prefix=PREFIX)
    emulation.down()
    try:
        yield emulation
    finally:
        emulation.down()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`ailab sim emulate -i inventory/production --prefix PREFIX ARGS...`, as an operator types it."""
    command = [
        str(Path(sys.executable).with_name("ailab")),
        "sim",
        "emulate",
        "-i",
        str(PRODUCTION),
        "--prefix",
        PREFIX,
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def student(prod, emu) -> str:
    """The emulation started by the CLI (the first run starts it), and the first student of production."""
    started = cli("--", "true")
    assert started.returncode == 0, started.stderr
    assert re.search(r"\d+ nodes of .* idle in [\d.]+s", started.stderr), started.stderr
    return sorted(u.name for u in prod.users.values() if not u.admin)[0]


def as_user(emu: Emulation, user: str | None, command: str) -> subprocess.CompletedProcess[str]:
    return emu.run(["bash", "-c", command], user=user, capture=True)


def sbatch(emu: Emulation, user: str, options: str) -> subprocess.CompletedProcess[str]:
    return as_user(emu, user, f"sbatch --parsable {options} --wrap 'sleep 600'")


def job_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def job(emu: Emulation, user: str, jid: str) -> tuple[str, str, str]:
    """(state, nodes, reason) from squeue."""
    out = as_user(emu, user, f"squeue -h -j {jid} -o '%T|%N|%r'").stdout.strip()
    state, nodes, reason = [*out.split("|"), "", "", ""][:3]
    return state, nodes, reason


def cancel_all(emu: Emulation) -> None:
    as_user(emu, None, "squeue -h -o %i | xargs -r scancel")

    def queue() -> str:
        result = as_user(emu, None, "squeue -h -o '%i %T %u %r'")
        return result.stdout.strip() + result.stderr.strip()

    wait_for("the queue to empty", lambda: queue() == "", 60)


def test_every_node_and_gpu_of_production_is_idle(prod, emu, student):
    out = cli("--user", student, "--", "sinfo", "-h", "-N", "-o", "%N %t %G")
    assert out.returncode == 0, out.stderr
    nodes = {}
    for line in out.stdout.splitlines():
        name, state, gres = line.split()
        nodes[name] = (state, int(gres.rsplit(":", 1)[1]), gres.split(":")[1])
    assert set(nodes) == {h.name for h in prod.compute}
    assert {state for state, _, _ in nodes.values()} == {"idle"}
    assert sum(count for _, count, _ in nodes.values()) == sum(h.hardware.gpu.count for h in prod.compute)
    for host in prod.compute:
        assert nodes[host.name][1:] == (host.hardware.gpu.count, host.hardware.gpu.model), host.name
    # The sizes an operator wrote, as slurmctld holds them.
    node = prod.compute[0]
    shown = as_user(emu, student, f"scontrol show node {node.name}").stdout
    assert f"CPUTot={node.hardware.cpus}" in shown and f"RealMemory={node.hardware.memory_mb}" in shown


@pytest.mark.parametrize(
    ("options", "model"), [("--gres=gpu:a100:8", "a100"), ("-p l4 --gpus=2", "l4")], ids=["a100x8", "l4x2"]
)
def test_typed_requests_run_on_their_class(prod, emu, student, options, model):
    jid = job_id(sbatch(emu, student, options))
    try:
        _, nodes, _ = wait_for(
            f"job {jid} to run", lambda: (info := job(emu, student, jid))[0] == "RUNNING" and info, 60
        )
        hosts = {h.name: h for h in prod.compute}
        assert hosts[nodes].hardware.gpu.model == model, nodes
    finally:
        cancel_all(emu)


def test_a_13_hour_job_and_a_cpu_only_job_are_refused(prod, emu, student):
    messages = job_submit_messages(prod)
    long = sbatch(emu, student, "--gres=gpu:1 --time=13:00:00")
    assert long.returncode != 0 and messages["too_long"] in long.stderr, long.stderr
    cpu = sbatch(emu, student, "--cpus-per-task=2")
    assert cpu.returncode != 0 and messages["no_gpu"] in cpu.stderr, cpu.stderr
    assert not as_user(emu, student, "squeue -h --me").stdout.strip()


def test_the_per_user_gpu_cap_holds_jobs(prod, emu, student):
    cap = prod.policy.max_gpus_per_user
    try:
        first = job_id(sbatch(emu, student, f"--gres=gpu:a100:{cap}"))
        wait_for(f"job {first} to run", lambda: job(emu, student, first)[0] == "RUNNING", 60)
        second = job_id(sbatch(emu, student, "--gres=gpu:1"))
        # A GPU is free on every other node: only the QOS holds it.
        wait_for(
            f"job {second} to be held by the QOS",
            lambda: job(emu, student, second)[2] == "QOSMaxGRESPerUser",
            30,
        )
        assert job(emu, student, second)[0] == "PENDING"
        as_user(emu, student, f"scancel {first}")
        wait_for(
            f"job {second} to run once the first ended", lambda: job(emu, student, second)[0] == "RUNNING", 60
        )
    finally:
        cancel_all(emu)


def test_a_maintenance_reservation_holds_jobs_that_would_cross_it(prod, emu, student):
    now = dt.datetime.strptime(
        as_user(emu, None, "date +%Y-%m-%dT%H:%M:%S").stdout.strip(), "%Y-%m-%dT%H:%M:%S"
    )
    start = (now + dt.timedelta(hours=2)).replace(second=0)
    made = as_user(emu, None, shlex.join(create_command("maint-it", start, start + dt.timedelta(hours=1))))
    assert made.returncode == 0, made.stderr
    try:
        crossing = job_id(sbatch(emu, student, "--gres=gpu:1 --time=03:00:00"))
        before = job_id(sbatch(emu, student, "--gres=gpu:1 --time=01:00:00"))
        wait_for(
            f"job {before} (ends before the window) to run",
            lambda: job(emu, student, before)[0] == "RUNNING",
            60,
        )
        state, _, reason = wait_for(
            f"job {crossing} to be held for the window",
            lambda: (info := job(emu, student, crossing))[2] not in ("", "None", "Priority") and info,
            60,
        )
        assert state == "PENDING"
        assert "ReqNodeNotAvail" in reason or "Resv" in reason, reason
    finally:
        cancel_all(emu)
        as_user(emu, None, "scontrol delete ReservationName=maint-it")


def test_down_removes_the_emulation(emu, student):
    assert emu.ready()
    out = cli("--down")
    assert out.returncode == 0 and PREFIX in out.stdout, out.stderr
    assert not emu.ready()
    assert not emu.docker.inspect("container", [emu.name])
    assert not emu.docker.inspect("network", [emu.name])
