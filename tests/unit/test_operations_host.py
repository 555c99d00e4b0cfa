"""Hardening: the operations timers (yearly deletion, maintenance notices) run on exactly one host, the
operations host (``ailab_cluster.operations_host``, default the first front-end), also with two front-ends."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import yaml
from jinja2.nativetypes import NativeEnvironment

from ailab.parse import build_cluster
from ailab.validate import validate
from tests.unit.test_model_validation import ROOT, good


def two_frontends(operations_host: str | None = None):
    """The good inventory with a second front-end fe02 (and fe01 listed after it, as Ansible may)."""
    groups, hostvars = good()
    groups["all"] = ["fe02", *groups["all"]]
    groups["frontend"] = ["fe02", "fe"]
    hostvars["fe02"] = {**copy.deepcopy(hostvars["fe"]), "ailab_address": "10.0.0.3"}
    if operations_host is not None:
        for hv in hostvars.values():
            hv["ailab_cluster"] = {**hv["ailab_cluster"], "operations_host": operations_host}
    return groups, hostvars


def model(groups, hostvars):
    cluster, problems = build_cluster(groups, hostvars)
    return cluster, [str(p) for p in problems + validate(cluster)]


def test_the_default_is_the_first_front_end_by_name():
    cluster, problems = model(*two_frontends())
    assert problems == []
    assert cluster.operations_host == "fe"  # sorted by name, not the group's order
    single, _ = model(*good())
    assert single.operations_host == "fe"


def test_another_front_end_may_be_named():
    cluster, problems = model(*two_frontends("fe02"))
    assert problems == [] and cluster.operations_host == "fe02"


@pytest.mark.parametrize(
    ("host", "what"), [("ctl", "is not a front-end"), ("fe9", "is not in the inventory")]
)
def test_a_host_that_is_not_a_front_end_is_refused(host, what):
    _, problems = model(*two_frontends(host))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"group_vars/all: ailab_cluster.operations_host: '{host}' {what}")
    assert "-- fix: set operations_host to one of the hosts in group frontend (fe, fe02)" in problems[0]
    assert "or drop it for the first one (fe)" in problems[0]


def _filters():
    spec = importlib.util.spec_from_file_location("ailab_filters", ROOT / "plugins" / "filter" / "ailab.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def _task(tasks, prefix):
    return next(t for t in tasks if t["name"].startswith(prefix))


def timer_states(groups, hostvars, retention_timer=True, maintenance_timer=True):
    """What role operations does with each timer on each front-end: its tasks' own expressions, rendered
    with the project's filter as Ansible would (native types)."""
    env = NativeEnvironment()
    env.filters.update(_filters())
    tasks = yaml.safe_load((ROOT / "roles" / "operations" / "tasks" / "main.yml").read_text())
    units = yaml.safe_load((ROOT / "roles" / "operations" / "vars" / "main.yml").read_text())
    here_expr = _task(tasks, "Find the operations host")["ansible.builtin.set_fact"]["operations_timers_here"]
    enable = _task(tasks, "Enable the daily timers")["ansible.builtin.systemd_service"]
    out = {}
    for host in groups["frontend"]:
        variables = {
            "hostvars": hostvars,
            "groups": groups,
            "inventory_hostname": host,
            "operations_retention_timer": retention_timer,
            "operations_maintenance_timer": maintenance_timer,
        }
        variables["operations_timers_here"] = env.from_string(here_expr).render(variables)
        for unit in units["operations_units"]:
            item = {**unit, "enabled": env.from_string(unit["enabled"]).render(variables)}
            values = {**variables, "item": item}
            out[(host, unit["unit"])] = (
                env.from_string(enable["state"]).render(values),
                env.from_string(enable["enabled"]).render(values),
            )
    return out


def test_with_two_front_ends_the_timers_run_on_the_operations_host_only():
    assert timer_states(*two_frontends()) == {
        ("fe", "ailab-retention"): ("started", True),
        ("fe", "ailab-maintenance-notify"): ("started", True),
        ("fe02", "ailab-retention"): ("stopped", False),
        ("fe02", "ailab-maintenance-notify"): ("stopped", False),
    }
    moved = timer_states(*two_frontends("fe02"))
    assert {k: v for k, v in moved.items() if v == ("started", True)} == {
        ("fe02", "ailab-retention"): ("started", True),
        ("fe02", "ailab-maintenance-notify"): ("started", True),
    }


def test_a_timer_switched_off_stays_off_on_the_operations_host():
    states = timer_states(*two_frontends(), retention_timer=False)
    assert states[("fe", "ailab-retention")] == ("stopped", False)
    assert states[("fe", "ailab-maintenance-notify")] == ("started", True)


def test_the_maintenance_commands_run_on_the_operations_host(monkeypatch):
    from ailab import operations as maintenance  # the controller side of ailab-maintenance

    seen = []

    class Done:
        stdout, stderr, returncode = "", "", 0

    cluster, _ = model(*two_frontends("fe02"))
    monkeypatch.setattr("ailab.inventory.load_cluster", lambda inventory: (cluster, []))
    monkeypatch.setattr(maintenance, "remote_command", lambda inv, host, argv: seen.append(host) or ["true"])
    monkeypatch.setattr(maintenance.subprocess, "run", lambda *a, **k: Done())
    monkeypatch.setattr(maintenance, "remote_result", lambda events, host: (0, "", ""))
    assert maintenance.run_remote("inventory/x", ["list"]) == 0
    assert seen == ["fe02"]
