"""The simulator is reached over SSH like production: the controller key, the pinned host keys, and the
inventory settings that make Ansible use them (strictly, no host_key_checking=False)."""

from __future__ import annotations

import configparser
import dataclasses
import io
import subprocess
from pathlib import Path

import pytest
import yaml

from ailab.inventory import load_cluster
from simulator import ssh
from simulator.errors import SimError
from simulator.progress import Progress
from tests.unit.test_sim_api import FakeDocker, all_running

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4Fz02EPX root@a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuacsBaeSbsEFS root@b"


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(ROOT / "inventory" / "sim")[0]


def test_known_hosts_names_every_host_by_name_fqdn_and_address(cluster):
    text = ssh.known_hosts_text(cluster, {"fe01": KEY_A + "\n", "ctl01": KEY_B})
    assert text.splitlines() == [
        "ctl01,ctl01.sim.ailab.test,10.213.0.11 " + " ".join(KEY_B.split()[:2]),
        "fe01,fe01.sim.ailab.test,10.213.0.10 " + " ".join(KEY_A.split()[:2]),
    ]


def test_merge_replaces_stale_keys_and_keeps_other_hosts():
    old = "fe01,10.0.0.10 ssh-ed25519 OLD\nt4-03,10.0.0.23 ssh-ed25519 KEEP\n"
    new = "fe01,10.0.0.10 ssh-ed25519 NEW\n"
    merged = ssh.merge_known_hosts(old, new)
    assert merged == "fe01,10.0.0.10 ssh-ed25519 NEW\nt4-03,10.0.0.23 ssh-ed25519 KEEP\n"
    # A host that moved to an address another line still names: the old line goes.
    assert ssh.merge_known_hosts("x,10.0.0.10 ssh-ed25519 OLD\n", new) == new


def test_a_host_key_that_is_not_a_public_key_is_refused(cluster):
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        ssh.known_hosts_text(cluster, {"fe01": "cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file"})


def test_no_secrets_dir_is_a_clear_error(cluster):
    with pytest.raises(SimError) as err:
        ssh.ssh_files(dataclasses.replace(cluster, secrets_dir=""))
    assert "ailab_secrets_dir" in str(err.value) and "group_vars/all/cluster.yml" in err.value.fix


def test_key_is_made_once_in_a_private_directory(tmp_path, cluster):
    files = ssh.ssh_files(dataclasses.replace(cluster, secrets_dir=str(tmp_path / "secrets")))
    first = ssh.ensure_key(files, "test")
    assert first.startswith("ssh-ed25519 ") and first.endswith(" test")
    assert ssh.ensure_key(files, "test") == first  # kept, not regenerated
    assert (files.directory.stat().st_mode & 0o777) == 0o700
    assert (files.private_key.stat().st_mode & 0o777) == 0o600


def test_up_authorizes_the_key_and_pins_every_host(tmp_path, cluster):
    from simulator.api import Sim

    cluster = dataclasses.replace(cluster, secrets_dir=str(tmp_path))
    docker = FakeDocker(all_running(cluster))
    docker.exec_result = subprocess.CompletedProcess([], 0, KEY_A + "\n", "")
    sim = Sim("inventory/sim", docker=docker, progress=Progress(io.StringIO()), cluster=cluster)
    files = sim.pin_ssh(list(cluster.hosts))
    execs = [c for c in docker.calls if c[:1] == ["exec"]]
    assert sorted(c[1] for c in execs) == sorted(f"ailab-{h}" for h in cluster.hosts)
    public = files.public_key.read_text().strip()
    assert all(public in c and ssh.AUTHORIZED_KEYS in c and ssh.HOST_KEY in c for c in execs)
    pinned = files.known_hosts.read_text().splitlines()
    assert len(pinned) == len(cluster.hosts)
    assert all(line.endswith(" ".join(KEY_A.split()[:2])) for line in pinned)
    docker.exec_result = subprocess.CompletedProcess([], 1, "", "No such file")
    with pytest.raises(SimError, match="could not authorize"):
        sim.pin_ssh(["fe01"])


def test_ansible_reaches_the_simulator_over_ssh_with_pinned_keys():
    sim = yaml.safe_load((ROOT / "inventory" / "sim" / "group_vars" / "sim.yml").read_text())
    assert "ansible_connection" not in sim  # SSH, Ansible's default, as in production
    assert sim["ansible_host"] == "{{ ailab_address }}"
    assert sim["ansible_user"] == "root"  # inventory/production's user
    assert sim["ansible_ssh_private_key_file"].endswith("/ssh/id_ed25519")
    assert "StrictHostKeyChecking=yes" in sim["ansible_ssh_common_args"]
    assert "/ssh/known_hosts" in sim["ansible_ssh_common_args"]
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    assert cfg.get("defaults", "host_key_checking", fallback="True").lower() not in ("false", "no", "0")
    assert "ControlPersist" in cfg.get("ssh_connection", "ssh_args")
    assert cfg.getboolean("ssh_connection", "pipelining")
    production = yaml.safe_load(
        (ROOT / "inventory" / "production" / "group_vars" / "all" / "cluster.yml").read_text()
    )
    assert production["ansible_user"] == sim["ansible_user"]
