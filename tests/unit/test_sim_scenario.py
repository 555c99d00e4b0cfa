"""The roles' Molecule scenarios (issue 15): their inventories and the scenario files themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ailab.inventory import load_cluster
from ailab.validate import validate
from simulator import ssh
from simulator.errors import SimError
from simulator.scenario import (
    scenario_hosts_yml,
    scenario_names,
    scenario_prefix,
    scenario_subnet,
    write_scenario_inventory,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "inventory" / "sim"
MOLECULE = ROOT / "molecule"
NAMES = scenario_names(MOLECULE)
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())


def site_role_tags() -> dict[str, set[str]]:
    """Each role entry of site.yml -> its tags."""
    tags: dict[str, set[str]] = {}
    for play in yaml.safe_load((ROOT / "site.yml").read_text()):
        for entry in play.get("roles", []):
            tags.setdefault(entry["role"], set()).update(entry.get("tags", []))
    return tags


def test_every_role_has_a_scenario_and_every_scenario_a_role():
    assert NAMES == ROLES


def test_site_yml_tags_each_role_with_its_name_and_preflight_always():
    assert {role: {role} for role in ROLES} == site_role_tags()
    preflight = yaml.safe_load((ROOT / "site.yml").read_text())[0]
    assert preflight["ansible.builtin.import_playbook"] == "playbooks/preflight.yml"
    assert preflight["tags"] == ["always"]


@pytest.mark.parametrize("name", NAMES)
def test_scenario_converges_its_role_on_exactly_its_hosts(name, tmp_path):
    data = yaml.safe_load((MOLECULE / name / "molecule.yml").read_text())
    hosts = [p["name"] for p in data["platforms"]]
    options = data["provisioner"]["options"]
    # The role last, after what it needs, all of them site.yml tags.
    tags = options["tags"].split(",")
    assert tags[-1] == name and tags[0] == "common" and set(tags) <= set(ROLES), tags
    # --limit: the pre-flight plays (localhost) and the hosts the scenario creates; a host created but not
    # converged is the operations host alone (the pre-flight reads its deletion record).
    limit = options["limit"].split(",")
    assert limit[0] == "localhost" and set(limit[1:]) <= set(hosts), limit
    assert set(hosts) - set(limit) <= {"fe01"}, hosts
    write_scenario_inventory(SOURCE, tmp_path / "inv", name, NAMES)
    cluster = load_cluster(tmp_path / "inv")[0]
    assert set(hosts) <= set(cluster.hosts), f"{name}: platforms not in its inventory"
    assert cluster.operations_host in hosts or cluster.frontends[0].name in hosts
    # The role's play reaches at least one of the scenario's hosts.
    tests = list((MOLECULE / name / "tests").glob("test_*.py"))
    assert tests, f"{name}: no testinfra checks"
    for test in tests:
        namespace: dict = {}
        line = next(t for t in test.read_text().splitlines() if t.startswith("testinfra_hosts"))
        exec(compile(line, str(test), "exec"), namespace)
        assert set(namespace["testinfra_hosts"]) <= set(limit[1:]), test


@pytest.mark.parametrize("role", ROLES)
def test_each_role_readme_says_how_to_run_its_scenario(role):
    assert f"molecule test -s {role}" in (ROOT / "roles" / role / "README.md").read_text()


def test_scenario_inventory_is_the_sim_on_its_own_network_with_renamed_compute_nodes(tmp_path):
    source = load_cluster(SOURCE)[0]
    prefix = write_scenario_inventory(SOURCE, tmp_path / "inv", "common", NAMES)
    cluster = load_cluster(tmp_path / "inv")[0]
    assert prefix == "ailab-mol-common"
    index = NAMES.index("common") + 1
    assert (cluster.sim.prefix, cluster.sim.network, cluster.sim.subnet) == (
        prefix, prefix, f"10.216.{index}.0/24",
    )  # fmt: skip
    assert cluster.admin_networks == (f"10.216.{index}.1/32",)
    expected = {
        (f"mol-{h.name}" if h.name in {c.name for c in source.compute} else h.name): h.address.rsplit(".", 1)[
            1
        ]
        for h in source.hosts.values()
    }
    assert {h.name: h.address.rsplit(".", 1)[1] for h in cluster.hosts.values()} == expected
    assert all(h.address.startswith(f"10.216.{index}.") for h in cluster.hosts.values())
    # The same users, policy and classes: the model the whole cluster gets.
    assert cluster.users == source.users and cluster.policy == source.policy
    assert [p.name for p in cluster.partitions] == [p.name for p in source.partitions]
    assert set(cluster.node_classes) == set(source.node_classes)
    assert validate(cluster) == []


def test_scenario_hosts_yml_keeps_groups_and_does_not_touch_its_input():
    source = {
        "all": {"children": {
            "frontend": {"hosts": {"fe01": {"ailab_address": "10.213.0.10"}}},
            "compute": {"children": {"compute_t4": {"hosts": {"t4-01": {"ailab_address": "10.213.0.21"}}}}},
        }}
    }  # fmt: skip
    out = scenario_hosts_yml(source, "10.216.7.0/24")
    assert out["all"]["children"]["frontend"]["hosts"] == {"fe01": {"ailab_address": "10.216.7.10"}}
    assert out["all"]["children"]["compute"]["children"]["compute_t4"]["hosts"] == {
        "mol-t4-01": {"ailab_address": "10.216.7.21"}
    }
    assert source["all"]["children"]["frontend"]["hosts"]["fe01"]["ailab_address"] == "10.213.0.10"


def test_each_scenario_gets_its_own_subnet():
    subnets = [scenario_subnet(n, NAMES) for n in NAMES]
    assert len(set(subnets)) == len(NAMES)
    assert "10.216.0.0/24" not in subnets


def test_bad_scenario_names_are_refused_with_the_fix():
    with pytest.raises(SimError, match="no Molecule scenario 'nope'") as exc:
        scenario_subnet("nope", NAMES)
    assert "common" in exc.value.fix
    with pytest.raises(SimError, match="lower-case letters"):
        scenario_prefix("Bad-Name")


def test_ssh_config_names_every_host_with_pinned_keys(tmp_path):
    write_scenario_inventory(SOURCE, tmp_path / "inv", "munge", NAMES)
    cluster = load_cluster(tmp_path / "inv")[0]
    files = ssh.ssh_files(cluster)
    text = ssh.ssh_config_text(cluster, files)
    blocks = text.split("Host ")[1:]
    assert [b.splitlines()[0] for b in blocks] == sorted(cluster.hosts)
    ctl = next(b for b in blocks if b.startswith("ctl01\n"))
    assert f"HostName {cluster.hosts['ctl01'].address}" in ctl
    assert "StrictHostKeyChecking yes" in ctl and f"UserKnownHostsFile {files.known_hosts}" in ctl
    assert f"IdentityFile {files.private_key}" in ctl and "User root" in ctl


@pytest.mark.parametrize(("name", "directory"), [("accounts", False), ("sshd", False), ("directory", True)])
def test_only_the_directory_scenario_keeps_the_directory(tmp_path, name, directory):
    write_scenario_inventory(SOURCE, tmp_path / "inv", name, NAMES)
    cluster = load_cluster(tmp_path / "inv")[0]
    assert cluster.directory.enabled is directory
    assert bool(cluster.directory_hosts) is directory
