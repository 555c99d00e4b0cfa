"""The project's Jinja filters (the typed cluster model, the Ceph and Slurm helpers), for every role.

The one entry point Ansible loads (ansible.cfg: filter_plugins); the filters themselves are in
ailab/filters.py, which lists them with an example each.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from ailab.filters import FILTERS
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "the ailab Python package is not importable by Ansible: run Ansible from the project venv "
        "(make venv; .venv/bin/ansible-playbook ...) or `pip install -e .` into Ansible's Python"
    ) from exc


class FilterModule:
    def filters(self):
        return dict(FILTERS)
