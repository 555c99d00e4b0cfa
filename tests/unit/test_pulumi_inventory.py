"""`ailab inventory from-stack`: a stack's outputs become an inventory that `ailab inventory check` accepts,
with the source's policy, partitions and users and the cloud's addresses and hardware."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from ailab import cli
from ailab.inventory import load_cluster
from ailab.problems import InventoryError
from ailab.stack_inventory import (
    parse_outputs,
    render_hosts,
    transform_group_vars,
    write_inventory,
)
from tests.unit.pulumi_harness import ROOT, gcp_config, openstack_config, run_stack

SIM_FLAVORS = {
    "frontend": "m1.large",
    "controller": "m1.large",
    "storage": "m1.xlarge",
    "t4": "g1.t4x4",
    "a40": "g1.a40x2",
}


def stack_outputs(config: dict) -> dict:
    """What `pulumi stack output --json` prints for a stack with ``config``."""
    return json.loads(json.dumps(run_stack(config).outputs))


@pytest.fixture(scope="module")
def gcp_outputs() -> dict:
    return stack_outputs(gcp_config(nodes={"t4": 4}))


@pytest.fixture(scope="module")
def gcp_inventory(gcp_outputs, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("gcp") / "inventory"
    write_inventory(parse_outputs(gcp_outputs), ROOT / "inventory" / "production", dest)
    return dest


@pytest.mark.parametrize(
    ("case", "config", "source"),
    [
        ("gcp", gcp_config(), "production"),
        ("gcp, more t4 nodes", gcp_config(nodes={"t4": 6}, storageNodes=0), "production"),
        ("openstack", openstack_config(), "production"),
        (
            "openstack from the simulator's inventory",
            openstack_config(inventory="../inventory/sim", flavors=SIM_FLAVORS),
            "sim",
        ),
    ],
)
def test_generated_inventory_passes_the_check(tmp_path, case, config, source):
    outputs = parse_outputs(stack_outputs(config))
    write_inventory(outputs, ROOT / "inventory" / source, tmp_path / "inv")
    cluster, problems = load_cluster(tmp_path / "inv", strict=False)
    assert problems == [], f"{case}: " + "\n".join(map(str, problems))
    assert set(cluster.hosts) == set(outputs.hosts)
    for name, host in outputs.hosts.items():
        assert cluster.hosts[name].address == host.address
        assert set(cluster.hosts[name].groups) == set(host.groups)
    for group, hardware in outputs.hardware.items():
        for name in cluster.node_classes[group].hosts:
            hw = cluster.hosts[name].hardware
            assert hw is not None and hw.gpu is not None
            assert (hw.cpus, hw.memory_mb, hw.gpu.count) == (
                hardware["sockets"] * hardware["cores_per_socket"] * hardware["threads_per_core"],
                hardware["memory_mb"],
                hardware["gpu"]["count"],
            )
    source_cluster, _ = load_cluster(ROOT / "inventory" / source)
    # storage nodes in the stack: Ceph runs there; none: the source's Ceph setting stays
    assert cluster.ceph.managed == (outputs.storage_managed or source_cluster.ceph.managed)


def test_policy_partitions_and_users_carry_over(gcp_inventory):
    source, _ = load_cluster(ROOT / "inventory" / "production")
    cloud, _ = load_cluster(gcp_inventory)
    assert cloud.policy == source.policy
    assert cloud.users == source.users
    assert cloud.projects == source.projects
    assert [p.name for p in cloud.partitions] == [p.name for p in source.partitions]
    t4 = next(p for p in cloud.partitions if p.name == "t4")
    assert t4.nodes == ("a256-t4-01", "a256-t4-02", "a256-t4-03", "a256-t4-04")  # the extra node is in
    assert cloud.slurm == source.slurm
    # the stack runs Ceph on its storage nodes: the inventory now manages it, monitors from group ceph
    assert cloud.ceph.managed and cloud.ceph.monitors == ()
    assert [h.name for h in cloud.ceph_hosts] == ["stor01", "stor02", "stor03"]


def test_hosts_are_reached_through_the_frontend(gcp_inventory, gcp_outputs):
    hosts = yaml.safe_load((gcp_inventory / "hosts.yml").read_text())
    children = hosts["all"]["children"]
    fe = children["frontend"]["hosts"]["ai-fe02"]
    public = gcp_outputs["hosts"]["ai-fe02"]["public_address"]
    assert fe["ansible_host"] == public
    assert fe["ailab_address"] == gcp_outputs["hosts"]["ai-fe02"]["address"]
    assert "ansible_ssh_common_args" not in fe
    t4 = children["compute"]["children"]["compute_t4"]["hosts"]["a256-t4-04"]
    assert t4["ansible_host"] == t4["ailab_address"] == gcp_outputs["hosts"]["a256-t4-04"]["address"]
    assert t4["ansible_ssh_common_args"] == f"-o ProxyJump=debian@{public}"
    assert (t4["ansible_user"], t4["ansible_become"], t4["ansible_connection"]) == ("debian", True, "ssh")
    stor = children["ceph"]["hosts"]["stor02"]
    assert stor["ceph_cluster_osd_devices"] == ["/dev/disk/by-id/google-osd0"]


def test_cloud_hardware_replaces_the_bare_metal_one(gcp_inventory):
    t4 = yaml.safe_load((gcp_inventory / "group_vars" / "compute_t4.yml").read_text())
    assert t4["ailab_hardware"]["cpu_model"] == "GCP n1-highmem-32"
    assert t4["ailab_hardware"]["gpu"] == {"model": "t4", "count": 4, "memory_gb": 16}
    cluster_yml = (gcp_inventory / "group_vars" / "all" / "cluster.yml").read_text()
    assert cluster_yml.startswith("# Generated by `ailab inventory from-stack`")
    data = yaml.safe_load(cluster_yml)
    assert "ansible_user" not in data and "ansible_host" not in data  # hosts.yml sets them per host
    # files the cloud does not change are copied byte for byte
    for name in ("policy.yml", "partitions.yml", "users.yml"):
        assert (gcp_inventory / "group_vars" / "all" / name).read_text() == (
            ROOT / "inventory" / "production" / "group_vars" / "all" / name
        ).read_text()


def test_simulator_settings_do_not_reach_the_cloud(tmp_path):
    outputs = parse_outputs(
        # three storage nodes: on a cloud (no ailab_sim) one would keep the homes in a single copy
        stack_outputs(openstack_config(inventory="../inventory/sim", flavors=SIM_FLAVORS, storageNodes=3))
    )
    write_inventory(outputs, ROOT / "inventory" / "sim", tmp_path / "inv")
    cluster_yml = yaml.safe_load((tmp_path / "inv" / "group_vars" / "all" / "cluster.yml").read_text())
    assert "ailab_sim" not in cluster_yml
    sim_yml = yaml.safe_load((tmp_path / "inv" / "group_vars" / "sim.yml").read_text())
    assert "ansible_connection" not in sim_yml  # no docker connection on the cloud
    hosts = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())
    assert list(hosts["all"]["children"]) == ["sim"]  # the source's group tree is kept
    assert "stor01" in hosts["all"]["children"]["sim"]["children"]["ceph"]["hosts"]
    cluster, problems = load_cluster(tmp_path / "inv", strict=False)
    assert problems == []
    assert cluster.sim is None


def test_cli_reads_outputs_from_stdin_and_checks_the_result(tmp_path, monkeypatch, capsys, gcp_outputs):
    monkeypatch.chdir(ROOT)  # the stack's inventory path is relative to the repository root
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(gcp_outputs)))
    dest = tmp_path / "cloud"
    assert cli.main(["inventory", "from-stack", "-o", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "from inventory/production" in out
    assert f"{dest}: OK: 15 hosts" in out
    assert cli.main(["inventory", "check", "-i", str(dest)]) == 0


def test_cli_reads_an_outputs_file_and_refuses_to_overwrite(tmp_path, capsys, gcp_outputs):
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(gcp_outputs))
    dest = tmp_path / "cloud"
    source = str(ROOT / "inventory" / "production")
    args = ["inventory", "from-stack", str(outputs_file), "-o", str(dest), "--source", source]
    assert cli.main(args) == 0
    assert cli.main(args) == 2
    assert "pass --force" in capsys.readouterr().err
    (dest / "host_vars").mkdir()
    (dest / "host_vars" / "old.yml").write_text("ailab_address: 10.0.0.1\n")
    assert cli.main([*args, "--force"]) == 0
    assert not (dest / "host_vars").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], ""),
        ({"cloud": "gcp"}, "cluster"),
        (
            {
                "cloud": "gcp",
                "cluster": "c",
                "admin_user": "u",
                "node_classes": {},
                "storage": {},
                "hosts": {},
            },
            "hosts",
        ),
        (
            {
                "cloud": "gcp",
                "cluster": "c",
                "admin_user": "u",
                "node_classes": {},
                "storage": {},
                "hosts": {"fe": {"address": None, "groups": ["frontend"]}},
            },
            "hosts.fe.address",
        ),
    ],
)
def test_bad_outputs_are_named(data, field):
    with pytest.raises(InventoryError) as exc:
        parse_outputs(data)
    assert field in {p.field for p in exc.value.problems}


def test_render_hosts_lists_each_host_under_its_most_specific_groups():
    outputs = parse_outputs(
        {
            "cloud": "gcp",
            "cluster": "c",
            "admin_user": "u",
            "node_classes": {},
            "storage": {"managed": False},
            "hosts": {
                "fe": {"address": "10.0.0.2", "public_address": "192.0.2.1", "groups": ["frontend", "login"]},
                "n1": {"address": "10.0.0.3", "groups": ["compute", "compute_t4", "login"]},
            },
        }
    )
    tree = {"all": ["frontend", "compute", "login"], "compute": ["compute_t4"], "compute_t4": [], "login": []}
    rendered = render_hosts(tree, ["frontend", "compute", "login"], outputs)["all"]["children"]
    assert list(rendered["frontend"]["hosts"]) == ["fe"]
    assert "hosts" not in rendered["compute"]  # n1 is listed under compute_t4 only
    assert rendered["compute"]["children"]["compute_t4"]["hosts"]["n1"]["ansible_host"] == "10.0.0.3"
    # a host's variables are written once; later listings only name it
    assert rendered["login"]["hosts"] == {"fe": None, "n1": None}


def test_group_vars_the_cloud_does_not_touch_are_copied_unchanged():
    outputs = parse_outputs(
        {
            "cloud": "gcp",
            "cluster": "c",
            "admin_user": "u",
            "node_classes": {"compute_t4": {"hardware": {"sockets": 1}}},
            "storage": {"managed": True},
            "hosts": {"fe": {"address": "10.0.0.2", "public_address": "192.0.2.1", "groups": ["frontend"]}},
        }
    )
    vault = "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n"
    assert transform_group_vars(Path("all/vault.yml"), vault, outputs) is None
    assert (
        transform_group_vars(Path("all/policy.yml"), "ailab_policy: {max_job_time: '12:00:00'}\n", outputs)
        is None
    )
    tagged = "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"
    assert transform_group_vars(Path("all/secrets.yml"), tagged, outputs) is None
    changed = transform_group_vars(
        Path("compute_t4.yml"), "ailab_hardware: {sockets: 2}\nother: 1\n", outputs
    )
    assert yaml.safe_load(changed) == {"ailab_hardware": {"sockets": 1}, "other": 1}
    ceph = transform_group_vars(
        Path("all/cluster.yml"), "ailab_ceph: {managed: false, monitors: [1.2.3.4]}\n", outputs
    )
    assert yaml.safe_load(ceph) == {"ailab_ceph": {"managed": True}}
