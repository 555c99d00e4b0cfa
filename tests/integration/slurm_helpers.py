"""What the Slurm integration tests share (test_slurm.py, test_policy.py): polling with a deadline and
submitting as a student.  Their fixtures (``fe``, ``ctl``, ``cancel_leftover_jobs``) are in conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
STUDENTS = ("student1", "student2", "student3")
OUTPUT_DIR = "$HOME/.ailab-test"  # expanded by the user's shell (sim.exec runs bash -lc as the user)


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 2.0):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def submit(sim, fe: str, user: str, options: str, script: str, output: str = "ailab-test"):
    """sbatch as ``user`` on the front-end (output to ~/.ailab-test/<output>-<job>.out in the shared home,
    read on the front-end with job_output); the
    CompletedProcess (stdout: the job id with --parsable)."""
    return sim.exec(
        fe,
        f"mkdir -p {OUTPUT_DIR} && "
        f"sbatch --parsable --chdir=/tmp --output={OUTPUT_DIR}/{output}-%j.out {options}",
        user=user,
        input=script,
        check=False,
        timeout=60,
    )


def job_output(sim, fe: str, user: str, job: str, output: str = "ailab-test") -> str:
    """The output of a job submitted with :func:`submit` (read on the front-end, from the shared home)."""
    return sim.exec(fe, f"cat {OUTPUT_DIR}/{output}-{job}.out", user=user).stdout


def submitted(result) -> str:
    """The job id of an accepted submission (fails the test with sbatch's message otherwise)."""
    assert result.returncode == 0, f"sbatch refused the job: {result.stderr.strip()}"
    return result.stdout.strip().split(";")[0]
