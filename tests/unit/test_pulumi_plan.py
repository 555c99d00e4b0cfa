"""The plan: stable machine names, the groups extra machines join, and the checks made before deploying."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from ailab.model import Host
from ailab_cloud.plan import (
    ROLE_COMPUTE,
    ROLE_CONTROLLER,
    ROLE_FRONTEND,
    ROLE_STORAGE,
    common_groups,
    host_names,
    make_plan,
    planned_cluster,
)
from ailab_cloud.settings import StackConfigError, parse_settings
from tests.unit.pulumi_harness import encode, gcp_config, openstack_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def production():
    return load_cluster(ROOT / "inventory" / "production")[0]


@pytest.mark.parametrize(
    ("existing", "count", "taken", "expected"),
    [
        (["a256-t4-01", "a256-t4-02", "a256-t4-03"], 2, [], ["a256-t4-01", "a256-t4-02"]),
        (["a256-t4-01", "a256-t4-02", "a256-t4-03"], 5, [], [f"a256-t4-0{i}" for i in range(1, 6)]),
        (["a256-t4-09"], 3, [], ["a256-t4-09", "a256-t4-10", "a256-t4-11"]),  # padding kept, no wrap
        (["n2", "n10"], 3, [], ["n2", "n10", "n11"]),  # natural order: n10 is the last
        (["dgx2-01"], 2, [], ["dgx2-01", "dgx2-02"]),
        (["gpu-big"], 2, [], ["gpu-big", "t4-01"]),  # no number to continue: the class default
        ([], 2, [], ["t4-01", "t4-02"]),
        ([], 2, ["t4-01"], ["t4-02", "t4-03"]),  # never a name another host has
        (["a256-t4-01"], 0, [], []),
    ],
)
def test_host_names(existing, count, taken, expected):
    assert list(host_names(existing, count, default_prefix="t4-", taken=taken)) == expected


def test_names_only_grow_with_the_count():
    for count in range(1, 8):
        assert (
            host_names(["x-01", "x-02"], count, default_prefix="x-")
            == host_names(["x-01", "x-02"], count + 1, default_prefix="x-")[:count]
        )


def test_common_groups():
    hosts = [
        Host("a", "10.0.0.1", ("compute", "compute_t4", "racks_a")),
        Host("b", "10.0.0.2", ("compute", "compute_t4", "racks_b")),
    ]
    assert common_groups(hosts, ("compute", "compute_t4")) == ("compute", "compute_t4")
    assert common_groups([], ("ceph",)) == ("ceph",)


def test_plan_for_production_on_gcp(production):
    settings = parse_settings(encode(gcp_config(nodes={"compute_t4": 4, "l4": 2})))
    plan = make_plan(production, settings)
    roles = {h.name: h.role for h in plan.hosts}
    assert roles["ai-fe02"] == ROLE_FRONTEND
    assert roles["ai-ctl01"] == ROLE_CONTROLLER
    assert [h.name for h in plan.role(ROLE_STORAGE)] == ["stor01", "stor02", "stor03"]
    assert [h.name for h in plan.in_class("compute_t4")] == [f"a256-t4-0{i}" for i in range(1, 5)]
    assert [h.name for h in plan.in_class("compute_l4")] == ["a768-l4-01", "a768-l4-02"]
    assert all(h.role == ROLE_COMPUTE and not h.public for h in plan.in_class("compute_t4"))
    assert [h.name for h in plan.hosts if h.public] == ["ai-fe02"]
    assert plan.storage_managed
    machines = {c.short_name: c.gcp.machine_type for c in plan.classes if c.gcp}
    assert machines == {
        "t4": "n1-highmem-32",
        "l4": "g2-standard-96",
        "a100": "a2-ultragpu-8g",
        "v100": "n1-highmem-64",
    }


def test_planned_cluster_is_what_the_check_sees(production):
    settings = parse_settings(encode(gcp_config(nodes={"t4": 5})))
    model, problems = planned_cluster(production, make_plan(production, settings), settings)
    assert problems == []
    assert len(model.compute) == 11
    t4 = next(p for p in model.partitions if p.name == "t4")
    assert len(t4.nodes) == 5
    assert model.hosts["a256-t4-05"].hardware.gpu.count == 4
    assert model.ceph.managed


def test_storage_count_zero_keeps_the_external_ceph(production):
    plan = make_plan(production, parse_settings(encode(gcp_config(storageNodes=0))))
    assert plan.role(ROLE_STORAGE) == ()
    assert not plan.storage_managed


def test_ceph_host_with_another_role_is_refused(production):
    hosts = dict(production.hosts)
    fe = hosts["ai-fe02"]
    hosts["ai-fe02"] = dataclasses.replace(fe, groups=(*fe.groups, "ceph"))
    cluster = dataclasses.replace(production, hosts=hosts)
    with pytest.raises(StackConfigError) as exc:
        make_plan(cluster, parse_settings(encode(gcp_config())))
    assert any("dedicated storage nodes" in p.message for p in exc.value.problems)


def test_openstack_storage_nodes_need_a_storage_flavor(production):
    config = openstack_config()
    config["flavors"] = {k: v for k, v in config["flavors"].items() if k != "storage"}
    with pytest.raises(StackConfigError) as exc:
        make_plan(production, parse_settings(encode(config)))
    assert [p.field for p in exc.value.problems] == ["ailab-cloud:flavors.storage"]
