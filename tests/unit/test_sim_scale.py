"""make bench's scale run: scratch inventories of N GPU nodes generated from inventory/sim."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailab.bench import spread
from ailab.inventory import load_cluster
from simulator.errors import SimError
from simulator.scale import plan_nodes, renumber, write_copy_inventory, write_scale_inventory

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "inventory" / "sim"


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(SOURCE)[0]


def test_nodes_are_spread_over_the_classes_with_their_own_names(cluster):
    nodes = plan_nodes(cluster, 5, "10.214.0.0/24")
    assert [(n.name, n.node_class, n.address) for n in nodes] == [
        ("a40s-01", "compute_a40", "10.214.0.21"),
        ("t4s-01", "compute_t4", "10.214.0.22"),
        ("a40s-02", "compute_a40", "10.214.0.23"),
        ("t4s-02", "compute_t4", "10.214.0.24"),
        ("a40s-03", "compute_a40", "10.214.0.25"),
    ]
    assert not {n.name for n in nodes} & set(cluster.hosts)  # Slurm's host cgroups are named by node


@pytest.mark.parametrize(
    ("n", "subnet", "needle", "fix"),
    [
        (0, "10.214.0.0/24", "at least 1 compute node", "--scale 8,32,64"),
        (300, "10.214.0.0/24", "300 compute nodes do not fit in 10.214.0.0/24: it holds 234", "at most 234"),
        (11, "10.214.0.0/27", "holds 10", "larger ailab_sim.subnet"),
    ],
)
def test_more_nodes_than_the_subnet_holds_is_refused_with_the_limit(cluster, n, subnet, needle, fix):
    with pytest.raises(SimError) as err:
        plan_nodes(cluster, n, subnet)
    assert needle in str(err.value) and fix in err.value.fix


def test_the_scratch_inventory_passes_the_check_and_runs_beside_the_test_cluster(tmp_path, cluster):
    dest = tmp_path / "inv"
    nodes = write_scale_inventory(SOURCE, cluster, 8, dest, prefix="ailab-scale", subnet="10.214.0.0/24")
    scaled, problems = load_cluster(dest, strict=False)
    assert problems == []
    assert sorted(h.name for h in scaled.compute) == sorted(n.name for n in nodes)
    assert len(scaled.compute) == 8 and sum(h.hardware.gpu.count for h in scaled.compute) == 16
    assert scaled.sim.prefix == "ailab-scale" and scaled.sim.network == "ailab-scale"
    assert scaled.admin_networks == ("10.214.0.1/32",)
    assert scaled.hosts["fe01"].address == "10.214.0.10"  # the service hosts move onto the new subnet
    assert scaled.users == cluster.users and scaled.policy == cluster.policy
    assert scaled.secrets_dir != cluster.secrets_dir  # its own keys: the secrets dir names the prefix
    assert (SOURCE / "hosts.yml").read_text() != (dest / "hosts.yml").read_text()
    # the simulator's 10 s GPU health check (for its tests) is left out: the rendered default applies
    source_extra, scaled_extra = dict(cluster.slurm.extra_config), dict(scaled.slurm.extra_config)
    assert "HealthCheckInterval" in source_extra and "HealthCheckInterval" not in scaled_extra
    assert scaled_extra["MessageTimeout"] == source_extra["MessageTimeout"]


def test_spread_is_min_median_max():
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"min": 1.0, "median": 3.0, "max": 10.0}


def test_a_copy_of_the_inventory_is_a_second_cluster_with_its_own_names(tmp_path, cluster):
    dest = tmp_path / "inv"
    write_copy_inventory(SOURCE, cluster, dest, prefix="ailab-w1", subnet="10.215.1.0/24", offset=50)
    copy, problems = load_cluster(dest, strict=False)
    assert problems == []
    names = [h.name.rpartition("-") for h in cluster.compute]
    renamed = {f"{stem}-{int(number) + 50:02d}" for stem, _, number in names}
    assert [h.name for h in copy.compute] == [renumber(h.name, 50) for h in cluster.compute]
    assert {h.name for h in copy.compute} == renamed and not renamed & set(cluster.hosts)
    assert {c: len(nc.hosts) for c, nc in copy.node_classes.items()} == {
        c: len(nc.hosts) for c, nc in cluster.node_classes.items()
    }
    assert copy.sim.prefix == "ailab-w1" and copy.sim.subnet == "10.215.1.0/24"
    assert {h.address.rpartition(".")[2] for h in copy.hosts.values()} == {
        h.address.rpartition(".")[2] for h in cluster.hosts.values()
    }
    assert all(h.address.startswith("10.215.1.") for h in copy.hosts.values())
    assert copy.users == cluster.users and copy.secrets_dir != cluster.secrets_dir


@pytest.mark.parametrize(
    ("name", "offset", "want"), [("t4-01", 50, "t4-51"), ("a40-1", 50, "a40-51"), ("n007", 3, "n010")]
)
def test_renumber_keeps_the_width(name, offset, want):
    assert renumber(name, offset) == want


def test_a_copy_is_refused_before_anything_is_written(tmp_path, cluster):
    with pytest.raises(SimError) as err:
        renumber("gpu", 50)
    assert "'gpu' does not end in a number" in str(err.value) and "t4-01" in err.value.fix
    with pytest.raises(SimError) as err:
        write_copy_inventory(SOURCE, cluster, tmp_path / "inv", prefix="x", subnet="10.215.0.0/16", offset=50)
    assert "not the size" in str(err.value) and "/24" in err.value.fix
    assert not (tmp_path / "inv").exists()
