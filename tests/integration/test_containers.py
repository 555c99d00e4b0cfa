"""Issue 12: containers for students, on the simulated cluster, the way a student uses them.

- The guide's sh block (docs/containers-<inventory>.md, parsed from the generated text) is run as it is:
  build on the front-end FROM the catalogue, then a 1-GPU job on a T4 node lists its GPU from inside.
- 2 GPUs on the A40 node; each run sees exactly the job's GPUs (the same UUIDs as outside the container),
  CUDA_VISIBLE_DEVICES and the student's home.
- The container cannot read another student's home or see a GPU the job was not given; a process that
  allocates past the job's memory is killed by the job's cgroup (OUT_OF_MEMORY) and the node stays up.
- Cancelling the job and its time limit end the container.
- A job without a GPU is refused like any CPU-only job; bad input (a failing Containerfile, an image that
  does not exist, FROM an unreachable registry, --privileged / --network / --device) is refused naming the
  rule, leaving nothing half-built in ~/images or the catalogue.
The example image is built once per module; numbers (build time, start overhead, size vs quota) are printed
and recorded in the session timings.
"""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from ailab.containers import catalogue_config, rules
from ailab.docs import EXAMPLE_IMAGE, containers_doc, sh_blocks
from ailab.slurm import job_submit_messages
from tests.integration.conftest import record_timing
from tests.integration.slurm_helpers import TERMINAL, job_output, submit, submitted, wait_for

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

STUDENT = "student1"
OTHER = "student2"
GPU_LINE = re.compile(r"^GPU \d+: .+ \(UUID: (GPU-[0-9a-f-]+)\)$")


def uuids(text: str) -> list[str]:
    return [m[1] for m in (GPU_LINE.match(line.strip()) for line in text.splitlines()) if m]


def as_student(sim, fe, command: str, user: str = STUDENT, timeout: int = 600):
    return sim.exec(fe, command, user=user, check=False, timeout=timeout)


@pytest.fixture(scope="module")
def guide(sim) -> list[str]:
    """The guide's commands, one per line, from the text the docs generator writes for this inventory."""
    (block,) = sh_blocks(containers_doc(sim.cluster, "sim"))
    return block.splitlines()


@pytest.fixture(scope="module")
def catalogue(sim, fe) -> dict[str, str]:
    """The catalogue as published: the converge only starts ailab-catalogue.service on the publish host (the
    first ceph host) and does not wait, so wait here for every image's stamp to carry its digest."""
    config = catalogue_config(sim.cluster)
    wanted = {i["name"]: i["digest"] for i in config["images"]}
    publisher = sim.cluster.group("ceph")[0].name

    def digests() -> dict[str, str]:
        out = {}
        for name in wanted:
            got = sim.exec(fe, f"cat {config['catalogue']}/{name}.json", check=False)
            out[name] = json.loads(got.stdout).get("digest", "") if got.returncode == 0 else ""
        return out

    def published() -> bool:
        if digests() == wanted:
            return True
        state = sim.exec(publisher, "systemctl show -p ActiveState --value ailab-catalogue", check=False)
        assert state.stdout.strip() != "failed", sim.exec(
            publisher, "journalctl -u ailab-catalogue -n 30 --no-pager -o cat", check=False
        ).stdout
        return False

    wait_for("the catalogue published by ailab-catalogue.service", published, timeout=600)
    return wanted


@pytest.fixture(scope="module")
def built(sim, fe, guide, catalogue) -> dict[str, object]:
    """Everything in the guide's block but the GPU job, as the student: the image, timed."""
    build = "\n".join(guide[:-1])
    as_student(sim, fe, f"rm -rf ~/{EXAMPLE_IMAGE} ~/images/{EXAMPLE_IMAGE}.sqfs")
    start = time.monotonic()
    result = as_student(sim, fe, build)
    seconds = time.monotonic() - start
    assert result.returncode == 0, (
        f"the guide's build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    record_timing("containers_example_build_seconds", seconds)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("ailab-ch-build: "))
    print(f"\nbuild of the guide's image: {seconds:.1f} s; {line}")
    return {"seconds": seconds, "summary": line, "stdout": result.stdout}


def test_the_guides_block_runs_a_t4_job_that_lists_exactly_its_gpu(sim, fe, guide, built):
    job_line = guide[-1]
    assert "--partition=t4" in job_line and "--gres=gpu:1" in job_line
    result = as_student(sim, fe, job_line)
    assert result.returncode == 0, result.stderr
    seen = uuids(result.stdout)
    assert len(seen) == 1 and "Tesla T4" in result.stdout, result.stdout
    # The same job step outside and inside the container: the same one GPU.
    both = as_student(
        sim,
        fe,
        job_line.replace(f"ailab-ch-run {EXAMPLE_IMAGE} -- nvidia-smi -L", "")
        + f" bash -c 'nvidia-smi -L; echo ---; ailab-ch-run {EXAMPLE_IMAGE} -- nvidia-smi -L'",
    )
    native, inside = both.stdout.split("---")
    assert len(uuids(native)) == 1 and uuids(native) == uuids(inside), both.stdout


def test_two_gpus_on_the_a40_node_with_cuda_visible_devices_and_the_home(sim, fe, built):
    as_student(sim, fe, "echo from-the-home > ~/.ailab-ct-marker")
    script = f"nvidia-smi -L; echo ---; ailab-ch-run {EXAMPLE_IMAGE} -- sh -c " + shlex.quote(
        'nvidia-smi -L; echo "CVD=$CUDA_VISIBLE_DEVICES"; cat "$HOME/.ailab-ct-marker"; ls /home'
    )
    result = as_student(sim, fe, f"srun -p a40 --gres=gpu:2 -t 5 bash -c {shlex.quote(script)}")
    assert result.returncode == 0, result.stderr
    native, inside = result.stdout.split("---")
    assert len(uuids(native)) == 2 and uuids(inside) == uuids(native), result.stdout
    assert "A40" in inside
    assert "CVD=0,1" in inside and "from-the-home" in inside, inside
    assert inside.split()[-1] == STUDENT, "other users' homes must not be in the container"


def test_a_container_cannot_read_another_home_or_open_a_gpu_not_given(sim, fe, built):
    opens = (
        "import os\n"
        "for d in ('/dev/nvidia0', '/dev/nvidia1'):\n"
        "    try:\n"
        "        os.close(os.open(d, os.O_RDWR)); print(d, 0)\n"
        "    except OSError as e:\n"
        "        print(d, e.errno)\n"
    )
    inside = (
        "ls /mnt/0 >/dev/null 2>&1 && echo OTHER-HOME-READABLE || echo other-home-denied; "
        f"python3 -c {shlex.quote(opens)}; nvidia-smi -L"
    )
    probe = f"ailab-ch-run -b /ceph/home/{OTHER}:/mnt/0 {EXAMPLE_IMAGE} -- sh -c {shlex.quote(inside)}"
    result = as_student(sim, fe, f"srun -p t4 --gres=gpu:1 -t 5 bash -c {shlex.quote(probe)}")
    out = result.stdout
    assert "other-home-denied" in out and "OTHER-HOME-READABLE" not in out, out
    # The job's devices cgroup: one device gives ENXIO (no driver behind it, but allowed), the other EPERM.
    errnos = sorted(int(m[1]) for m in re.finditer(r"^/dev/nvidia\d (\d+)$", out, re.M))
    assert errnos == [1, 6], out
    assert len(uuids(out)) == 1, out
    refused = as_student(
        sim, fe, f"srun -p t4 --gres=gpu:1 -t 5 ailab-ch-run --device /dev/nvidia1 {EXAMPLE_IMAGE} -- true"
    )
    assert refused.returncode != 0 and "rule C4" in refused.stderr, refused.stderr


def test_memory_past_the_jobs_limit_is_killed_by_the_jobs_cgroup(sim, fe, ctl, built):
    script = (
        "#!/bin/bash\n"
        f"srun ailab-ch-run {EXAMPLE_IMAGE} -- python3 -c "
        "'import time; b = b\"x\" * (700 * 2**20); time.sleep(2)'\n"
    )
    job = submitted(
        submit(sim, fe, STUDENT, "-p t4 --gres=gpu:1 --mem=256M -t 5", script, output="ailab-ct-oom")
    )
    wait_for(
        f"job {job} to end",
        lambda: (
            (s := sim.exec(ctl, f"sacct -n -X -j {job} -o State%30", check=False).stdout.split())
            and s[0] in TERMINAL
        ),
        timeout=180,
    )
    # The step that ran the container hit the job's limit: the job's cgroup's OOM killer, counted by
    # slurmstepd in that cgroup (the node's own OOM killer would leave no such event in the step).
    step = sim.exec(ctl, f"sacct -n -P -j {job}.0 -o State", check=False).stdout.split()
    assert step and step[0] == "OUT_OF_MEMORY", step
    assert f"oom-kill event(s) in StepId={job}.0" in job_output(sim, fe, STUDENT, job, output="ailab-ct-oom")
    node = sim.exec(ctl, f"sacct -n -X -j {job} -o NodeList%30", check=False).stdout.strip()
    info = sim.exec(ctl, f"sinfo -h -n {node} -o %T", check=False).stdout.strip()
    assert info in ("idle", "mixed", "allocated"), f"{node} is {info} after the job's OOM"


def _sleepers(sim, node: str) -> list[str]:
    return sim.exec(node, f"pgrep -u {STUDENT} -f 'sleep 4242' || true", check=False).stdout.split()


def test_cancel_and_the_time_limit_end_the_container(sim, fe, ctl, built):
    script = f"#!/bin/bash\nsrun ailab-ch-run {EXAMPLE_IMAGE} -- sleep 4242\n"
    timed = submitted(submit(sim, fe, STUDENT, "-p t4 --gres=gpu:1 -t 1", script, output="ailab-ct-time"))
    cancelled = submitted(
        submit(sim, fe, STUDENT, "-p a40 --gres=gpu:1 -t 5", script, output="ailab-ct-cancel")
    )
    node = next(p for p in sim.cluster.partitions if p.name == "a40").nodes[0]
    wait_for("the container's process in the cancelled job", lambda: _sleepers(sim, node), timeout=120)
    sim.exec(ctl, f"scancel {cancelled}")
    wait_for("the cancelled job's container to end", lambda: not _sleepers(sim, node), timeout=60)

    def ended():
        s = sim.exec(ctl, f"sacct -n -X -j {timed} -o State%30,NodeList%30", check=False).stdout.split()
        return s if s and s[0] in TERMINAL else None

    state, t4_node = wait_for(f"job {timed} to reach its time limit", ended, timeout=240)
    assert state == "TIMEOUT", state
    wait_for("the timed-out job's container to end", lambda: not _sleepers(sim, t4_node), timeout=60)


def test_a_container_without_a_gpu_is_refused_like_any_cpu_only_job(sim, fe, built):
    no_gpu = job_submit_messages(sim.cluster)["no_gpu"]
    result = as_student(sim, fe, f"srun -p t4 -t 5 ailab-ch-run {EXAMPLE_IMAGE} -- true")
    assert result.returncode != 0 and no_gpu in result.stderr, result.stderr
    outside = as_student(sim, fe, f"ailab-ch-run {EXAMPLE_IMAGE} -- true")
    assert outside.returncode == 2 and no_gpu in outside.stderr and "rule C1" in outside.stderr, (
        outside.stderr
    )


@pytest.mark.parametrize(
    ("option", "rule"),
    [("--privileged", "privileged"), ("--network=host", "network"), ("--device=/dev/nvidia1", "devices")],
)
def test_forbidden_runtime_features_are_refused_naming_the_rule(sim, fe, built, option, rule):
    result = as_student(
        sim, fe, f"srun -p t4 --gres=gpu:1 -t 5 ailab-ch-run {option} {EXAMPLE_IMAGE} -- true"
    )
    assert result.returncode != 0, result.stdout
    assert rules(sim.cluster)[rule] in result.stderr, result.stderr


def test_bad_input_gets_a_clear_message_and_leaves_nothing_half_built(sim, fe, built):
    as_student(sim, fe, "rm -rf ~/ct-bad ~/images/ct-bad.sqfs && mkdir -p ~/ct-bad")
    as_student(sim, fe, "printf 'FROM debian-bookworm-python\\nRUN false\\n' > ~/ct-bad/Containerfile")
    failed = as_student(sim, fe, "ailab-ch-build -t ct-bad ~/ct-bad")
    assert failed.returncode == 1 and "building ct-bad failed" in failed.stderr, failed.stderr[-2000:]
    as_student(sim, fe, "printf 'FROM ubuntu:22.04\\n' > ~/ct-bad/Containerfile")
    unreachable = as_student(sim, fe, "ailab-ch-build -t ct-bad ~/ct-bad")
    assert unreachable.returncode == 2 and "no registry is reachable" in unreachable.stderr, (
        unreachable.stderr
    )
    leftovers = as_student(sim, fe, "ls -A ~/images").stdout.split()
    assert "ct-bad.sqfs" not in leftovers and not [f for f in leftovers if f.startswith(".")], leftovers
    missing = as_student(sim, fe, "srun -p t4 --gres=gpu:1 -t 5 ailab-ch-run no-such-image -- true")
    assert missing.returncode != 0 and "image no-such-image does not exist" in missing.stderr, missing.stderr
    catalogue = sim.cluster.containers.catalogue
    listing = sim.exec(fe, f"ls -A {catalogue}").stdout.split()
    names = [i.name for i in sim.cluster.containers.images]
    assert sorted(listing) == sorted([f"{n}.json" for n in names] + [f"{n}.sqfs" for n in names]), listing
    write = as_student(sim, fe, f"touch {catalogue}/mine.sqfs")
    assert write.returncode != 0, "a student could write the catalogue"


def test_numbers_start_overhead_and_size_against_the_quota(sim, fe, built):
    """Time to `nvidia-smi -L` in the job with and without the container (median of 5), the image's size
    against the student's quota (what the build printed, from CephFS's directory statistics)."""
    measure = (
        "import statistics, subprocess, time\n"
        "def t(cmd):\n"
        "    out = []\n"
        "    for _ in range(5):\n"
        "        s = time.monotonic(); subprocess.run(cmd, check=True, capture_output=True)\n"
        "        out.append(time.monotonic() - s)\n"
        "    return statistics.median(out) * 1000\n"
        "print(t(['nvidia-smi', '-L']), t(['ailab-ch-run', '"
        + EXAMPLE_IMAGE
        + "', '--', 'nvidia-smi', '-L']))\n"
    )
    result = as_student(sim, fe, f"srun -p t4 --gres=gpu:1 -t 5 python3 -c {shlex.quote(measure)}")
    assert result.returncode == 0, result.stderr
    native_ms, container_ms = (float(x) for x in result.stdout.split()[-2:])
    record_timing("containers_nvidia_smi_native_ms", native_ms)
    record_timing("containers_nvidia_smi_container_ms", container_ms)
    size = re.search(r"\((\d+) MiB\); your home uses ([\d.]+) of (\d+) GiB", str(built["summary"]))
    assert size, built["summary"]
    print(
        f"\nnvidia-smi -L in a job: {native_ms:.0f} ms native, {container_ms:.0f} ms in the container; "
        f"image {size[1]} MiB, home {size[2]} of {size[3]} GiB; build {built['seconds']:.1f} s"
    )
    assert container_ms < native_ms + 2000
