"""Filters of role operations (thin wrappers around ailab.notices.ops_config_data)."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

try:
    from ailab import ansible_bridge
    from ailab.notices import ops_config_data
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "the ailab Python package is not importable by Ansible: run Ansible from the project venv"
    ) from exc


def ailab_ops_config(hostvars, groups, **options):
    """/etc/ailab/ops.json: users, e-mails, extension dates, home root and the deletion/maintenance policy."""
    try:
        cluster = ansible_bridge.cluster_from_play(hostvars, groups)
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc
    return json.dumps(ops_config_data(cluster, **options), indent=2, sort_keys=True) + "\n"


class FilterModule:
    def filters(self):
        return {"ailab_ops_config": ailab_ops_config}
