"""Slurm-specific inventory checks (ailab.validate.check_slurm): names Slurm would refuse or silently change
are reported before any node is touched, naming the field and the fix."""

from __future__ import annotations

import pytest

from ailab.parse import build_cluster
from ailab.validate import validate
from tests.unit.test_slurm_conf import ADDRESSES, BASE, HARDWARE


def problems_for(**overrides):
    groups = {
        "all": list(ADDRESSES),
        "frontend": ["fe"],
        "slurm_controller": ["ctl"],
        "compute": ["t4-09", "t4-10", "t4-11", "a100-01"],
        "compute_t4": ["t4-09", "t4-10", "t4-11"],
        "compute_a100": ["a100-01"],
    }
    hostvars = {}
    for name, address in ADDRESSES.items():
        hv = {**BASE, **overrides, "ailab_address": address}
        for group, hardware in HARDWARE.items():
            if name in groups[group]:
                hv["ailab_hardware"] = hardware
        hostvars[name] = hv
    cluster, problems = build_cluster(groups, hostvars)
    return [str(p) for p in problems + validate(cluster)]


def test_the_test_cluster_is_clean():
    assert problems_for() == []


@pytest.mark.parametrize("name", ["AILab", "ai-lab", "1cluster", "a" * 41, "ai lab"])
def test_bad_cluster_name(name):
    found = problems_for(ailab_slurm={**BASE["ailab_slurm"], "cluster_name": name})
    assert len(found) == 1, found
    assert "ailab_slurm.cluster_name" in found[0] and "not a Slurm cluster name" in found[0]
    assert "fix: use e.g. ailab" in found[0]


@pytest.mark.parametrize("name", ["CS-ML", "cs ml", "cs,ml", "-course"])
def test_project_name_that_cannot_be_an_account(name):
    users = [{**u, "project": name} for u in BASE["ailab_users"]]
    found = problems_for(ailab_projects=[{"name": name}], ailab_users=users)
    assert any(f"project {name}: name:" in p and "Slurm account name" in p for p in found), found
    assert len(found) == 1, found


def test_partition_name_with_a_space():
    parts = [*BASE["ailab_partitions"], {"name": "big gpu", "node_groups": ["compute_a100"]}]
    found = problems_for(ailab_partitions=parts)
    assert found == [
        "partition big gpu: name: 'big gpu' is not a Slurm partition name (letters, digits, '.', '_' or '-')"
        " -- fix: rename it, e.g. gpu or t4"
    ]


@pytest.mark.parametrize("value", ["yes", 1])
def test_config_overrides_must_be_a_boolean(value):
    found = problems_for(ailab_slurm={**BASE["ailab_slurm"], "config_overrides": value})
    assert len(found) == 1 and "ailab_slurm.config_overrides" in found[0], found
