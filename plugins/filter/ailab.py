"""Filters that expose the typed cluster model (the `ailab` Python package) to roles and templates.

{{ hostvars | ailab_model(groups) }}          the whole model as plain data
{{ hostvars | ailab_problems(groups) }}       list of problem lines (empty when the inventory is good)
{{ hostvars | ailab_render(groups, 'slurm.conf') }}   a file rendered by a pure Python function
{{ hostvars | ailab_operations_host(groups) }}   the front-end that runs the daily operations timers
{{ ailab_users | ailab_live_users(record) }}      ailab_users without the users the deletion record deleted
{{ ailab_users | ailab_deleted_listed(record) }}  those users (name, cycle, on)
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from ailab import ansible_bridge, render
    from ailab.notices import ToolError
    from ailab.retention import deleted_listed_warning, parse_state_text, split_deleted
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "the ailab Python package is not importable by Ansible: run Ansible from the project venv "
        "(make venv; .venv/bin/ansible-playbook ...) or `pip install -e .` into Ansible's Python"
    ) from exc


def ailab_model(hostvars, groups):
    try:
        return ansible_bridge.to_data(ansible_bridge.cluster_from_play(hostvars, groups))
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc


def ailab_problems(hostvars, groups):
    _, problems = ansible_bridge.check_play(hostvars, groups)
    return [str(p) for p in problems]


def ailab_render(hostvars, groups, name, host=None):
    try:
        cluster = ansible_bridge.cluster_from_play(hostvars, groups)
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc
    try:
        return render.render(name, cluster, host)
    except KeyError as exc:
        raise AnsibleFilterError(f"ailab_render: {exc}") from exc


def ailab_operations_host(hostvars, groups):
    """``ailab_cluster.operations_host`` or the first front-end: the one host that runs the timers of the
    yearly deletion and the maintenance notices and keeps their state (the deletion record)."""
    try:
        return ansible_bridge.cluster_from_play(hostvars, groups).operations_host
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc


def _split(users, record, source):
    try:
        return split_deleted(list(users or []), parse_state_text(str(record or ""), source))
    except ToolError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def ailab_live_users(users, record, source="the deletion record"):
    """``users`` without those the deletion record (retention.json's text, '' if absent) says are deleted
    (and not readmitted): what every role sees for the rest of the run (playbooks/preflight.yml)."""
    return _split(users, record, source)[0]


def ailab_deleted_listed(users, record, source="the deletion record"):
    """The users in ``users`` that the deletion record says are deleted: name, cycle, on."""
    return [{"name": d.name, "cycle": d.cycle, "on": d.on} for d in _split(users, record, source)[1]]


def ailab_deleted_warning(users, record, users_file, operations_host, source="the deletion record"):
    return deleted_listed_warning(_split(users, record, source)[1], users_file, operations_host)


class FilterModule:
    def filters(self):
        return {
            "ailab_model": ailab_model,
            "ailab_operations_host": ailab_operations_host,
            "ailab_live_users": ailab_live_users,
            "ailab_deleted_listed": ailab_deleted_listed,
            "ailab_deleted_warning": ailab_deleted_warning,
            "ailab_problems": ailab_problems,
            "ailab_render": ailab_render,
        }
