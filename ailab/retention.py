"""Rule 1, the yearly data deletion: every year on 1 August all data and user accounts are removed; users get
e-mail notices 2 months, 1 month, 14 days and 2 days before; users with an approved extension are kept.

Runs on the front-end as ``ailab-retention`` (role ``retention``: a daily systemd timer), reading
/etc/ailab/ops.json (rendered from the inventory) and keeping its state in /var/lib/ailab/retention.json.
Standard library only, besides :mod:`ailab.model`, :mod:`ailab.ceph` (the mount unit's name),
:mod:`ailab.notices` and :mod:`ailab.deletion`, which are copied with it.  This module decides (schedule,
plan, state, the deletion's order); :mod:`ailab.deletion` checks and carries out on the system (the home
file system, homes and manifest, accounts, Slurm, the denied-users list).

The operator's rules this tool implements (each is unit-tested):

- **Cycles.**  Cycle ``Y`` is the deletion on 1 August ``Y`` (``ailab_policy.deletion``) and its notices.
  Notices are sent for the next deletion on or after today, never on or after the deletion day.
- **Each notice once per user per cycle.**  Missed days (timer not run, user added late): only the latest
  due notice is sent, the older ones are recorded as superseded; re-runs send nothing new.
- **Kept users.**  A user whose ``extension_until`` is after the deletion date, and admin (staff) accounts,
  get no notice and are not deleted.
- **Nobody is deleted without notice.**  A user is deleted in cycle ``Y`` only if a notice of cycle ``Y``
  was sent to them, and not before ``max(deletion date, last notice + shortest lead time)``: a user whose
  only notice came late (added on 31 July) keeps their data for that lead time; a user never notified before
  the deletion day belongs to the next cycle.  Missed deletions (front-end down on 1 August) are caught up
  for ``catch_up_days`` (30); older ones are reported, not carried out, and the user is notified again in
  the next cycle.
- **Only what the configuration names, only under the home root.**  Targets are users of ops.json; a home
  is ``<home_root>/<name>``; a home that is a symbolic link or not a directory, or a mount point inside a
  home, stops that user's deletion; ``shutil.rmtree`` never follows links.
- **Only with the homes mounted.**  ``run`` and ``status`` (and every command that decides deletions)
  first check that the home root is the mount point of a CephFS file system (``ceph`` or
  ``fuse.ceph-fuse`` in /proc/self/mountinfo, the mount on top) and that a stat and listing of it answer
  within 20 s (in a child process, so a hung mount refuses instead of hanging); otherwise nothing is done
  and the exit code is 2.  Without it every home would look absent and users would lose their accounts
  while their data stayed.
- **Users removed from the inventory are deleted too.**  Role accounts locks a user that left
  ``ailab_users`` and keeps their home; its state file (``accounts_state`` in ops.json, default
  /var/lib/ailab/managed-accounts.json) lists every account it manages.  Each run reads it: a user in it
  but not in ops.json whose locked account is still in passwd (uid, full name and e-mail from the GECOS
  field role accounts wrote) is a target like any non-extended user: notified, then deleted in the next
  cycle, manifest first.  Without an e-mail address they are reported (``no-email``), not deleted.
  ``delete-removed NAME --yes`` deletes one at once (same checks and manifest; it refuses users still in
  the inventory, and so any extension).
- **A directory user is refused at once.**  They have no local account to lock; :class:`SystemOps` lists
  each one it stops in ``denied-users`` beside the state file, which PAM reads on the operations host (role
  operations), until the next converge removes the entry or ``readmit`` takes the name off.
- **Deleted stays deleted.**  The record of deletions in the state file is what site.yml's pre-flight
  reads: a deleted user still in ``ailab_users`` is left out of the converge until ``readmit NAME``.
- **Manifest first.**  The manifest (JSON lines: every path with owner and bytes, the passwd/group entries
  and Slurm associations) is written and fsynced before anything is deleted; if it cannot be written
  nothing is deleted and the run exits non-zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ailab.deletion import (
    DeniedUsers,
    HomeError,
    Manifest,
    Ops,
    SystemOps,
    checked_home,
    checked_spool,
    denied_file,
    remove_home,
    walk,
)
from ailab.mail import Mail, Mailer, Sendmail, mail_body
from ailab.model import DeletionPolicy
from ailab.notices import SENT, SUPERSEDED, ScheduledNotice, pick_notice
from ailab.opsconfig import OpsConfig, Person, load_ops_config
from ailab.runtime import StateFile, ToolError, parse_now, tool_main

DEFAULT_CONFIG = "/etc/ailab/ops.json"
STATE_VERSION = 1
EMPTY_STATE: dict[str, Any] = {"version": STATE_VERSION, "cycles": {}}
REPORT_DAYS = 365  # how long after a deletion day its leftovers (expired, not in the inventory) are reported

# Schedule --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    year: int
    deletion: dt.date
    notices: tuple[ScheduledNotice, ...]  # key: the offset's label ("2 months"), earliest first

    @property
    def min_lead_days(self) -> int:
        """The shortest notice period (2 days by default): every deleted user had at least this long."""
        return min(((self.deletion - n.date).days for n in self.notices), default=0)


def deletion_date(policy: DeletionPolicy, year: int) -> dt.date:
    return dt.date(year, policy.month, policy.day)


def schedule_for(policy: DeletionPolicy, year: int) -> Schedule:
    deletion = deletion_date(policy, year)
    notices = sorted(
        (ScheduledNotice(o.label, o.before(deletion)) for o in policy.notices), key=lambda n: n.date
    )
    return Schedule(year, deletion, tuple(notices))


def cycle_year(policy: DeletionPolicy, today: dt.date) -> int:
    """The cycle of the next deletion on or after ``today``."""
    return policy.next_date(today).year


def format_schedule(schedule: Schedule, cluster: str = "") -> str:
    where = f" on {cluster}" if cluster else ""
    lines = [f"Yearly deletion {schedule.year}{where}: {schedule.deletion:%A %Y-%m-%d}"]
    for notice in schedule.notices:
        lines.append(f"  notice {notice.key + ' before':<20} {notice.date:%A %Y-%m-%d}")
    return "\n".join(lines) + "\n"


# Planning (pure) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeSend:
    user: Person
    year: int
    notice: ScheduledNotice
    deletion_on: dt.date  # what the notice promises: the deletion date, or later for a late notice


@dataclass(frozen=True)
class Superseded:
    user: str
    year: int
    key: str


@dataclass(frozen=True)
class DeletionDue:
    user: Person
    year: int
    due: dt.date


@dataclass(frozen=True)
class UserStatus:
    user: str
    year: int
    state: str  # kept, notified, waiting, not-notified, expired, deleted, not-in-config, pending
    detail: str = ""


@dataclass
class Plan:
    today: dt.date
    schedule: Schedule  # of the upcoming cycle
    sends: list[NoticeSend] = field(default_factory=list)
    superseded: list[Superseded] = field(default_factory=list)
    deletions: list[DeletionDue] = field(default_factory=list)
    statuses: list[UserStatus] = field(default_factory=list)


def kept_reason(user: Person, deletion: dt.date) -> str | None:
    """Why ``user`` is not deleted on ``deletion``, or None."""
    if user.admin:
        return "admin (staff) account"
    if user.extension_until is not None and user.extension_until > deletion:
        return f"extension until {user.extension_until.isoformat()}"
    return None


def deletion_on(schedule: Schedule, last_notice: dt.date) -> dt.date:
    """The earliest day a notified user may be deleted: the deletion date, pushed back so that the last
    notice always came at least the shortest lead time before."""
    return max(schedule.deletion, last_notice + dt.timedelta(days=schedule.min_lead_days))


def _sent_dates(notices: Mapping[str, Any]) -> list[dt.date]:
    return sorted(
        dt.date.fromisoformat(v["on"])
        for v in notices.values()
        if isinstance(v, Mapping) and v.get("status") == SENT
    )


def make_plan(config: OpsConfig, state: Mapping[str, Any], today: dt.date) -> Plan:
    policy = config.deletion
    upcoming = schedule_for(policy, cycle_year(policy, today))
    plan = Plan(today=today, schedule=upcoming)
    cycles: Mapping[str, Any] = state.get("cycles", {})

    record = cycles.get(str(upcoming.year), {})
    for user in config.users:
        reason = kept_reason(user, upcoming.deletion)
        if reason:
            plan.statuses.append(UserStatus(user.name, upcoming.year, "kept", reason))
            continue
        if not user.email:
            plan.statuses.append(
                UserStatus(
                    user.name,
                    upcoming.year,
                    "no-email",
                    "removed from the inventory, no e-mail address in passwd: not notified, so not deleted "
                    f"-- fix: ailab-retention delete-removed {user.name} --yes",
                )
            )
            continue
        recorded = record.get("notices", {}).get(user.name, {})
        decision = pick_notice(upcoming.notices, recorded, today, upcoming.deletion)
        plan.superseded += [Superseded(user.name, upcoming.year, n.key) for n in decision.superseded]
        if decision.send is not None:
            promised = max(upcoming.deletion, today + dt.timedelta(days=upcoming.min_lead_days))
            plan.sends.append(NoticeSend(user, upcoming.year, decision.send, promised))
        elif not _sent_dates(recorded):
            state_name = "not-notified" if today >= upcoming.deletion else "pending"
            first = upcoming.notices[0].date.isoformat() if upcoming.notices else "-"
            detail = "belongs to the next cycle" if state_name == "not-notified" else f"first notice {first}"
            plan.statuses.append(UserStatus(user.name, upcoming.year, state_name, detail))
        elif today < upcoming.deletion:
            plan.statuses.append(
                UserStatus(user.name, upcoming.year, "notified", f"deletion {upcoming.deletion.isoformat()}")
            )

    for year_key in sorted(cycles, key=int):
        schedule = schedule_for(policy, int(year_key))
        if schedule.deletion > today or (today - schedule.deletion).days > REPORT_DAYS:
            continue  # not yet, or long past (reported for a year, then left to the operator)
        record = cycles[year_key]
        deleted = record.get("deleted", {})
        for name, notices in sorted(record.get("notices", {}).items()):
            sent = _sent_dates(notices)
            if not sent:
                continue
            if name in deleted:
                if schedule.year == upcoming.year:
                    plan.statuses.append(
                        UserStatus(name, schedule.year, "deleted", deleted[name].get("on", ""))
                    )
                continue
            user = config.user(name)
            if user is None:
                plan.statuses.append(
                    UserStatus(
                        name, schedule.year, "not-in-config", "no longer in the inventory: not deleted"
                    )
                )
                continue
            reason = kept_reason(user, schedule.deletion)
            if reason:
                continue  # reported above for the upcoming cycle
            due = deletion_on(schedule, sent[-1])
            if today < due:
                plan.statuses.append(
                    UserStatus(name, schedule.year, "waiting", f"deletion on {due.isoformat()}")
                )
            elif (today - due).days > config.catch_up_days:
                plan.statuses.append(
                    UserStatus(
                        name,
                        schedule.year,
                        "expired",
                        f"deletion was due {due.isoformat()}, more than {config.catch_up_days} days ago: "
                        "not carried out; the user is notified again next cycle",
                    )
                )
            else:
                plan.deletions.append(DeletionDue(user, schedule.year, due))
    return plan


def notice_mail(config: OpsConfig, send: NoticeSend, today: dt.date) -> Mail:
    days = (send.deletion_on - today).days
    paragraphs = [
        f"Dear {send.user.greeting},",
        f"Every year on {config.deletion.day} {dt.date(2001, config.deletion.month, 1):%B} all data and user "
        f"accounts on {config.cluster} are removed (usage guideline 1). Your user directory "
        f"{config.home_root}/{send.user.name} and your account {send.user.name} will be deleted on "
        f"{send.deletion_on:%A %-d %B %Y}, in {days} day{'s' if days != 1 else ''}.",
        "Copy every file you want to keep to your own computer before that date.",
    ]
    if config.extension_url:
        paragraphs += [
            "To keep your data and use the platform for another semester, submit an extension request:",
            f"  {config.extension_url}",
        ]
    if config.support_email:
        paragraphs.append(f"Questions: {config.support_email}")
    paragraphs.append(f"(Notice '{send.notice.key} before' of the {send.year} deletion.)")
    return Mail(
        to=send.user.email,
        subject=f"[{config.cluster}] Your data will be deleted on {send.deletion_on:%-d %B %Y}",
        body=mail_body(paragraphs),
        sender=config.mail_from,
        reply_to=config.support_email,
        tag=f"retention {send.year} {send.notice.key}",
    )


# State updates ---------------------------------------------------------------------------------------


def _cycle(state: dict[str, Any], year: int) -> dict[str, Any]:
    cycle = state.setdefault("cycles", {}).setdefault(str(year), {})
    for key in ("notices", "deleted", "failed"):
        cycle.setdefault(key, {})
    return cycle


def record_notice(state: dict[str, Any], year: int, user: str, key: str, status: str, on: dt.date) -> None:
    _cycle(state, year)["notices"].setdefault(user, {})[key] = {"status": status, "on": on.isoformat()}


def with_removed(config: OpsConfig, removed: Sequence[Person]) -> OpsConfig:
    """The configuration with the removed users as deletion targets too."""
    return dataclasses.replace(config, users=(*config.users, *removed))


# The deletion record: who is deleted, for the converge ------------------------------------------------
# A user deleted by this tool stays deleted although the inventory may still list them: the pre-flight of
# site.yml reads this record from the operations host and leaves them out of ailab_users for the run
# (plugins/filter/ailab.py), so no converge re-creates their account, keys, home or association.  To let a
# deleted user back in under the same name: ``ailab-retention readmit NAME``, then converge (a new, empty
# home).


def parse_state_text(text: str, source: str = "retention.json") -> dict[str, Any]:
    """The state file's text ('' when the file does not exist: nobody deleted)."""
    if not text.strip():
        return json.loads(json.dumps(EMPTY_STATE))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"{source} is not valid JSON ({exc}) -- fix: restore it from backup on the operations host"
        ) from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        version = data.get("version") if isinstance(data, dict) else "?"
        raise ToolError(
            f"{source} has an unknown format (version {version!r}) -- fix: use the ailab that wrote it"
        )
    return data


@dataclass(frozen=True)
class Deleted:
    name: str
    cycle: int
    on: str  # the day it was carried out (ISO)
    manifest: str = ""


def deleted_users(state: Mapping[str, Any]) -> dict[str, Deleted]:
    """Users whose latest deletion is not followed by a readmission (``readmitted[name].cycle`` covers
    the deletions of that cycle and earlier)."""
    out: dict[str, Deleted] = {}
    for year_key, record in sorted(state.get("cycles", {}).items(), key=lambda kv: int(kv[0])):
        for name, entry in (record.get("deleted") or {}).items():
            entry = entry if isinstance(entry, Mapping) else {}
            out[name] = Deleted(name, int(year_key), str(entry.get("on", "")), str(entry.get("manifest", "")))
    for name, entry in (state.get("readmitted") or {}).items():
        if name in out and isinstance(entry, Mapping) and int(entry.get("cycle", 0)) >= out[name].cycle:
            del out[name]
    return out


def split_deleted(
    users: Sequence[Mapping[str, Any]], state: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], list[Deleted]]:
    """``ailab_users`` without the users the record says are deleted, and those (in inventory order)."""
    deleted = deleted_users(state)
    live = [u for u in users if u.get("name") not in deleted]
    gone = [deleted[str(u["name"])] for u in users if u.get("name") in deleted]
    return live, gone


def deleted_listed_warning(gone: Sequence[Deleted], users_file: str, operations_host: str) -> str:
    who = ", ".join(f"{d.name} (deleted {d.on}, cycle {d.cycle})" for d in gone)
    return (
        f"WARNING: {len(gone)} user(s) in ailab_users were deleted by the yearly deletion: {who}. This run "
        "leaves them out: their accounts stay locked and no account, SSH key, home or Slurm association is "
        f"created for them. Fix: remove them from ailab_users in {users_file}; or, to let one back in under "
        f"the same name, run `ailab-retention readmit NAME` on {operations_host} and converge again (a new, "
        "empty home)."
    )


def readmit(state: dict[str, Any], name: str, today: dt.date) -> Deleted:
    """Record that ``name``, deleted, may be created again by the next converge.  ToolError if not deleted."""
    deleted = deleted_users(state).get(name)
    if deleted is None:
        raise ToolError(
            f"{name} is not deleted in the record; nothing was changed -- fix: check the name "
            "(ailab-retention status)"
        )
    state.setdefault("readmitted", {})[name] = {"on": today.isoformat(), "cycle": deleted.cycle}
    return deleted


@dataclass
class Target:
    due: DeletionDue
    home: Path | None
    spool: Path | None


def _owner(uid: int, cache: dict[int, str]) -> str:
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def delete_users(
    config: OpsConfig,
    state: dict[str, Any],
    store: StateFile,
    deletions: Sequence[DeletionDue],
    ops: Ops,
    now: dt.datetime,
    *,
    dry_run: bool,
    out: IO[str],
) -> int:
    """Delete the due users: check, stop them, manifest (fsynced), then delete.  Returns failures."""
    home_root = Path(os.path.realpath(config.home_root))
    if not home_root.is_dir() or home_root == Path("/"):
        raise ToolError(
            f"home_root {config.home_root} is not a mounted directory; nothing was deleted "
            "-- fix: mount CephFS (role cephfs_client) and run again"
        )
    spool_dir = Path(config.mail_spool)
    failures = 0
    today = now.date()
    targets: list[Target] = []
    for due in deletions:
        try:
            targets.append(
                Target(due, checked_home(home_root, due.user.name), checked_spool(spool_dir, due.user.name))
            )
        except HomeError as exc:
            failures += _fail(state, due, str(exc), today, out, dry_run)
    if not targets:
        if not dry_run and failures:
            store.save(state)
        return failures
    if dry_run:
        for t in targets:
            entries = [e for p in (t.home, t.spool) if p for e in walk(p)]
            out.write(
                f"would delete {t.due.user.name} (cycle {t.due.year}): {t.home or 'no home'}, "
                f"{len(entries)} entries, {sum(e.bytes for e in entries)} bytes; Unix account and "
                "Slurm associations\n"
            )
        return failures

    name = f"deletion-{targets[0].due.year}-{now:%Y%m%dT%H%M%S}.jsonl"
    manifest = Manifest(Path(config.manifest_dir), name)  # raises before anything is touched
    ready: list[Target] = []
    owners: dict[int, str] = {}
    try:
        manifest.write(
            {
                "manifest": "ailab-retention",
                "version": 1,
                "cluster": config.cluster,
                "host": socket.gethostname(),
                "created": now.isoformat(timespec="seconds"),
                "home_root": str(home_root),
                "users": [t.due.user.name for t in targets],
            }
        )
        totals: dict[str, dict[str, int]] = {}
        users = [t.due.user for t in targets]
        try:
            stop_errors = ops.stop(users)
            accounts = ops.accounts([u.name for u in users])
            associations = ops.associations(users)
        except ToolError as exc:  # e.g. slurmctld or slurmdbd down: nobody is ready, all retried next run
            stop_errors = {u.name: str(exc) for u in users}
            accounts, associations = {}, {}
        for t in targets:
            user = t.due.user
            try:
                if user.name in stop_errors:
                    raise ToolError(stop_errors[user.name])
                entries = [e for p in (t.home, t.spool) if p for e in walk(p)]
            except (HomeError, ToolError, OSError) as exc:
                failures += _fail(state, t.due, str(exc), today, out, dry_run=False)
                continue
            manifest.write(
                {
                    "user": user.name,
                    "uid": user.uid,
                    "cycle": t.due.year,
                    "home": str(t.home) if t.home else None,
                    "account": accounts.get(user.name),
                    "slurm_associations": associations.get(user.name, []),
                }
            )
            for e in entries:
                manifest.write(
                    {
                        "path": e.path,
                        "owner": _owner(e.uid, owners),
                        "uid": e.uid,
                        "bytes": e.bytes,
                        "type": e.kind,
                    }
                )
            totals[user.name] = {"entries": len(entries), "bytes": sum(e.bytes for e in entries)}
            ready.append(t)
        manifest.write({"end": True, "totals": totals})
        path = manifest.commit()
    except OSError as exc:
        manifest.abort()
        raise ToolError(
            f"writing the deletion manifest {manifest.final} failed ({exc.strerror or exc}); nothing was "
            "deleted (the users stay locked and their jobs cancelled) -- fix: free space or fix the manifest "
            "directory, then run again"
        ) from None
    out.write(f"manifest {path} ({manifest.lines} lines), fsynced before deleting\n")

    emptied: list[Target] = []
    for t in ready:
        try:
            if t.home is not None:
                remove_home(home_root, t.home)
            if t.spool is not None:
                t.spool.unlink()
        except (HomeError, OSError) as exc:
            failures += _fail(state, t.due, str(exc), today, out, dry_run=False)
            continue
        emptied.append(t)
    try:
        errors = ops.delete_associations([t.due.user for t in emptied])
    except ToolError as exc:
        errors = {t.due.user.name: str(exc) for t in emptied}
    saved = time.monotonic()
    for t in emptied:
        user = t.due.user
        try:
            if user.name in errors:
                raise ToolError(errors[user.name])
            ops.delete_account(user)
        except (ToolError, OSError) as exc:
            failures += _fail(state, t.due, str(exc), today, out, dry_run=False)
            continue
        cycle = _cycle(state, t.due.year)
        cycle["deleted"][user.name] = {"on": today.isoformat(), "manifest": str(path)}
        cycle["failed"].pop(user.name, None)
        # The record is saved about once a second, not per user (thousands of rewrites of a large file):
        # a run cut off in between finds those homes already gone and records them then (the manifest
        # above has their contents either way).
        if time.monotonic() - saved > 1:
            store.save(state)
            saved = time.monotonic()
        total = totals[user.name]
        out.write(
            f"deleted {user.name} (cycle {t.due.year}): {t.home or 'no home'}, {total['entries']} entries, "
            f"{total['bytes']} bytes, Unix account, Slurm associations\n"
        )
    store.save(state)
    return failures


def _fail(
    state: dict[str, Any], due: DeletionDue, error: str, today: dt.date, out: IO[str], dry_run: bool
) -> int:
    print(f"error: {due.user.name} (cycle {due.year}) not deleted: {error}", file=sys.stderr)
    if not dry_run:
        _cycle(state, due.year)["failed"][due.user.name] = {"on": today.isoformat(), "error": error}
    return 1


# Running ---------------------------------------------------------------------------------------------


def run(
    config: OpsConfig,
    now: dt.datetime,
    mailer: Mailer,
    ops: Ops,
    *,
    dry_run: bool = False,
    out: IO[str] | None = None,
) -> int:
    """One daily run: send due notices, carry out due deletions.  Returns the exit code."""
    out = out or sys.stdout
    ops.check_home_root(config.home_root)  # before anything: without the homes every one looks absent
    config = with_removed(config, ops.removed_users(config))
    store = StateFile(config.retention_state, EMPTY_STATE)
    today = now.date()
    failures = 0
    with store.locked():
        state = store.load()
        plan = make_plan(config, state, today)
        for s in plan.superseded:
            if not dry_run:
                record_notice(state, s.year, s.user, s.key, SUPERSEDED, today)
            out.write(f"{'would skip' if dry_run else 'skipped'} missed notice '{s.key}' for {s.user}\n")
        if plan.superseded and not dry_run:
            store.save(state)
        for send in plan.sends:
            who = f"{send.user.name} <{send.user.email}>"
            what = f"notice '{send.notice.key}' of the {send.year} deletion to {who}"
            if dry_run:
                out.write(f"would send {what} (deletion on {send.deletion_on})\n")
                continue
            try:
                mailer.send(notice_mail(config, send, today))
            except (ToolError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"error: {what} not sent: {exc}", file=sys.stderr)
                failures += 1
                continue
            record_notice(state, send.year, send.user.name, send.notice.key, SENT, today)
            store.save(state)
            out.write(f"sent {what} (deletion on {send.deletion_on})\n")
        if plan.deletions:
            failures += delete_users(config, state, store, plan.deletions, ops, now, dry_run=dry_run, out=out)
        for status in plan.statuses:
            if status.state in ("expired", "not-in-config", "waiting"):
                out.write(f"{status.user} (cycle {status.year}): {status.state}: {status.detail}\n")
    return 1 if failures else 0


def delete_removed(
    config: OpsConfig, name: str, now: dt.datetime, ops: Ops, *, yes: bool, out: IO[str] | None = None
) -> int:
    """Delete one removed user's data now (``delete-removed NAME --yes``): the same checks, stop and
    manifest as the yearly deletion, recorded in the cycle of the next deletion.  Without ``yes`` it only
    shows what it would delete.  Refuses users still in the inventory (and so any extension)."""
    out = out or sys.stdout
    ops.check_home_root(config.home_root)
    listed = config.user(name)
    if listed is not None:
        far = dt.date(9999, 12, 31)
        why = kept_reason(listed, far) or (
            f"extension until {listed.extension_until}" if listed.extension_until else None
        )
        raise ToolError(
            f"{name} is still in the inventory (ailab_users){f', {why}' if why else ''}; nothing was deleted "
            "-- fix: users in the inventory are deleted by the yearly deletion; to delete this one now, "
            "remove them from ailab_users, converge (role accounts locks them), then run this again"
        )
    person = next((p for p in ops.removed_users(config) if p.name == name), None)
    if person is None:
        raise ToolError(
            f"{name} is not a user removed from the inventory here (no account that role accounts manages "
            f"in {config.accounts_state or '(accounts_state not set)'} and no longer lists); nothing was "
            "deleted "
            "-- fix: check the name (getent passwd; ailab-retention status)"
        )
    today = now.date()
    due = DeletionDue(person, cycle_year(config.deletion, today), today)
    store = StateFile(config.retention_state, EMPTY_STATE)
    with store.locked():
        state = store.load()
        failures = delete_users(config, state, store, [due], ops, now, dry_run=not yes, out=out)
    if not yes:
        print(f"error: nothing was deleted -- fix: add --yes to delete {name}'s data now", file=sys.stderr)
        return 2
    return 1 if failures else 0


def format_status(plan: Plan) -> str:
    lines = [f"today {plan.today}; next deletion {plan.schedule.deletion} (cycle {plan.schedule.year})"]
    for s in plan.sends:
        lines.append(f"  {s.user.name:<16} notice due: '{s.notice.key}' (deletion on {s.deletion_on})")
    for d in plan.deletions:
        lines.append(f"  {d.user.name:<16} deletion due (cycle {d.year}, since {d.due})")
    for st in plan.statuses:
        lines.append(f"  {st.user:<16} {st.state}: {st.detail}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, ops: Ops | None = None) -> int:
    """The command.  ``ops`` is for tests only; the installed command always uses :class:`SystemOps`,
    which refuses unless the home root is a CephFS mount that answers."""
    parser = argparse.ArgumentParser(prog="ailab-retention", description="Yearly data deletion (rule 1).")
    parser.add_argument("--config", default=os.environ.get("AILAB_OPS_CONFIG", DEFAULT_CONFIG))
    parser.add_argument("--now", help="a fixed clock, YYYY-MM-DD (tests); also AILAB_NOW")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sched = sub.add_parser("schedule", help="deletion date and notice dates of a year")
    sched.add_argument("--year", type=int, help="default: the next deletion")
    sub.add_parser("status", help="what each user is due")
    run_p = sub.add_parser("run", help="send due notices, carry out due deletions (the daily timer)")
    run_p.add_argument("--dry-run", action="store_true", help="print what would happen; change nothing")
    readmit_p = sub.add_parser(
        "readmit", help="let a deleted user back in: the next converge creates them again (empty home)"
    )
    readmit_p.add_argument("name")
    removed_p = sub.add_parser(
        "delete-removed",
        help="delete the data of a user removed from the inventory now (manifest first; --yes to do it)",
    )
    removed_p.add_argument("name")
    removed_p.add_argument("--yes", action="store_true", help="really delete (without: show what would go)")
    args = parser.parse_args(argv)
    return tool_main(lambda: _main(args, ops))


def _main(args: argparse.Namespace, ops: Ops | None) -> int:
    config = load_ops_config(args.config)
    now = parse_now(args.now, config.tz)
    if args.cmd == "schedule":
        year = args.year if args.year is not None else cycle_year(config.deletion, now.date())
        if not 1 <= year <= 9998:
            raise ToolError(f"--year {year} is not a year -- fix: e.g. --year 2027")
        sys.stdout.write(format_schedule(schedule_for(config.deletion, year), config.cluster))
        return 0
    if args.cmd == "readmit":
        store = StateFile(config.retention_state, EMPTY_STATE)
        with store.locked():
            state = store.load()
            gone = readmit(state, args.name, now.date())
            store.save(state)
            DeniedUsers(denied_file(config)).remove(gone.name)
        print(
            f"readmitted {gone.name} (deleted {gone.on}, cycle {gone.cycle}; the manifest stays): "
            "the next converge creates the account, an empty home and the Slurm association again while "
            "ailab_users lists them"
        )
        return 0
    ops = ops or SystemOps(
        slurm=config.slurm,
        directory=bool(config.directory_state),
        denied=DeniedUsers(denied_file(config)) if config.directory_state else None,
    )
    if args.cmd == "status":
        ops.check_home_root(config.home_root)  # status names who is due: it must see the homes
        config = with_removed(config, ops.removed_users(config))
        state = StateFile(config.retention_state, EMPTY_STATE).load()
        sys.stdout.write(format_status(make_plan(config, state, now.date())))
        return 0
    if args.cmd == "delete-removed":
        return delete_removed(config, args.name, now, ops, yes=args.yes)
    return run(config, now, Sendmail(config.sendmail), ops, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
