"""Rule 8, scheduled maintenance: a window (00:01-23:59 of a day by default) during which no job runs, made a
Slurm reservation on every node (``Flags=MAINT,IGNORE_JOBS``, ``Users=root``), announced to every user by
e-mail 30, 14 and 1 days before (``ailab_policy.maintenance_notice_days``).

Design (one path for the simulator and production):

- **Slurm is the source of truth.**  A window *is* a MAINT reservation.  ``ailab-maintenance`` runs on the
  front-end (a Slurm client; root there is a Slurm super user through munge) and creates, lists and deletes
  reservations with ``scontrol``.  The login message (role frontend, ``ailab/nodetools/motd.py``) reads the
  same reservations live, so it is never stale, and a reservation made by hand with ``scontrol`` is
  announced like any other.
- **Notices** use the exactly-once machinery of :mod:`ailab.notices` (state in
  /var/lib/ailab/maintenance.json, a daily timer runs ``ailab-maintenance notify``).  A window is identified
  by reservation name and start time.  Missed days: only the latest due notice is sent.  A window scheduled
  less than 30 days ahead therefore gets its latest due notice right away (``schedule`` runs ``notify``).
  A window that disappears before it starts (``cancel``, or ``scontrol delete``) gets one cancellation
  message to every user who had been notified.
- **From the operator's machine**, ``ailab maintenance schedule|list|cancel -i INVENTORY`` runs the same
  command on the inventory's front-end through ``ansible`` (docker connection in the simulator, SSH in
  production), so there is exactly one implementation.

Standard library only besides :mod:`ailab.model` and :mod:`ailab.notices` (copied to the front-end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ailab.mail import Mail, Mailer, Sendmail, mail_body
from ailab.notices import SENT, SUPERSEDED, ScheduledNotice, pick_notice
from ailab.opsconfig import OpsConfig, Person, load_ops_config
from ailab.reservations import Window, parse_reservations
from ailab.runtime import StateFile, ToolError, parse_now, run_command, tool_main

DEFAULT_CONFIG = "/etc/ailab/ops.json"
STATE_VERSION = 1
EMPTY_STATE: dict[str, Any] = {"version": STATE_VERSION, "windows": {}}
WINDOW_START = dt.time(0, 1)  # rule 8: 00:01-23:59
WINDOW_END = dt.time(23, 59)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FLAGS = "MAINT,IGNORE_JOBS"
SLURM_TIME = "%Y-%m-%dT%H:%M:%S"
PRUNE_AFTER = dt.timedelta(days=400)


# Pure functions --------------------------------------------------------------------------------------


def window_for_day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Rule 8's window on ``day``: 00:01 to 23:59."""
    return dt.datetime.combine(day, WINDOW_START), dt.datetime.combine(day, WINDOW_END)


def reservation_name(start: dt.datetime) -> str:
    return f"maint-{start:%Y%m%d-%H%M}"


def check_new_window(
    name: str, start: dt.datetime, end: dt.datetime, now: dt.datetime, existing: Sequence[Window]
) -> list[str]:
    """Every reason the window cannot be scheduled, each with the fix.  Empty: go ahead."""
    problems = []
    if not NAME_RE.match(name):
        problems.append(f"--name {name!r} is not a reservation name -- fix: letters, digits, . _ - only")
    if end <= start:
        problems.append(
            f"--end {end:%Y-%m-%dT%H:%M} is not after --start {start:%Y-%m-%dT%H:%M} -- fix: swap them"
        )
    if start <= now:
        problems.append(
            f"--start {start:%Y-%m-%dT%H:%M} is not in the future (now {now:%Y-%m-%dT%H:%M}) "
            "-- fix: pick a later start"
        )
    for w in existing:
        if w.name == name:
            problems.append(
                f"a reservation named {name} exists already -- fix: cancel it first or pick --name"
            )
        elif w.start < end and start < w.end:
            problems.append(
                f"overlaps maintenance window {w.name} ({w.span}) "
                "-- fix: cancel that one or pick another time"
            )
    return problems


def create_command(name: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    return [
        "scontrol",
        "create",
        "reservation",
        f"ReservationName={name}",
        f"StartTime={start.strftime(SLURM_TIME)}",
        f"EndTime={end.strftime(SLURM_TIME)}",
        "Nodes=ALL",
        "Users=root",
        f"Flags={FLAGS}",
    ]


def notice_key(days: int) -> str:
    return f"{days} day" + ("s" if days != 1 else "")


def notice_schedule(window: Window, days: Sequence[int]) -> tuple[ScheduledNotice, ...]:
    return tuple(
        sorted(
            (ScheduledNotice(notice_key(d), window.start.date() - dt.timedelta(days=d)) for d in days),
            key=lambda n: n.date,
        )
    )


@dataclass(frozen=True)
class WindowNotice:
    user: Person
    window: Window
    key: str  # "30 days", ... or "cancelled"


@dataclass
class NoticePlan:
    sends: list[WindowNotice] = field(default_factory=list)
    superseded: list[WindowNotice] = field(default_factory=list)
    cancellations: list[WindowNotice] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # window keys to prune from the state


def _window_from_state(key: str, record: Mapping[str, Any]) -> Window:
    return Window(
        record.get("name", key.partition("@")[0]),
        dt.datetime.fromisoformat(record["start"]),
        dt.datetime.fromisoformat(record["end"]),
    )


def local(now: dt.datetime) -> dt.datetime:
    """Wall-clock time without a zone, as Slurm writes reservation times (``now``: the cluster's zone)."""
    return now.replace(tzinfo=None)


def plan_notices(
    config: OpsConfig, windows: Sequence[Window], state: Mapping[str, Any], now: dt.datetime
) -> NoticePlan:
    """Which notices go out now.  ``windows`` are the MAINT reservations Slurm has (the query succeeded)."""
    now = local(now)
    plan = NoticePlan()
    today = now.date()
    recorded_windows: Mapping[str, Any] = state.get("windows", {})
    current = {w.key for w in windows}
    for window in windows:
        if window.start <= now:
            continue
        record = recorded_windows.get(window.key, {})
        schedule = notice_schedule(window, config.maintenance_notice_days)
        for user in config.users:
            recorded = record.get("notices", {}).get(user.name, {})
            decision = pick_notice(schedule, recorded, today, window.start.date())
            plan.superseded += [WindowNotice(user, window, n.key) for n in decision.superseded]
            if decision.send is not None:
                plan.sends.append(WindowNotice(user, window, decision.send.key))
    for key, record in recorded_windows.items():
        window = _window_from_state(key, record)
        if key in current:
            continue
        if window.end + PRUNE_AFTER < now:
            plan.forget.append(key)
            continue
        if window.start <= now:
            continue  # it happened (Slurm forgets reservations that ended)
        already = record.get("cancelled", {})
        for name, notices in sorted(record.get("notices", {}).items()):
            user = config.user(name)
            if user is None or name in already:
                continue
            if any(isinstance(v, Mapping) and v.get("status") == SENT for v in notices.values()):
                plan.cancellations.append(WindowNotice(user, window, "cancelled"))
    return plan


def notice_mail(config: OpsConfig, notice: WindowNotice, now: dt.datetime) -> Mail:
    w = notice.window
    paragraphs = [f"Dear {notice.user.greeting},"]
    if notice.key == "cancelled":
        subject = f"[{config.cluster}] Cancelled: maintenance on {w.start:%-d %B %Y}"
        paragraphs.append(
            f"The scheduled maintenance of {config.cluster} on {w.span} is cancelled. Jobs run as usual then."
        )
    else:
        days = (w.start.date() - now.date()).days
        subject = f"[{config.cluster}] Scheduled maintenance on {w.span}"
        paragraphs += [
            f"{config.cluster} will be unavailable for scheduled maintenance on {w.span} "
            f"(in {days} day{'s' if days != 1 else ''}; usage guideline 8).",
            "You can submit jobs until the window begins. A job whose time limit (--time) would reach into "
            f"the window does not start until after it: set --time so that the job ends before "
            f"{w.start:%Y-%m-%d %H:%M}, for example",
            "  sbatch --time=04:00:00 --gres=gpu:1 job.sh",
        ]
    if config.support_email:
        paragraphs.append(f"Questions: {config.support_email}")
    paragraphs.append(f"(Maintenance notice '{notice.key}' for reservation {w.name}.)")
    return Mail(
        to=notice.user.email,
        subject=subject,
        body=mail_body(paragraphs),
        sender=config.mail_from,
        reply_to=config.support_email,
        tag=f"maintenance {w.key} {notice.key}",
    )


# Slurm -----------------------------------------------------------------------------------------------

Runner = Callable[..., subprocess.CompletedProcess]


class Slurm:
    def __init__(self, run: Runner = subprocess.run):
        self._run_fn = run

    def _run(self, argv: Sequence[str]) -> str:
        fix = "is this a Slurm client (role slurm_client), and does slurmctld answer (scontrol ping)?"
        return run_command(self._run_fn, argv, timeout=60, fix=fix).stdout

    def windows(self) -> list[Window]:
        return parse_reservations(self._run(["scontrol", "-o", "show", "reservation"]))

    def create(self, name: str, start: dt.datetime, end: dt.datetime) -> None:
        self._run(create_command(name, start, end))

    def delete(self, name: str) -> None:
        self._run(["scontrol", "delete", f"ReservationName={name}"])

    def jobs_ending_after(self, when: dt.datetime) -> list[str]:
        """Running jobs whose end time is after ``when`` (IGNORE_JOBS lets them run into the window)."""
        out = self._run(["squeue", "--noheader", "--states=RUNNING", "--format=%i %u %e"])
        late = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                try:
                    if dt.datetime.fromisoformat(parts[2]) > when:
                        late.append(f"job {parts[0]} of {parts[1]} ends {parts[2]}")
                except ValueError:
                    continue
        return late


# Running ---------------------------------------------------------------------------------------------


def _record(state: dict[str, Any], window: Window) -> dict[str, Any]:
    record = state.setdefault("windows", {}).setdefault(
        window.key,
        {"name": window.name, "start": window.start.isoformat(), "end": window.end.isoformat()},
    )
    record.setdefault("notices", {})
    record.setdefault("cancelled", {})
    return record


def notify(
    config: OpsConfig,
    slurm: Slurm,
    mailer: Mailer,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Send due maintenance notices and cancellations.  If Slurm cannot be asked, nothing is sent."""
    out = out or sys.stdout
    store = StateFile(config.maintenance_state, EMPTY_STATE)
    failures = 0
    with store.locked():
        state = store.load()
        plan = plan_notices(config, slurm.windows(), state, now)
        if dry_run:
            for n in plan.sends + plan.cancellations:
                out.write(f"would send '{n.key}' for {n.window.name} to {n.user.name} <{n.user.email}>\n")
            return 0
        for n in plan.superseded:
            _record(state, n.window)["notices"].setdefault(n.user.name, {})[n.key] = {
                "status": SUPERSEDED,
                "on": now.date().isoformat(),
            }
        for key in plan.forget:
            state["windows"].pop(key, None)
        store.save(state)
        for n in plan.sends + plan.cancellations:
            try:
                mailer.send(notice_mail(config, n, now))
            except (ToolError, OSError, subprocess.TimeoutExpired) as exc:
                print(
                    f"error: '{n.key}' for {n.window.name} to {n.user.name} not sent: {exc}", file=sys.stderr
                )
                failures += 1
                continue
            record = _record(state, n.window)
            if n.key == "cancelled":
                record["cancelled"][n.user.name] = now.date().isoformat()
            else:
                record["notices"].setdefault(n.user.name, {})[n.key] = {
                    "status": SENT,
                    "on": now.date().isoformat(),
                }
            store.save(state)
            out.write(
                f"sent '{n.key}' for {n.window.name} ({n.window.span}) to {n.user.name} <{n.user.email}>\n"
            )
    return 1 if failures else 0


def schedule(
    config: OpsConfig,
    slurm: Slurm,
    mailer: Mailer,
    now: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    name: str | None = None,
    *,
    send_notices: bool = True,
    out: IO[str] | None = None,
) -> int:
    out = out or sys.stdout
    naive_now = local(now)
    name = name or reservation_name(start)
    problems = check_new_window(name, start, end, naive_now, slurm.windows())
    if problems:
        raise ToolError("the window cannot be scheduled; nothing was changed:\n  " + "\n  ".join(problems))
    slurm.create(name, start, end)
    window = Window(name, start, end)
    out.write(f"scheduled {name}: {window.span} (Nodes=ALL Users=root Flags={FLAGS})\n")
    for job in slurm.jobs_ending_after(start):
        out.write(f"note: {job}: already running, it is not stopped by the window (IGNORE_JOBS)\n")
    return notify(config, slurm, mailer, now, out=out) if send_notices else 0


def cancel(
    config: OpsConfig,
    slurm: Slurm,
    mailer: Mailer,
    now: dt.datetime,
    name: str,
    *,
    send_notices: bool = True,
    out: IO[str] | None = None,
) -> int:
    out = out or sys.stdout
    known = {w.name: w for w in slurm.windows()}
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise ToolError(
            f"no maintenance reservation {name!r} -- fix: use one of: {listed} (ailab-maintenance list)"
        )
    slurm.delete(name)
    out.write(f"cancelled {name} ({known[name].span})\n")
    return notify(config, slurm, mailer, now, out=out) if send_notices else 0


def list_windows(config: OpsConfig, slurm: Slurm, now: dt.datetime, *, as_json: bool, out: IO[str]) -> int:
    naive_now = local(now)
    state = StateFile(config.maintenance_state, EMPTY_STATE).load()
    rows = []
    for w in slurm.windows():
        notices = state.get("windows", {}).get(w.key, {}).get("notices", {})
        sent = sum(1 for per_user in notices.values() for v in per_user.values() if v.get("status") == SENT)
        rows.append(
            {
                "name": w.name,
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "nodes": w.nodes,
                "flags": list(w.flags),
                "state": "active"
                if w.start <= naive_now < w.end
                else ("ended" if w.end <= naive_now else "upcoming"),
                "notices_sent": sent,
            }
        )
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
    elif not rows:
        out.write("no maintenance window is scheduled\n")
    else:
        for r in rows:
            out.write(
                f"{r['name']:<22} {r['start']} - {r['end']}  {r['state']:<8} nodes={r['nodes']} "
                f"notices sent={r['notices_sent']}\n"
            )
    return 0


def parse_when(text: str, option: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise ToolError(f"{option} {text!r} is not a time -- fix: write YYYY-MM-DDTHH:MM") from None


def window_from_args(args: argparse.Namespace) -> tuple[dt.datetime, dt.datetime]:
    if args.date:
        try:
            return window_for_day(dt.date.fromisoformat(args.date))
        except ValueError:
            raise ToolError(f"--date {args.date!r} is not a date -- fix: write YYYY-MM-DD") from None
    if not (args.start and args.end):
        raise ToolError("give --date DAY (00:01-23:59, rule 8) or both --start and --end")
    return parse_when(args.start, "--start"), parse_when(args.end, "--end")


def add_window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", help="YYYY-MM-DD: the rule-8 window 00:01-23:59 of that day")
    parser.add_argument("--start", help="YYYY-MM-DDTHH:MM (local time of the cluster)")
    parser.add_argument("--end", help="YYYY-MM-DDTHH:MM")
    parser.add_argument("--name", help="reservation name (default maint-YYYYMMDD-HHMM)")
    parser.add_argument("--no-notify", action="store_true", help="do not send notices now (the timer will)")


def add_window_commands(sub: argparse._SubParsersAction) -> tuple[argparse.ArgumentParser, ...]:
    """schedule, cancel and list: the same on the front-end (``ailab-maintenance``) and on the operator's
    machine (``ailab maintenance``, ailab/operations.py, which runs the first through Ansible)."""
    sched = sub.add_parser("schedule", help="create a MAINT reservation on all nodes and notify users")
    add_window_args(sched)
    canc = sub.add_parser("cancel", help="delete a maintenance reservation and tell notified users")
    canc.add_argument("name")
    canc.add_argument("--no-notify", action="store_true")
    lst = sub.add_parser("list", help="maintenance reservations and how many notices went out")
    lst.add_argument("--json", action="store_true")
    return sched, canc, lst


def build_parser(prog: str = "ailab-maintenance") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Maintenance windows (rule 8).")
    parser.add_argument("--config", default=os.environ.get("AILAB_OPS_CONFIG", DEFAULT_CONFIG))
    parser.add_argument("--now", help="a fixed clock for notices, YYYY-MM-DD[THH:MM] (tests); also AILAB_NOW")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_window_commands(sub)
    noti = sub.add_parser("notify", help="send due notices (the daily timer)")
    noti.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None, slurm: Slurm | None = None, mailer: Mailer | None = None) -> int:
    args = build_parser().parse_args(argv)
    return tool_main(lambda: _main(args, slurm, mailer))


def _main(args: argparse.Namespace, slurm: Slurm | None, mailer: Mailer | None) -> int:
    config = load_ops_config(args.config)
    now = parse_now(args.now, config.tz)
    slurm = slurm or Slurm()
    mailer = mailer or Sendmail(config.sendmail)
    if args.cmd == "schedule":
        start, end = window_from_args(args)
        return schedule(config, slurm, mailer, now, start, end, args.name, send_notices=not args.no_notify)
    if args.cmd == "cancel":
        return cancel(config, slurm, mailer, now, args.name, send_notices=not args.no_notify)
    if args.cmd == "list":
        return list_windows(config, slurm, now, as_json=args.json, out=sys.stdout)
    return notify(config, slurm, mailer, now, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
