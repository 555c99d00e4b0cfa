"""The model as Ansible sees it: build it from a play's ``hostvars`` and ``groups``.

Used by the filters in ailab/filters.py (plugins/filter/ailab.py); plain, testable Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

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


def cluster_from_play(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Cluster:
    """The model for roles and templates (filters ailab_model and ailab_render).  Every playbook checks the
    whole inventory first (playbooks/preflight.yml: :func:`check_play`, every host's copy of every
    variable), so this reads the cluster-wide variables once; the model is still validated, and a problem
    stops the task."""
    plain_groups = {g: list(members) for g, members in groups.items()}
    hosts = plain_groups.get("all", [])
    cluster, problems = build_cluster(plain_groups, model_vars(hostvars, hosts, shared_from_first=True))
    problems += validate(cluster)
    if problems:
        raise ValueError("\n".join(str(p) for p in problems))
    return cluster


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
