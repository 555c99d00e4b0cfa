"""Issue 7, rule 8 on the simulator: a maintenance window is a Slurm MAINT reservation on every node; a job
whose time limit would cross it stays pending (ReqNodeNotAvail, Reserved for maintenance) while a short one
runs; the login message shows it; every user gets the 30/14/1-day notices by mail, once, and a
cancellation."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.conftest import INVENTORY, ROOT
from tests.integration.ops_helpers import tool_run


def ailab(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command on this machine: runs ailab-maintenance on the front-end through Ansible."""
    return subprocess.run(
        [sys.executable, "-m", "ailab.cli", "maintenance", *args, "-i", str(INVENTORY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def reservation(sim, ctl: str, name: str) -> dict[str, str]:
    out = sim.exec(ctl, f"scontrol -o show reservation {name}", check=False).stdout
    return dict(part.split("=", 1) for part in out.split() if "=" in part)


def wait_job(sim, node: str, job: str, done, timeout: float = 120) -> str:
    """Poll ``squeue``/``sacct`` until ``done(state_and_reason)`` or timeout; returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        out = sim.exec(node, f"squeue -h -j {job} -o '%T|%r' 2>/dev/null", check=False).stdout.strip()
        if not out:
            out = sim.exec(node, f"sacct -nX -P -j {job} -o State", check=False).stdout.strip()
        if done(out) or time.monotonic() > deadline:
            return out
        time.sleep(3)


@pytest.fixture
def window(sim, fe, ctl):
    """A window starting a few minutes from now, scheduled with the operator's command."""
    now = dt.datetime.fromisoformat(sim.exec(fe, "date +%Y-%m-%dT%H:%M:%S").stdout.strip())
    start = (now + dt.timedelta(minutes=5)).replace(second=0)
    end = start + dt.timedelta(hours=1)
    name = f"maint-itest-{uuid.uuid4().hex[:6]}"
    result = ailab(
        "schedule",
        "--start",
        f"{start:%Y-%m-%dT%H:%M}",
        "--end",
        f"{end:%Y-%m-%dT%H:%M}",
        "--name",
        name,
        "--no-notify",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs: list[str] = []
    yield {"name": name, "start": start, "end": end, "jobs": jobs}
    for job in jobs:
        sim.exec(fe, f"scancel {job}", check=False)
    sim.exec(ctl, f"scontrol delete ReservationName={name}", check=False)


def test_a_window_holds_crossing_jobs_and_lets_short_ones_run(sim, fe, ctl, window):
    name, start = window["name"], window["start"]
    res = reservation(sim, ctl, name)
    assert {"MAINT", "IGNORE_JOBS"} <= set(res["Flags"].split(",")), res
    assert res["Users"] == "root"
    assert int(res["NodeCnt"]) == len(sim.cluster.compute)
    assert res["StartTime"] == f"{start:%Y-%m-%dT%H:%M:%S}"

    listed = ailab("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert any(r["name"] == name and r["state"] == "upcoming" for r in json.loads(listed.stdout))

    student = sorted(u.name for u in sim.cluster.users.values() if not u.admin)[0]
    submit = "sbatch --parsable --gres=gpu:1 --time={} --wrap 'sleep 2'"
    crossing = sim.exec(fe, submit.format("00:30:00"), user=student).stdout.strip()
    short = sim.exec(fe, submit.format("00:01:00"), user=student).stdout.strip()
    window["jobs"] += [crossing, short]

    held = wait_job(sim, fe, crossing, lambda s: "Reserved for maintenance" in s, timeout=90)
    assert held.startswith("PENDING|") and "ReqNodeNotAvail" in held and "Reserved for maintenance" in held, (
        held
    )
    assert wait_job(sim, fe, short, lambda s: s.startswith("COMPLETED")).startswith("COMPLETED")
    assert wait_job(sim, fe, crossing, lambda s: False, timeout=0).startswith("PENDING")  # still held

    motd = sim.exec(fe, "run-parts /etc/update-motd.d 2>/dev/null", check=False).stdout
    assert f"Scheduled maintenance: {start:%Y-%m-%d %H:%M}" in motd, motd

    cancelled = ailab("cancel", name, "--no-notify")
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled {name}" in cancelled.stdout
    assert reservation(sim, ctl, name) == {}
    # Without the window the held job runs.
    assert wait_job(sim, fe, crossing, lambda s: s.startswith("COMPLETED")).startswith("COMPLETED")


def test_bad_windows_are_refused_before_anything_changes(sim, fe):
    past = ailab("schedule", "--start", "2020-01-01T00:01", "--end", "2020-01-01T23:59")
    assert past.returncode == 2
    assert "is not in the future" in past.stderr and "nothing was changed" in past.stderr
    swapped = ailab("schedule", "--start", "2031-01-02T00:00", "--end", "2031-01-01T00:00")
    assert swapped.returncode == 2 and "is not after --start" in swapped.stderr
    assert "2031-01" not in sim.exec(fe, "scontrol -o show reservation", check=False).stdout


def test_every_user_gets_each_notice_once_and_a_cancellation(sim, fe, ctl):
    run = tool_run(sim, fe)
    today = dt.date.fromisoformat(sim.exec(fe, "date +%F").stdout.strip())
    day = today + dt.timedelta(days=75)
    name = f"maint-ntest-{uuid.uuid4().hex[:6]}"
    try:
        run.run("ailab-maintenance", "schedule", "--date", day.isoformat(), "--name", name, "--no-notify")
        key = f"{name}@{day.isoformat()}T00:01"
        users = sorted(sim.cluster.users)
        expected: list[str] = []
        for days_before, notice in (
            (31, None),
            (30, "30 days"),
            (30, None),
            (20, None),
            (14, "14 days"),
            (1, "1 day"),
        ):
            run.run("ailab-maintenance", "notify", now=(day - dt.timedelta(days=days_before)).isoformat())
            if notice:
                expected.append(f"maintenance {key} {notice}")
            assert run.tags(users[0], len(expected)) == expected, days_before
        for user in users[1:]:
            assert run.tags(user, 3) == expected, user
        listed = run.run("ailab-maintenance", "list", "--json", now=(day - dt.timedelta(days=1)).isoformat())
        (row,) = [r for r in json.loads(listed.stdout) if r["name"] == name]
        assert row["notices_sent"] == 3 * len(users)

        run.run("ailab-maintenance", "cancel", name, now=(day - dt.timedelta(days=1)).isoformat())
        run.run("ailab-maintenance", "notify", now=day.isoformat())
        for user in users:
            assert run.tags(user, 4)[-1] == f"maintenance {key} cancelled", user
        assert reservation(sim, ctl, name) == {}
    finally:
        sim.exec(ctl, f"scontrol delete ReservationName={name}", check=False)
        run.cleanup()
