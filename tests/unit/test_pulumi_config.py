"""Stack configuration: every bad key is named with its fix, and a stack that cannot be built declares
nothing at all (checked against the mock monitor)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pulumi
import pytest
import yaml

from ailab_cloud import program
from ailab_cloud.settings import StackConfigError, parse_settings
from tests.unit.pulumi_harness import (
    ROOT,
    encode,
    gcp_config,
    last_run,
    openstack_config,
    run_stack,
)


def fields(exc: StackConfigError) -> set[str]:
    return {p.field for p in exc.problems}


def test_gcp_settings():
    settings = parse_settings(encode(gcp_config(nodes={"t4": 5}, machineTypes={"storage": "n2-standard-8"})))
    assert settings.cloud == "gcp"
    assert settings.admin_cidrs == ("192.0.2.0/24", "198.51.100.7/32")
    assert settings.node_counts == {"t4": 5}
    assert settings.gpus == {"t4": 4, "v100": 8}
    assert settings.storage_nodes == 3
    assert settings.gcp is not None and settings.openstack is None
    assert settings.gcp.zone == "europe-west4-a"
    assert settings.gcp.image == "debian-cloud/debian-12"
    assert settings.gcp.machine_types["storage"] == "n2-standard-8"
    assert settings.gcp.machine_types["frontend"] == "e2-standard-4"


def test_openstack_settings():
    settings = parse_settings(encode(openstack_config(dnsNameservers=["192.0.2.53"])))
    assert settings.openstack is not None and settings.gcp is None
    assert settings.openstack.external_network == "public"
    assert settings.openstack.flavors["t4"] == "g1.t4x4"
    assert settings.openstack.dns_nameservers == ("192.0.2.53",)
    assert settings.osd_disks_per_node == 2


@pytest.mark.parametrize("stack", ["gcp", "openstack"])
def test_example_stack_files_deploy(stack):
    """pulumi/Pulumi.<stack>.yaml as shipped: valid, and every node class gets machines."""
    config = yaml.safe_load((ROOT / "pulumi" / f"Pulumi.{stack}.yaml").read_text())["config"]
    run = run_stack({k.removeprefix("ailab-cloud:"): v for k, v in config.items()}, stack=stack)
    assert run.outputs["cloud"] == stack
    assert set(run.outputs["node_classes"]) == {"compute_t4", "compute_l4", "compute_a100", "compute_v100"}
    assert run.outputs["storage"]["managed"] is True


def test_values_arrive_as_strings():
    """The language host passes numbers as strings ("3"), structures as JSON."""
    raw = encode(gcp_config())
    raw["ailab-cloud:storageNodes"] = "3"
    raw["ailab-cloud:nodes"] = '{"t4": "4"}'
    settings = parse_settings(raw)
    assert settings.storage_nodes == 3
    assert settings.node_counts == {"t4": 4}


def _without(config: dict, name: str) -> dict:
    return {k: v for k, v in config.items() if k != name}


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        (_without(gcp_config(), "cloud"), "ailab-cloud:cloud", "is missing"),
        (gcp_config(cloud="aws"), "ailab-cloud:cloud", "unknown cloud 'aws'"),
        (_without(gcp_config(), "inventory"), "ailab-cloud:inventory", "is missing"),
        (_without(gcp_config(), "adminCidrs"), "ailab-cloud:adminCidrs", "is missing"),
        (gcp_config(adminCidrs=[]), "ailab-cloud:adminCidrs", "is empty"),
        (gcp_config(adminCidrs=["10.0.0.0/33"]), "ailab-cloud:adminCidrs[0]", "is not a CIDR"),
        (_without(gcp_config(), "adminSshKey"), "ailab-cloud:adminSshKey", "is missing"),
        (gcp_config(adminSshKey="hunter2"), "ailab-cloud:adminSshKey", "not an OpenSSH public key"),
        (gcp_config(adminUser="Admin User"), "ailab-cloud:adminUser", "not a Linux user name"),
        (gcp_config(subnetCidr="8.8.8.0/24"), "ailab-cloud:subnetCidr", "not a private IPv4"),
        (_without(gcp_config(), "gcpProject"), "ailab-cloud:gcpProject", "is missing"),
        (_without(gcp_config(), "gcpZone"), "ailab-cloud:gcpZone", "is missing"),
        (gcp_config(gcpZone="us-east1-b"), "ailab-cloud:gcpZone", "not in region europe-west4"),
        (gcp_config(nodes={"t4": -1}), "ailab-cloud:nodes.t4", "0 or more"),
        (gcp_config(nodes={"t4": "many"}), "ailab-cloud:nodes.t4", "0 or more"),
        (gcp_config(nodes=5), "ailab-cloud:nodes", "must be a map"),
        (gcp_config(gpus={"t4": 0}), "ailab-cloud:gpus.t4", "compute nodes are GPU nodes"),
        (gcp_config(storageNodes=-1), "ailab-cloud:storageNodes", "below 0"),
        (gcp_config(osdDiskGb=1), "ailab-cloud:osdDiskGb", "below 10"),
        (gcp_config(machineTypes={"t4": "n1-standard-8"}), "ailab-cloud:machineTypes.t4", "is not a role"),
        (gcp_config(flavors={"frontend": "m1"}), "ailab-cloud:flavors", "only used when cloud is openstack"),
        (gcp_config(node={"t4": 3}), "ailab-cloud:node", "unknown key"),
        (_without(openstack_config(), "externalNetwork"), "ailab-cloud:externalNetwork", "is missing"),
        (_without(openstack_config(), "image"), "ailab-cloud:image", "is missing"),
        (openstack_config(flavors={"t4": "g1"}), "ailab-cloud:flavors.frontend", "is missing"),
        (openstack_config(gcpZone="europe-west4-a"), "ailab-cloud:gcpZone", "only used when cloud is gcp"),
        (openstack_config(dnsNameservers=["dns.example"]), "ailab-cloud:dnsNameservers[0]", "not an IP"),
    ],
)
def test_bad_setting_is_named_with_its_fix(config, field, words):
    with pytest.raises(StackConfigError) as exc:
        parse_settings(encode(config), stack="dev")
    problem = next(p for p in exc.value.problems if p.field == field)
    assert words in problem.message
    assert problem.where == "Pulumi.dev.yaml"
    assert problem.fix
    assert "no resource was declared" in str(exc.value)


def test_every_problem_is_reported_at_once():
    config = _without(gcp_config(cloud="gcp", nodes={"t4": -3}), "adminSshKey")
    with pytest.raises(StackConfigError) as exc:
        parse_settings(encode(_without(config, "gcpRegion")))
    assert {"ailab-cloud:adminSshKey", "ailab-cloud:gcpRegion", "ailab-cloud:nodes.t4"} <= fields(exc.value)


def inventory_without_frontend(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "production", inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["children"]["frontend"] = {"hosts": {}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inv


@pytest.mark.parametrize(
    ("case", "config", "field", "words"),
    [
        ("unknown cloud", gcp_config(cloud="azure"), "ailab-cloud:cloud", "unknown cloud"),
        ("missing key", _without(gcp_config(), "gcpProject"), "ailab-cloud:gcpProject", "is missing"),
        ("count below 0", gcp_config(nodes={"l4": -2}), "ailab-cloud:nodes.l4", "0 or more"),
        (
            "model without mapping on gcp",
            gcp_config(inventory="../inventory/sim", gpus={}, storageNodes=None),
            "ailab-cloud:nodes.a40",
            "(2x a40) has no mapping on gcp",
        ),
        (
            "GPU count without mapping on gcp",
            gcp_config(gpus={"v100": 8}),  # the inventory's t4 nodes have 6 GPUs
            "ailab-cloud:gpus.t4",
            "(6x t4) has no mapping on gcp",
        ),
        (
            "class without flavor on openstack",
            openstack_config(
                flavors={"frontend": "m1.large", "controller": "m1.large", "storage": "m1.xlarge"}
            ),
            "ailab-cloud:flavors.t4",
            "has no mapping on openstack",
        ),
        (
            "unknown node class",
            gcp_config(nodes={"h200": 1}),
            "ailab-cloud:nodes.h200",
            "no node class 'h200'",
        ),
        (
            "class emptied out of its partition",
            gcp_config(nodes={"v100": 0}),
            "ailab-cloud:nodes.v100",
            "leaves partition v100 without nodes",
        ),
        (
            "missing inventory",
            gcp_config(inventory="../inventory/nope"),
            "ailab-cloud:inventory",
            "does not exist",
        ),
        (
            "subnet too small",
            gcp_config(subnetCidr="10.80.0.0/28"),
            "ailab-cloud:subnetCidr",
            "has room for 10",
        ),
        (
            "own Ceph without storage nodes",
            openstack_config(
                inventory="../inventory/sim",
                storageNodes=0,
                flavors={
                    "frontend": "m1.large",
                    "controller": "m1.large",
                    "t4": "g1.t4x4",
                    "a40": "g1.a40x2",
                },
            ),
            "ailab-cloud:storageNodes",
            "runs its own Ceph",
        ),
    ],
)
def test_invalid_stack_declares_no_resource(case, config, field, words):
    with pytest.raises(StackConfigError) as exc:
        run_stack(config)
    assert last_run[0].resources == [], f"{case}: resources were declared before the check failed"
    assert last_run[0].calls == [], f"{case}: the clouds were queried before the check failed"
    problem = next((p for p in exc.value.problems if p.field == field), None)
    assert problem is not None, f"{case}: no problem for {field} in {exc.value}"
    assert words in problem.message
    assert problem.fix


def test_no_frontend_declares_no_resource(tmp_path):
    inv = inventory_without_frontend(tmp_path)
    with pytest.raises(StackConfigError) as exc:
        run_stack(gcp_config(inventory=str(inv)))
    assert last_run[0].resources == []
    first = exc.value.problems[0]
    assert first.field == "ailab-cloud:inventory"
    assert "has no front-end" in first.message
    assert "group frontend" in first.fix


def test_main_stops_with_a_clean_error_and_no_resources():
    """`pulumi up` shows the problem lines (RunError: no Python traceback)."""
    from tests.unit.pulumi_harness import CloudMocks, RecordingMonitor

    mocks = CloudMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="ailab-cloud", stack="broken", monitor=monitor)
    pulumi.runtime.set_all_config(encode(gcp_config(cloud="aws")))
    with pytest.raises(pulumi.RunError) as exc:
        program.main()
    assert "Pulumi.broken.yaml: ailab-cloud:cloud: unknown cloud 'aws'" in str(exc.value)
    assert monitor.recorded == []
