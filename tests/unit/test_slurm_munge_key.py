"""Role munge's action plugin munge_local_key: the cluster key is kept on the Ansible controller in a 0700
directory as a 0400 file, generated once, replaced only by an operator-supplied key."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "roles/munge/action_plugins"
_spec = importlib.util.spec_from_file_location("munge_local_key", PLUGINS / "munge_local_key.py")
plugin = importlib.util.module_from_spec(_spec)
sys.modules["munge_local_key"] = plugin
_spec.loader.exec_module(plugin)

KEY = os.urandom(1024)
OTHER = os.urandom(1024)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("existing", "supplied", "action"),
    [
        (None, None, "fetch"),  # first converge: take the controller host's key
        (KEY, None, "keep"),  # the local copy is the source of truth from then on
        (None, KEY, "write"),  # operator-supplied (vault) key
        (KEY, KEY, "keep"),
        (KEY, OTHER, "write"),  # vault key changed: it wins
    ],
)
def test_decide(existing, supplied, action):
    assert plugin.decide(existing, supplied) == action


def test_write_private_is_0400_and_replaces(tmp_path):
    target = tmp_path / "munge.key"
    plugin.write_private(str(target), KEY)
    assert target.read_bytes() == KEY and mode(target) == 0o400
    plugin.write_private(str(target), OTHER)  # over a read-only file: rename, not rewrite
    assert target.read_bytes() == OTHER and mode(target) == 0o400
    assert [p.name for p in tmp_path.iterdir()] == ["munge.key"]


def test_private_dir(tmp_path):
    secrets = tmp_path / "a" / "secrets"
    assert plugin.ensure_private_dir(str(secrets)) is True
    assert mode(secrets) == 0o700
    assert plugin.ensure_private_dir(str(secrets)) is False
    secrets.chmod(0o755)
    assert plugin.ensure_private_dir(str(secrets)) is True and mode(secrets) == 0o700


def test_short_keys_are_refused():
    with pytest.raises(Exception, match="at least 32"):
        plugin.check_key(b"short", "munge_key_b64")


PLAYBOOK = """
- hosts: keyhost
  gather_facts: false
  tasks:
    - munge_local_key:
        dest: "{{ dest }}"
        src: "{{ src }}"
        content_b64: "{{ b64 | default('') }}"
      register: result
    - ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def run_plugin(tmp_path: Path, src: Path, dest: Path, b64: str = "") -> dict:
    """Run the action through ansible-playbook, on a local-connection test host of a throw-away inventory."""
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.ini").write_text(
        f"keyhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the project's (it names inventory/sim)
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        "ANSIBLE_ACTION_PLUGINS": str(PLUGINS),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    extra = {"dest": str(dest), "src": str(src), "out": str(out), "b64": b64}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts.ini"),
            str(tmp_path / "play.yml"),
            "-e",
            json.dumps(extra),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_action_fetches_once_then_keeps_then_takes_a_supplied_key(tmp_path):
    src = tmp_path / "host-munge.key"
    src.write_bytes(KEY)
    dest = tmp_path / "secrets" / "munge.key"

    first = run_plugin(tmp_path, src, dest)
    assert (first["changed"], first["action"]) == (True, "fetch")
    assert dest.read_bytes() == KEY and mode(dest) == 0o400 and mode(dest.parent) == 0o700

    src.write_bytes(OTHER)  # e.g. the controller host was reinstalled: the local copy stays the key
    second = run_plugin(tmp_path, src, dest)
    assert (second["changed"], second["action"]) == (False, "keep")
    assert dest.read_bytes() == KEY

    vault = run_plugin(tmp_path, src, dest, base64.b64encode(OTHER).decode())
    assert (vault["changed"], vault["action"]) == (True, "write")
    assert dest.read_bytes() == OTHER and mode(dest) == 0o400
