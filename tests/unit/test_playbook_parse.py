"""ailab/playbook.py reads what a run did from plugins/callback/ailab_events.py's JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ailab.playbook import (
    EventReader,
    HostRecap,
    PlaybookResult,
    changed_tasks_from_events,
    progress_line,
    recap_from_events,
    run_playbook,
)

COUNTS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
EVENTS = [
    {"event": "play", "name": "Base configuration of every node"},
    {"event": "task", "name": "common : Set the hostname to the inventory name", "handler": False},
    {"event": "result", "host": "fe01", "task": "common : Set the hostname to the inventory name",
     "status": "ok"},
    {"event": "result", "host": "t4-01", "task": "common : Set the hostname to the inventory name",
     "status": "changed"},
    {"event": "task", "name": "slurm_compute : Restart slurmd", "handler": True},
    {"event": "result", "host": "t4-01", "task": "slurm_compute : Restart slurmd", "status": "changed"},
    {"event": "stats", "hosts": {
        "fe01": dict(zip(COUNTS, (12, 0, 0, 0, 3, 0, 0), strict=True)),
        "t4-01": dict(zip(COUNTS, (14, 2, 0, 1, 1, 0, 0), strict=True)),
    }},
]  # fmt: skip


def test_parse_recap():
    recap = recap_from_events(EVENTS)
    assert recap["fe01"] == HostRecap(ok=12, changed=0, unreachable=0, failed=0, skipped=3)
    assert recap["t4-01"].changed == 2 and recap["t4-01"].failed == 1


def test_parse_changed_tasks():
    assert changed_tasks_from_events(EVENTS) == [
        ("common : Set the hostname to the inventory name", "t4-01"),
        ("slurm_compute : Restart slurmd", "t4-01"),
    ]


def test_result_ok_needs_no_failed_host():
    result = PlaybookResult(returncode=0, seconds=1.0, recap=recap_from_events(EVENTS))
    assert not result.ok
    assert result.changed == 2
    assert "changed=2 failed=1" in result.summary()


def test_a_run_that_ended_before_its_recap_has_none():
    assert recap_from_events(EVENTS[:-1]) == {}


def test_progress_shows_plays_and_failures_and_tasks_only_when_asked():
    failed = {"event": "result", "host": "t4-01", "task": "x : y", "status": "failed", "msg": "boom"}
    assert progress_line(EVENTS[0], 3.0) == "  [    3s] play: Base configuration of every node"
    assert progress_line(EVENTS[1], 3.0) is None
    assert progress_line(EVENTS[1], 3.0, tasks=True).endswith(
        "task: common : Set the hostname to the inventory name"
    )
    assert progress_line(failed, 7.0) == "  [    7s]   failed: [t4-01] x : y: boom"
    assert progress_line({**failed, "ignored": True}, 7.0) is None
    assert progress_line(EVENTS[2], 3.0) is None


def test_the_reader_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.poll() == []  # no file yet
    path.write_text(json.dumps(EVENTS[0]) + "\n" + '{"event": "ta')
    assert reader.poll() == [EVENTS[0]]
    with path.open("a") as f:
        f.write('sk", "name": "n", "handler": false}\n')
    assert reader.poll() == [{"event": "task", "name": "n", "handler": False}]
    assert reader.events == [EVENTS[0], {"event": "task", "name": "n", "handler": False}]


def test_a_real_run_on_localhost_is_read_from_the_callback(tmp_path):
    """ansible-playbook with the project's ansible.cfg, against localhost (connection local)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- name: A play\n  hosts: localhost\n  gather_facts: false\n  strategy: linear\n  tasks:\n"
        "    - name: Changes\n      ansible.builtin.command: 'true'\n"
        "    - name: Does not change\n      ansible.builtin.command: 'true'\n      changed_when: false\n"
        "    - name: Skipped\n      ansible.builtin.command: 'true'\n      when: false\n"
    )
    result = run_playbook(inventory, playbook, log=tmp_path / "run.log", progress=False)
    assert result.ok, result.output
    assert result.recap == {"localhost": HostRecap(ok=2, changed=1, unreachable=0, failed=0, skipped=1)}
    assert result.changed_tasks == [("Changes", "localhost")]
    events = [json.loads(line) for line in (tmp_path / "run.events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "play",
        "task",
        "result",
        "task",
        "result",
        "task",
        "result",
        "stats",
    ]
    assert events[2]["rc"] == 0
    with playbook.open("a") as f:
        f.write("    - name: Fails\n      ansible.builtin.command: 'false'\n")
    failed = run_playbook(inventory, playbook, log=tmp_path / "fail.log", progress=False)
    assert not failed.ok and failed.returncode == 2
    assert failed.recap["localhost"].failed == 1 and failed.recap["localhost"].ok == 2
    assert "failed=1" in failed.summary()


def test_without_the_variable_the_callback_writes_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AILAB_EVENTS"}
    exe = Path(sys.executable).parent / "ansible"
    out = subprocess.run(
        [str(exe), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "localhost", "-m", "ansible.builtin.ping"],
        cwd=tmp_path, env={**env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == []
