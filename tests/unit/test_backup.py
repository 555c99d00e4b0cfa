"""ailab-backup (ailab/backup.py): what each host backs up, where it may write, which archives it keeps, and
a backup taken and restored on real directories (the system's commands behind a Runner of directories)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from ailab import backup
from ailab.inventory import load_cluster
from ailab.parse import build_cluster
from ailab.runtime import ToolError
from ailab.validate import validate
from tests.unit import node_package
from tests.unit.test_model_validation import good, problems_of, set_all

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 3, 2, 30, 5, tzinfo=dt.UTC)
MOUNTED = "22 1 0:21 / / rw - overlay overlay rw\n30 22 8:17 / /srv/backup rw - nfs4 nas:/backup rw\n"
ROOT_ONLY = "22 1 0:21 / / rw - overlay overlay rw\n23 22 0:22 / /proc rw - proc proc rw\n"


# What each host backs up --------------------------------------------------------------------------------


def test_the_controller_and_the_operations_host_back_up_their_own_state():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    ctl = backup.config_data(cluster, "ctl01", "/var/lib/ailab")
    assert ctl == {
        "format": 1,
        "host": "ctl01",
        "destination": "/srv/backup/ailab",
        "keep": 7,
        "on_calendar": "*-*-* 02:30:00",
        "components": [
            {"kind": "slurmctld", "path": "/var/lib/slurm/slurmctld", "owner": "slurm"},
            {"kind": "accounting", "owner": "root", "database": "slurm_acct_db"},
        ],
    }
    fe = backup.parse_config(backup.config_data(cluster, "fe01", "/var/lib/ailab"))
    assert [(c.kind, c.path) for c in fe.components] == [("operations", "/var/lib/ailab")]
    assert backup.config_data(cluster, "t4-01", "/var/lib/ailab")["components"] == []


def test_production_backs_up_to_the_site_share():
    cluster, problems = load_cluster(ROOT / "inventory" / "production")
    assert not problems
    assert cluster.backup.destination == "/srv/backup/ailab" and cluster.backup.keep == 14


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "is not a JSON object"),
        ({"host": "../x", "destination": "/b", "keep": 1}, "host"),
        ({"host": "ctl", "destination": "b/../c", "keep": 1}, "destination"),
        ({"host": "ctl", "destination": "/b/", "keep": 1}, "destination"),
        ({"host": "ctl", "destination": "/b", "keep": 0}, "keep"),
        ({"host": "ctl", "destination": "/b", "keep": True}, "keep"),
        ({"host": "ctl", "destination": "/b", "keep": 1, "components": [{"kind": "etc"}]}, "components[0]"),
        ({"host": "ctl", "destination": "/b", "keep": 1, "components": [{"kind": "accounting"}]}, "database"),
        ({"host": "ctl", "destination": "/b", "keep": 1, "components": [{"kind": "slurmctld"}]}, "path"),
    ],
)
def test_a_bad_config_names_the_field_and_says_to_converge(data, field):
    with pytest.raises(ToolError, match=rf"{re.escape(field)}.*fix: converge again") as info:
        backup.parse_config(data, "/etc/ailab/backup.json")
    assert "/etc/ailab/backup.json" in str(info.value)


# The inventory's checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "needle"),
    [
        ("backup", "not an absolute path"),
        ("/srv/backup/", "not a normalised path"),
        ("/srv//backup", "write it as /srv/backup"),
        ("/srv/back up", "characters other than"),
        ("/", "is /"),
        ("/var/backups/ailab", "inside /var"),
        ("/tmp", "is a /tmp"),
        ("/ceph/home/backup", "on CephFS (/ceph/home)"),
    ],
)
def test_a_destination_the_backup_would_not_survive_is_refused(destination, needle):
    groups, hostvars = good()
    set_all(hostvars, "ailab_ceph", {"managed": False, "monitors": ["10.0.9.1"], "home_root": "/ceph/home"})
    set_all(hostvars, "ailab_backup", {"destination": destination})
    problems = problems_of(groups, hostvars)
    assert len(problems) == 1, problems
    assert "ailab_backup.destination" in problems[0] and needle in problems[0], problems[0]
    assert "fix:" in problems[0]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"destination": "/srv/b", "keep": 0}, "ailab_backup.keep"),
        ({"destination": "/srv/b", "keeep": 3}, "keeep"),
        ({"destination": "/srv/b", "on_calendar": "daily\nExecStart=/bin/sh"}, "ailab_backup.on_calendar"),
        ({"destination": "/srv/b", "on_calendar": " "}, "ailab_backup.on_calendar"),
    ],
)
def test_bad_backup_settings_are_named(value, needle):
    groups, hostvars = good()
    set_all(hostvars, "ailab_backup", value)
    problems = problems_of(groups, hostvars)
    assert len(problems) == 1 and needle in problems[0] and "fix:" in problems[0], problems


def test_no_destination_means_no_backups_and_no_problem():
    groups, hostvars = good()
    cluster, problems = build_cluster(groups, hostvars)
    assert not problems and not validate(cluster) and cluster.backup.destination == ""
    assert backup.config_data(cluster, "ctl", "/var/lib/ailab")["destination"] == ""


# Destination ----------------------------------------------------------------------------------------------


def test_a_destination_on_the_root_file_system_is_refused_before_anything_is_written(tmp_path):
    dest = tmp_path / "dest"
    with pytest.raises(ToolError, match=r"root file system.*nothing was written -- fix: mount") as info:
        backup.check_destination(str(dest), mount_table=lambda: ROOT_ONLY, probe=lambda p: None)
    assert info.value.exit_code == backup.REFUSED
    assert not dest.exists()


def test_a_mount_that_does_not_answer_is_refused():
    with pytest.raises(ToolError, match="did not answer") as info:
        backup.check_destination(
            "/srv/backup/ailab", mount_table=lambda: MOUNTED, probe=lambda p: f"{p}: did not answer"
        )
    assert "/srv/backup:" in str(info.value)  # the mount point is probed


def test_a_destination_below_a_mount_is_accepted():
    assert backup.destination_problem(MOUNTED, "/srv/backup/ailab") is None
    assert "root file system" in backup.destination_problem(MOUNTED, "/srv/backupx")


# Names and pruning ----------------------------------------------------------------------------------------


def test_only_this_hosts_backups_count_and_the_newest_are_kept():
    names = [
        "ctl01-20261203T023000Z.tar.gz",
        "ctl01-20261201T023000Z.tar.gz",
        "ctl01-20261202T023000Z.tar.gz",
        ".ctl01-20261204T023000Z.tar.gz.x1.partial",  # an interrupted run
        "ctl011-20261101T023000Z.tar.gz",  # another host whose name starts alike
        "ctl01-notes.txt",
    ]
    assert backup.backups_of("ctl01", names) == sorted(names[:3])
    assert backup.to_prune("ctl01", names, 2) == ["ctl01-20261201T023000Z.tar.gz"]
    assert backup.to_prune("ctl01", names, 5) == []
    assert backup.archive_name("ctl01", NOW) == "ctl01-20261203T023005Z.tar.gz"


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (member("/etc/passwd"), "unsafe path"),
        (member("slurmctld/../../etc/shadow"), "unsafe path"),
        (member("slurmctld/job_state", tarfile.SYMTYPE, "/etc/shadow"), "not a regular file"),
        (member("slurmctld/x", tarfile.LNKTYPE, "/etc/shadow"), "not a regular file"),
        (member("slurmctld/dev", tarfile.CHRTYPE), "not a regular file"),
        (member("etc/cron.d/x"), "belongs to no component"),
        (member("operations/retention.json"), "belongs to no component"),  # not in this archive
    ],
)
def test_an_archive_with_a_member_outside_its_components_is_refused(bad, why):
    good_members = [member("manifest.json"), member("slurmctld", tarfile.DIRTYPE), member("slurmctld/a")]
    backup.check_members(good_members, ["slurmctld"])
    with pytest.raises(ToolError, match=why):
        backup.check_members([*good_members, bad], ["slurmctld"])


# A backup taken and restored on directories ---------------------------------------------------------------


class DirRunner(backup.Runner):
    """The system for the tests: the "database" is a file of SQL, users map to this test's own ids, and
    services are a set (what was stopped and started is recorded)."""

    def __init__(self, db_file: Path, users=("slurm", "root"), active=()):
        self.db_file, self.users, self.running, self.calls = db_file, set(users), set(active), []

    def user_exists(self, name):
        return name in self.users

    def ids(self, name):
        return os.getuid(), os.getgid()

    def table_count(self, database):
        if not self.db_file.parent.exists():
            return None  # "MariaDB not installed"
        return len(self.db_file.read_text().split(";")) - 1 if self.db_file.exists() else 0

    def dump(self, database, out):
        out.write_text(self.db_file.read_text() if self.db_file.exists() else "")

    def load(self, dump):
        self.db_file.write_text(dump.read_text())

    def active(self, service):
        return service in self.running

    def systemctl(self, action, service):
        self.calls.append(f"{action} {service}")
        (self.running.add if action == "start" else self.running.discard)(service)


def setup_host(tmp_path: Path):
    state = tmp_path / "var/lib/slurm/slurmctld"
    ops = tmp_path / "var/lib/ailab"
    (state / "hash.3").mkdir(parents=True)
    (state / "job_state").write_bytes(b"\x00jobs 4711")
    (state / "node_state").write_bytes(b"nodes")
    (state / "hash.3" / "job.4711").mkdir()
    (state / "hash.3" / "job.4711" / "script").write_text("#!/bin/sh\nsleep 600\n")
    os.chmod(state / "job_state", 0o600)
    os.symlink("/etc/passwd", state / "a-link")  # not state: left out
    ops.mkdir(parents=True)
    (ops / "retention.json").write_text('{"deleted": {"ab12cd": "2026"}}')
    db_dir = tmp_path / "mysql"
    db_dir.mkdir()
    (db_dir / "db.sql").write_text("CREATE TABLE a;INSERT 1;")
    config = backup.BackupConfig(
        host="ctl01",
        destination=str(tmp_path / "backup"),
        keep=2,
        components=(
            backup.Component(backup.SLURMCTLD, path=str(state), owner="slurm"),
            backup.Component(backup.ACCOUNTING, database="slurm_acct_db"),
            backup.Component(backup.OPERATIONS, path=str(ops)),
        ),
    )
    return config, state, ops, DirRunner(db_dir / "db.sql", active={"slurmctld", "slurmdbd"})


def tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_a_backup_restores_what_a_rebuilt_host_lost(tmp_path):
    config, state, ops, runner = setup_host(tmp_path)
    before = {"state": tree(state), "ops": tree(ops), "db": runner.db_file.read_text()}
    path, manifest = backup.take(config, NOW, runner)
    assert path.name == "ctl01-20261203T023005Z.tar.gz" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert manifest["components"]["slurmctld"]["files"] == 3
    assert os.listdir(path.parent) == [path.name]  # the partial file became the archive
    # The host's disk dies: a new host has empty directories and a database without tables.
    shutil.rmtree(state)
    shutil.rmtree(ops)
    state.mkdir()
    ops.mkdir()
    runner.db_file.unlink()
    runner.running.clear()
    lines = backup.restore(config, path, NOW, runner, if_empty=True)
    assert lines == [
        f"slurmctld: restored {state}",
        "accounting: restored database slurm_acct_db",
        f"operations: restored {ops}",
    ]
    assert tree(state) == before["state"] and tree(ops) == before["ops"]
    assert runner.db_file.read_text() == before["db"]
    assert oct((state / "job_state").stat().st_mode & 0o777) == "0o600"
    assert not (state / "a-link").exists()
    assert runner.calls == []  # nothing ran, so nothing was stopped or started


def test_a_converge_never_restores_over_state_that_is_there(tmp_path):
    config, state, ops, runner = setup_host(tmp_path)
    path, _ = backup.take(config, NOW, runner)
    (state / "job_state").write_bytes(b"newer jobs")
    lines = backup.restore(config, path, NOW, runner, if_empty=True)
    assert lines == [
        "slurmctld: left alone, has state (job_state, node_state)",
        "accounting: left alone, database slurm_acct_db has 2 tables",
        f"operations: left alone, {ops} has files",
    ]
    assert (state / "job_state").read_bytes() == b"newer jobs" and runner.calls == []


def test_a_component_not_installed_yet_waits_for_its_role(tmp_path):
    config, _state, _ops, runner = setup_host(tmp_path)
    path, _ = backup.take(config, NOW, runner)
    shutil.rmtree(runner.db_file.parent)  # MariaDB not installed
    runner.users.discard("slurm")  # the slurm packages not installed
    lines = backup.restore(config, path, NOW, runner, if_empty=True, only=["slurmctld", "accounting"])
    assert lines == [
        "slurmctld: left alone, not installed yet (no user slurm; role slurm_controller restores it)",
        "accounting: left alone, MariaDB is not installed or not running yet "
        "(role slurm_controller restores it)",
    ]


def test_a_forced_restore_moves_what_was_there_aside_and_restarts_the_daemons(tmp_path):
    config, state, _ops, runner = setup_host(tmp_path)
    path, _ = backup.take(config, NOW, runner)
    (state / "job_state").write_bytes(b"after the backup")
    runner.db_file.write_text("CREATE TABLE b;")
    aside_db = tmp_path / "aside"
    later = NOW + dt.timedelta(hours=1)
    import ailab.backup as mod

    old_aside, mod.ASIDE_DIR = mod.ASIDE_DIR, str(aside_db)
    try:
        lines = backup.restore(config, path, later, runner, only=["slurmctld", "accounting"])
    finally:
        mod.ASIDE_DIR = old_aside
    stamp = "20261203T033005Z"
    assert lines[0] == f"slurmctld: restored {state} (what was there is in {state}.before-restore-{stamp})"
    assert (
        state.parent / f"slurmctld.before-restore-{stamp}" / "job_state"
    ).read_bytes() == b"after the backup"
    assert (state / "job_state").read_bytes() == b"\x00jobs 4711"
    assert (aside_db / f"slurm_acct_db.before-restore-{stamp}.sql").read_text() == "CREATE TABLE b;"
    assert runner.calls == ["stop slurmctld", "start slurmctld", "stop slurmdbd", "start slurmdbd"]


def test_an_archive_from_elsewhere_is_refused_before_anything_is_touched(tmp_path):
    config, state, _ops, runner = setup_host(tmp_path)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = json.dumps({"format": 1, "components": {"slurmctld": {}}}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("slurmctld/job_state")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(ToolError, match="not a regular file"):
        backup.restore(config, evil, NOW, runner)
    assert (state / "job_state").read_bytes() == b"\x00jobs 4711" and runner.calls == []


def test_the_command_keeps_the_newest_and_refuses_without_a_mount(tmp_path, capsys, monkeypatch):
    config, _state, ops, runner = setup_host(tmp_path)
    cfg = tmp_path / "backup.json"
    cfg.write_text(
        json.dumps(
            {
                "host": config.host,
                "destination": config.destination,
                "keep": 2,
                "components": [{"kind": "operations", "path": str(ops)}],
            }
        )
    )
    mounted = f"22 1 0:21 / / rw - overlay overlay rw\n30 22 8:17 / {tmp_path} rw - ext4 /dev/sdb rw\n"
    monkeypatch.setattr(backup, "check_destination", _check_with(mounted))
    for hour in (1, 2, 3):
        argv = ["--config", str(cfg), "--now", f"2026-12-0{hour}T02:30:00+00:00", "run"]
        assert backup.main(argv, runner) == 0
    out = capsys.readouterr().out
    assert "removed ctl01-20261201T023000Z.tar.gz (keep: 2)" in out
    assert sorted(os.listdir(config.host_dir)) == [
        "ctl01-20261202T023000Z.tar.gz",
        "ctl01-20261203T023000Z.tar.gz",
    ]
    assert backup.main(["--config", str(cfg), "restore"], runner) == 2  # a restore over state needs --yes
    assert "add --yes, or --if-empty" in capsys.readouterr().err
    monkeypatch.setattr(backup, "check_destination", _check_with(ROOT_ONLY))
    assert backup.main(["--config", str(cfg), "run"], runner) == backup.REFUSED
    assert "root file system" in capsys.readouterr().err
    assert len(os.listdir(config.host_dir)) == 2


REAL_CHECK = backup.check_destination


def _check_with(table: str):
    def check(destination, mount_table=None, probe=None):
        return REAL_CHECK(destination, mount_table=lambda: table, probe=lambda p: None)

    return check


def test_the_node_side_copy_needs_only_the_standard_library(tmp_path):
    release = node_package.install(tmp_path)  # as role common installs it
    assert node_package.imported_modules(release, "ailab.backup") == [
        "ailab",
        "ailab.backup",
        "ailab.mounts",
        "ailab.runtime",
    ]


def test_a_failed_run_leaves_no_archive_and_no_partial_file(tmp_path):
    config, _state, ops, runner = setup_host(tmp_path)
    shutil.rmtree(ops)  # the operations state is missing: the run fails after the others were added
    with pytest.raises(ToolError, match=r"operations: .* does not exist -- fix: converge this host"):
        backup.take(config, NOW, runner)
    assert os.listdir(config.host_dir) == []
