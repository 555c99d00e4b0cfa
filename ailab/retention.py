"""Rule 1, the yearly data deletion: every year on 1 August all data and user accounts are removed; users get
e-mail notices 2 months, 1 month, 14 days and 2 days before; users with an approved extension are kept.

Runs on the front-end as ``ailab-retention`` (role ``retention``: a daily systemd timer), reading
/etc/ailab/ops.json (rendered from the inventory) and keeping its state in /var/lib/ailab/retention.json.
Standard library only, besides :mod:`ailab.model`, :mod:`ailab.ceph` (the mount unit's name) and
:mod:`ailab.notices`, which are copied with it.

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
import contextlib
import dataclasses
import datetime as dt
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from ailab.ceph import mount_unit_name
from ailab.model import DeletionPolicy
from ailab.mounts import mount_type, probe_directory, read_mount_table
from ailab.notices import (
    SENT,
    SUPERSEDED,
    USERNAME_RE,
    Mail,
    Mailer,
    OpsConfig,
    Person,
    ScheduledNotice,
    Sendmail,
    StateFile,
    ToolError,
    fsync_dir,
    load_ops_config,
    mail_body,
    parse_now,
    pick_notice,
    write_atomic,
)

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
    return today.year if deletion_date(policy, today.year) >= today else today.year + 1


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


# Users removed from the inventory --------------------------------------------------------------------
# Role accounts locks a user that left ailab_users and keeps their home; it lists every account it manages
# in its state file (managed-accounts.json).  Those listed there but not in ops.json are the removed users:
# the tool reads them at every run (uid, full name and e-mail from the locked account's passwd entry, which
# role accounts wrote from the inventory) and deletes their data in the next cycle like everyone's:
# notices first, manifest first, the same rules.  Gone from passwd (already deleted): not a target.

Passwd = Callable[[str], "tuple[int, str] | None"]  # name -> (uid, GECOS), None when there is no account


def removed_people(listed: Sequence[str], managed: Sequence[str], passwd: Passwd) -> list[Person]:
    """The users ``managed`` (role accounts' state) that the configuration no longer ``listed``."""
    out = []
    for name in sorted(set(managed) - set(listed)):
        if not isinstance(name, str) or not USERNAME_RE.match(name):
            continue
        entry = passwd(name)
        if entry is None or entry[0] < 1000:
            continue
        fields = entry[1].split(",")
        email = fields[4].strip() if len(fields) > 4 and "@" in fields[4] else ""
        out.append(Person(name, entry[0], email, full_name=fields[0].strip(), removed=True))
    return out


def read_managed(path: str) -> list[str]:
    """Role accounts' state file: a JSON list of user names ([] when there is none)."""
    if not path:
        return []
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(
            f"cannot read role accounts' state {path} ({exc}); nothing was done -- fix: restore it or "
            "converge (site.yml, role accounts)"
        ) from None
    if not isinstance(data, list):
        raise ToolError(f"{path} is not a JSON list of user names -- fix: converge (role accounts)")
    return [n for n in data if isinstance(n, str)]


def system_passwd(name: str) -> tuple[int, str] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gecos


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


# Directory users refused at once ---------------------------------------------------------------------
# A user from the directory has no local account here to lock: their entry goes with the next converge
# (role directory reads the deletion record), which may be days later.  Until then the front-end refuses
# them through PAM (role operations: pam_listfile in /etc/pam.d/sshd reads this list, next to the
# record).  stop() adds a user before anything of theirs is deleted; readmit removes them.


DENIED_FILE = "denied-users"


def denied_file(config: OpsConfig) -> Path:
    """The list PAM reads on the operations host: beside the deletion record."""
    return Path(config.retention_state).with_name(DENIED_FILE)


class DeniedUsers:
    """One user name per line, written atomically (root only)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def names(self) -> list[str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _write(self, names: Sequence[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, "".join(f"{n}\n" for n in sorted(set(names))).encode())

    def add(self, name: str) -> None:
        self.add_all([name])

    def add_all(self, names: Sequence[str]) -> None:
        """Add every name in one write (the yearly deletion stops thousands at once)."""
        listed = self.names()
        if not set(names) <= set(listed):
            self._write([*listed, *names])

    def remove(self, name: str) -> None:
        names = self.names()
        if name in names:
            self._write([n for n in names if n != name])


# Homes, manifest and deletion ------------------------------------------------------------------------


class HomeError(Exception):
    """A home or mail spool that is not what the tool may delete; stops that user's deletion."""


@dataclass(frozen=True)
class Entry:
    path: str
    uid: int
    bytes: int  # data bytes of regular files (CephFS reports a directory's recursive size: not counted)
    kind: str  # file, dir, link, other


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _entry(path: str, st: os.stat_result) -> Entry:
    kind = _kind(st.st_mode)
    return Entry(path, st.st_uid, st.st_size if kind == "file" else 0, kind)


def checked_home(home_root: Path, name: str) -> Path | None:
    """``<home_root>/<name>`` if it is a real directory, None if absent; HomeError otherwise.
    ``home_root`` must already be resolved (realpath)."""
    if not USERNAME_RE.match(name):
        raise HomeError(f"{name!r} is not a valid user name; refusing to build a path from it")
    home = home_root / name
    try:
        st = os.lstat(home)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise HomeError(
            f"{home} is a symbolic link (to {os.readlink(home)}); links are never followed out of "
            f"{home_root} -- fix: inspect it and remove it by hand"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise HomeError(f"{home} is not a directory -- fix: inspect it and remove it by hand")
    return home


def checked_spool(spool_dir: Path, name: str) -> Path | None:
    spool = spool_dir / name
    try:
        st = os.lstat(spool)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise HomeError(f"mail spool {spool} is not a regular file -- fix: inspect it and remove it by hand")
    return spool


def walk(top: Path) -> Iterator[Entry]:
    """Every entry under ``top`` (itself first), never following symbolic links or crossing mounts."""
    st = os.lstat(top)
    device = st.st_dev
    yield _entry(str(top), st)
    stack = [str(top)] if stat.S_ISDIR(st.st_mode) else []
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for item in entries:
                item_st = item.stat(follow_symlinks=False)
                yield _entry(item.path, item_st)
                if stat.S_ISDIR(item_st.st_mode):
                    if item_st.st_dev != device:
                        raise HomeError(f"{item.path} is a mount point inside {top}; refusing to cross it")
                    stack.append(item.path)


def remove_home(home_root: Path, home: Path) -> None:
    """Delete one checked home.  Re-checks right before deleting: still a directory directly under the
    (resolved) home root, not a link; rmtree must be the symlink-attack-safe implementation."""
    if home.parent != home_root:
        raise HomeError(f"{home} is not directly under {home_root}")
    st = os.lstat(home)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise HomeError(f"{home} changed into something that is not a directory; not deleted")
    if not shutil.rmtree.avoids_symlink_attacks:
        raise ToolError("this platform's shutil.rmtree can follow symbolic links; refusing to delete homes")
    shutil.rmtree(home)


# The home file system ----------------------------------------------------------------------------------
# Without CephFS on the home root every home looks absent: a run would delete accounts, associations and
# mail and record the users as deleted while their data stays.  Every run that decides deletions first
# proves the home root is a CephFS mount that answers.

CEPHFS_TYPES = ("ceph", "fuse.ceph-fuse")


def home_root_problem(mount_table: str, home_root: str) -> str | None:
    """Why ``home_root`` is not a CephFS mount (what the mount table shows there), or None."""
    fstype = mount_type(mount_table, home_root)
    if fstype is None:
        return "nothing is mounted there"
    if fstype not in CEPHFS_TYPES:
        return f"the file system mounted there is {fstype}, not CephFS ({' or '.join(CEPHFS_TYPES)})"
    return None


def refuse_home_root(home_root: str, why: str) -> ToolError:
    return ToolError(
        f"home_root {home_root} is not a mounted CephFS file system that answers: {why}; nothing was done "
        f"(without it every home would look absent) -- fix: mount CephFS there (role cephfs_client: "
        f"systemctl start {mount_unit_name(home_root)}; ailab-cephfs-check repairs a hung mount), "
        "then run again"
    )


def check_home_root(
    home_root: str,
    mount_table: Callable[[], str] = read_mount_table,
    probe: Callable[[str], str | None] = probe_directory,
) -> None:
    """Raise ToolError (nothing done yet) unless ``home_root`` is a CephFS mount point that answers."""
    why = home_root_problem(mount_table(), home_root) or probe(home_root)
    if why:
        raise refuse_home_root(home_root, why)


class Manifest:
    """JSON lines, written to a temporary file and only renamed into place once complete and fsynced."""

    def __init__(self, directory: Path, name: str):
        self.directory = directory
        self.final = directory / name
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(directory / f".{name}.partial", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ToolError(
                f"cannot create the deletion manifest in {directory}: {exc.strerror}; nothing was deleted "
                "-- fix: make the manifest directory writable (and free space), then run again"
            ) from None
        self.partial = directory / f".{name}.partial"
        self.handle: IO[str] = os.fdopen(fd, "w")
        self.lines = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self.handle.write(json.dumps(record, sort_keys=True) + "\n")
        self.lines += 1

    def commit(self) -> Path:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.final)
        fsync_dir(self.directory)
        return self.final

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


class Ops(Protocol):
    """What deletion needs from the system besides files (Unix accounts, Slurm, the home mount).

    Every call takes all the users of a run at once: the yearly deletion stops and deletes thousands, and
    one squeue or sacctmgr for all of them costs what one per user would cost for a single one.  The calls
    that can fail for some users and not others return ``{name: error}`` for those."""

    def check_home_root(self, home_root: str) -> None: ...
    def removed_users(self, config: OpsConfig) -> list[Person]: ...
    def accounts(self, names: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def stop(self, users: Sequence[Person]) -> dict[str, str]: ...
    def associations(self, users: Sequence[Person]) -> dict[str, list[str]]: ...
    def delete_associations(self, users: Sequence[Person]) -> dict[str, str]: ...
    def delete_account(self, user: Person) -> None: ...


Runner = Callable[..., subprocess.CompletedProcess]

# Names or uids per command line: a single argument may not exceed 128 KiB (MAX_ARG_STRLEN).
ARGS_PER_CALL = 500


def chunks(items: Sequence[str], size: int = ARGS_PER_CALL) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def shown(argv: Sequence[str], most: int = 8) -> str:
    """A command line for an error message, without the hundreds of names a bulk call carries."""
    if len(argv) <= most:
        return " ".join(argv)
    return f"{' '.join(argv[: most - 2])} ... ({len(argv) - most + 2} more arguments)"


def by_name(lines: str) -> dict[str, str]:
    """getent's answer for several keys: each line keyed by its first field."""
    return {line.split(":", 1)[0]: line for line in lines.splitlines() if line.strip()}


def jobs_by_uid(squeue_out: str) -> dict[int, list[str]]:
    """``squeue --format='%i %U'`` lines: the job ids of each uid."""
    jobs: dict[int, list[str]] = {}
    for line in squeue_out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            jobs.setdefault(int(fields[1]), []).append(fields[0])
    return jobs


def associations_by_user(sacctmgr_out: str) -> dict[str, list[str]]:
    """``sacctmgr --parsable2 show associations format=cluster,account,user,partition,qos`` by user."""
    found: dict[str, list[str]] = {}
    for line in sacctmgr_out.splitlines():
        fields = line.split("|")
        if len(fields) >= 3 and fields[2]:
            found.setdefault(fields[2], []).append(line)
    return found


class SystemOps:
    """The real thing on the front-end: usermod/userdel, pkill, scancel/squeue, sacctmgr."""

    def __init__(
        self,
        slurm: bool = True,
        job_wait: float = 120,
        run: Runner = subprocess.run,
        mount_table: Callable[[], str] = read_mount_table,
        probe: Callable[[str], str | None] = probe_directory,
        passwd: Passwd = system_passwd,
        directory: bool = False,
        local_passwd: str = "/etc/passwd",
        denied: DeniedUsers | None = None,
    ):
        self._passwd = passwd
        # Users from the directory have no local account to lock or delete here (role directory locks
        # and deletes their entries); local ones (the admins) still do.
        self.directory = directory
        self._local_passwd = local_passwd
        self._denied = denied
        self.slurm = slurm
        self.job_wait = job_wait
        self._run_fn = run
        self._mount_table = mount_table
        self._probe = probe

    def check_home_root(self, home_root: str) -> None:
        """The home root is a CephFS mount point and answers; ToolError (nothing done) otherwise."""
        check_home_root(home_root, self._mount_table, self._probe)

    def removed_users(self, config: OpsConfig) -> list[Person]:
        """Users role accounts manages here that ops.json no longer lists (locked, homes kept)."""
        managed = read_managed(config.accounts_state) + read_managed(config.directory_state)
        return removed_people([u.name for u in config.users], managed, self._passwd)

    def _run(self, argv: Sequence[str], ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
        try:
            result = self._run_fn(list(argv), capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(f"{shown(argv)}: {exc}") from None
        if result.returncode not in ok:
            raise ToolError(f"{shown(argv)} exited {result.returncode}: {(result.stderr or '').strip()}")
        return result

    def _getent(self, database: str, names: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in chunks(names):
            found.update(by_name(self._run(["getent", database, *part], ok=(0, 2)).stdout))
        return found

    def accounts(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The passwd and group lines of those of ``names`` that resolve (one getent each for all)."""
        passwd = self._getent("passwd", names)
        group = self._getent("group", list(passwd)) if passwd else {}
        return {name: {"passwd": line, "group": group.get(name, "")} for name, line in passwd.items()}

    def _local_names(self) -> set[str] | None:
        """The names in the local passwd file; None when every account is local (no directory)."""
        if not self.directory:
            return None
        try:
            with open(self._local_passwd, encoding="utf-8") as fh:
                return {line.split(":", 1)[0] for line in fh}
        except OSError:
            return set()

    def stop(self, users: Sequence[Person]) -> dict[str, str]:
        """Lock the accounts, cancel the users' jobs and end their processes on this node."""
        errors: dict[str, str] = {}
        local = self._local_names()
        present = self.accounts([u.name for u in users])
        refused = []
        for user in users:
            if user.name not in present:
                continue
            if local is None or user.name in local:
                try:
                    self._run(["usermod", "--lock", "--expiredate", "1", user.name])
                except ToolError as exc:
                    errors[user.name] = str(exc)
            else:
                refused.append(user.name)  # a directory user: refused at login until the entry goes
        if refused and self._denied is not None:
            self._denied.add_all(refused)
        if self.slurm:
            errors.update(self._cancel_jobs([u for u in users if u.name not in errors]))
        uids = [str(u.uid) for u in users if u.name not in errors]
        for part in chunks(uids):
            self._run(["pkill", "--signal", "KILL", "--uid", ",".join(part)], ok=(0, 1))
        return errors

    def _jobs(self, uids: Sequence[str]) -> dict[int, list[str]]:
        jobs: dict[int, list[str]] = {}
        for part in chunks(uids):
            argv = ["squeue", "--noheader", "--all", f"--user={','.join(part)}", "--format=%i %U"]
            jobs.update(jobs_by_uid(self._run(argv).stdout))
        return jobs

    def _cancel_jobs(self, users: Sequence[Person]) -> dict[str, str]:
        """scancel every job of ``users``, then wait until squeue shows none: one squeue per wait for all
        of them.  The users whose jobs still run after ``job_wait`` seconds are returned with the error."""
        uids = [str(u.uid) for u in users]
        jobs = self._jobs(uids)
        cancel_error = ""
        ids = [j for js in jobs.values() for j in js]
        for part in chunks(ids):
            # A job that ended since squeue makes scancel exit 1: the wait below is what checks.
            result = self._run(["scancel", *part], ok=(0, 1))
            cancel_error = cancel_error or (result.stderr or "").strip()
        deadline = time.monotonic() + self.job_wait
        while jobs:
            if time.monotonic() > deadline:
                why = f"; scancel said: {cancel_error}" if cancel_error else ""
                return {
                    u.name: f"jobs {', '.join(jobs[u.uid])} still run {self.job_wait:.0f}s after scancel{why}"
                    for u in users
                    if u.uid in jobs
                }
            time.sleep(2)
            jobs = self._jobs([str(uid) for uid in jobs])
        return {}

    def associations(self, users: Sequence[Person]) -> dict[str, list[str]]:
        """Each user's Slurm associations, from one sacctmgr per 500 users."""
        if not self.slurm:
            return {}
        found: dict[str, list[str]] = {}
        for part in chunks([u.name for u in users]):
            argv = ["sacctmgr", "--noheader", "--parsable2", "show", "associations"]
            argv += [f"users={','.join(part)}", "format=cluster,account,user,partition,qos"]
            found.update(associations_by_user(self._run(argv).stdout))
        return found

    def delete_associations(self, users: Sequence[Person]) -> dict[str, str]:
        """Delete the users' associations (one sacctmgr for all of them); if that fails, one by one, so
        one bad user does not hold back the others.  Returns the errors by user."""
        if not self.slurm:
            return {}
        names = list(self.associations(users))
        errors: dict[str, str] = {}
        for part in chunks(names):
            try:
                self._run(["sacctmgr", "--immediate", "delete", "user", f"name={','.join(part)}"])
            except ToolError:
                for name in part:
                    try:
                        self._run(["sacctmgr", "--immediate", "delete", "user", f"name={name}"])
                    except ToolError as exc:
                        errors[name] = str(exc)
        return errors

    def delete_account(self, user: Person) -> None:
        local = self._local_names()
        if user.name not in self.accounts([user.name]) or (local is not None and user.name not in local):
            return
        self._run(["userdel", user.name])
        # userdel removes the personal group (USERGROUPS_ENAB); a group left behind with no members goes too.
        group = self._run(["getent", "group", user.name], ok=(0, 2)).stdout.strip()
        if group and group.split(":")[-1] == "":
            self._run(["groupdel", user.name])


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
    try:
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
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


# `ailab retention ...` on the operator's machine ------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    from ailab.cli import add_inventory_arg

    ret = sub.add_parser("retention", help="the yearly data deletion (rule 1)")
    ret_sub = ret.add_subparsers(dest="retention_cmd", required=True)
    sched = ret_sub.add_parser("schedule", help="print the deletion date and each notice date of a year")
    add_inventory_arg(sched)
    sched.add_argument("--year", type=int, help="default: the next deletion")
    sched.set_defaults(func=_cmd_schedule)
    conf = ret_sub.add_parser(
        "config", help="print the JSON the front-end's tools read (/etc/ailab/ops.json)"
    )
    add_inventory_arg(conf)
    conf.set_defaults(func=_cmd_config)


def _cmd_schedule(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster

    cluster, _ = load_cluster(args.inventory)
    policy = cluster.policy.deletion
    year = args.year if args.year is not None else cycle_year(policy, parse_now(None).date())
    if not 1 <= year <= 9998:
        print(f"error: --year {year} is not a year -- fix: e.g. --year 2027", file=sys.stderr)
        return 2
    sys.stdout.write(format_schedule(schedule_for(policy, year), cluster.name))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster
    from ailab.notices import ops_config_data

    cluster, _ = load_cluster(args.inventory)
    print(json.dumps(ops_config_data(cluster), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
