import datetime as dt
import json
from pathlib import Path

import pytest

from ailab.frontend import policy_config, render_banner, render_user_slice
from ailab.inventory import load_cluster
from ailab.nodetools import motd

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(ROOT / "inventory" / "sim")[0]


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        ("2026-11-23", "2027-08-01"),
        ("2027-08-01", "2027-08-01"),  # the day itself: still today
        ("2027-08-02", "2028-08-01"),
        ("2027-07-31", "2027-08-01"),
    ],
)
def test_next_deletion(today, expected):
    assert motd.next_deletion(dt.date.fromisoformat(today), 8, 1).isoformat() == expected


RESERVATIONS = (
    "ReservationName=maint_dec StartTime=2026-12-03T00:01:00 EndTime=2026-12-03T23:59:00 Duration=23:58:00 "
    "Nodes=a40-01,t4-[01-02] NodeCnt=3 CoreCnt=6 Features=(null) PartitionName=(null) "
    "Flags=MAINT,IGNORE_JOBS,"
    "SPEC_NODES,ALL_NODES TRES=cpu=6 Users=root Groups=(null) Accounts=(null) Licenses=(null) State=INACTIVE "
    "BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n"
    "ReservationName=course StartTime=2026-11-30T08:00:00 EndTime=2026-11-30T16:00:00 Flags=SPEC_NODES "
    "Users=student1\n"
)


def test_parse_reservations_keeps_only_maintenance():
    windows = motd.parse_reservations(RESERVATIONS)
    assert [w.name for w in windows] == ["maint_dec"]
    assert windows[0].start == dt.datetime(2026, 12, 3, 0, 1)


def test_motd_states_the_rules(cluster):
    config = json.loads(json.dumps(policy_config(cluster)))
    text = motd.render(config, dt.datetime(2026, 11, 23, 9, 0), motd.parse_reservations(RESERVATIONS))
    assert "only classification levels 0 (public) and 1 (internal)" in text
    assert "Jobs run at most 12:00:00" in text
    assert "--gres=gpu:1" in text
    assert "deleted on 01 August 2027 (in 251 days)" in text
    assert "Request an extension: https://forms.office.com/e/caEhCRmqVN" in text
    assert "Scheduled maintenance: 2026-12-03 00:01 - 2026-12-03 23:59." in text


def test_motd_without_maintenance_and_after_window(cluster):
    config = policy_config(cluster)
    text = motd.render(config, dt.datetime(2026, 12, 4), motd.parse_reservations(RESERVATIONS))
    assert "No maintenance window is scheduled." in text


def test_user_slice_from_policy(cluster):
    text = render_user_slice(cluster)
    assert "CPUQuota=50%\n" in text and "MemoryMax=1024M\n" in text and "TasksMax=512\n" in text


def test_banner_quotes_the_rules(cluster):
    assert "data of classification levels 0 and 1 only" in render_banner(cluster)


def test_motd_script_runs_standalone(tmp_path, cluster, capsys):
    config = tmp_path / "policy.json"
    config.write_text(json.dumps(policy_config(cluster)))
    reservations = tmp_path / "res.txt"
    reservations.write_text(RESERVATIONS)
    assert (
        motd.main(["--config", str(config), "--now", "2026-11-23T10:00", "--reservations", str(reservations)])
        == 0
    )
    assert "Scheduled maintenance" in capsys.readouterr().out
