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

from ailab import retention
from ailab.notices import StateFile, ToolError
from tests.unit.test_retention import FakeOps, config_data

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
