"""Ansible's ``linear`` strategy run through Mitogen (PyPI ``mitogen``, a project dependency).

Mitogen keeps one Python interpreter per host for the whole run over the same SSH connection and sends it
each module, instead of starting Python and unpacking the module again for every task: a no-op task costs
tens of milliseconds on a host instead of most of a second.  ansible.cfg selects it (``strategy``); the
connection is still OpenSSH with the inventory's user, key and known_hosts.  ``ANSIBLE_STRATEGY=linear``
runs plain Ansible instead (to compare, or to rule Mitogen out when a task misbehaves).
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    pass
