"""The model as Ansible sees it: build it from a play's ``hostvars`` and ``groups``.

Used by the filters in ailab/filters.py (plugins/filter/ailab.py); plain, testable Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ailab import render
from ailab.inventory import MODEL_VARS, _plain
from ailab.model import Cluster
from ailab.parse import ACCOUNT_VARS, CLUSTER_VARS, build_cluster
from ailab.problems import Problem
from ailab.validate import validate

# Variables that describe the whole cluster: every host must have the same value (check_play proves it).
SHARED_VARS = (*CLUSTER_VARS, *ACCOUNT_VARS)
PER_HOST_VARS = tuple(key for key in MODEL_VARS if key not in SHARED_VARS)


def model_vars(
    hostvars: Mapping[str, Any], hosts: Sequence[str], *, shared_from_first: bool = False
) -> dict[str, dict[str, Any]]:
    """The model variables of each host, read through Ansible's (lazily templated) hostvars.

    Templating is what costs (every host's copy of the users, policy, ...): with ``shared_from_first``
    the cluster-wide variables are read from the first host only and given to every host, so building
    the model is linear in hosts, not quadratic over a play.  Only for callers that run after
    :func:`check_play` proved the copies equal (site.yml's pre-flight play)."""
    out: dict[str, dict[str, Any]] = {}
    shared: dict[str, Any] = {}
    if shared_from_first and hosts:
        first = hostvars[hosts[0]]
        shared = {key: _plain(first[key]) for key in SHARED_VARS if key in first}
    for host in hosts:
        hv = hostvars[host]
        keys = PER_HOST_VARS if shared_from_first else MODEL_VARS
        out[host] = {**shared, **{key: _plain(hv[key]) for key in keys if key in hv}}
    return out


class ModelProblems(ValueError):
    """The inventory does not give a valid model (the problems, one a line)."""


@dataclasses.dataclass
class Built:
    """One model built from one state of the variables: the cluster (or why not) and its renders."""

    cluster: Cluster | None
    error: str | None
    renders: dict[tuple[str, str | None], str] = dataclasses.field(default_factory=dict)


# The models built by this process, by the exact text of what they were built from (groups and the model
# variables as read): a model is built once per distinct input, however often the roles ask.  A few
# entries: a playbook run has one inventory, the unit tests a handful.
MEMO_SIZE = 8
_by_input: dict[str, Built] = {}
# Ansible's HostVars only: the variable state each model was read from, object by object (see
# _state_snapshot), so that an unchanged state finds its model without templating a single variable.
_by_state: list[tuple[Any, str, list[Any], str]] = []
# How the models were found, in this process: "state" (unchanged variables), "input" (the same variables
# read again), "built".  For the tests and the benchmark.
stats = dict.fromkeys(("state", "input", "built"), 0)


def forget() -> None:
    """Drop every memoized model (the tests; nothing in a run needs it)."""
    _by_input.clear()
    _by_state.clear()
    stats.update(dict.fromkeys(stats, 0))


def _state_snapshot(hostvars: Any, hosts: Sequence[str]) -> list[Any] | None:
    """Every object the variables of ``hosts`` are made of in Ansible's VariableManager, flattened: the
    extra vars, each group's and host's inventory vars, and per host its facts, include_vars and
    set_fact/register results (key and value objects).  Ansible replaces a value when it changes (set_fact,
    register, a new fact, add_host) and keeps group_vars/host_vars files as loaded for the whole run, so an
    identical list (``is``, element by element) means identical variables: no host's vars need templating.
    (A model variable templated from a lookup, e.g. ``lookup('env', ...)``, is therefore evaluated once per
    variable state, not on every filter call; a value mutated deep inside in place would go unseen.)
    None when ``hostvars`` is not Ansible's HostVars (plain dicts: the tests, ``ailab`` itself) or the
    VariableManager does not look as expected (another ansible-core): then the variables are read."""
    try:
        variables = hostvars._variable_manager
        inventory = hostvars._inventory
        facts_cache = variables._fact_cache
        caches = (variables._vars_cache, variables._nonpersistent_fact_cache)
        extra = variables._extra_vars
        out: list[Any] = [variables, inventory, extra, *extra.keys(), *extra.values()]
        for group in inventory.groups.values():
            out += (group, group.vars, *group.vars.keys(), *group.vars.values())
        for name in hosts:
            host = inventory.get_host(name)
            if host is None:
                return None
            out += (host, host.vars, *host.vars.keys(), *host.vars.values())
            try:
                facts = facts_cache.get(name)
            except KeyError:
                facts = None
            for data in (facts, *(cache.get(name) for cache in caches)):
                out.append(data)
                if data is not None:
                    out += (*data.keys(), *data.values())
        return out
    except (AttributeError, TypeError):
        return None


def _same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _remember(memo: dict, key: Any, value: Any) -> None:
    memo[key] = value
    while len(memo) > MEMO_SIZE:
        memo.pop(next(iter(memo)))


def built_from_play(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Built:
    """The memoized model of :func:`cluster_from_play`, with its renders."""
    plain_groups = {str(g): [str(h) for h in members] for g, members in groups.items()}
    groups_text = repr(plain_groups)
    hosts = plain_groups.get("all", [])
    snapshot = _state_snapshot(hostvars, hosts)
    if snapshot is not None:
        for seen_hostvars, seen_groups, seen, key in reversed(_by_state):
            fresh = seen_hostvars is hostvars and seen_groups == groups_text and _same(seen, snapshot)
            if fresh and key in _by_input:
                stats["state"] += 1
                return _by_input[key]
    variables = model_vars(hostvars, hosts, shared_from_first=True)
    key = groups_text + repr(variables)
    built = _by_input.get(key)
    stats["input" if built else "built"] += 1
    if built is None:
        cluster, problems = build_cluster(plain_groups, variables)
        problems += validate(cluster)
        built = Built(None, "\n".join(str(p) for p in problems)) if problems else Built(cluster, None)
    _remember(_by_input, key, built)
    if snapshot is not None:
        _by_state.append((hostvars, groups_text, snapshot, key))
        del _by_state[:-MEMO_SIZE]
    return built


def cluster_from_play(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Cluster:
    """The model for roles and templates (filters ailab_model and ailab_render).  Every playbook checks the
    whole inventory first (playbooks/preflight.yml: :func:`check_play`, every host's copy of every
    variable), so this reads the cluster-wide variables once; the model is still validated, and a problem
    stops the task.

    Memoized (:func:`built_from_play`): built once per distinct input, the exact groups and model
    variables read, so a change of any of them builds it anew.  With Ansible's HostVars, an unchanged
    variable state (:func:`_state_snapshot`) skips even reading them."""
    built = built_from_play(hostvars, groups)
    if built.cluster is None:
        raise ModelProblems(built.error)
    return built.cluster


def render_from_play(
    hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], name: str, host: str | None = None
) -> str:
    """``render.render(name, model, host)``, memoized with the model; a file that is the same for every
    host (not in :data:`ailab.render.PER_HOST`) is rendered once for all of them."""
    built = built_from_play(hostvars, groups)
    if built.cluster is None:
        raise ModelProblems(built.error)
    key = (name, host if name in render.PER_HOST else None)
    if key not in built.renders:
        built.renders[key] = render.render(name, built.cluster, key[1])
    return built.renders[key]


def check_play(
    hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
) -> tuple[Cluster, list[Problem]]:
    plain_groups = {g: list(members) for g, members in groups.items()}
    cluster, problems = build_cluster(plain_groups, model_vars(hostvars, plain_groups.get("all", [])))
    return cluster, problems + validate(cluster)


def to_data(value: Any) -> Any:
    """Dataclasses -> dicts/lists that Jinja can walk (dates as ISO strings), adding derived fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("cpus", "short_name", "label", "max_job_seconds", "default_memory_gb"):
            if hasattr(type(value), name):
                data[name] = to_data(getattr(value, name))
        return data
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
