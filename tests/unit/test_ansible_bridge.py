"""The model as the roles' filters build it from a play's hostvars (ailab/ansible_bridge.py)."""

from __future__ import annotations

import copy

import pytest

from ailab import ansible_bridge
from ailab.ansible_bridge import PER_HOST_VARS, SHARED_VARS, check_play, cluster_from_play, model_vars
from tests.unit.test_model_validation import good


class CountingHostvars(dict):
    """hostvars whose reads are counted per (host, variable): what Ansible templates on each read."""

    def __init__(self, data):
        super().__init__({h: CountingVars(h, v, self) for h, v in data.items()})
        self.reads: list[tuple[str, str]] = []


class CountingVars(dict):
    def __init__(self, host, data, owner):
        super().__init__(data)
        self.host, self.owner = host, owner

    def __getitem__(self, key):
        self.owner.reads.append((self.host, key))
        return super().__getitem__(key)


def test_renders_read_the_cluster_wide_variables_once_not_once_per_host():
    groups, raw = good()
    hostvars = CountingHostvars(raw)
    cluster_from_play(hostvars, groups)
    shared_reads = [r for r in hostvars.reads if r[1] in SHARED_VARS]
    assert {h for h, _ in shared_reads} == {groups["all"][0]}  # the first host only
    per_host = {h for h, k in hostvars.reads if k in PER_HOST_VARS}
    assert per_host == set(groups["all"])
    assert "ailab_address" in PER_HOST_VARS and "ailab_users" in SHARED_VARS


def test_the_pre_flight_check_still_reads_every_hosts_copy():
    groups, raw = good()
    raw["t4-01"]["ailab_policy"] = {**copy.deepcopy(raw["t4-01"]["ailab_policy"]), "max_gpus_per_user": 99}
    hostvars = CountingHostvars(raw)
    _, problems = check_play(hostvars, groups)
    assert any(p.field == "ailab_policy" and "differs between hosts" in p.message for p in problems)
    assert {h for h, k in hostvars.reads if k == "ailab_users"} == set(groups["all"])


def test_both_paths_build_the_same_model():
    groups, raw = good()
    fast = model_vars(raw, groups["all"], shared_from_first=True)
    assert fast == model_vars(raw, groups["all"])
    assert cluster_from_play(raw, groups) == check_play(raw, groups)[0]


def test_a_bad_model_stops_the_render():
    groups, raw = good()
    for hv in raw.values():
        hv["ailab_policy"] = {**hv["ailab_policy"], "max_job_time": "0"}
    with pytest.raises(ValueError, match="max_job_time"):
        ansible_bridge.cluster_from_play(raw, groups)
