"""The model as Ansible sees it: build it from a play's ``hostvars`` and ``groups``.

Used by the filter plugin in plugins/filter/ailab.py; kept here so it is plain, testable Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ailab.inventory import MODEL_VARS, _plain
from ailab.model import Cluster
from ailab.parse import build_cluster
from ailab.problems import Problem
from ailab.validate import validate


def model_vars(hostvars: Mapping[str, Any], hosts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The model variables of each host, read through Ansible's (lazily templated) hostvars."""
    out: dict[str, dict[str, Any]] = {}
    for host in hosts:
        hv = hostvars[host]
        out[host] = {key: _plain(hv[key]) for key in MODEL_VARS if key in hv}
    return out


def cluster_from_play(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Cluster:
    cluster, problems = check_play(hostvars, groups)
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
