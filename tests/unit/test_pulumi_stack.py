"""The resources each cloud's stack declares (Pulumi mocks): machines per node class, what is open to the
internet, accelerators, disks, and that raising a count adds only the new machines."""

from __future__ import annotations

import ipaddress

import pytest

from tests.unit.pulumi_harness import StackRun, gcp_config, openstack_config, run_stack

GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
OS_INSTANCE = "openstack:compute/instance:Instance"
OS_PORT = "openstack:networking/port:Port"
OS_RULE = "openstack:networking/secGroupRule:SecGroupRule"
SUBNET = ipaddress.ip_network("10.80.0.0/24")

PRODUCTION_HOSTS = {
    "ai-fe02",
    "ai-ctl01",
    "a256-t4-01",
    "a256-t4-02",
    "a256-t4-03",
    "a768-l4-01",
    "a768-l4-02",
    "a768-l4-03",
    "a768-l4-04",
    "a1024-a100-01",
    "dgx2-01",
}


@pytest.fixture(scope="module")
def gcp_run() -> StackRun:
    return run_stack(gcp_config())


@pytest.fixture(scope="module")
def openstack_run() -> StackRun:
    return run_stack(openstack_config())


def instances(run: StackRun, typ: str = GCP_INSTANCE) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.of_type(typ)}


# --- GCP ------------------------------------------------------------------------------------------------


def test_gcp_declares_every_inventory_host_plus_storage(gcp_run):
    assert set(instances(gcp_run)) == PRODUCTION_HOSTS | {"stor01", "stor02", "stor03"}
    for name, inputs in instances(gcp_run).items():
        assert inputs["name"] == name  # the VM is named (and its hostname set) after the inventory host
        assert inputs["bootDisk"]["initializeParams"]["image"] == "debian-cloud/debian-12"
        assert inputs["zone"] == "europe-west4-a"
        assert inputs["project"] == "ailab-test"


@pytest.mark.parametrize(
    ("host", "machine_type", "accelerator", "count", "node_class"),
    [
        ("a256-t4-01", "n1-highmem-32", "nvidia-tesla-t4", 4, "t4"),
        ("a768-l4-02", "g2-standard-96", "nvidia-l4", 8, "l4"),
        ("a1024-a100-01", "a2-ultragpu-8g", "nvidia-a100-80gb", 8, "a100"),
        ("dgx2-01", "n1-highmem-64", "nvidia-tesla-v100", 8, "v100"),
    ],
)
def test_gcp_gpu_nodes(gcp_run, host, machine_type, accelerator, count, node_class):
    inputs = instances(gcp_run)[host]
    assert inputs["machineType"] == machine_type
    assert inputs["guestAccelerators"] == [{"type": accelerator, "count": count}]
    assert inputs["scheduling"]["onHostMaintenance"] == "TERMINATE"  # GPU VMs cannot live-migrate
    assert inputs["scheduling"]["automaticRestart"] is True
    assert inputs["labels"] == {"cluster": "ailab", "role": "compute", "node-class": node_class}
    assert inputs["bootDisk"]["initializeParams"]["size"] == 200
    nic = inputs["networkInterfaces"][0]
    assert not nic.get("accessConfigs"), f"{host} must not have a public address"


def test_gcp_gpu_class_with_a_40gb_a100_uses_a2_standard():
    run = run_stack(gcp_config(gpus={"t4": 4, "v100": 8, "a100": 2}))
    inputs = instances(run)["a1024-a100-01"]
    assert inputs["machineType"] == "a2-ultragpu-2g"
    assert run.outputs["node_classes"]["compute_a100"]["hardware"]["gpu"]["count"] == 2


@pytest.mark.parametrize(
    ("host", "role", "machine_type"),
    [
        ("ai-fe02", "frontend", "e2-standard-4"),
        ("ai-ctl01", "controller", "e2-standard-4"),
        ("stor02", "storage", "e2-standard-8"),
    ],
)
def test_gcp_role_nodes(gcp_run, host, role, machine_type):
    inputs = instances(gcp_run)[host]
    assert inputs["machineType"] == machine_type
    assert inputs["labels"] == {"cluster": "ailab", "role": role, "node-class": "none"}
    assert not inputs.get("guestAccelerators")
    assert inputs["scheduling"]["onHostMaintenance"] == "MIGRATE"
    assert inputs["metadata"]["ssh-keys"].startswith("debian:ssh-ed25519 ")


def test_gcp_only_the_frontend_has_a_public_address(gcp_run):
    public = {
        name for name, i in instances(gcp_run).items() if i["networkInterfaces"][0].get("accessConfigs")
    }
    assert public == {"ai-fe02"}
    address = gcp_run.named("ai-fe02-public").inputs
    assert address["addressType"] == "EXTERNAL"
    nat_ip = instances(gcp_run)["ai-fe02"]["networkInterfaces"][0]["accessConfigs"][0]["natIp"]
    assert nat_ip == gcp_run.outputs["frontend_public_ip"]
    assert [r.name for r in gcp_run.of_type("gcp:compute/address:Address")] == ["ai-fe02-public"]


def test_gcp_nothing_but_ssh_to_the_frontend_is_open_to_the_internet(gcp_run):
    frontend_tags = set(instances(gcp_run)["ai-fe02"]["tags"])
    for name, inputs in instances(gcp_run).items():
        if name != "ai-fe02":
            assert not set(inputs.get("tags") or []) & frontend_tags, f"{name} carries the front-end's tag"
    rules = gcp_run.of_type(GCP_FIREWALL)
    assert len(rules) == 2
    outside = []
    for rule in rules:
        inputs = rule.inputs
        assert inputs.get("direction", "INGRESS") == "INGRESS"
        assert not inputs.get("denies")
        # a rule without source ranges or tags would mean 0.0.0.0/0
        assert inputs.get("sourceRanges"), f"{rule.name} has no source ranges"
        assert not inputs.get("sourceTags")
        for cidr in inputs["sourceRanges"]:
            if ipaddress.ip_network(cidr).subnet_of(SUBNET):
                continue
            outside.append(rule.name)
            assert inputs["allows"] == [{"protocol": "tcp", "ports": ["22"]}], (
                f"{rule.name} opens more than SSH"
            )
            assert set(inputs["targetTags"]) == frontend_tags, f"{rule.name} reaches more than the front-end"
    assert set(outside) == {"network-ssh-frontend"}
    ssh = gcp_run.named("network-ssh-frontend").inputs
    assert ssh["sourceRanges"] == ["192.0.2.0/24", "198.51.100.7/32"]
    internal = gcp_run.named("network-internal").inputs
    assert internal["sourceRanges"] == [str(SUBNET)]
    assert internal["allows"] == [{"protocol": "all"}]


def test_gcp_network_and_nat(gcp_run):
    network = gcp_run.named("network-vpc").inputs
    assert network["autoCreateSubnetworks"] is False
    subnet = gcp_run.named("network-subnet").inputs
    assert subnet["ipCidrRange"] == "10.80.0.0/24"
    assert subnet["region"] == "europe-west4"
    nat = gcp_run.named("network-nat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_gcp_storage_nodes_have_osd_disks(gcp_run):
    disks = {r.name: r.inputs for r in gcp_run.of_type("gcp:compute/disk:Disk")}
    assert set(disks) == {"stor01-osd0", "stor02-osd0", "stor03-osd0"}
    assert all(d["size"] == 500 and d["zone"] == "europe-west4-a" for d in disks.values())
    attached = instances(gcp_run)["stor01"]["attachedDisks"]
    assert attached == [
        {
            "source": "https://www.googleapis.com/compute/v1/projects/p/zones/z/disks/stor01-osd0",
            "deviceName": "osd0",
        }
    ]
    assert gcp_run.outputs["hosts"]["stor01"]["osd_devices"] == ["/dev/disk/by-id/google-osd0"]
    assert not instances(gcp_run)["a256-t4-01"].get("attachedDisks")


def test_gcp_dataset_bucket(gcp_run):
    buckets = gcp_run.of_type("gcp:storage/bucket:Bucket")
    assert len(buckets) == 1
    bucket = buckets[0].inputs
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["labels"]["cluster"] == "ailab"
    assert gcp_run.outputs["dataset_bucket"].startswith("gs://")


def test_gcp_components(gcp_run):
    components = {(r.typ, r.name) for r in gcp_run.resources if not r.custom}
    assert components == {
        ("ailab:gcp:Network", "network"),
        ("ailab:gcp:FrontEnd", "frontend"),
        ("ailab:gcp:Controller", "controller"),
        ("ailab:gcp:GpuNodePool", "compute_t4"),
        ("ailab:gcp:GpuNodePool", "compute_l4"),
        ("ailab:gcp:GpuNodePool", "compute_a100"),
        ("ailab:gcp:GpuNodePool", "compute_v100"),
        ("ailab:gcp:StorageNodes", "storage"),
    }
    t4 = gcp_run.named("a256-t4-01")
    assert "ailab:gcp:GpuNodePool$gcp:compute/instance:Instance::a256-t4-01" in t4.urn


def test_outputs_list_every_host_with_address_and_groups(gcp_run):
    hosts = gcp_run.outputs["hosts"]
    assert set(hosts) == PRODUCTION_HOSTS | {"stor01", "stor02", "stor03"}
    for name, host in hosts.items():
        assert ipaddress.ip_address(host["address"]) in SUBNET, name
        assert (host["public_address"] is not None) == (name == "ai-fe02")
    assert hosts["a256-t4-02"]["groups"] == ["compute", "compute_t4"]
    assert hosts["a256-t4-02"]["node_class"] == "compute_t4"
    assert hosts["stor01"]["groups"] == ["ceph"]
    assert gcp_run.outputs["storage"] == {
        "managed": True,
        "hosts": ["stor01", "stor02", "stor03"],
        "osd_disks_per_node": 1,
        "osd_disk_gb": 500,
    }
    assert gcp_run.outputs["inventory"] == "inventory/production"


# --- OpenStack ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "flavor"),
    [
        ("ai-fe02", "m1.large"),
        ("ai-ctl01", "m1.large"),
        ("a256-t4-03", "g1.t4x4"),
        ("a768-l4-01", "g1.l4x8"),
        ("a1024-a100-01", "g1.a100x8"),
        ("dgx2-01", "g1.v100x8"),
        ("stor02", "m1.xlarge"),
    ],
)
def test_openstack_flavors_per_class(openstack_run, host, flavor):
    inputs = instances(openstack_run, OS_INSTANCE)[host]
    assert inputs["flavorName"] == flavor
    assert inputs["imageName"] == "Debian 12"
    assert inputs["name"] == host
    assert inputs["networks"] == [{"port": f"{host}-port-id"}]
    assert inputs["keyPair"] == "ailab-test-admin"


def test_openstack_hardware_comes_from_the_flavor(openstack_run):
    classes = openstack_run.outputs["node_classes"]
    assert classes["compute_v100"]["hardware"]["gpu"]["count"] == 8  # "v100:4,v100:4"
    assert classes["compute_t4"]["hardware"]["gpu"]["count"] == 4
    assert classes["compute_t4"]["hardware"]["cores_per_socket"] == 32
    assert classes["compute_t4"]["machine"] == "g1.t4x4"


def test_openstack_network(openstack_run):
    subnet = openstack_run.named("network-subnet").inputs
    assert subnet["cidr"] == "10.80.0.0/24"
    assert subnet["ipVersion"] == 4
    router = openstack_run.named("network-router").inputs
    assert router["externalNetworkId"] == "public-net-id"
    interface = openstack_run.named("network-router-interface").inputs
    assert interface == {"routerId": "network-router-id", "subnetId": "network-subnet-id"}


def test_openstack_nothing_but_ssh_to_the_frontend_is_open_to_the_internet(openstack_run):
    ssh_group = "network-ssh-frontend-id"
    ports = {r.name: r.inputs for r in openstack_run.of_type(OS_PORT)}
    for name, port in ports.items():
        groups = set(port["securityGroupIds"])
        assert "network-internal-id" in groups
        assert (ssh_group in groups) == (name == "ai-fe02-port"), f"{name}: only the front-end gets SSH"
        assert not port.get("noSecurityGroups") and port.get("portSecurityEnabled") is not False
    outside = []
    for rule in openstack_run.of_type(OS_RULE):
        inputs = rule.inputs
        if inputs["direction"] == "egress":
            continue
        assert inputs.get("remoteIpPrefix"), f"{rule.name}: an ingress rule without a source is open to all"
        if ipaddress.ip_network(inputs["remoteIpPrefix"]).subnet_of(SUBNET):
            continue
        outside.append(rule.name)
        assert inputs["securityGroupId"] == ssh_group
        assert (inputs["protocol"], inputs["portRangeMin"], inputs["portRangeMax"]) == ("tcp", 22, 22)
    assert outside == ["network-ssh-frontend-0"]


def test_openstack_floating_ip_for_the_frontend_only(openstack_run):
    fips = openstack_run.of_type("openstack:networking/floatingIp:FloatingIp")
    assert [f.name for f in fips] == ["ai-fe02-fip"]
    assert fips[0].inputs["pool"] == "public"
    associations = openstack_run.of_type("openstack:networking/floatingIpAssociate:FloatingIpAssociate")
    assert len(associations) == 1
    assert associations[0].inputs["portId"] == "ai-fe02-port-id"
    assert openstack_run.outputs["hosts"]["ai-fe02"]["public_address"] == associations[0].inputs["floatingIp"]


def test_openstack_osd_volumes_attached_to_storage_nodes(openstack_run):
    volumes = {r.name: r.inputs for r in openstack_run.of_type("openstack:blockstorage/volume:Volume")}
    assert set(volumes) == {f"stor0{n}-osd{d}" for n in (1, 2, 3) for d in (0, 1)}
    assert all(v["size"] == 500 for v in volumes.values())
    attachments = {
        (a.inputs["instanceId"], a.inputs["volumeId"])
        for a in openstack_run.of_type("openstack:compute/volumeAttach:VolumeAttach")
    }
    assert attachments == {(f"{v.split('-')[0]}-id", f"{v}-id") for v in volumes}
    assert openstack_run.outputs["hosts"]["stor02"]["osd_devices"] == [
        "/dev/disk/by-id/virtio-stor02-osd0-id",
        "/dev/disk/by-id/virtio-stor02-osd1-id",
    ]


# --- counts and stable names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_config", "before", "after", "added"),
    [
        (
            gcp_config,
            {"nodes": {"t4": 3}},
            {"nodes": {"t4": 5}},
            {(GCP_INSTANCE, "a256-t4-04"), (GCP_INSTANCE, "a256-t4-05")},
        ),
        (gcp_config, {"nodes": {"l4": 1}}, {"nodes": {"l4": 2}}, {(GCP_INSTANCE, "a768-l4-02")}),
        (
            gcp_config,
            {"storageNodes": 3},
            {"storageNodes": 4},
            {(GCP_INSTANCE, "stor04"), ("gcp:compute/disk:Disk", "stor04-osd0")},
        ),
        (
            openstack_config,
            {"nodes": {"t4": 3}},
            {"nodes": {"t4": 4}},
            {(OS_INSTANCE, "a256-t4-04"), (OS_PORT, "a256-t4-04-port")},
        ),
        (
            openstack_config,
            {"nodes": {"a100": 1}},
            {"nodes": {"a100": 2}},
            {(OS_INSTANCE, "a1024-a100-02"), (OS_PORT, "a1024-a100-02-port")},
        ),
    ],
)
def test_raising_a_count_declares_exactly_the_new_machines(make_config, before, after, added):
    first = run_stack(make_config(**before))
    second = run_stack(make_config(**after))
    assert first.urns <= second.urns, "raising a count must not remove or rename anything"
    new = second.by_urn()
    assert {(new[u].typ, new[u].name) for u in second.urns - first.urns} == added
    # nothing that already existed changes: same inputs, so `pulumi up` neither updates nor replaces it
    old = first.by_urn()
    for urn in first.urns:
        assert old[urn].inputs == new[urn].inputs, f"{urn} would change"


def test_extra_nodes_join_the_groups_their_class_shares():
    run = run_stack(gcp_config(nodes={"t4": 4}))
    assert run.outputs["hosts"]["a256-t4-04"]["groups"] == ["compute", "compute_t4"]
    assert run.outputs["node_classes"]["compute_t4"]["hosts"] == [f"a256-t4-0{i}" for i in range(1, 5)]


def test_lowering_a_count_drops_only_the_highest_numbers():
    full = run_stack(gcp_config())
    fewer = run_stack(gcp_config(nodes={"l4": 2}))
    removed = sorted(full.by_urn()[u].name for u in full.urns - fewer.urns)
    assert removed == ["a768-l4-03", "a768-l4-04"]
    assert fewer.urns <= full.urns
