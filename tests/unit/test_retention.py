"""Rule 1: the yearly deletion's schedule, notice state machine and deletion, with fixed clocks."""

from __future__ import annotations

import datetime as dt
import email
import io
import json
import os
import shutil
import subprocess
import sys
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ailab import deletion, retention
from ailab.ceph import mount_unit_name
from ailab.inventory import load_cluster
from ailab.mail import Mail
from ailab.model import DeletionPolicy, NoticeOffset
from ailab.notices import ScheduledNotice, pick_notice
from ailab.opsconfig import OpsConfig, Person, ops_config_data, parse_ops_config
from ailab.runtime import StateFile, ToolError
from tests.unit import node_package

ROOT = Path(__file__).resolve().parents[2]
TZ = zoneinfo.ZoneInfo("Europe/Copenhagen")
D = dt.date.fromisoformat


def at(day: str, hour: int = 0, minute: int = 15) -> dt.datetime:
    return dt.datetime.combine(D(day), dt.time(hour, minute), TZ)


# Schedule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2026, ["2026-06-01", "2026-07-01", "2026-07-18", "2026-07-30", "2026-08-01"]),
        (2027, ["2027-06-01", "2027-07-01", "2027-07-18", "2027-07-30", "2027-08-01"]),
        (2028, ["2028-06-01", "2028-07-01", "2028-07-18", "2028-07-30", "2028-08-01"]),  # leap year
    ],
)
def test_schedule_of_the_default_policy(year, expected):
    s = retention.schedule_for(DeletionPolicy(), year)
    assert [n.date.isoformat() for n in s.notices] + [s.deletion.isoformat()] == expected
    assert [n.key for n in s.notices] == ["2 months", "1 month", "14 days", "2 days"]
    assert s.min_lead_days == 2


@pytest.mark.parametrize(
    ("month", "day", "offset", "year", "notice"),
    [
        (1, 10, NoticeOffset(days=14), 2027, "2026-12-27"),  # across the year end
        (1, 15, NoticeOffset(months=2), 2027, "2026-11-15"),
        (3, 1, NoticeOffset(days=1), 2028, "2028-02-29"),  # leap day
        (3, 1, NoticeOffset(days=1), 2027, "2027-02-28"),
        (3, 31, NoticeOffset(months=1), 2028, "2028-02-29"),  # clamped to the month's last day
        (3, 31, NoticeOffset(months=1), 2027, "2027-02-28"),
    ],
)
def test_schedule_across_year_ends_and_leap_years(month, day, offset, year, notice):
    s = retention.schedule_for(DeletionPolicy(month=month, day=day, notices=(offset,)), year)
    assert s.notices[0].date == D(notice)
    assert s.deletion == dt.date(year, month, day)


@pytest.mark.parametrize(
    ("today", "year"),
    [
        ("2026-07-31", 2026),
        ("2026-08-01", 2026),
        ("2026-08-02", 2027),
        ("2026-12-31", 2027),
        ("2027-01-01", 2027),
    ],
)
def test_cycle_is_the_next_deletion_on_or_after_today(today, year):
    assert retention.cycle_year(DeletionPolicy(), D(today)) == year


def test_format_schedule_lists_every_notice_with_its_label():
    text = retention.format_schedule(retention.schedule_for(DeletionPolicy(), 2027), "ailab")
    assert text.splitlines() == [
        "Yearly deletion 2027 on ailab: Sunday 2027-08-01",
        "  notice 2 months before      Tuesday 2027-06-01",
        "  notice 1 month before       Thursday 2027-07-01",
        "  notice 14 days before       Sunday 2027-07-18",
        "  notice 2 days before        Friday 2027-07-30",
    ]


# pick_notice -----------------------------------------------------------------------------------------

NOTICES = (ScheduledNotice("a", D("2026-06-01")), ScheduledNotice("b", D("2026-07-01")))
EVENT = D("2026-08-01")


@pytest.mark.parametrize(
    ("today", "recorded", "send", "superseded"),
    [
        ("2026-05-31", {}, None, []),
        ("2026-06-01", {}, "a", []),
        ("2026-06-15", {"a": 1}, None, []),
        ("2026-07-01", {"a": 1}, "b", []),
        ("2026-07-05", {}, "b", ["a"]),  # missed: only the latest, the older one superseded
        ("2026-07-05", {"a": 1, "b": 1}, None, []),
        ("2026-08-01", {}, None, []),  # never on the event day
        ("2026-09-01", {}, None, []),
    ],
)
def test_pick_notice(today, recorded, send, superseded):
    decision = pick_notice(NOTICES, recorded, D(today), EVENT)
    assert (decision.send.key if decision.send else None) == send
    assert [n.key for n in decision.superseded] == superseded


# The state machine, day by day -----------------------------------------------------------------------


class FakeMailer:
    def __init__(self, fail_for: set[str] | None = None):
        self.sent: list[tuple[str, Mail]] = []
        self.fail_for = fail_for or set()
        self.today = ""

    def send(self, mail: Mail) -> None:
        if mail.to in self.fail_for:
            raise ToolError(f"sendmail refused {mail.to}")
        self.sent.append((self.today, mail))


class FakeOps:
    def __init__(self, accounts: set[str]):
        self.present = set(accounts)
        self.calls: list[tuple[str, str]] = []
        self.fail_associations: set[str] = set()
        self.home_checks: list[str] = []
        self.removed: list[Person] = []  # users removed from the inventory (SystemOps: accounts state)

    def check_home_root(self, home_root: str) -> None:
        self.home_checks.append(home_root)  # temp dirs stand in for CephFS; SystemOps is tested below

    def removed_users(self, config: OpsConfig) -> list[Person]:
        return list(self.removed)

    def accounts(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        return {
            name: {"passwd": f"{name}:x:1:1::/h/{name}:/bin/bash", "group": f"{name}:x:1:"}
            for name in names
            if name in self.present
        }

    def stop(self, users: Sequence[Person]) -> dict[str, str]:
        self.calls += [("stop", u.name) for u in users]
        return {}

    def associations(self, users: Sequence[Person]) -> dict[str, list[str]]:
        return {u.name: [f"sim|course|{u.name}||normal"] for u in users}

    def delete_associations(self, users: Sequence[Person]) -> dict[str, str]:
        self.calls += [("delete_associations", u.name) for u in users if u.name not in self.fail_associations]
        return {u.name: "sacctmgr: cannot reach slurmdbd" for u in users if u.name in self.fail_associations}

    def delete_account(self, user: Person) -> None:
        self.calls.append(("delete_account", user.name))
        self.present.discard(user.name)

    def deleted(self) -> set[str]:
        return {name for call, name in self.calls if call == "delete_account"}


USERS: list[dict[str, Any]] = [
    {"name": "alice", "uid": 20001, "email": "alice@example.org", "full_name": "Alice A"},
    {"name": "bob", "uid": 20002, "email": "bob@example.org"},
    {"name": "carol", "uid": 20003, "email": "carol@example.org", "extension_until": "2027-08-01"},
    {"name": "dave", "uid": 20004, "email": "dave@example.org", "extension_until": "2026-08-01"},  # not after
    {"name": "root2", "uid": 20005, "email": "admin@example.org", "admin": True},
]


def config_data(tmp_path: Path, users: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    data = {
        "version": 1,
        "cluster": "testlab",
        "timezone": "Europe/Copenhagen",
        "home_root": str(tmp_path / "home"),
        "deletion": {
            "month": 8,
            "day": 1,
            "notices": [{"months": 2}, {"months": 1}, {"days": 14}, {"days": 2}],
        },
        "maintenance_notice_days": [30, 14, 1],
        "extension_url": "https://forms.example.org/extend",
        "support_email": "support@example.org",
        "mail_from": "testlab <noreply@example.org>",
        "sendmail": "/usr/sbin/sendmail",
        "mail_spool": str(tmp_path / "spool"),
        "retention_state": str(tmp_path / "state" / "retention.json"),
        "manifest_dir": str(tmp_path / "state" / "manifests"),
        "maintenance_state": str(tmp_path / "state" / "maintenance.json"),
        "catch_up_days": 30,
        "slurm": True,
        "users": USERS if users is None else users,
    }
    data.update(extra)
    return data


def make_config(tmp_path: Path, users: list[dict[str, Any]] | None = None, **extra: Any) -> OpsConfig:
    return parse_ops_config(config_data(tmp_path, users, **extra))


def make_homes(config: OpsConfig, names: list[str]) -> None:
    root = Path(config.home_root)
    for name in names:
        (root / name / "data").mkdir(parents=True, exist_ok=True)
        (root / name / "data" / "model.pt").write_bytes(b"x" * 1000)
        (root / name / "notes.txt").write_text("hello\n")


def run_days(config: OpsConfig, first: str, last: str, mailer: FakeMailer, ops: FakeOps) -> list[int]:
    codes = []
    day = D(first)
    while day <= D(last):
        mailer.today = day.isoformat()
        codes.append(retention.run(config, at(day.isoformat()), mailer, ops, out=io.StringIO()))
        day += dt.timedelta(days=1)
    return codes


def sent_log(mailer: FakeMailer) -> list[tuple[str, str, str]]:
    """(day, recipient, notice key) of every message."""
    return [(day, mail.to.split("@")[0], mail.tag.split(" ", 2)[2]) for day, mail in mailer.sent]


def test_a_whole_season_day_by_day(tmp_path):
    config = make_config(tmp_path)
    make_homes(config, ["alice", "bob", "carol", "dave", "root2"])
    mailer, ops = FakeMailer(), FakeOps({"alice", "bob", "carol", "dave", "root2"})
    codes = run_days(config, "2026-05-01", "2026-08-10", mailer, ops)
    assert set(codes) == {0}
    expected = []
    for day, key in (("2026-06-01", "2 months"), ("2026-07-01", "1 month"), ("2026-07-18", "14 days")):
        expected += [(day, "alice", key), (day, "bob", key), (day, "dave", key)]
    expected += [("2026-07-30", n, "2 days") for n in ("alice", "bob", "dave")]
    assert sent_log(mailer) == expected  # each notice on its day, once; carol (extended) and admins none
    assert ops.deleted() == {"alice", "bob", "dave"}
    homes = sorted(p.name for p in Path(config.home_root).iterdir())
    assert homes == ["carol", "root2"]
    manifests = list(Path(config.manifest_dir).glob("deletion-2026-20260801T*.jsonl"))
    assert len(manifests) == 1
    state = json.loads(Path(config.retention_state).read_text())
    assert set(state["cycles"]["2026"]["deleted"]) == {"alice", "bob", "dave"}


def test_rerun_the_same_day_sends_nothing_new(tmp_path):
    config = make_config(tmp_path)
    mailer, ops = FakeMailer(), FakeOps(set())
    run_days(config, "2026-06-01", "2026-06-01", mailer, ops)
    first = len(mailer.sent)
    run_days(config, "2026-06-01", "2026-06-01", mailer, ops)
    run_days(config, "2026-06-02", "2026-06-30", mailer, ops)
    assert first == 3 and len(mailer.sent) == 3


def test_missed_days_send_only_the_latest_notice(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    mailer, ops = FakeMailer(), FakeOps(set())
    run_days(config, "2026-07-20", "2026-07-20", mailer, ops)  # first run after 2 months, 1 month, 14 days
    run_days(config, "2026-07-21", "2026-07-31", mailer, ops)
    assert sent_log(mailer) == [("2026-07-20", "alice", "14 days"), ("2026-07-30", "alice", "2 days")]
    state = json.loads(Path(config.retention_state).read_text())
    notices = state["cycles"]["2026"]["notices"]["alice"]
    assert notices["2 months"]["status"] == notices["1 month"]["status"] == "superseded"
    body = " ".join(mailer.sent[0][1].body.split())
    assert "in 12 days" in body and "Saturday 1 August 2026" in body


def test_a_late_notice_postpones_that_users_deletion_by_the_shortest_lead(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    mailer, ops = FakeMailer(), FakeOps({"alice"})
    run_days(config, "2026-07-31", "2026-07-31", mailer, ops)  # added the day before the deletion
    assert sent_log(mailer) == [("2026-07-31", "alice", "2 days")]
    assert "deleted on Sunday 2 August 2026, in 2 days" in " ".join(
        mailer.sent[0][1].body.split()
    )  # what it promises ...
    run_days(config, "2026-08-01", "2026-08-01", mailer, ops)
    assert ops.deleted() == set()  # ... is kept: not on 1 August
    run_days(config, "2026-08-02", "2026-08-02", mailer, ops)
    assert ops.deleted() == {"alice"}


def test_users_never_notified_before_the_deletion_day_belong_to_the_next_cycle(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    mailer, ops = FakeMailer(), FakeOps({"alice"})
    run_days(config, "2026-08-01", "2026-08-05", mailer, ops)
    assert mailer.sent == [] and ops.deleted() == set()
    plan = retention.make_plan(
        config, StateFile(config.retention_state, retention.EMPTY_STATE).load(), D("2027-06-01")
    )
    assert [(s.user.name, s.notice.key, s.year) for s in plan.sends] == [("alice", "2 months", 2027)]


def test_a_missed_deletion_is_caught_up_within_the_window(tmp_path):
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice", "bob"])
    mailer, ops = FakeMailer(), FakeOps({"alice", "bob"})
    run_days(config, "2026-07-30", "2026-07-30", mailer, ops)
    run_days(config, "2026-08-20", "2026-08-20", mailer, ops)  # front-end was down for three weeks
    assert ops.deleted() == {"alice", "bob"}


def test_a_deletion_missed_for_longer_than_the_window_is_not_carried_out(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    mailer, ops = FakeMailer(), FakeOps({"alice"})
    run_days(config, "2026-07-30", "2026-07-30", mailer, ops)
    out = io.StringIO()
    assert retention.run(config, at("2026-09-15"), mailer, ops, out=out) == 0
    assert ops.deleted() == set()
    assert "alice (cycle 2026): expired" in out.getvalue()
    assert (Path(config.home_root) / "alice" / "notes.txt").exists()


def test_an_extension_granted_after_the_notices_keeps_the_user(tmp_path):
    users = [dict(USERS[0])]
    config = make_config(tmp_path, users)
    make_homes(config, ["alice"])
    mailer, ops = FakeMailer(), FakeOps({"alice"})
    run_days(config, "2026-06-01", "2026-07-19", mailer, ops)
    users[0]["extension_until"] = "2027-01-31"
    extended = make_config(tmp_path, users)
    run_days(extended, "2026-07-20", "2026-08-03", mailer, ops)
    assert [key for _, _, key in sent_log(mailer)] == ["2 months", "1 month", "14 days"]
    assert ops.deleted() == set()


def test_a_user_gone_from_the_inventory_and_the_accounts_is_only_reported(tmp_path):
    """No account left here (FakeOps.removed empty): not a target, reported; see test_lifecycle."""
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice", "bob"])
    mailer, ops = FakeMailer(), FakeOps({"alice", "bob"})
    run_days(config, "2026-07-30", "2026-07-30", mailer, ops)
    out = io.StringIO()
    retention.run(make_config(tmp_path, USERS[1:2]), at("2026-08-01"), mailer, ops, out=out)
    assert ops.deleted() == {"bob"}
    assert (Path(config.home_root) / "alice").is_dir()
    assert "alice (cycle 2026): not-in-config" in out.getvalue()


def test_a_refused_message_is_retried_next_run(tmp_path):
    config = make_config(tmp_path, USERS[:2])
    mailer, ops = FakeMailer(fail_for={"alice@example.org"}), FakeOps(set())
    assert run_days(config, "2026-06-01", "2026-06-01", mailer, ops) == [1]
    mailer.fail_for.clear()
    run_days(config, "2026-06-02", "2026-06-02", mailer, ops)
    assert sent_log(mailer) == [("2026-06-01", "bob", "2 months"), ("2026-06-02", "alice", "2 months")]


def test_dry_run_changes_nothing(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    mailer, ops = FakeMailer(), FakeOps({"alice"})
    run_days(config, "2026-07-30", "2026-07-30", mailer, ops)
    before = Path(config.retention_state).read_text()
    out = io.StringIO()
    assert retention.run(config, at("2026-08-01"), mailer, ops, dry_run=True, out=out) == 0
    assert "would delete alice (cycle 2026)" in out.getvalue()
    assert "4 entries, 1006 bytes" in out.getvalue()
    assert Path(config.retention_state).read_text() == before
    assert ops.calls == [] and (Path(config.home_root) / "alice" / "notes.txt").exists()
    assert not Path(config.manifest_dir).exists()


# Deletion safety -------------------------------------------------------------------------------------


def notified(config: OpsConfig, names: list[str]) -> None:
    """State as if every named user got their notices of the 2026 cycle."""
    store = StateFile(config.retention_state, retention.EMPTY_STATE)
    state = store.load()
    for name in names:
        for key, day in (("2 months", "2026-06-01"), ("2 days", "2026-07-30")):
            retention.record_notice(state, 2026, name, key, "sent", D(day))
    store.save(state)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_manifest_lists_every_path_with_owner_and_bytes_and_is_complete_before_deleting(
    tmp_path, monkeypatch
):
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice", "bob"])
    spool = Path(config.mail_spool)
    spool.mkdir()
    (spool / "alice").write_text("From x\n\nold notice\n")
    notified(config, ["alice", "bob"])
    seen_at_delete: list[list[str]] = []
    real_rmtree = shutil.rmtree

    def checking_rmtree(path, *args, **kwargs):
        seen_at_delete.append([p.name for p in Path(config.manifest_dir).iterdir()])
        return real_rmtree(path, *args, **kwargs)

    checking_rmtree.avoids_symlink_attacks = True  # type: ignore[attr-defined]
    monkeypatch.setattr(deletion.shutil, "rmtree", checking_rmtree)
    ops = FakeOps({"alice", "bob"})
    assert retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO()) == 0
    (manifest,) = Path(config.manifest_dir).iterdir()
    assert seen_at_delete == [[manifest.name], [manifest.name]]  # complete (renamed) before the first delete
    records = read_manifest(manifest)
    assert records[0]["manifest"] == "ailab-retention" and records[-1]["end"] is True
    files = {r["path"]: r for r in records if "path" in r}
    home = Path(os.path.realpath(config.home_root))
    assert files[str(home / "alice" / "data" / "model.pt")]["bytes"] == 1000
    assert files[str(home / "alice" / "notes.txt")]["bytes"] == 6
    assert files[str(spool / "alice")]["type"] == "file"
    expected = {str(home / u / p) for u in ("alice", "bob") for p in ("data", "data/model.pt", "notes.txt")}
    assert set(files) == expected | {str(home / "alice"), str(home / "bob"), str(spool / "alice")}
    assert records[-1]["totals"]["alice"]["bytes"] == 1000 + 6 + len("From x\n\nold notice\n")
    users = {r["user"]: r for r in records if "slurm_associations" in r}
    assert users["bob"]["slurm_associations"] == ["sim|course|bob||normal"]
    assert users["bob"]["account"]["passwd"].startswith("bob:")
    assert not (spool / "alice").exists()
    assert ops.calls.index(("stop", "alice")) < ops.calls.index(("delete_account", "alice"))


def test_no_manifest_no_deletion(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    notified(config, ["alice"])
    Path(config.manifest_dir).write_text("a file where the manifest directory should be\n")
    ops = FakeOps({"alice"})
    with pytest.raises(ToolError, match="nothing was deleted"):
        retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO())
    assert (Path(config.home_root) / "alice" / "data" / "model.pt").exists()
    assert ops.deleted() == set() and ops.calls == []


def test_a_failed_manifest_write_deletes_nothing(tmp_path, monkeypatch):
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice", "bob"])
    notified(config, ["alice", "bob"])

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(deletion.Manifest, "commit", full_disk)
    ops = FakeOps({"alice", "bob"})
    with pytest.raises(ToolError, match=r"No space left on device.*nothing was deleted"):
        retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO())
    assert sorted(p.name for p in Path(config.home_root).iterdir()) == ["alice", "bob"]
    assert ops.deleted() == set()
    assert list(Path(config.manifest_dir).iterdir()) == []  # the partial manifest is removed


def test_links_are_never_followed_out_of_the_home_root(tmp_path):
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice"])
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me\n")
    home_root = Path(config.home_root)
    (home_root / "alice" / "escape").symlink_to(outside)  # a link inside a home
    (home_root / "bob").symlink_to(outside)  # a home that is a link
    notified(config, ["alice", "bob"])
    ops = FakeOps({"alice", "bob"})
    assert retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO()) == 1
    assert (outside / "keep.txt").read_text() == "keep me\n"
    assert not (home_root / "alice").exists()
    assert (home_root / "bob").is_symlink()
    assert ops.deleted() == {"alice"}
    state = json.loads(Path(config.retention_state).read_text())
    assert "symbolic link" in state["cycles"]["2026"]["failed"]["bob"]["error"]
    records = read_manifest(next(Path(config.manifest_dir).iterdir()))
    link = next(r for r in records if r.get("path", "").endswith("/escape"))
    assert link["type"] == "link" and not any("keep.txt" in r.get("path", "") for r in records)


def test_a_home_root_that_is_not_mounted_stops_everything(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    notified(config, ["alice"])
    ops = FakeOps({"alice"})
    with pytest.raises(ToolError, match=r"home_root .* is not a mounted directory"):
        retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO())
    assert ops.calls == []


# The home file system must be CephFS and answer -----------------------------------------------------

MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l
25 22 0:23 / /proc rw,nosuid shared:12 - proc proc rw
61 22 0:52 / /ceph/home rw,nosuid,nodev,relatime shared:30 - fuse.ceph-fuse ceph-fuse rw,user_id=0
62 22 0:53 / /ceph/datasets ro,relatime shared:31 - ceph 10.213.0.12:6789:/datasets ro,name=fe01
63 22 0:54 / /srv/with\\040space rw - ceph 10.0.0.1:/x rw
"""
PROC_MOUNTS = """\
overlay / overlay rw,relatime 0 0
ceph-fuse /ceph/home fuse.ceph-fuse rw,nosuid,nodev,relatime,user_id=0 0 0
"""


@pytest.mark.parametrize(
    ("table", "path", "fstype"),
    [
        (MOUNTINFO, "/ceph/home", "fuse.ceph-fuse"),
        (MOUNTINFO, "/ceph/datasets", "ceph"),
        (MOUNTINFO, "/srv/with space", "ceph"),  # octal escapes in mount points
        (MOUNTINFO, "/ceph", None),  # not a mount point: nothing is mounted exactly there
        (MOUNTINFO, "/ceph/home/alice", None),  # below a mount is not a mount point
        (MOUNTINFO, "/", "overlay"),
        (PROC_MOUNTS, "/ceph/home", "fuse.ceph-fuse"),
        (PROC_MOUNTS, "/ceph/datasets", None),
        ("", "/ceph/home", None),
        # An empty directory bind-mounted over the CephFS home root: the mount on top wins.
        (MOUNTINFO + "70 61 0:21 /empty /ceph/home rw - overlay overlay rw\n", "/ceph/home", "overlay"),
        (PROC_MOUNTS + "/dev/sda1 /ceph/home ext4 rw 0 0\n", "/ceph/home", "ext4"),
    ],
)
def test_mount_type_reads_the_mount_on_top_exactly_at_the_path(table, path, fstype):
    assert deletion.mount_type(table, path) == fstype


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (MOUNTINFO, None),
        (PROC_MOUNTS, None),
        ("22 1 0:21 / / rw - overlay overlay rw\n", "nothing is mounted there"),
        (
            MOUNTINFO + "70 61 8:1 /srv/empty /ceph/home rw - ext4 /dev/sda1 rw\n",
            "the file system mounted there is ext4, not CephFS (ceph or fuse.ceph-fuse)",
        ),
    ],
)
def test_home_root_problem(table, problem):
    assert deletion.home_root_problem(table, "/ceph/home") == problem


@pytest.mark.parametrize(
    ("path", "unit"),
    [("/ceph/home", "ceph-home.mount"), ("/home/", "home.mount"), ("/srv/a b", "srv-a\\x20b.mount")],
)
def test_the_refusal_names_the_mount_unit_of_the_home_root(path, unit):
    assert mount_unit_name(path) == unit
    assert f"systemctl start {unit};" in str(deletion.refuse_home_root(path, "nothing is mounted there"))


def test_the_probe_answers_for_a_directory_and_refuses_when_it_is_slow_or_fails(tmp_path):
    assert deletion.probe_directory(str(tmp_path)) is None
    gone = deletion.probe_directory(str(tmp_path / "missing"))
    assert gone is not None and "failed" in gone and "FileNotFoundError" in gone
    # A child that cannot answer in time (here: it cannot even start in 1 ms) is a hung mount.
    slow = deletion.probe_directory(str(tmp_path), timeout=0.001)
    assert slow == "a stat and listing of it did not answer within 0s (hung mount?)"


def test_without_the_cephfs_mount_a_run_changes_nothing(tmp_path):
    """CephFS not mounted: every home looks absent.  The run refuses before it sends, locks or records
    anything (the hole: it deleted accounts, associations and mail and recorded the users as deleted)."""
    config = make_config(tmp_path, USERS[:2])
    notified(config, ["alice", "bob"])
    before = Path(config.retention_state).read_text()
    commands: list[list[str]] = []

    def no_command(argv, **kwargs):
        commands.append(argv)
        raise AssertionError(f"ran {argv}")

    ops = deletion.SystemOps(run=no_command, mount_table=lambda: "22 1 0:21 / / rw - overlay o rw\n")
    mailer = FakeMailer()
    for dry_run in (True, False):
        with pytest.raises(ToolError) as info:
            retention.run(config, at("2026-08-01"), mailer, ops, dry_run=dry_run, out=io.StringIO())
        message = str(info.value)
        assert f"home_root {config.home_root} is not a mounted CephFS file system" in message
        assert "nothing is mounted there; nothing was done" in message
        assert "systemctl start" in message and info.value.exit_code == 2
    assert commands == [] and mailer.sent == []
    assert Path(config.retention_state).read_text() == before
    assert not Path(config.manifest_dir).exists()


def test_a_hung_home_mount_refuses_the_run(tmp_path):
    config = make_config(tmp_path, USERS[:1])
    make_homes(config, ["alice"])
    notified(config, ["alice"])
    table = f"61 22 0:52 / {config.home_root} rw - fuse.ceph-fuse ceph-fuse rw\n"
    ops = deletion.SystemOps(mount_table=lambda: table, probe=lambda path: "did not answer within 20s")
    with pytest.raises(ToolError, match="that answers: did not answer within 20s; nothing was done"):
        retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO())
    assert (Path(config.home_root) / "alice" / "notes.txt").exists()


def test_a_cephfs_home_root_that_answers_passes_the_check(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    table = f"61 22 0:52 / {home} rw - ceph 10.0.0.1:6789:/home rw\n"
    deletion.check_home_root(str(home), lambda: table)  # the real probe: a stat and listing of it
    with pytest.raises(ToolError, match="not CephFS"):
        deletion.check_home_root(str(home), lambda: f"61 22 0:52 / {home} rw - tmpfs tmpfs rw\n")


def test_a_failed_step_is_retried_on_the_next_run(tmp_path):
    config = make_config(tmp_path, USERS[:2])
    make_homes(config, ["alice", "bob"])
    notified(config, ["alice", "bob"])
    ops = FakeOps({"alice", "bob"})
    ops.fail_associations.add("alice")
    assert retention.run(config, at("2026-08-01"), FakeMailer(), ops, out=io.StringIO()) == 1
    assert ops.deleted() == {"bob"}
    ops.fail_associations.clear()
    assert retention.run(config, at("2026-08-02"), FakeMailer(), ops, out=io.StringIO()) == 0
    assert ops.deleted() == {"alice", "bob"}
    state = json.loads(Path(config.retention_state).read_text())
    assert state["cycles"]["2026"]["failed"] == {}


def test_system_ops_commands(monkeypatch):
    calls: list[list[str]] = []
    squeue_answers = ["123 20001\n", "123 20001\n", ""]

    def fake_run(argv, **kwargs):
        calls.append(argv)
        out, rc = "", 0
        if argv[:2] == ["getent", "passwd"]:
            out = "alice:x:20001:20001::/ceph/home/alice:/bin/bash\n"
        elif argv[:2] == ["getent", "group"]:
            out = "" if ["userdel", "alice"] in calls else "alice:x:20001:\n"
            rc = 2 if not out else 0
        elif argv[0] == "squeue":
            out = squeue_answers.pop(0)
        elif argv[0] == "sacctmgr" and "show" in argv:
            out = "ailabsim|course-ml|alice||normal\n"
        elif argv[0] == "pkill":
            rc = 1  # no processes
        return subprocess.CompletedProcess(argv, rc, out, "")

    monkeypatch.setattr(deletion.time, "sleep", lambda s: None)
    ops = deletion.SystemOps(slurm=True, run=fake_run)
    alice = Person("alice", 20001, "alice@example.org")
    assert ops.stop([alice]) == {}
    assert ops.delete_associations([alice]) == {}
    ops.delete_account(alice)
    commands = [c for c in calls if c[0] != "getent"]
    squeue = ["squeue", "--noheader", "--all", "--user=20001", "--format=%i %U"]
    show = ["sacctmgr", "--noheader", "--parsable2", "show", "associations", "users=alice"]
    assert commands == [
        ["usermod", "--lock", "--expiredate", "1", "alice"],
        squeue,
        ["scancel", "123"],
        squeue,
        squeue,
        ["pkill", "--signal", "KILL", "--uid", "20001"],
        [*show, "format=cluster,account,user,partition,qos"],
        ["sacctmgr", "--immediate", "delete", "user", "name=alice"],
        ["userdel", "alice"],
    ]


def people(n: int) -> list[Person]:
    return [Person(f"u{i:04d}", 30000 + i, f"u{i:04d}@example.org") for i in range(n)]


def test_system_ops_stop_thousands_with_a_few_commands(monkeypatch):
    """The yearly deletion stops 2,000 students: one getent per database, squeue, scancel and pkill per
    500 users (an argument may not exceed 128 KiB), not five commands per user."""
    users = people(1200)
    calls: list[list[str]] = []
    running = {"7": 30003, "8": 30999}

    def fake_run(argv, **kwargs):
        calls.append(argv)
        out = ""
        if argv[:2] == ["getent", "passwd"]:
            out = "".join(f"{n}:x:1:1::/h:/bin/bash\n" for n in argv[2:])
        elif argv[0] == "squeue":
            uids = {int(u) for u in argv[3].removeprefix("--user=").split(",")}
            out = "".join(f"{job} {uid}\n" for job, uid in running.items() if uid in uids)
        elif argv[0] == "scancel":
            for job in argv[1:]:
                running.pop(job)
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(deletion.time, "sleep", lambda s: None)
    passwd = {u.name for u in users}
    ops = deletion.SystemOps(slurm=True, run=fake_run, local_passwd="/nonexistent")
    ops._local_names = lambda: passwd  # every account local: one usermod each (admins, non-directory)
    assert ops.stop(users) == {}
    kinds = [c[0] if c[0] != "getent" else f"getent {c[1]}" for c in calls if c[0] != "usermod"]
    assert kinds == [
        *["getent passwd"] * 3,  # who has an account; stop needs no group line
        *["squeue"] * 3,
        "scancel",
        "squeue",  # the wait: one call for the two uids that still had jobs
        *["pkill"] * 3,
    ]
    assert [c for c in calls if c[0] == "scancel"] == [["scancel", "7", "8"]]
    assert max(len(c) for c in calls) <= deletion.ARGS_PER_CALL + 5


def test_system_ops_names_users_whose_jobs_do_not_end(monkeypatch):
    users = people(3)
    clock = iter(range(0, 1000, 50))
    monkeypatch.setattr(deletion.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(deletion.time, "sleep", lambda s: None)

    def fake_run(argv, **kwargs):
        out, err, rc = "", "", 0
        if argv[0] == "squeue":
            out = "41 30001\n42 30001\n"
        elif argv[0] == "scancel":
            err, rc = "scancel: error: Kill job error on job id 41: Access/permission denied", 1
        return subprocess.CompletedProcess(argv, rc, out, err)

    ops = deletion.SystemOps(slurm=True, run=fake_run, job_wait=120)
    errors = ops.stop(users)
    assert list(errors) == ["u0001"]
    assert errors["u0001"].startswith(
        "jobs 41, 42 still run 120s after scancel; scancel said: scancel: error"
    )


def test_system_ops_deletes_associations_one_by_one_when_the_bulk_delete_fails():
    users = people(3)

    def fake_run(argv, **kwargs):
        if "show" in argv:
            return subprocess.CompletedProcess(argv, 0, "".join(f"c|a|{u.name}||normal\n" for u in users), "")
        if "delete" in argv and "u0001" in argv[-1]:
            return subprocess.CompletedProcess(argv, 1, "", "sacctmgr: error: u0001 has running jobs")
        return subprocess.CompletedProcess(argv, 0, "", "")

    errors = deletion.SystemOps(slurm=True, run=fake_run).delete_associations(users)
    command = "sacctmgr --immediate delete user name=u0001"
    assert errors == {"u0001": f"{command} exited 1: sacctmgr: error: u0001 has running jobs"}


def test_a_bulk_command_in_an_error_message_is_shortened():
    from ailab.runtime import shown

    argv = ["pkill", "--signal", "KILL", "--uid", *[str(i) for i in range(600)]]
    assert shown(argv) == "pkill --signal KILL --uid 0 1 ... (598 more arguments)"
    assert shown(["getent", "passwd", "alice"]) == "getent passwd alice"


@pytest.mark.parametrize(
    ("outcome", "ok", "message"),
    [
        (subprocess.CompletedProcess([], 0, "out", ""), (0,), None),
        (subprocess.CompletedProcess([], 2, "", ""), (0, 2), None),
        (
            subprocess.CompletedProcess([], 1, "", "no such job\n"),
            (0,),
            "scancel 7 exited 1: no such job -- fix: F",
        ),
        (
            subprocess.CompletedProcess([], 1, "said on stdout", ""),
            (0,),
            "scancel 7 exited 1: said on stdout",
        ),
        (FileNotFoundError(2, "No such file or directory"), (0,), "scancel 7: [Errno 2] No such file"),
        (subprocess.TimeoutExpired(["scancel"], 5), (0,), "scancel 7: Command '['scancel']' timed out"),
    ],
)
def test_run_command_names_the_command_what_it_said_and_the_fix(outcome, ok, message):
    from ailab.runtime import run_command

    def run(argv, **kwargs):
        assert kwargs == {"capture_output": True, "text": True, "timeout": 5, "check": False}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    if message is None:
        assert run_command(run, ["scancel", "7"], ok=ok, timeout=5) is outcome
    else:
        with pytest.raises(ToolError) as err:
            run_command(run, ["scancel", "7"], ok=ok, timeout=5, fix="F")
        assert str(err.value).startswith(message) and str(err.value).endswith(" -- fix: F")


def test_tool_main_prints_a_tool_error_as_one_line_and_returns_its_code(capsys):
    from ailab.runtime import tool_main

    def fails() -> int:
        raise ToolError(said)

    said = "ops.json: users[0].email: 'x' has no domain -- fix: write the whole address"
    assert tool_main(lambda: 0) == 0
    assert tool_main(fails) == 2
    assert (
        capsys.readouterr().err
        == "error: ops.json: users[0].email: 'x' has no domain -- fix: write the whole address\n"
    )


# Configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"home_root": "ceph/home"},
            "home_root: 'ceph/home' is not an absolute path -- fix: write the full path from /",
        ),
        ({"home_root": "/"}, "home_root: is / -- fix"),
        ({"timezone": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not a time zone"),
        (
            {"users": [{"name": "../etc", "uid": 20001, "email": "x@y.z"}]},
            "users[0].name: '../etc' is not a valid",
        ),
        (
            {"users": [{"name": "a", "uid": 20001, "email": "nope"}]},
            "users[0].email: 'nope' is not an e-mail",
        ),
        (
            {"users": [{"name": "a", "uid": 20001, "email": "a@b.c", "extension_until": "soon"}]},
            "users[0].extension_until: 'soon' is not a date -- fix: write it as YYYY-MM-DD",
        ),
        ({"users": [{"name": "a", "uid": 0, "email": "a@b.c"}]}, "users[0].uid: is 0, below 1000"),
        ({"deletion": {"month": 2, "day": 29, "notices": [{"days": 2}]}}, "deletion.day: month 2 day 29"),
        (
            {"deletion": {"month": 8, "day": 1, "notices": [{"days": 0}]}},
            "deletion.notices[0].days: the notice has",
        ),
        (
            {"retention_state": None},
            "retention_state: is missing -- fix: re-render the file from the inventory",
        ),
        ({"version": 7}, "version: is 7, expected 1"),
    ],
)
def test_bad_configuration_names_the_field_and_the_fix(tmp_path, change, message):
    with pytest.raises(ToolError) as info:
        parse_ops_config(config_data(tmp_path, **change), "/etc/ailab/ops.json")
    assert "/etc/ailab/ops.json has problems; nothing was done" in str(info.value)
    assert message in str(info.value)


def test_config_rendered_from_the_sim_inventory_round_trips():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    data = json.loads(json.dumps(ops_config_data(cluster)))
    config = parse_ops_config(data)
    assert {u.name for u in config.users} == set(cluster.users)
    student3 = config.user("student3")
    assert student3 is not None and student3.extension_until == D("2027-08-01")
    assert config.deletion == cluster.policy.deletion
    assert config.home_root == cluster.ceph.home_root
    assert config.mail_from == f"{cluster.name} <noreply@{cluster.domain}>"


def test_deployed_tool_cli_schedule_and_status(tmp_path):
    config_file = tmp_path / "ops.json"
    config_file.write_text(json.dumps(config_data(tmp_path)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ailab.retention", "--config", str(config_file)]
    out = subprocess.run([*cmd, "--now", "2026-08-02", "schedule"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Yearly deletion 2027 on testlab: Sunday 2027-08-01")
    # The real command checks the home mount: a temp dir is no CephFS, so status refuses.
    out = subprocess.run([*cmd, "--now", "2026-07-19", "status"], capture_output=True, text=True, env=env)
    home = tmp_path / "home"
    assert out.returncode == 2 and out.stdout == ""
    assert f"error: home_root {home} is not a mounted CephFS file system that answers" in out.stderr
    assert "nothing is mounted there; nothing was done" in out.stderr
    assert "fix: mount CephFS there (role cephfs_client: systemctl start " in out.stderr
    out = subprocess.run([*cmd, "--now", "19 July", "status"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "'19 July' is not a date -- fix: write YYYY-MM-DD" in out.stderr


def test_status_lists_what_each_user_is_due(tmp_path, capsys):
    config_file = tmp_path / "ops.json"
    config_file.write_text(json.dumps(config_data(tmp_path)))
    ops = FakeOps(set())
    assert retention.main(["--config", str(config_file), "--now", "2026-07-19", "status"], ops=ops) == 0
    out = capsys.readouterr().out
    assert "alice            notice due: '14 days' (deletion on 2026-08-01)" in out
    assert "carol            kept: extension until 2027-08-01" in out
    assert "root2            kept: admin (staff) account" in out
    assert ops.home_checks == [str(tmp_path / "home")]


def test_ailab_retention_schedule_from_the_inventory():
    out = subprocess.run(
        [sys.executable, "-m", "ailab.cli", "retention", "schedule", "--year", "2028", "-i", "inventory/sim"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "Yearly deletion 2028 on ailab-sim: Tuesday 2028-08-01"
    assert "notice 2 days before        Sunday 2028-07-30" in out.stdout


def test_the_modules_role_operations_deploys_need_only_the_standard_library(tmp_path):
    release = node_package.install(tmp_path)  # as role common installs it
    assert node_package.imported_modules(release, "ailab.retention", "ailab.maintenance") == [
        "ailab",
        "ailab.ceph",
        "ailab.deletion",
        "ailab.mail",
        "ailab.maintenance",
        "ailab.model",
        "ailab.mounts",
        "ailab.notices",
        "ailab.opsconfig",
        "ailab.reservations",
        "ailab.retention",
        "ailab.runtime",
    ]


@pytest.mark.parametrize(
    ("today", "reported"), [("2026-08-01", True), ("2027-07-31", True), ("2027-08-02", False)]
)
def test_leftovers_of_a_cycle_are_reported_for_a_year(tmp_path, today, reported):
    config = make_config(tmp_path, USERS[1:2])  # alice was notified, then left the inventory
    notified(config, ["alice"])
    state = StateFile(config.retention_state, retention.EMPTY_STATE).load()
    plan = retention.make_plan(config, state, D(today))
    leftovers = [(s.user, s.state) for s in plan.statuses if s.user == "alice"]
    assert leftovers == ([("alice", "not-in-config")] if reported else [])
    assert plan.deletions == []


def test_a_long_subject_stays_on_the_subject_line():
    """A "[cluster] ..." subject of 77 characters (a long weekday and month name) is not folded away from
    "Subject:" (Python's default 78-character fold did that; some mail readers then show no subject)."""
    subject = "[test-cb2968aa] Scheduled maintenance on Wednesday 15 September 2027, 00:01-23:59"
    mail = Mail(to="a@sim.test", subject=subject, body="text\n", sender="ailab <noreply@sim.test>")
    raw = mail.message(dt.datetime(2026, 12, 2, 7, 14, tzinfo=dt.UTC)).as_bytes().decode()
    assert f"\nSubject: {subject}\n" in raw
    parsed = email.message_from_string(raw)  # compat32, as a simple filter would read it
    assert parsed["Subject"] == subject
