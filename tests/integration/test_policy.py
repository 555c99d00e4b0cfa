"""Issue 14: the policy holes, closed on the simulated cluster and checked the way a student would try them.

- A pending GPU job cannot be updated into a CPU-only one (``scontrol update ... TresPerNode=``).
- Rule 6: ``--exclusive``, ``--mem=0``, too many nodes, CPUs or memory per GPU are refused at submission,
  with the rule; a plain ``--gres=gpu:1`` job still runs.
- The platform QOS caps queued jobs per user (``ailab_policy.max_submit_jobs_per_user``), arrays per task,
  without touching other users.
- PrivateData: a student does not see another student's jobs; an admin (AdminLevel) does.

Jobs are held (``--hold``) unless a test needs one to run, and every job is cancelled in ``finally``.
"""

from __future__ import annotations

import re

import pytest

from ailab.slurm import job_submit_messages
from tests.integration.slurm_helpers import (
    TERMINAL,
    submit,
    submitted,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

ADMIN = "admin1"
TRUE = "#!/bin/bash\ntrue\n"
# slurm_strerror() texts of Slurm 22.05: what `scontrol update` and sbatch print for the codes.
INVALID_GRES = "Invalid generic resource (gres) specification"
QOS_POLICY = "Job violates accounting/QOS policy"
GPU_REQUEST = re.compile(r"\bTresPer(?:Node|Job|Socket|Task)=\S*gpu\S*")


def sbatch(sim, fe: str, user: str, options: str, script: str = TRUE):
    """sbatch as ``user`` on the front-end (output to /tmp on the node); the CompletedProcess."""
    return submit(sim, fe, user, options, script, output="ailab-policy")


def cancel(sim, ctl: str, jobs) -> None:
    if jobs:
        sim.exec(ctl, f"scancel {' '.join(jobs)}", check=False)


def queued(sim, ctl: str, user: str) -> list[str]:
    """The user's jobs slurmctld still counts (pending or running), as root sees them."""
    out = sim.exec(ctl, f"squeue -h -u {user} -t PD,R,CG -o %i", check=False).stdout
    return out.split()


def clear_queue(sim, ctl: str, user: str) -> None:
    sim.exec(ctl, f"scancel -u {user}", check=False)
    wait_for(f"{user}'s jobs to leave the queue", lambda: not queued(sim, ctl, user), timeout=60)


def show_job(sim, fe: str, user: str, job: str) -> str:
    return sim.exec(fe, f"scontrol -o show job {job}", user=user, check=False).stdout


def job_state(sim, ctl: str, job: str) -> str:
    out = sim.exec(ctl, f"sacct -X -n -P -j {job} -o State", check=False).stdout.strip()
    return out.splitlines()[0].split()[0] if out else ""


# 1. A pending GPU job cannot be modified into a CPU-only job.


@pytest.mark.parametrize(
    ("options", "update"),
    [
        ("--gres=gpu:1", "TresPerNode="),
        ("--gres=gpu:1", "Gres="),
        ("--gres=gpu:1", "TresPerNode=gres:gpu:0"),
        ("--gpus=1", "TresPerJob="),
    ],
)
def test_held_gpu_job_cannot_be_updated_into_a_cpu_only_job(sim, fe, ctl, options, update):
    job = submitted(sbatch(sim, fe, "student1", f"--hold {options} --time=00:05:00"))
    try:
        before = GPU_REQUEST.findall(show_job(sim, fe, "student1", job))
        assert before, f"job {job} shows no GPU request: {show_job(sim, fe, 'student1', job)}"
        result = sim.exec(fe, f"scontrol update JobId={job} {update}", user="student1", check=False)
        assert result.returncode != 0, f"`scontrol update {update}` was accepted: {result.stdout}"
        # 22.05 shows the user only the error code's text for an update (log_user() is dropped there).
        assert INVALID_GRES in result.stderr, result.stderr
        after = show_job(sim, fe, "student1", job)
        assert GPU_REQUEST.findall(after) == before, after
        # It was job_submit.lua that refused it, and it logged the reason for operators.
        log = sim.exec(
            ctl, f"grep -c 'ailab: refused update of job {job} ' /var/log/slurm/slurmctld.log", check=False
        )
        assert log.stdout.strip() not in ("", "0"), "slurmctld.log has no refusal by job_submit.lua"
    finally:
        cancel(sim, ctl, [job])


def test_updates_within_the_rules_are_still_accepted(sim, fe, ctl):
    job = submitted(sbatch(sim, fe, "student1", "--hold --gres=gpu:1 --time=00:05:00"))
    try:
        for update in ("TimeLimit=00:03:00", "TresPerNode=gres:gpu:2"):
            result = sim.exec(fe, f"scontrol update JobId={job} {update}", user="student1", check=False)
            assert result.returncode == 0, f"`scontrol update {update}` was refused: {result.stderr}"
        out = show_job(sim, fe, "student1", job)
        assert "TimeLimit=00:03:00" in out and "gpu:2" in out, out
        result = sim.exec(fe, f"scontrol update JobId={job} TimeLimit=13:00:00", user="student1", check=False)
        assert result.returncode != 0, "a 13-hour time limit was accepted by an update"
    finally:
        cancel(sim, ctl, [job])


# 2. One GPU cannot carry a whole node (rule 6), numbers from the simulator's policy and nodes.


def rule_6_cases(sim) -> list[tuple[str, str]]:
    p = sim.cluster.policy
    node_cpus = max(h.hardware.cpus for h in sim.cluster.compute)
    return [
        ("--exclusive --gres=gpu:1", "exclusive"),
        ("--mem=0 --gres=gpu:1", "all_memory"),
        (f"-N2 -c{node_cpus} --mem=0 --gres=gpu:1", "all_memory"),
        (f"-N{p.max_nodes_per_job + 1} --gres=gpu:1", "too_many_nodes"),
        (f"-c{p.max_cpus_per_gpu + 1} --gres=gpu:1", "too_many_cpus"),
        (f"--gres=gpu:2 --mem={2 * p.max_mem_per_gpu_mb + 1}M", "too_much_memory"),
        (f"--gpus=1 --mem-per-gpu={p.max_mem_per_gpu_mb + 1}M", "too_much_memory"),
    ]


def test_rule_6_refuses_whole_nodes_and_oversized_jobs(sim, fe, ctl):
    messages = job_submit_messages(sim.cluster)
    accepted = []
    try:
        for options, reason in rule_6_cases(sim):
            result = sbatch(sim, fe, "student1", f"--hold --time=00:05:00 {options}")
            if result.returncode == 0:
                accepted.append(submitted(result))
                pytest.fail(f"`sbatch {options}` was accepted")
            assert messages[reason] in result.stderr, (options, result.stderr)
            assert "usage guideline 6" in result.stderr, (options, result.stderr)
    finally:
        cancel(sim, ctl, accepted)


def test_jobs_within_the_caps_still_run(sim, fe, ctl):
    p = sim.cluster.policy
    plain = submitted(sbatch(sim, fe, "student1", "--gres=gpu:1 --time=00:02:00"))
    sized = submitted(
        sbatch(
            sim,
            fe,
            "student2",
            f"--gpus=1 --cpus-per-gpu={p.max_cpus_per_gpu} --mem-per-gpu={p.max_mem_per_gpu_mb}M "
            "--time=00:02:00",
        )
    )
    try:
        for job in (plain, sized):
            state = wait_for(
                f"job {job} to finish",
                lambda job=job: (state := job_state(sim, ctl, job)) in TERMINAL and state,
                timeout=120,
            )
            assert state == "COMPLETED", (job, state)
    finally:
        cancel(sim, ctl, [plain, sized])


# 3. Per-user job limits (platform QOS).


def test_qos_caps_queued_jobs_per_user_but_not_other_users(sim, fe, ctl):
    limit = sim.cluster.policy.max_submit_jobs_per_user
    user, other = "student2", "student3"
    clear_queue(sim, ctl, user)
    jobs: list[str] = []
    try:
        for _ in range(limit):
            jobs.append(submitted(sbatch(sim, fe, user, "--hold --gres=gpu:1 --time=00:05:00")))
        over = sbatch(sim, fe, user, "--hold --gres=gpu:1 --time=00:05:00")
        if over.returncode == 0:
            jobs.append(submitted(over))
            pytest.fail(f"job {limit + 1} of {user} was accepted (max_submit_jobs_per_user {limit})")
        assert QOS_POLICY in over.stderr, over.stderr
        jobs.append(submitted(sbatch(sim, fe, other, "--hold --gres=gpu:1 --time=00:05:00")))
    finally:
        cancel(sim, ctl, jobs)


def test_qos_counts_each_task_of_a_job_array(sim, fe, ctl):
    limit = sim.cluster.policy.max_submit_jobs_per_user
    user = "student2"
    clear_queue(sim, ctl, user)
    jobs: list[str] = []
    try:
        too_big = sbatch(sim, fe, user, f"--hold --array=0-{limit} --gres=gpu:1 --time=00:05:00")
        if too_big.returncode == 0:
            jobs.append(submitted(too_big))
            pytest.fail(f"an array of {limit + 1} tasks was accepted (max_submit_jobs_per_user {limit})")
        assert QOS_POLICY in too_big.stderr, too_big.stderr
        jobs.append(
            submitted(sbatch(sim, fe, user, f"--hold --array=0-{limit - 1} --gres=gpu:1 --time=00:05:00"))
        )
        one_more = sbatch(sim, fe, user, "--hold --gres=gpu:1 --time=00:05:00")
        if one_more.returncode == 0:
            jobs.append(submitted(one_more))
            pytest.fail(f"a job after an array of {limit} tasks was accepted")
        assert QOS_POLICY in one_more.stderr, one_more.stderr
    finally:
        cancel(sim, ctl, jobs)
        clear_queue(sim, ctl, user)


def test_qos_has_the_policy_job_counts(sim, ctl):
    p = sim.cluster.policy
    out = sim.exec(ctl, "sacctmgr -nP show qos ailab format=maxjobspu,maxsubmitpu").stdout.strip()
    assert out == f"{p.max_jobs_per_user}|{p.max_submit_jobs_per_user}", out


# 4. PrivateData: students see only their own jobs; admins see everything.


def test_students_do_not_see_each_others_jobs_but_admins_do(sim, fe, ctl):
    held = submitted(sbatch(sim, fe, "student1", "--hold --gres=gpu:1 --time=00:05:00"))
    done = submitted(sbatch(sim, fe, "student1", "--gres=gpu:1 --time=00:02:00"))
    try:

        def squeue_ids(user: str) -> list[str]:
            return sim.exec(fe, "squeue -h -o %i", user=user, check=False).stdout.split()

        # slurmctld (slurm.conf PrivateData=jobs): squeue and scontrol show job.
        assert held in squeue_ids("student1")
        assert held not in squeue_ids("student2")
        assert f"JobId={held} " not in show_job(sim, fe, "student2", held)
        assert held in squeue_ids(ADMIN)
        assert f"JobId={held} " in show_job(sim, fe, ADMIN, held)
        # slurmdbd (slurmdbd.conf PrivateData=jobs): sacct, on a job that ran (a held job may have no
        # accounting record yet).
        sacct = f"sacct -X -n -P -o JobID,State -j {done}"
        wait_for(
            f"{ADMIN} to see job {done} finished in sacct",
            lambda: any(
                line.startswith(f"{done}|") and line.split("|")[1].split()[0] in TERMINAL
                for line in sim.exec(fe, sacct, user=ADMIN, check=False).stdout.splitlines()
            ),
            timeout=120,
        )
        assert f"{done}|" in sim.exec(fe, sacct, user="student1", check=False).stdout
        assert f"{done}|" not in sim.exec(fe, sacct, user="student2", check=False).stdout
    finally:
        cancel(sim, ctl, [held, done])
