"""The CephFS mount watchdog's pure parts (ailab/nodetools/cephfscheck.py): what it does
about a mount from one probe and what earlier runs saw, the MDS map verdict, the FUSE connection id, and
its settings (ailab.ceph.mount_check_config)."""

from __future__ import annotations

import importlib

import pytest

from ailab.ceph import mount_check_config

watchdog = importlib.import_module("ailab.nodetools.cephfscheck")

Probe, Memory, decide = watchdog.Probe, watchdog.Memory, watchdog.decide
GRACE = 90.0


@pytest.mark.parametrize(
    ("probe", "action"),
    [
        (Probe(watchdog.NOT_MOUNTED), watchdog.MOUNT),
        (Probe(watchdog.OK), watchdog.NOTHING),
        (Probe(watchdog.ERROR, "Transport endpoint is not connected"), watchdog.REMOUNT),
        (Probe(watchdog.ERROR, "Cannot send after transport endpoint shutdown"), watchdog.REMOUNT),
    ],
)
def test_missing_healthy_and_broken_mounts(probe, action):
    decision = decide(
        probe, Memory(hung_since=5.0, active_since=6.0), now=100.0, mds_active=True, grace=GRACE
    )
    assert decision.action == action
    assert decision.memory == Memory(), "an answer (or no mount) forgets an earlier hang"


def test_an_error_names_what_the_mount_said():
    decision = decide(Probe(watchdog.ERROR, "No such file or directory"), Memory(), 0.0, None, GRACE)
    assert decision.reason == "No such file or directory"


@pytest.mark.parametrize("mds", [None, False])
def test_a_hang_while_the_cluster_is_down_or_recovering_only_waits(mds):
    """However long the storage stays down, the client is never aborted: it reconnects by itself."""
    memory = Memory()
    for now in (0.0, 15.0, 600.0, 7200.0):
        decision = decide(Probe(watchdog.HUNG), memory, now, mds, GRACE)
        assert decision.action == watchdog.WAIT
        memory = decision.memory
    assert memory.hung_since == 0.0 and memory.active_since is None


def test_grace_counts_from_the_first_look_at_an_active_mds_not_from_the_start_of_the_hang():
    """Storage down for 10 minutes, then back: the client gets the whole grace to reconnect."""
    memory = decide(Probe(watchdog.HUNG), Memory(), 0.0, None, GRACE).memory
    memory = decide(Probe(watchdog.HUNG), memory, 600.0, False, GRACE).memory  # MDS replaying
    first_active = decide(Probe(watchdog.HUNG), memory, 615.0, True, GRACE)
    assert first_active.action == watchdog.WAIT
    assert first_active.memory == Memory(hung_since=0.0, active_since=615.0)
    almost = decide(Probe(watchdog.HUNG), first_active.memory, 615.0 + GRACE - 1, True, GRACE)
    assert almost.action == watchdog.WAIT
    assert "89s of 90s" in almost.reason
    due = decide(Probe(watchdog.HUNG), almost.memory, 615.0 + GRACE, True, GRACE)
    assert due.action == watchdog.FORCE_REMOUNT
    assert due.reason.startswith("hung for 705s, 90s of them with the metadata server active")
    assert due.memory == Memory()


def test_the_mds_going_away_again_restarts_the_grace():
    memory = decide(Probe(watchdog.HUNG), Memory(), 0.0, True, GRACE).memory
    assert memory.active_since == 0.0
    memory = decide(Probe(watchdog.HUNG), memory, 60.0, None, GRACE).memory
    assert memory.active_since is None and memory.hung_since == 0.0
    again = decide(Probe(watchdog.HUNG), memory, 120.0, True, GRACE)
    assert again.action == watchdog.WAIT and again.memory.active_since == 120.0


def test_a_probe_still_stuck_is_remembered_while_waiting():
    decision = decide(Probe(watchdog.HUNG), Memory(probe_pid=4242), 0.0, None, GRACE)
    assert decision.memory.probe_pid == 4242
    assert Memory.from_dict(decision.memory.as_dict()) == decision.memory


def _fs_get(state: str = "up:active", ranks=(0,), up=True) -> dict:
    return {
        "mdsmap": {
            "in": list(ranks),
            "up": {f"mds_{r}": 4100 + r for r in ranks} if up else {},
            "info": {f"gid_{4100 + r}": {"rank": r, "state": state, "name": f"stor0{r}"} for r in ranks},
        }
    }


@pytest.mark.parametrize(
    ("fs_get", "ready"),
    [
        (_fs_get(), True),
        (_fs_get(ranks=(0, 1)), True),
        (_fs_get("up:reconnect"), False),
        (_fs_get("up:replay"), False),
        (_fs_get("up:rejoin"), False),
        (_fs_get(up=False), False),  # rank failed, no standby
        (_fs_get(ranks=()), False),
        ({"mdsmap": {"in": [0, 1], "up": {"mds_0": 1}, "info": {"gid_1": {"state": "up:active"}}}}, False),
    ],
)
def test_mds_ready_only_when_every_rank_is_active(fs_get, ready):
    assert watchdog.mds_ready(fs_get) is ready


MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
1222 267 0:136 / /ceph/home rw,nosuid,nodev,noatime - fuse.ceph-fuse ceph-fuse rw,user_id=0,group_id=0
1225 267 0:140 / /ceph/datasets ro,nosuid,nodev,noatime - fuse.ceph-fuse ceph-fuse ro,user_id=0,group_id=0
1300 267 0:55 / /mnt/kernel rw,relatime - ceph 10.0.0.1:6789:/home rw,name=ailab-node
"""


@pytest.mark.parametrize(
    ("where", "conn"),
    [
        ("/ceph/home", "136"),
        ("/ceph/datasets", "140"),
        ("/mnt/kernel", None),
        ("/nowhere", None),
        ("/sys", None),
    ],
)
def test_fuse_connection_from_mountinfo(where, conn):
    assert watchdog.fuse_connection(MOUNTINFO, where) == conn


def test_fuse_connection_takes_the_mount_on_top():
    stacked = MOUNTINFO + "1400 1222 0:150 / /ceph/home rw - fuse.ceph-fuse ceph-fuse rw\n"
    assert watchdog.fuse_connection(stacked, "/ceph/home") == "150"


SETTINGS = dict(
    client_name="ailab-node",
    fs_name="cephfs",
    client="fuse",
    interval=15,
    probe_timeout=10,
    hung_grace=90,
    slurmd=True,
)


def test_mount_check_config():
    config = mount_check_config(
        [{"where": "/ceph/home"}, {"where": "/ceph/datasets", "ro": True}], **SETTINGS
    )
    assert config["mounts"] == [
        {"where": "/ceph/home", "unit": "ceph-home.mount", "client": "fuse"},
        {"where": "/ceph/datasets", "unit": "ceph-datasets.mount", "client": "fuse"},
    ]
    assert (config["client_name"], config["fs_name"], config["hung_grace"], config["slurmd"]) == (
        "ailab-node",
        "cephfs",
        90,
        True,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hung_grace", 30, "cephfs_client_hung_grace must be a whole number of seconds, at least 45, got 30"),
        ("probe_timeout", 0, "cephfs_client_probe_timeout must be a whole number of seconds, at least 1"),
        ("interval", True, "cephfs_client_check_interval must be a whole number of seconds"),
        ("client", "nfs", "ailab_ceph.client must be fuse or kernel, got 'nfs'"),
        ("client_name", "client.x y", "'client.x y' is not a Ceph client id"),
    ],
)
def test_mount_check_config_refuses_bad_settings(field, value, message):
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        mount_check_config([{"where": "/ceph/home"}], **{**SETTINGS, field: value})
