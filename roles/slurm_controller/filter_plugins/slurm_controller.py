"""Filters of role slurm_controller (thin wrappers around the pure functions in ailab/slurm.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from ailab.slurm import reload_action
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "the ailab Python package is not importable by Ansible: run Ansible from the project venv"
    ) from exc


def slurm_reload_action(new: str, old: str | None) -> str:
    """How slurmctld must take a changed slurm.conf: none, reconfigure or restart (a node's definition or a
    key slurm.conf(5) says needs a restart changed)."""
    return reload_action(old, new)


class FilterModule:
    def filters(self):
        return {"slurm_reload_action": slurm_reload_action}
