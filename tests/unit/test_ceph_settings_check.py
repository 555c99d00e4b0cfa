"""site.yml stops on bad CephFS settings before touching any node (its check plays need no connection)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from tests.unit.test_model_validation import ROOT

ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"


@pytest.fixture(scope="module")
def check_playbook(tmp_path_factory):
    """The plays of site.yml up to and including the CephFS settings check (none of them connects): its
    pre-flight plays, which site.yml imports first."""
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    assert site[0].get("ansible.builtin.import_playbook") == "playbooks/preflight.yml"
    plays = yaml.safe_load((ROOT / "playbooks" / "preflight.yml").read_text())
    names = [p["name"] for p in plays]
    last = next(i for i, n in enumerate(names) if n.startswith("Check the CephFS settings"))
    for play in plays[: last + 1]:
        assert play.get("gather_facts") is False, f"{play['name']} would connect to the nodes"
    path = tmp_path_factory.mktemp("play") / "checks.yml"
    path.write_text(yaml.safe_dump(plays[: last + 1], sort_keys=False))
    return path


def run(playbook, inventory: str, **extra) -> subprocess.CompletedProcess:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("no .venv/bin/ansible-playbook")
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(ROOT / "inventory" / inventory), str(playbook)]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_production_without_vault_keys_stops_naming_the_variable(check_playbook):
    out = run(check_playbook, "production")
    assert out.returncode != 0
    assert "vault_ailab_ceph_client_key" in out.stdout
    assert "CephFS client settings are incomplete" in out.stdout


def test_production_with_vault_keys_passes_the_checks(check_playbook):
    out = run(
        check_playbook,
        "production",
        vault_ailab_ceph_client_key="AQBJ/wNrEyOcHBAAk0L9NTs+eDvbME5dHwbZTA==",
        vault_ailab_ceph_admin_key="AQBJ/wNrEyOcHBAAk0L9NTs+eDvbME5dHwbZTB==",
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_production_without_admin_key_stops_naming_it(check_playbook):
    key = "AQBJ/wNrEyOcHBAAk0L9NTs+eDvbME5dHwbZTA=="
    out = run(check_playbook, "production", vault_ailab_ceph_client_key=key)
    assert out.returncode != 0
    assert "vault_ailab_ceph_admin_key" in out.stdout


def test_simulator_with_the_kernel_client_is_refused(check_playbook):
    sim = yaml.safe_load((ROOT / "inventory" / "sim" / "group_vars" / "all" / "cluster.yml").read_text())
    out = run(check_playbook, "sim", ailab_ceph={**sim["ailab_ceph"], "client": "kernel"})
    assert out.returncode != 0
    # The model's check (site.yml's first play) refuses it before the CephFS play would.
    assert "ailab_ceph.client: is kernel in a simulated cluster" in out.stdout
    assert "set ailab_ceph.client: fuse" in out.stdout


def test_datasets_inside_the_homes_is_refused(check_playbook):
    sim = yaml.safe_load((ROOT / "inventory" / "sim" / "group_vars" / "all" / "cluster.yml").read_text())
    out = run(check_playbook, "sim", ailab_ceph={**sim["ailab_ceph"], "datasets_path": "/ceph/home/datasets"})
    assert out.returncode != 0
    assert "ailab_ceph.datasets_path: /ceph/home/datasets is inside home_root /ceph/home" in out.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"cephfs_client_hung_grace": 30},
            "cephfs_client_hung_grace must be a whole number of seconds, at least 45",
        ),
        (
            {"cephfs_client_probe_timeout": "soon"},
            "cephfs_client_probe_timeout must be a whole number of seconds",
        ),
    ],
)
def test_bad_watchdog_timings_stop_before_any_node_naming_the_variable(check_playbook, extra, message):
    out = run(check_playbook, "sim", **extra)
    assert out.returncode != 0
    assert message in out.stdout, out.stdout[-2000:]


def test_watchdog_timings_as_strings_of_digits_pass(check_playbook):
    out = run(check_playbook, "sim", cephfs_client_hung_grace="120")
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.parametrize(("inventory", "host"), [("production", "ai-fe02"), ("sim", "t4-01")])
def test_the_admin_key_never_goes_on_a_host_students_log_in_to(check_playbook, inventory, host):
    out = run(
        check_playbook,
        inventory,
        user_dirs_admin_host=host,
        vault_ailab_ceph_client_key="AQBJ/wNrEyOcHBAAk0L9NTs+eDvbME5dHwbZTA==",
        vault_ailab_ceph_admin_key="AQBJ/wNrEyOcHBAAk0L9NTs+eDvbME5dHwbZTB==",
    )
    assert out.returncode != 0
    assert f"user_dirs_admin_host is {host}, a host students log in to" in out.stdout, out.stdout[-3000:]
    assert "groups['slurm_controller'] | first" in out.stdout
