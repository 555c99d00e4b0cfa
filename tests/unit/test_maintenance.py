"""Rule 8: maintenance windows as Slurm MAINT reservations, and their notices, with fixed clocks."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import zoneinfo
from pathlib import Path

import pytest

from ailab import maintenance as m
from ailab import operations, reservations
from ailab.mail import Mail
from ailab.opsconfig import parse_ops_config
from ailab.runtime import ToolError
from tests.unit.test_retention import config_data

TZ = zoneinfo.ZoneInfo("Europe/Copenhagen")
T = dt.datetime.fromisoformat

SCONTROL = (
    "ReservationName=maint-20261215-0001 StartTime=2026-12-15T00:01:00 EndTime=2026-12-15T23:59:00 "
    "Duration=23:58:00 Nodes=a40-01,t4-[01-02] NodeCnt=3 CoreCnt=6 Features=(null) PartitionName=(null) "
    "Flags=MAINT,IGNORE_JOBS,SPEC_NODES,ALL_NODES TRES=cpu=6 Users=root Groups=(null) Accounts=(null) "
    "Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n"
    "ReservationName=course-demo StartTime=2026-12-01T08:00:00 EndTime=2026-12-01T12:00:00 Duration=04:00:00 "
    "Nodes=t4-01 NodeCnt=1 CoreCnt=2 Flags=SPEC_NODES Users=student1 State=INACTIVE\n"
)


def at(text: str) -> dt.datetime:
    return T(text).replace(tzinfo=TZ)


def test_rule_8_window_is_0001_to_2359():
    assert m.window_for_day(dt.date(2027, 3, 2)) == (T("2027-03-02T00:01"), T("2027-03-02T23:59"))
    assert m.reservation_name(T("2027-03-02T00:01")) == "maint-20270302-0001"


def test_parse_reservations_keeps_only_maint_ones():
    (w,) = m.parse_reservations(SCONTROL)
    assert (w.name, w.start, w.end, w.nodes) == (
        "maint-20261215-0001",
        T("2026-12-15T00:01"),
        T("2026-12-15T23:59"),
        "a40-01,t4-[01-02]",
    )
    assert "IGNORE_JOBS" in w.flags
    assert m.parse_reservations("No reservations in the system\n") == []


def test_upcoming_windows_drops_ended_ones_and_sorts():
    a = m.Window("a", T("2026-12-15T00:01"), T("2026-12-15T23:59"))
    b = m.Window("b", T("2026-12-01T00:01"), T("2026-12-01T23:59"))
    c = m.Window("c", T("2026-11-01T00:01"), T("2026-11-01T23:59"))
    assert [w.name for w in reservations.upcoming_windows([a, b, c], T("2026-12-01T12:00"))] == ["b", "a"]


def test_create_command():
    assert m.create_command("maint-x", T("2026-12-15T00:01"), T("2026-12-15T23:59")) == [
        "scontrol",
        "create",
        "reservation",
        "ReservationName=maint-x",
        "StartTime=2026-12-15T00:01:00",
        "EndTime=2026-12-15T23:59:00",
        "Nodes=ALL",
        "Users=root",
        "Flags=MAINT,IGNORE_JOBS",
    ]


EXISTING = [m.Window("maint-20261215-0001", T("2026-12-15T00:01"), T("2026-12-15T23:59"))]


@pytest.mark.parametrize(
    ("name", "start", "end", "message"),
    [
        ("w", "2026-12-20T10:00", "2026-12-20T09:00", "--end 2026-12-20T09:00 is not after --start"),
        ("w", "2026-11-01T00:01", "2026-11-01T23:59", "is not in the future (now 2026-11-23T12:00)"),
        ("w", "2026-12-15T12:00", "2026-12-16T12:00", "overlaps maintenance window maint-20261215-0001"),
        ("maint-20261215-0001", "2027-01-05T00:01", "2027-01-05T23:59", "exists already"),
        ("bad name!", "2027-01-05T00:01", "2027-01-05T23:59", "is not a reservation name"),
    ],
)
def test_check_new_window(name, start, end, message):
    problems = m.check_new_window(name, T(start), T(end), T("2026-11-23T12:00"), EXISTING)
    assert len(problems) == 1 and message in problems[0] and "-- fix:" in problems[0]


def test_adjacent_windows_do_not_overlap():
    assert (
        m.check_new_window("next", T("2026-12-15T23:59"), T("2026-12-16T06:00"), T("2026-11-23"), EXISTING)
        == []
    )


class FakeSlurm(m.Slurm):
    def __init__(self, windows: list[m.Window] | None = None):
        self.reservations = {w.name: w for w in windows or []}
        self.created: list[str] = []
        self.down = False
        self.running: list[str] = []

    def windows(self) -> list[m.Window]:
        if self.down:
            raise ToolError("scontrol -o show reservation exited 1: Unable to contact slurm controller")
        return sorted(self.reservations.values(), key=lambda w: w.start)

    def create(self, name, start, end):
        self.created.append(name)
        self.reservations[name] = m.Window(name, start, end)

    def delete(self, name):
        del self.reservations[name]

    def jobs_ending_after(self, when):
        return self.running


class FakeMailer:
    def __init__(self):
        self.sent: list[tuple[str, Mail]] = []
        self.day = ""

    def send(self, mail: Mail) -> None:
        self.sent.append((self.day, mail))


def keys(mailer: FakeMailer) -> list[tuple[str, str, str]]:
    """(day, user, notice key) of every message; the key is the tag's part after the window."""
    out = []
    for day, mail in mailer.sent:
        _, _window, key = mail.tag.split(" ", 2)
        out.append((day, mail.to.split("@")[0], key))
    return out


@pytest.fixture
def config(tmp_path):
    users = [
        {"name": "alice", "uid": 20001, "email": "alice@example.org"},
        {"name": "bob", "uid": 20002, "email": "bob@example.org", "extension_until": "2027-08-01"},
        {"name": "root2", "uid": 20005, "email": "admin@example.org", "admin": True},
    ]
    return parse_ops_config(config_data(tmp_path, users))


def notify_days(config, slurm, mailer, first: str, last: str) -> None:
    day = dt.date.fromisoformat(first)
    while day <= dt.date.fromisoformat(last):
        mailer.day = day.isoformat()
        assert m.notify(config, slurm, mailer, at(f"{day}T00:20"), out=io.StringIO()) == 0
        day += dt.timedelta(days=1)


def test_every_user_gets_each_notice_on_its_day_once(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    notify_days(config, slurm, mailer, "2026-11-01", "2026-12-20")
    expected = []
    for day, key in (("2026-11-15", "30 days"), ("2026-12-01", "14 days"), ("2026-12-14", "1 day")):
        expected += [(day, "alice", key), (day, "bob", key), (day, "admin", key)]
    assert keys(mailer) == expected
    _, first = mailer.sent[0]
    assert "Tuesday 15 December 2026, 00:01-23:59" in first.subject
    assert "(in 30 days; usage guideline 8)" in first.body
    assert "ends before 2026-12-15 00:01" in " ".join(first.body.split())


def test_a_window_scheduled_at_short_notice_gets_the_latest_due_notice_at_once(config):
    slurm, mailer = FakeSlurm(), FakeMailer()
    mailer.day = "2026-12-05"
    start, end = m.window_for_day(dt.date(2026, 12, 15))
    out = io.StringIO()
    assert m.schedule(config, slurm, mailer, at("2026-12-05T10:00"), start, end, out=out) == 0
    assert slurm.created == ["maint-20261215-0001"]
    assert "scheduled maint-20261215-0001: Tuesday 15 December 2026, 00:01-23:59" in out.getvalue()
    notify_days(config, slurm, mailer, "2026-12-05", "2026-12-16")
    assert [k for _, user, k in keys(mailer) if user == "alice"] == ["14 days", "1 day"]
    state = json.loads(Path(config.maintenance_state).read_text())
    notices = state["windows"]["maint-20261215-0001@2026-12-15T00:01"]["notices"]["alice"]
    assert notices["30 days"]["status"] == "superseded"


def test_schedule_refuses_a_bad_window_and_changes_nothing(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    with pytest.raises(ToolError, match="nothing was changed") as info:
        m.schedule(
            config, slurm, mailer, at("2026-11-23T10:00"), T("2026-12-15T20:00"), T("2026-12-16T04:00")
        )
    assert "overlaps maintenance window maint-20261215-0001" in str(info.value)
    assert slurm.created == [] and mailer.sent == []


def test_schedule_reports_running_jobs_that_reach_into_the_window(config):
    slurm, mailer = FakeSlurm(), FakeMailer()
    slurm.running = ["job 17 of alice ends 2026-12-15T06:00:00"]
    out = io.StringIO()
    m.schedule(
        config, slurm, mailer, at("2026-12-14T20:00"), *m.window_for_day(dt.date(2026, 12, 15)), out=out
    )
    assert "note: job 17 of alice ends 2026-12-15T06:00:00: already running" in out.getvalue()


def test_cancel_tells_the_notified_users_once(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    notify_days(config, slurm, mailer, "2026-11-15", "2026-11-16")
    mailer.day = "2026-11-20"
    assert (
        m.cancel(config, slurm, mailer, at("2026-11-20T09:00"), "maint-20261215-0001", out=io.StringIO()) == 0
    )
    notify_days(config, slurm, mailer, "2026-11-21", "2026-12-20")
    assert [k for _, user, k in keys(mailer) if user == "alice"] == ["30 days", "cancelled"]
    cancelled = [mail for _, mail in mailer.sent if mail.tag.endswith("cancelled")]
    assert len(cancelled) == 3 and cancelled[0].subject.endswith("Cancelled: maintenance on 15 December 2026")


def test_a_window_deleted_by_hand_before_any_notice_sends_nothing(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    notify_days(config, slurm, mailer, "2026-11-01", "2026-11-02")
    slurm.reservations.clear()
    notify_days(config, slurm, mailer, "2026-11-03", "2026-12-20")
    assert mailer.sent == []


def test_a_window_that_happened_is_not_cancelled(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    notify_days(config, slurm, mailer, "2026-12-14", "2026-12-14")
    slurm.reservations.clear()  # Slurm forgets a reservation once it has ended
    notify_days(config, slurm, mailer, "2026-12-16", "2026-12-17")
    assert [k for _, _, k in keys(mailer)] == ["1 day"] * 3


def test_without_slurm_nothing_is_sent_or_recorded(config):
    slurm, mailer = FakeSlurm(EXISTING), FakeMailer()
    notify_days(config, slurm, mailer, "2026-11-15", "2026-11-15")
    before = Path(config.maintenance_state).read_text()
    slurm.down = True
    with pytest.raises(ToolError, match="Unable to contact slurm controller"):
        m.notify(config, slurm, mailer, at("2026-12-01T00:20"))
    assert Path(config.maintenance_state).read_text() == before and len(mailer.sent) == 3


def test_cancel_of_an_unknown_window_names_the_known_ones(config):
    with pytest.raises(ToolError, match="use one of: maint-20261215-0001"):
        m.cancel(config, FakeSlurm(EXISTING), FakeMailer(), at("2026-11-20T09:00"), "maint-2027")


def test_main_list_and_schedule(config, tmp_path, capsys):
    path = tmp_path / "ops.json"
    path.write_text(
        json.dumps(config_data(tmp_path, [{"name": "alice", "uid": 20001, "email": "a@example.org"}]))
    )
    slurm, mailer = FakeSlurm(), FakeMailer()
    argv = ["--config", str(path), "--now", "2026-11-23T10:00"]
    assert m.main([*argv, "list"], slurm=slurm, mailer=mailer) == 0
    assert capsys.readouterr().out == "no maintenance window is scheduled\n"
    assert m.main([*argv, "schedule", "--date", "2026-12-15"], slurm=slurm, mailer=mailer) == 0
    assert m.main([*argv, "list", "--json"], slurm=slurm, mailer=mailer) == 0
    out = capsys.readouterr().out
    assert out.startswith("scheduled maint-20261215-0001")
    assert "sent '30 days' for maint-20261215-0001" in out  # 22 days ahead: the 30-day notice at once
    rows = json.loads(out[out.index("[") :])
    assert rows == [
        {
            "name": "maint-20261215-0001",
            "start": "2026-12-15T00:01:00",
            "end": "2026-12-15T23:59:00",
            "nodes": "ALL",
            "flags": ["MAINT", "IGNORE_JOBS"],
            "state": "upcoming",
            "notices_sent": 1,
        }
    ]
    assert m.main([*argv, "schedule", "--start", "2026-12-20T08:00"], slurm=slurm, mailer=mailer) == 2
    assert "give --date DAY (00:01-23:59, rule 8) or both --start and --end" in capsys.readouterr().err


def test_slurm_wrapper_runs_scontrol_and_reports_failures():
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        if argv[:2] == ["scontrol", "create"]:
            return subprocess.CompletedProcess(argv, 1, "", "Error creating the reservation: Invalid user id")
        return subprocess.CompletedProcess(argv, 0, SCONTROL, "")

    slurm = m.Slurm(run=fake_run)
    assert [w.name for w in slurm.windows()] == ["maint-20261215-0001"]
    with pytest.raises(ToolError, match="exited 1: Error creating the reservation: Invalid user id"):
        slurm.create("x", T("2026-12-20T00:01"), T("2026-12-20T23:59"))
    assert calls[0] == ["scontrol", "-o", "show", "reservation"]


def test_remote_command_and_its_result_from_the_events():
    cmd = operations.remote_command(
        "/inv", "fe01", ["schedule", "--start", "2026-12-20T08:00", "--name", "a b"]
    )
    assert cmd[1:] == [
        "-i",
        "/inv",
        "fe01",
        "-m",
        "ansible.builtin.command",
        "-a",
        "/usr/local/sbin/ailab-maintenance schedule --start 2026-12-20T08:00 --name 'a b'",
    ]
    events = [
        {"event": "play", "name": "Ansible Ad-Hoc"},
        {"event": "result", "host": "fe02", "task": "ansible.builtin.command", "status": "ok", "rc": 0},
        {"event": "result", "host": "fe01", "task": "ansible.builtin.command", "status": "failed", "rc": 2,
         "stdout": "", "stderr": "error: x", "msg": "non-zero return code"},
    ]  # fmt: skip
    assert operations.remote_result(events, "fe01") == (2, "", "error: x")
    unreachable = [
        {"event": "result", "host": "fe01", "task": "command", "status": "unreachable", "msg": "gone"}
    ]
    with pytest.raises(ToolError, match="fe01 is unreachable: gone"):
        operations.remote_result(unreachable, "fe01")
    with pytest.raises(ToolError, match="ansible returned no result for fe01"):
        operations.remote_result(events[:2], "fe01")
