"""Each bad input an operator could write gets exactly the problem line that names the field and the fix."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from ailab.inventory import duplicate_keys, load_cluster
from ailab.model import NoticeOffset, format_duration, parse_duration
from ailab.parse import build_cluster
from ailab.problems import InventoryError
from ailab.validate import validate

ROOT = Path(__file__).resolve().parents[2]

T4 = {
    "sockets": 2,
    "cores_per_socket": 16,
    "threads_per_core": 1,
    "memory_mb": 257000,
    "gpu": {"model": "t4", "count": 6},
}
A40 = {**T4, "gpu": {"model": "a40", "count": 4}}

CLUSTER_WIDE: dict[str, Any] = {
    "ailab_cluster": {
        "name": "test",
        "domain": "example.org",
        "timezone": "Europe/Copenhagen",
        "admin_networks": ["10.0.0.1/32"],  # the Ansible controller (also a sim subnet 10.0.0.0/x gateway)
    },
    "ailab_policy": {"max_job_time": "12:00:00", "default_job_time": "01:00:00"},
    "ailab_slurm": {"def_mem_per_gpu_mb": 16000, "def_cpu_per_gpu": 4},
    "ailab_ceph": {"managed": False, "monitors": ["10.0.9.1"]},
    "ailab_partitions": [
        {"name": "gpu", "node_groups": ["compute"], "default": True},
        {"name": "t4", "node_groups": ["compute_t4"]},
        {"name": "a40", "node_groups": ["compute_a40"]},
    ],
    "ailab_projects": [{"name": "course"}],
    "ailab_users": [
        {"name": "ab12cd", "uid": 20001, "gid": 20001, "email": "ab12cd@example.org", "project": "course"}
    ],
}


def good() -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    groups = {
        "all": ["fe", "ctl", "t4-01", "t4-02", "a40-01"],
        "frontend": ["fe"],
        "slurm_controller": ["ctl"],
        "compute": ["t4-01", "t4-02", "a40-01"],
        "compute_t4": ["t4-01", "t4-02"],
        "compute_a40": ["a40-01"],
        "ceph": [],
        "ungrouped": [],
    }
    addresses = {
        "fe": "10.0.0.1",
        "ctl": "10.0.0.2",
        "t4-01": "10.0.1.1",
        "t4-02": "10.0.1.2",
        "a40-01": "10.0.2.1",
    }
    hostvars: dict[str, dict[str, Any]] = {}
    for host, address in addresses.items():
        hv = copy.deepcopy(CLUSTER_WIDE)
        hv["ailab_address"] = address
        if host.startswith("t4"):
            hv["ailab_hardware"] = copy.deepcopy(T4)
        if host.startswith("a40"):
            hv["ailab_hardware"] = copy.deepcopy(A40)
        hostvars[host] = hv
    return groups, hostvars


def problems_of(groups, hostvars) -> list[str]:
    cluster, problems = build_cluster(groups, hostvars)
    return [str(p) for p in problems + validate(cluster)]


def set_all(hostvars, key, value):
    for hv in hostvars.values():
        hv[key] = copy.deepcopy(value)


def test_good_cluster_has_no_problems():
    groups, hostvars = good()
    assert problems_of(groups, hostvars) == []
    cluster, _ = build_cluster(groups, hostvars)
    assert cluster.hosts["t4-01"].node_class == "compute_t4"
    assert cluster.hosts["t4-01"].hardware.cpus == 32
    assert cluster.hosts["a40-01"].hardware.gpu.memory_gb == 48  # catalogue default
    assert [p.name for p in cluster.partitions if p.default] == ["gpu"]
    assert cluster.partitions[1].nodes == ("t4-01", "t4-02")


def only(problems: list[str], *needles: str) -> None:
    """Exactly one problem, and it mentions every needle (where, field, what, fix)."""
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], (needle, problems[0])


def test_unknown_gpu_model():
    groups, hostvars = good()
    hostvars["a40-01"]["ailab_hardware"]["gpu"]["model"] = "a4O"
    only(problems_of(groups, hostvars), "host a40-01", "ailab_hardware.gpu.model", "'a4O'", "fix: use one of")


@pytest.mark.parametrize("count", [0, -2])
def test_gpu_class_with_no_gpus(count):
    groups, hostvars = good()
    hostvars["t4-02"]["ailab_hardware"]["gpu"]["count"] = count
    only(problems_of(groups, hostvars), "host t4-02", "ailab_hardware.gpu.count", "1 or more")


def test_gpu_memory_variant_that_does_not_exist():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["gpu"]["memory_gb"] = 32
    only(problems_of(groups, hostvars), "host t4-01", "gpu.memory_gb", "no 32 GB variant", "use one of: 16")


def test_compute_node_without_gpu():
    groups, hostvars = good()
    del hostvars["t4-01"]["ailab_hardware"]["gpu"]
    only(problems_of(groups, hostvars), "host t4-01", "ailab_hardware.gpu", "is missing")


def test_compute_node_without_hardware():
    groups, hostvars = good()
    del hostvars["a40-01"]["ailab_hardware"]
    only(problems_of(groups, hostvars), "host a40-01", "ailab_hardware", "group_vars/compute_a40.yml")


def test_partition_with_no_nodes():
    groups, hostvars = good()
    groups["compute_empty"] = []
    parts = [*CLUSTER_WIDE["ailab_partitions"], {"name": "empty", "node_groups": ["compute_empty"]}]
    set_all(hostvars, "ailab_partitions", parts)
    only(problems_of(groups, hostvars), "partition empty", "node_groups", "has no nodes")


def test_partition_naming_missing_group():
    groups, hostvars = good()
    parts = [*CLUSTER_WIDE["ailab_partitions"], {"name": "l4", "node_groups": ["compute_l4"]}]
    set_all(hostvars, "ailab_partitions", parts)
    found = problems_of(groups, hostvars)
    assert any("'compute_l4' is not in the inventory" in p for p in found), found
    assert any("partition l4: node_groups: has no nodes" in p for p in found), found


def test_compute_node_in_no_partition():
    groups, hostvars = good()
    set_all(hostvars, "ailab_partitions", [{"name": "t4", "node_groups": ["compute_t4"], "default": True}])
    only(problems_of(groups, hostvars), "host a40-01", "partitions", "in no partition")


def test_compute_node_in_no_class():
    groups, hostvars = good()
    groups["compute_a40"] = []
    set_all(hostvars, "ailab_partitions", [{"name": "gpu", "node_groups": ["compute"], "default": True}])
    only(problems_of(groups, hostvars), "host a40-01", "groups", "in no node class")


def test_host_in_two_classes_is_a_duplicate():
    groups, hostvars = good()
    groups["compute_a40"].append("t4-01")
    found = problems_of(groups, hostvars)
    assert any("host t4-01: groups: duplicate host: listed in several node classes" in p for p in found)


def test_duplicate_address_is_a_duplicate_host():
    groups, hostvars = good()
    hostvars["t4-02"]["ailab_address"] = hostvars["t4-01"]["ailab_address"]
    found = problems_of(groups, hostvars)
    assert len(found) == 2 and all("duplicate host: address 10.0.1.1" in p for p in found), found


def test_same_host_by_short_name_and_fqdn():
    groups, hostvars = good()
    groups["all"].append("T4-01.example.org")
    groups["compute"].append("T4-01.example.org")
    groups["compute_t4"].append("T4-01.example.org")
    hostvars["T4-01.example.org"] = {**copy.deepcopy(hostvars["t4-01"]), "ailab_address": "10.0.1.9"}
    found = problems_of(groups, hostvars)
    assert any("are the same machine (t4-01)" in p for p in found), found


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("12h", "is not HH:MM:SS"),
        ("12:75:00", "above 59"),
        (43200, "was read as a number"),
    ],
)
def test_max_job_time_not_hh_mm_ss(value, needle):
    groups, hostvars = good()
    set_all(hostvars, "ailab_policy", {"max_job_time": value})
    only(problems_of(groups, hostvars), "ailab_policy.max_job_time", needle, "HH:MM:SS")


def test_partition_max_time_above_policy():
    groups, hostvars = good()
    parts = copy.deepcopy(CLUSTER_WIDE["ailab_partitions"])
    parts[1]["max_time"] = "13:00:00"
    set_all(hostvars, "ailab_partitions", parts)
    only(
        problems_of(groups, hostvars), "partition t4", "max_time", "above the policy's max_job_time 12:00:00"
    )


def test_default_time_above_max_time():
    groups, hostvars = good()
    set_all(hostvars, "ailab_policy", {"max_job_time": "02:00:00", "default_job_time": "04:00:00"})
    only(problems_of(groups, hostvars), "ailab_policy.default_job_time", "above max_job_time")


def test_cpus_that_do_not_add_up():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["cpus"] = 64
    only(problems_of(groups, hostvars), "host t4-01", "ailab_hardware.cpus", "2 x 16 x 1 = 32")


def test_memory_too_small_for_default_memory_per_gpu():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["memory_mb"] = 64000
    only(problems_of(groups, hostvars), "host t4-01", "memory_mb", "96000 MB needed")


def test_installed_memory_is_accepted_when_memory_mb_fits():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["memory_installed_gb"] = 256
    assert problems_of(groups, hostvars) == []
    cluster, _ = build_cluster(groups, hostvars)
    assert cluster.hosts["t4-01"].hardware.memory_installed_gb == 256
    assert cluster.hosts["t4-02"].hardware.memory_installed_gb is None


def test_memory_mb_above_installed_memory():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"].update(memory_mb=262145, memory_installed_gb=256)
    only(
        problems_of(groups, hostvars),
        "host t4-01: ailab_hardware.memory_mb: 262145 MB is more than the 256 GB installed",
        "fix: set memory_mb to at most 262144",
    )


@pytest.mark.parametrize("value", ["lots", 255.5, 0, -256])
def test_installed_memory_must_be_a_positive_whole_number(value):
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["memory_installed_gb"] = value
    only(
        problems_of(groups, hostvars), "host t4-01: ailab_hardware.memory_installed_gb", "memory_installed_gb"
    )


def test_cpus_too_few_for_default_cpus_per_gpu():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"].update(sockets=1, cores_per_socket=8)
    only(problems_of(groups, hostvars), "host t4-01", "8 CPUs cannot give", "24 needed")


def test_cluster_var_overridden_per_host():
    groups, hostvars = good()
    hostvars["t4-02"]["ailab_policy"] = {"max_job_time": "24:00:00"}
    found = problems_of(groups, hostvars)
    assert any("host t4-02: ailab_policy: differs between hosts" in p for p in found), found


def test_missing_required_groups():
    groups, hostvars = good()
    groups["frontend"] = []
    groups["slurm_controller"] = []
    found = problems_of(groups, hostvars)
    assert any(p.startswith("group frontend: hosts: has no hosts") for p in found), found
    assert any(p.startswith("group slurm_controller: hosts: has no hosts") for p in found), found


def test_frontend_must_not_be_compute():
    groups, hostvars = good()
    groups["frontend"].append("t4-01")
    found = problems_of(groups, hostvars)
    assert any("host t4-01: groups: is both a front-end and a compute node" in p for p in found), found


def test_missing_address():
    groups, hostvars = good()
    del hostvars["ctl"]["ailab_address"]
    only(problems_of(groups, hostvars), "host ctl", "ailab_address", "is missing")


def test_invalid_hostname():
    groups, hostvars = good()
    for g in ("all", "compute", "compute_t4"):
        groups[g] = ["t4_01" if h == "t4-01" else h for h in groups[g]]
    hostvars["t4_01"] = hostvars.pop("t4-01")
    only(problems_of(groups, hostvars), "host t4_01", "name", "not a valid short hostname")


def test_unknown_field_is_reported():
    groups, hostvars = good()
    hostvars["t4-01"]["ailab_hardware"]["memory_gb"] = 256
    only(problems_of(groups, hostvars), "ailab_hardware.memory_gb", "unknown field", "memory_mb")


def test_two_default_partitions():
    groups, hostvars = good()
    parts = copy.deepcopy(CLUSTER_WIDE["ailab_partitions"])
    parts[1]["default"] = True
    set_all(hostvars, "ailab_partitions", parts)
    only(problems_of(groups, hostvars), "2 partitions are marked default (gpu, t4)", "exactly one")


def test_classification_levels_outside_model():
    groups, hostvars = good()
    set_all(hostvars, "ailab_policy", {"data_classification_levels": [0, 1, 4]})
    only(problems_of(groups, hostvars), "data_classification_levels", "4 is not a level")


def test_bad_time_zone():
    groups, hostvars = good()
    set_all(
        hostvars, "ailab_cluster", {"name": "x", "timezone": "Europe/Aalborg", "admin_networks": ["10.0.0.5"]}
    )
    only(problems_of(groups, hostvars), "ailab_cluster.timezone", "IANA")


def test_external_ceph_without_monitors():
    groups, hostvars = good()
    set_all(hostvars, "ailab_ceph", {"managed": False})
    only(problems_of(groups, hostvars), "ailab_ceph.monitors", "is empty")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"uid": 20002, "name": "ab12cd"}, "listed twice"),
        ({"uid": 20001, "name": "xy99zz"}, "duplicate uid 20001"),
        ({"uid": 20003, "name": "Bad Name"}, "not a valid username"),
        ({"uid": 20003, "name": "xy99zz", "email": None}, "email: is missing"),
        ({"uid": 20003, "name": "xy99zz", "project": "nope"}, "unknown project 'nope'"),
        ({"uid": 999, "name": "xy99zz"}, "999 is a system id"),
    ],
)
def test_bad_users(change, needle):
    groups, hostvars = good()
    second = {"gid": 20003, "email": "x@example.org", "project": "course", **change}
    second = {k: v for k, v in second.items() if v is not None}
    set_all(hostvars, "ailab_users", [*CLUSTER_WIDE["ailab_users"], second])
    found = problems_of(groups, hostvars)
    assert any(needle in p for p in found), found


def test_duplicate_yaml_keys_are_found():
    text = "all:\n  hosts:\n    a:\n      x: 1\n    b: {}\n    a:\n      x: 2\n"
    assert duplicate_keys(text) == [("a", 6)]


@pytest.mark.parametrize("name", ["production", "sim"])
def test_shipped_inventories_are_clean(name):
    cluster, problems = load_cluster(ROOT / "inventory" / name)
    assert problems == []
    assert cluster.frontends and cluster.controllers and len(cluster.compute) >= 3
    assert len({h.hardware.gpu.model for h in cluster.compute}) >= 2


def test_production_inventory_matches_seed():
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    t4 = cluster.hosts["a256-t4-01"].hardware
    assert (t4.sockets, t4.cores_per_socket, t4.gpu.model, t4.gpu.count, t4.gpu.memory_gb) == (
        2,
        16,
        "t4",
        6,
        16,
    )
    assert [h.name for h in cluster.frontends] == ["ai-fe02"]
    assert cluster.policy.max_job_time == "12:00:00"
    assert [o.label for o in cluster.policy.deletion.notices] == ["2 months", "1 month", "14 days", "2 days"]


def test_ansible_ranges_and_host_listed_twice(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "production", inv)
    hosts = (inv / "hosts.yml").read_text()
    # A maintainer pastes dgx2-01 into the t4 class too: Ansible would silently merge it.
    hosts = hosts.replace(
        "            a256-t4-[01:03]:\n", "            a256-t4-[01:03]:\n            dgx2-01:\n"
    )
    (inv / "hosts.yml").write_text(hosts)
    with pytest.raises(InventoryError) as err:
        load_cluster(inv)
    text = str(err.value)
    assert "host dgx2-01: groups: duplicate host: listed in several node classes" in text


def test_yaml_duplicate_host_key_in_inventory_file(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "sim", inv)
    hosts = (inv / "hosts.yml").read_text()
    hosts = hosts.replace(
        "                t4-02:\n",
        "                t4-01:\n                  ailab_address: 10.213.0.29\n                t4-02:\n",
        1,
    )
    (inv / "hosts.yml").write_text(hosts)
    _, problems = load_cluster(inv, strict=False)
    assert any(p.field == "t4-01" and "duplicate host or key" in p.message for p in problems), problems


@pytest.mark.parametrize(
    ("offset", "event", "expected"),
    [
        (NoticeOffset(months=2), "2027-08-01", "2027-06-01"),
        (NoticeOffset(months=1), "2027-03-31", "2027-02-28"),
        (NoticeOffset(months=1), "2028-03-31", "2028-02-29"),
        (NoticeOffset(days=14), "2027-01-05", "2026-12-22"),
        (NoticeOffset(months=2), "2027-01-15", "2026-11-15"),
    ],
)
def test_notice_offsets(offset, event, expected):
    import datetime as dt

    assert offset.before(dt.date.fromisoformat(event)).isoformat() == expected


@pytest.mark.parametrize(("text", "seconds"), [("12:00:00", 43200), ("00:05:00", 300), ("100:00:01", 360001)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text


def with_cluster(hostvars, **changes):
    value = {**hostvars["fe"]["ailab_cluster"], **changes}
    set_all(hostvars, "ailab_cluster", value)


@pytest.mark.parametrize(
    ("networks", "needles"),
    [
        (None, ("ailab_cluster.admin_networks: is empty", "could no longer reach it", "Ansible controller")),
        ([], ("ailab_cluster.admin_networks: is empty", "e.g. admin_networks: [10.70.0.5/32]")),
        (["10.0.0.300"], ("admin_networks[0]: '10.0.0.300' is not an address", "e.g. 10.70.0.5/32")),
        (["0.0.0.0/0"], ("admin_networks[0]: 0.0.0.0/0 is every address", "only the Ansible")),
    ],
)
def test_admin_networks_keep_ansible_able_to_reach_the_front_end(networks, needles):
    """The front-end refuses root except from admin_networks: empty would lock the next converge out."""
    groups, hostvars = good()
    value = dict(hostvars["fe"]["ailab_cluster"])
    if networks is None:
        del value["admin_networks"]
    else:
        value["admin_networks"] = networks
    set_all(hostvars, "ailab_cluster", value)
    only(problems_of(groups, hostvars), *needles)


def test_simulator_admin_networks_hold_its_gateway():
    groups, hostvars = good()
    set_all(hostvars, "ailab_sim", {"prefix": "t", "network": "t", "subnet": "10.0.0.0/24"})
    for host, hv in hostvars.items():
        hv["ailab_address"] = f"10.0.0.{10 + sorted(hostvars).index(host)}"
    with_cluster(hostvars, admin_networks=["10.0.0.5/32"])
    only(problems_of(groups, hostvars), "does not contain 10.0.0.1", "add 10.0.0.1/32 to admin_networks")
    with_cluster(hostvars, admin_networks=["10.0.0.0/30"])
    assert problems_of(groups, hostvars) == []


def test_secrets_dir_must_be_absolute():
    groups, hostvars = good()
    set_all(hostvars, "ailab_secrets_dir", "relative/dir")
    only(problems_of(groups, hostvars), "ailab_secrets_dir: 'relative/dir' is not an absolute path", "/root/")


# Rule 6's caps and the QOS job counts (ailab_policy); the good cluster's classes have 32 CPUs and 257000 MB
# for 6 (t4: 5 CPUs, 42833 MB per GPU) or 4 GPUs (a40: 8 CPUs, 64250 MB per GPU).
def with_policy(**fields):
    groups, hostvars = good()
    set_all(hostvars, "ailab_policy", {**CLUSTER_WIDE["ailab_policy"], **fields})
    return problems_of(groups, hostvars)


def test_policy_caps_default_and_fit():
    groups, hostvars = good()
    cluster, _ = build_cluster(groups, hostvars)
    p = cluster.policy
    assert (p.max_cpus_per_gpu, p.max_mem_per_gpu_mb, p.max_nodes_per_job) == (4, 32000, 2)
    assert (p.max_submit_jobs_per_user, p.max_jobs_per_user) == (100, 8)
    assert with_policy(max_cpus_per_gpu=5, max_mem_per_gpu_mb=42833, max_nodes_per_job=3) == []


def test_cpu_cap_above_a_class_share_per_gpu():
    only(
        with_policy(max_cpus_per_gpu=6),
        "ailab_policy.max_cpus_per_gpu",
        "compute_t4 has per GPU (32 CPUs / 6 GPUs = 5)",
        "set ailab_policy.max_cpus_per_gpu to 5 or less",
    )


def test_memory_cap_above_a_class_share_per_gpu():
    problems = with_policy(max_mem_per_gpu_mb=70000)
    assert len(problems) == 2, problems  # both classes have less per GPU
    assert any("compute_a40 has per GPU (257000 MB / 4 GPUs = 64250)" in p for p in problems)
    assert any("set ailab_policy.max_mem_per_gpu_mb to 42833 or less" in p for p in problems)


def test_caps_below_the_slurm_defaults():
    only(
        with_policy(max_cpus_per_gpu=3),
        "ailab_policy.max_cpus_per_gpu",
        "below the 4 CPUs every GPU job gets by default (ailab_slurm.def_cpu_per_gpu)",
        "set ailab_policy.max_cpus_per_gpu to 4 or more, or lower ailab_slurm.def_cpu_per_gpu",
    )
    only(
        with_policy(max_mem_per_gpu_mb=15000),
        "ailab_policy.max_mem_per_gpu_mb",
        "below the 16000 MB",
        "to 16000 or more",
    )


def test_more_nodes_per_job_than_the_cluster_has():
    only(with_policy(max_nodes_per_job=4), "ailab_policy.max_nodes_per_job", "3 compute nodes", "3 or less")


@pytest.mark.parametrize(
    "key", ["max_cpus_per_gpu", "max_mem_per_gpu_mb", "max_nodes_per_job", "max_submit_jobs_per_user"]
)
def test_caps_must_be_positive_whole_numbers(key):
    problems = with_policy(**{key: 0})
    assert any(f"ailab_policy.{key}" in p and "below the minimum 1" in p for p in problems), problems
    problems = with_policy(**{key: "lots"})
    assert any(f"ailab_policy.{key}" in p and "whole number" in p for p in problems), problems


def test_running_limit_above_the_submit_limit():
    only(
        with_policy(max_submit_jobs_per_user=5, max_jobs_per_user=6),
        "ailab_policy.max_jobs_per_user",
        "more than the 5",
        "set ailab_policy.max_jobs_per_user to 5 or less, or raise max_submit_jobs_per_user",
    )


@pytest.mark.parametrize("inventory", ["production", "sim"])
def test_inventories_caps_fit_their_hardware(inventory):
    cluster, problems = load_cluster(ROOT / "inventory" / inventory)
    assert problems == []
    p = cluster.policy
    for host in cluster.compute:
        hw = host.hardware
        assert p.max_cpus_per_gpu <= hw.cpus // hw.gpu.count, host.name
        assert p.max_mem_per_gpu_mb <= hw.memory_mb // hw.gpu.count, host.name
    assert p.max_cpus_per_gpu >= cluster.slurm.def_cpu_per_gpu
    assert p.max_mem_per_gpu_mb >= cluster.slurm.def_mem_per_gpu_mb
