"""Hardening, rule 1 "deletions correct and final": a user the yearly deletion removed is not re-created by
the next converge while ailab_users still lists them (the deletion record on the operations host is the
truth; playbooks/preflight.yml leaves them out of ailab_users for the run), until they are readmitted."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ailab import deletion, retention
from ailab.runtime import StateFile, ToolError
from tests.unit.test_retention import USERS as TOOL_USERS
from tests.unit.test_retention import (
    FakeMailer,
    FakeOps,
    at,
    config_data,
    make_config,
    make_homes,
    run_days,
    sent_log,
)

ROOT = Path(__file__).resolve().parents[2]
D = dt.date.fromisoformat
USERS = [{"name": "alice", "uid": 20001}, {"name": "bob", "uid": 20002}, {"name": "carol", "uid": 20003}]


def record(deleted: dict[str, dict[int, str]], readmitted: dict[str, int] | None = None) -> dict:
    """A retention.json: ``deleted`` maps a user to {cycle: day}; ``readmitted`` a user to a cycle."""
    state: dict = {"version": 1, "cycles": {}}
    for name, cycles in deleted.items():
        for year, on in cycles.items():
            cycle = state["cycles"].setdefault(str(year), {"notices": {}, "deleted": {}, "failed": {}})
            cycle["deleted"][name] = {"on": on, "manifest": f"/m/deletion-{year}.jsonl"}
    if readmitted:
        state["readmitted"] = {n: {"on": "2026-09-01", "cycle": c} for n, c in readmitted.items()}
    return state


def test_the_record_names_the_deleted_users():
    state = record({"alice": {2026: "2026-08-01"}, "bob": {2025: "2025-08-03"}})
    deleted = retention.deleted_users(state)
    assert deleted == {
        "alice": retention.Deleted("alice", 2026, "2026-08-01", "/m/deletion-2026.jsonl"),
        "bob": retention.Deleted("bob", 2025, "2025-08-03", "/m/deletion-2025.jsonl"),
    }
    assert retention.deleted_users(retention.EMPTY_STATE) == {}


def test_a_readmission_covers_the_deletions_up_to_its_cycle_only():
    state = record({"alice": {2026: "2026-08-01"}, "bob": {2025: "2025-08-01", 2027: "2027-08-01"}})
    state["readmitted"] = {"alice": {"on": "2026-09-01", "cycle": 2026}, "bob": {"on": "x", "cycle": 2025}}
    assert set(retention.deleted_users(state)) == {"bob"}  # bob was deleted again in 2027
    assert retention.deleted_users(state)["bob"].cycle == 2027


def test_split_keeps_the_live_users_in_inventory_order():
    state = record({"bob": {2026: "2026-08-01"}, "zed": {2026: "2026-08-01"}})  # zed: no longer listed
    live, gone = retention.split_deleted(USERS, state)
    assert [u["name"] for u in live] == ["alice", "carol"]
    assert [d.name for d in gone] == ["bob"]
    assert retention.split_deleted(USERS, retention.EMPTY_STATE) == (USERS, [])


def test_the_warning_names_the_users_the_file_and_both_fixes():
    gone = [retention.Deleted("bob", 2026, "2026-08-01")]
    text = retention.deleted_listed_warning(gone, "inventory/sim/group_vars/all/users.yml", "fe01")
    assert text.startswith("WARNING: 1 user(s) in ailab_users were deleted by the yearly deletion: ")
    assert "bob (deleted 2026-08-01, cycle 2026)" in text
    assert "remove them from ailab_users in inventory/sim/group_vars/all/users.yml" in text
    assert "run `ailab-retention readmit NAME` on fe01 and converge again" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "fe01:/var/lib/ailab/retention.json is not valid JSON"),
        ('{"version": 9}', "has an unknown format (version 9)"),
        ("[1]", "has an unknown format"),
    ],
)
def test_a_broken_record_stops_instead_of_meaning_nobody(text, message):
    with pytest.raises(ToolError, match="fix: "):
        retention.parse_state_text(text, "fe01:/var/lib/ailab/retention.json")
    with pytest.raises(ToolError) as info:
        retention.parse_state_text(text, "fe01:/var/lib/ailab/retention.json")
    assert message in str(info.value)


def test_a_missing_record_means_nobody_was_deleted():
    assert retention.parse_state_text("") == retention.EMPTY_STATE


def test_readmit_records_the_readmission_and_refuses_users_not_deleted():
    state = record({"bob": {2026: "2026-08-01"}})
    assert retention.readmit(state, "bob", D("2026-09-10")).cycle == 2026
    assert state["readmitted"] == {"bob": {"on": "2026-09-10", "cycle": 2026}}
    assert retention.deleted_users(state) == {}
    assert state["cycles"]["2026"]["deleted"]["bob"]["manifest"]  # the history stays
    with pytest.raises(ToolError, match="alice is not deleted in the record; nothing was changed"):
        retention.readmit(state, "alice", D("2026-09-10"))


def test_readmit_command_on_the_operations_host(tmp_path, capsys):
    config_file = tmp_path / "ops.json"
    config_file.write_text(json.dumps(config_data(tmp_path)))
    store = StateFile(tmp_path / "state" / "retention.json", retention.EMPTY_STATE)
    store.save(record({"bob": {2026: "2026-08-01"}}))
    argv = ["--config", str(config_file), "--now", "2026-09-10"]
    assert retention.main([*argv, "readmit", "bob"], ops=FakeOps(set())) == 0
    assert "readmitted bob (deleted 2026-08-01, cycle 2026" in capsys.readouterr().out
    assert retention.deleted_users(store.load()) == {}
    assert retention.main([*argv, "readmit", "bob"], ops=FakeOps(set())) == 2
    assert "bob is not deleted in the record" in capsys.readouterr().err


def _filters():
    spec = importlib.util.spec_from_file_location("ailab_filters", ROOT / "plugins" / "filter" / "ailab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def test_the_filters_the_pre_flight_uses():
    filters = _filters()
    text = json.dumps(record({"bob": {2026: "2026-08-01"}}))
    assert [u["name"] for u in filters["ailab_live_users"](USERS, text)] == ["alice", "carol"]
    assert filters["ailab_deleted_listed"](USERS, text) == [
        {"name": "bob", "cycle": 2026, "on": "2026-08-01"}
    ]
    assert filters["ailab_live_users"](USERS, "") == USERS
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="fe01:/x is not valid JSON"):
        filters["ailab_live_users"](USERS, "{", "fe01:/x")


# The pre-flight play itself, run by Ansible on the sim inventory with a local connection ----------------

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.fixture(scope="module")
def lifecycle_play(tmp_path_factory) -> Path:
    plays = yaml.safe_load((ROOT / "playbooks" / "preflight.yml").read_text())
    names = [p["name"] for p in plays]
    ours = names.index("Users the yearly deletion removed stay removed")
    assert all(not p.get("roles") for p in plays), "the pre-flight applies no role"
    show = {
        "name": "What the roles would see",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Users",
                "ansible.builtin.debug": {
                    "msg": "USERS {{ inventory_hostname }} "
                    "{{ ailab_users | map(attribute='name') | join(',') }}"
                },
            },
            {
                "name": "Model",
                "run_once": True,
                "ansible.builtin.debug": {
                    "msg": "MODEL {{ (hostvars | ailab_model(groups)).users | join(',') }}"
                },
            },
        ],
    }
    path = tmp_path_factory.mktemp("play") / "lifecycle.yml"
    path.write_text(yaml.safe_dump([plays[ours], show], sort_keys=False))
    return path


def play(path: Path, state_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip(f"no {ANSIBLE_PLAYBOOK}")
    cmd = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        str(ROOT / "inventory" / "sim"),
        str(path),
        "-e",
        json.dumps(
            {
                "ansible_connection": "local",  # every sim host is this machine: no container needed
                "ansible_python_interpreter": sys.executable,
                "operations_state_dir": str(state_dir),
            }
        ),
        *extra,
    ]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STRATEGY": "linear",
        "PYTHONPATH": str(ROOT),  # this checkout's ailab package, whatever the venv has installed
    }
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def seen(out: str) -> dict[str, str]:
    return {
        line.split()[2]: (line.split()[3] if len(line.split()) > 3 else "")
        for line in out.splitlines()
        if line.strip().startswith("msg: USERS ")
    }


def test_without_a_record_every_user_stays(lifecycle_play, tmp_path):
    out = play(lifecycle_play, tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    hosts = seen(out.stdout)
    assert len(hosts) == 6 and set(hosts.values()) == {"student1,student2,student3,admin1"}
    assert "WARNING" not in out.stdout


@pytest.mark.parametrize("limit", [[], ["--limit", "t4-01"]])
def test_a_deleted_user_is_left_out_on_every_host_and_warned_about_once(lifecycle_play, tmp_path, limit):
    (tmp_path / "retention.json").write_text(json.dumps(record({"student2": {2026: "2026-08-01"}})))
    out = play(lifecycle_play, tmp_path, *limit)
    assert out.returncode == 0, out.stdout[-3000:]
    hosts = seen(out.stdout)
    assert set(hosts.values()) == {"student1,student3,admin1"}, hosts
    assert len(hosts) == (1 if limit else 6)
    # The model every role builds (from the first inventory host, also outside a --limit) agrees.
    assert "msg: MODEL student1,student3,admin1" in out.stdout
    assert out.stdout.count("WARNING: 1 user(s) in ailab_users were deleted") == 1
    assert "student2" in out.stdout.split("WARNING: 1 user(s)")[1][:200]


def test_a_readmitted_user_is_back(lifecycle_play, tmp_path):
    state = record({"student2": {2026: "2026-08-01"}}, readmitted={"student2": 2026})
    (tmp_path / "retention.json").write_text(json.dumps(state))
    out = play(lifecycle_play, tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    assert set(seen(out.stdout).values()) == {"student1,student2,student3,admin1"}


def test_a_broken_record_stops_the_run(lifecycle_play, tmp_path):
    (tmp_path / "retention.json").write_text("{ half written")
    out = play(lifecycle_play, tmp_path)
    assert out.returncode != 0
    assert "retention.json is not valid JSON" in out.stdout
    assert "USERS" not in out.stdout


# Users removed from the inventory are deleted too -------------------------------------------------------

PASSWD = {
    "alice": (20001, "Alice A,,,,alice@example.org"),  # what role accounts writes: full name,,,,e-mail
    "eve": (20009, "Eve,,,,"),  # no e-mail
    "daemonish": (999, "system,,,,x@example.org"),
}


def test_removed_people_come_from_the_accounts_state_and_passwd():
    people = deletion.removed_people(
        ["bob"], ["alice", "bob", "eve", "gone", "daemonish", "../x"], PASSWD.get
    )
    assert [(p.name, p.uid, p.email, p.full_name, p.removed) for p in people] == [
        ("alice", 20001, "alice@example.org", "Alice A", True),
        ("eve", 20009, "", "Eve", True),
    ]  # bob is listed; gone has no account (already deleted); daemonish is a system uid; ../x no name


def test_system_ops_read_role_accounts_state(tmp_path):
    state = tmp_path / "managed-accounts.json"
    config = make_config(tmp_path, TOOL_USERS[1:2], accounts_state=str(state))  # bob only
    ops = deletion.SystemOps(passwd=PASSWD.get)
    assert ops.removed_users(config) == []  # no state file yet: nobody removed
    state.write_text(json.dumps(["alice", "bob"]))
    assert [p.name for p in ops.removed_users(config)] == ["alice"]
    state.write_text("{")
    with pytest.raises(ToolError, match=r"cannot read role accounts' state .*; nothing was done"):
        ops.removed_users(config)


def test_a_user_removed_from_the_inventory_before_the_deletion_is_deleted_like_everyone(tmp_path):
    """The hole: a user removed from ailab_users (locked, home kept) was never deleted."""
    state = tmp_path / "managed-accounts.json"
    state.write_text(json.dumps(["alice", "bob"]))
    config = make_config(tmp_path, TOOL_USERS[1:2], accounts_state=str(state))  # alice left in May
    make_homes(config, ["alice", "bob"])
    ops = FakeOps({"alice", "bob"})
    ops.removed = deletion.SystemOps(passwd=PASSWD.get).removed_users(config)
    mailer = FakeMailer()
    assert set(run_days(config, "2026-05-25", "2026-08-02", mailer, ops)) == {0}
    assert [(d, who, key) for d, who, key in sent_log(mailer) if who == "alice"] == [
        ("2026-06-01", "alice", "2 months"),
        ("2026-07-01", "alice", "1 month"),
        ("2026-07-18", "alice", "14 days"),
        ("2026-07-30", "alice", "2 days"),
    ]
    assert ops.deleted() == {"alice", "bob"}
    assert sorted(p.name for p in Path(config.home_root).iterdir()) == []
    (manifest,) = Path(config.manifest_dir).iterdir()
    assert any(json.loads(line).get("user") == "alice" for line in manifest.read_text().splitlines())


def test_a_removed_user_without_an_e_mail_address_is_reported_not_deleted(tmp_path):
    config = make_config(tmp_path, TOOL_USERS[1:2])
    make_homes(config, ["eve"])
    ops = FakeOps({"eve"})
    ops.removed = deletion.removed_people(["bob"], ["eve"], PASSWD.get)
    mailer = FakeMailer()
    run_days(config, "2026-06-01", "2026-08-02", mailer, ops)
    assert {who for _, who, _ in sent_log(mailer)} == {"bob"} and ops.deleted() == {"bob"}
    plan = retention.make_plan(retention.with_removed(config, ops.removed), {}, D("2026-07-01"))
    status = next(s for s in plan.statuses if s.user == "eve")
    assert status.state == "no-email" and "delete-removed eve --yes" in status.detail


def cli(tmp_path, ops, *args):
    config_file = tmp_path / "ops.json"
    if not config_file.exists():
        data = config_data(tmp_path, TOOL_USERS[1:3])  # bob, carol (extension)
        config_file.write_text(json.dumps(data))
    return retention.main(["--config", str(config_file), "--now", "2026-11-02", *args], ops=ops)


def test_delete_removed_asks_for_yes_then_deletes_manifest_first(tmp_path, capsys):
    config = make_config(tmp_path, TOOL_USERS[1:3])
    make_homes(config, ["alice"])
    ops = FakeOps({"alice"})
    ops.removed = deletion.removed_people(["bob", "carol"], ["alice", "bob", "carol"], PASSWD.get)
    assert cli(tmp_path, ops, "delete-removed", "alice") == 2
    captured = capsys.readouterr()
    assert "would delete alice (cycle 2027)" in captured.out
    assert "nothing was deleted -- fix: add --yes" in captured.err
    assert (Path(config.home_root) / "alice" / "notes.txt").exists() and ops.calls == []
    assert not Path(config.manifest_dir).exists()

    assert cli(tmp_path, ops, "delete-removed", "alice", "--yes") == 0
    assert "deleted alice (cycle 2027)" in capsys.readouterr().out
    assert not (Path(config.home_root) / "alice").exists() and ops.deleted() == {"alice"}
    (manifest,) = Path(config.manifest_dir).iterdir()
    assert manifest.name.startswith("deletion-2027-20261102T")
    state = json.loads(Path(config.retention_state).read_text())
    assert state["cycles"]["2027"]["deleted"]["alice"]["manifest"] == str(manifest)
    assert ops.home_checks  # the home mount was checked first


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bob", "bob is still in the inventory (ailab_users); nothing was deleted"),
        ("carol", "carol is still in the inventory (ailab_users), extension until 2027-08-01; nothing"),
        ("mallory", "mallory is not a user removed from the inventory here"),
    ],
)
def test_delete_removed_refuses_users_in_the_inventory_or_unknown(tmp_path, capsys, name, message):
    ops = FakeOps({"alice", "bob", "carol"})
    ops.removed = deletion.removed_people(["bob", "carol"], ["alice", "bob", "carol"], PASSWD.get)
    assert cli(tmp_path, ops, "delete-removed", name, "--yes") == 2
    assert message in capsys.readouterr().err
    assert ops.calls == []


def test_delete_removed_refuses_without_cephfs(tmp_path):
    config = make_config(tmp_path, TOOL_USERS[1:2])
    ops = deletion.SystemOps(passwd=PASSWD.get, mount_table=lambda: "", run=lambda *a, **k: 1 / 0)
    with pytest.raises(ToolError, match="is not a mounted CephFS file system"):
        retention.delete_removed(config, "alice", at("2026-11-02"), ops, yes=True)
    assert not Path(config.retention_state).exists()


def test_with_the_directory_removed_users_come_from_its_list_too(tmp_path):
    """ailab_directory: role accounts lists only the admins; role directory lists every user the directory
    holds (locked ones too); a user in either list but not in ops.json is removed from the inventory."""
    accounts, users = tmp_path / "managed-accounts.json", tmp_path / "directory-users.json"
    accounts.write_text(json.dumps([]))
    users.write_text(json.dumps(["alice", "bob"]))
    config = make_config(
        tmp_path, TOOL_USERS[1:2], accounts_state=str(accounts), directory_state=str(users)
    )  # bob only
    assert [p.name for p in deletion.SystemOps(passwd=PASSWD.get).removed_users(config)] == ["alice"]


@pytest.mark.parametrize(("local", "expect"), [(True, ["usermod", "userdel"]), (False, [])])
def test_with_the_directory_only_local_accounts_are_locked_and_deleted(tmp_path, local, expect):
    """A directory user has no local account to lock or delete (role directory locks and deletes the
    entry); a local one (an admin) still has."""
    passwd = tmp_path / "passwd"
    passwd.write_text(
        "root:x:0:0::/root:/bin/bash\n" + ("alice:x:20001:20001::/h:/bin/bash\n" if local else "")
    )
    calls = []

    def run(argv, **_):
        calls.append(argv[0])
        out = "alice:x:20001:20001::/h:/bin/bash\n" if argv[:2] == ["getent", "passwd"] else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    ops = deletion.SystemOps(slurm=False, run=run, directory=True, local_passwd=str(passwd))
    alice = next(p for p in deletion.removed_people([], ["alice"], PASSWD.get))
    ops.stop([alice])
    ops.delete_account(alice)
    assert [c for c in calls if c in ("usermod", "userdel")] == expect


@pytest.mark.parametrize(("local", "denied"), [(True, []), (False, ["alice"])])
def test_stopping_a_directory_user_refuses_them_at_login_at_once(tmp_path, local, denied):
    """A directory user has no local account to lock: stop() puts them on the list PAM reads on the
    operations host (beside the deletion record) before anything of theirs is deleted."""
    passwd = tmp_path / "passwd"
    passwd.write_text(
        "root:x:0:0::/root:/bin/bash\n" + ("alice:x:20001:20001::/h:/bin/bash\n" if local else "")
    )

    def run(argv, **_):
        out = "alice:x:20001:20001::/h:/bin/bash\n" if argv[:2] == ["getent", "passwd"] else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    listed = deletion.DeniedUsers(tmp_path / "state" / deletion.DENIED_FILE)
    listed.add_all(["bob"])
    ops = deletion.SystemOps(slurm=False, run=run, directory=True, local_passwd=str(passwd), denied=listed)
    alice = next(p for p in deletion.removed_people([], ["alice"], PASSWD.get))
    ops.stop([alice])
    ops.stop([alice])
    assert listed.names() == sorted(["bob", *denied])
    assert listed.path.read_text() == "".join(f"{n}\n" for n in sorted(["bob", *denied]))
    assert listed.path.stat().st_mode & 0o777 == 0o600
    listed.remove("alice")
    listed.remove("carol")
    assert listed.names() == ["bob"]


def test_readmit_takes_the_user_off_the_denied_list(tmp_path):
    config_file = tmp_path / "ops.json"
    config_file.write_text(json.dumps(config_data(tmp_path)))
    StateFile(tmp_path / "state" / "retention.json", retention.EMPTY_STATE).save(
        record({"bob": {2026: "2026-08-01"}})
    )
    listed = deletion.DeniedUsers(tmp_path / "state" / deletion.DENIED_FILE)
    listed.add_all(["bob"])
    listed.add_all(["carol"])
    argv = ["--config", str(config_file), "--now", "2026-09-10"]
    assert retention.main([*argv, "readmit", "bob"], ops=FakeOps(set())) == 0
    assert listed.names() == ["carol"]
