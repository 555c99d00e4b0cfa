"""Role munge: one key on every Slurm host (moved here from the whole-cluster suite)."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import testinfra

testinfra_hosts = ["ctl01", "mol-t4-01"]


def test_munged_runs_with_a_private_key(host):
    assert host.service("munge").is_running
    key = host.file("/etc/munge/munge.key")
    assert (key.user, key.group, key.mode) == ("munge", "munge", 0o400)


def test_one_key_everywhere_and_credentials_cross_hosts(host, request):
    others = [n for n in testinfra_hosts if n != host.check_output("hostname")]
    other = testinfra.get_host(f"ssh://{others[0]}", ssh_config=request.config.option.ssh_config)
    assert host.file("/etc/munge/munge.key").sha256sum == other.file("/etc/munge/munge.key").sha256sum
    credential = host.check_output("munge -n -s ailab-molecule")
    decoded = other.run(f"echo {shlex.quote(credential)} | unmunge")
    assert decoded.rc == 0, decoded.stderr
    assert "ailab-molecule" in decoded.stdout


def test_the_controllers_copy_is_private_and_the_same(host, cluster):
    """The key Ansible distributes lives on the Ansible controller, in the secrets dir, root only."""
    local = Path(cluster.secrets_dir) / "munge.key"
    assert local.stat().st_mode & 0o777 == 0o400
    assert local.parent.stat().st_mode & 0o777 == 0o700
    assert hashlib.sha256(local.read_bytes()).hexdigest() == host.file("/etc/munge/munge.key").sha256sum
