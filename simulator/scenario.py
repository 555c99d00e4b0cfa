"""The inventories of the roles' Molecule scenarios (``molecule/<role>/``, issue 15).

A scenario tests one role on the few simulator containers it needs, beside the shared test cluster: its
inventory is a copy of ``inventory/sim`` (the same users, policy, node classes and settings, so the typed
model and every rendered file are the ones the whole cluster gets) with

- its own ``ailab_sim`` prefix (``ailab-mol-<scenario>``), Docker network and /24 subnet (the N-th scenario
  in name order gets ``10.216.N.0/24``), every host keeping the last octet of its address;
- the subnet's gateway as the operators' (admin) network, as ``inventory/sim`` has its own;
- compute nodes renamed ``mol-<name>``: Slurm names its host cgroups after the node (``slurm_<name>``), and
  the test cluster's ``t4-01`` may run beside;
- no ``ailab_directory`` (and an empty group ``directory``) except in the scenarios of
  :data:`DIRECTORY_SCENARIOS`: a role's scenario proves it with local accounts (role accounts, as production
  has them today) on the few hosts it creates, which need not include the directory host.

The scenario's ``molecule.yml`` lists the hosts it creates (``platforms``) by their scenario names; Molecule's
create step brings up only those (``ailab sim up --only``), its converge runs site.yml with ``--tags`` (the
role and what it needs) and ``--limit`` (those hosts).  :func:`scenario_hosts_yml` is pure;
:func:`write_scenario_inventory` copies the source directory and rewrites two files (the network
settings with :func:`simulator.scale.set_sim_network`, as the scale run's inventories).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from ailab.model import GROUP_COMPUTE
from simulator.errors import SimError
from simulator.scale import readdress, set_sim_network

PREFIX = "ailab-mol"
SUBNETS = ipaddress.ip_network("10.216.0.0/16")  # one /24 per scenario, .1 on (.0 is left unused)
COMPUTE_RENAME = "mol-{}"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DIRECTORY_SCENARIOS = frozenset({"directory"})  # keep the source's ailab_directory and group directory


def scenario_names(molecule_dir: Path) -> list[str]:
    """The scenarios: the directories of ``molecule_dir`` with a molecule.yml, in name order."""
    return sorted(p.parent.name for p in molecule_dir.glob("*/molecule.yml"))


def scenario_subnet(name: str, names: list[str]) -> str:
    """``name``'s subnet: the (index + 1)-th /24 of :data:`SUBNETS`, so no two scenarios share one."""
    if name not in names:
        raise SimError(
            f"no Molecule scenario {name!r}",
            f"use one of: {', '.join(names) or '(none: molecule/<role>/molecule.yml)'}",
            exit_code=2,
        )
    index = names.index(name) + 1
    if index > 255:
        raise SimError("more than 255 Molecule scenarios", "give scenarios a /16 of their own", exit_code=2)
    return str(list(SUBNETS.subnets(new_prefix=24))[index])


def scenario_prefix(name: str) -> str:
    if not NAME.match(name):
        raise SimError(
            f"scenario name {name!r}: lower-case letters, digits and _ only, starting with a letter",
            "name the scenario after its role (molecule/<role>/)",
            exit_code=2,
        )
    return f"{PREFIX}-{name.replace('_', '-')}"


def compute_name(name: str) -> str:
    return COMPUTE_RENAME.format(name)


def scenario_hosts_yml(source: dict[str, Any], subnet: str, directory: bool = True) -> dict[str, Any]:
    """The source's hosts.yml tree with every host moved onto ``subnet`` (same last octet) and the hosts under
    the ``compute`` group renamed (:func:`compute_name`); without ``directory``, group directory emptied."""
    net = ipaddress.ip_network(subnet)
    data = yaml.safe_load(yaml.safe_dump(source))  # a deep copy
    if not directory:
        for group in _groups(data["all"]):
            if "directory" in (group.get("children") or {}):
                group["children"]["directory"] = {"hosts": {}}

    def visit(group: dict[str, Any], in_compute: bool) -> None:
        hosts = group.get("hosts") or {}
        renamed = {}
        for host, vars_ in hosts.items():
            vars_ = vars_ or {}
            if "ailab_address" in vars_:
                vars_["ailab_address"] = readdress(vars_["ailab_address"], net)
            renamed[compute_name(host) if in_compute else host] = vars_
        if hosts:
            group["hosts"] = renamed
        for name, child in (group.get("children") or {}).items():
            visit(child or {}, in_compute or name == GROUP_COMPUTE)

    visit(data["all"], False)
    return data


def _groups(group: dict[str, Any]):
    yield group
    for child in (group.get("children") or {}).values():
        yield from _groups(child or {})


def write_scenario_inventory(source_dir: Path, dest: Path, name: str, names: list[str]) -> str:
    """Write scenario ``name``'s inventory to ``dest`` (replacing what is there); returns its prefix."""
    prefix = scenario_prefix(name)
    subnet = scenario_subnet(name, names)
    hosts_file = source_dir / "hosts.yml"
    for path in (hosts_file, source_dir / "group_vars" / "all" / "cluster.yml"):
        if not path.is_file():
            raise SimError(f"{path} does not exist", "pass a simulated inventory, e.g. inventory/sim", 2)
    directory = name in DIRECTORY_SCENARIOS
    hosts = scenario_hosts_yml(yaml.safe_load(hosts_file.read_text()), subnet, directory)

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest)
    header = f"# Generated for the Molecule scenario {name} (simulator/scenario.py) from {source_dir}.\n"
    (dest / "hosts.yml").write_text(header + yaml.safe_dump(hosts, sort_keys=False))
    set_sim_network(dest, prefix, subnet, header)
    if not directory:
        cluster_file = dest / "group_vars" / "all" / "cluster.yml"
        data = yaml.safe_load(cluster_file.read_text())
        if data.pop("ailab_directory", None) is not None:
            cluster_file.write_text(header + yaml.safe_dump(data, sort_keys=False, width=4096))
    return prefix
