"""`ailab demo`: log in to the simulated front-end as a student, submit a GPU job, show what it saw.

This is what a newcomer sees at the end of `make up`: the cluster working end to end (accounts, CephFS
home, Slurm with typed GPUs and the platform rules).
"""

from __future__ import annotations

import argparse
import shlex
import time

from ailab.model import User

DEMO_JOB = """#!/bin/bash
#SBATCH --job-name=ailab-demo
#SBATCH --gres=gpu:1
#SBATCH --time=00:05:00
echo "job $SLURM_JOB_ID as $(id -un) on $(hostname) in partition $SLURM_JOB_PARTITION"
echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
nvidia-smi -L
"""


def demo_commands(job_dir: str) -> str:
    """The shell the student runs on the front-end: write the job, submit it, wait, print its output."""
    quoted = shlex.quote(DEMO_JOB)
    return (
        f"set -e; mkdir -p {job_dir}; cd {job_dir}; printf '%s' {quoted} > demo-job.sh; "
        "id=$(sbatch --parsable --wait demo-job.sh); "
        'echo "--- sbatch demo-job.sh: job $id finished; its output:"; cat slurm-$id.out; '
        # slurmdbd completes a short job's record in steps (the partition can come a second later).
        'for i in $(seq 20); do [ -n "$(sacct -j $id -X -n -P -o Partition)" ] && break; sleep 0.5; done; '
        "echo '--- sacct:'; sacct -j $id -X -n -o JobID,User,Partition,AllocTRES%40,State,Elapsed"
    )


def demo_user(users: dict[str, User], requested: str | None) -> str:
    """Who submits the demo job: ``requested`` if given, else the first student (a non-admin user)."""
    if requested is not None:
        if requested not in users:
            raise ValueError(
                f"--user {requested!r} is not in ailab_users; use one of: {', '.join(sorted(users))}"
            )
        return requested
    students = sorted(name for name, user in users.items() if not user.admin)
    if not students:
        raise ValueError("ailab_users has no student (every user has admin: true); add one or pass --user")
    return students[0]


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.inventory, args.user)


def run_demo(inventory: str, user: str | None = None) -> int:
    from simulator.api import Sim

    sim = Sim(inventory)
    cluster = sim.cluster
    if not cluster.frontends or not cluster.users:
        print("demo: the inventory needs a front-end and at least one user in ailab_users")
        return 2
    frontend = cluster.frontends[0].name
    try:
        user = demo_user(cluster.users, user)
    except ValueError as exc:
        print(f"demo: {exc}")
        return 2
    from simulator.cli import render_status

    print(render_status(sim.status()))
    print(f"\n--- as {user} on {frontend}: sbatch --gres=gpu:1 --time=00:05:00 demo-job.sh")
    start = time.monotonic()
    result = sim.exec(frontend, demo_commands("~/ailab-demo"), user=user, check=False, timeout=300)
    print(result.stdout, end="")
    if result.returncode != 0:
        print(result.stderr, end="")
        print(
            f"demo: the job did not run (exit {result.returncode}); see `ailab sim status` and the log above"
        )
        return 1
    print(f"--- done in {time.monotonic() - start:.1f}s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ailab.cli import add_inventory_arg

    demo = sub.add_parser("demo", help="submit a GPU job as a student on the simulated front-end")
    add_inventory_arg(demo)
    demo.add_argument("--user", help="which inventory user submits (default: the first student)")
    demo.set_defaults(func=cmd_demo)
