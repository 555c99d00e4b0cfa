"""What a stack deploys, decided before anything is declared: one :class:`PlannedHost` per machine, with
its stable name, its inventory groups and (per node class) the cloud machine that carries it.

Pure: :func:`make_plan` takes the typed cluster and the stack settings and returns a :class:`Plan` or
raises :class:`~ailab_cloud.settings.StackConfigError`.  It also checks that the inventory the stack will
generate passes ``ailab inventory check`` (the same :func:`ailab.validate.validate`), so a stack that
would produce an unusable inventory fails before ``pulumi up`` creates anything.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ailab.model import (
    GROUP_CEPH,
    GROUP_COMPUTE,
    GROUP_CONTROLLER,
    GROUP_FRONTEND,
    Cluster,
    Gpu,
    Host,
    NodeClass,
)
from ailab.parse import parse_hardware
from ailab.problems import Problem
from ailab.validate import validate
from ailab_cloud.machines import GcpMachine, NoMapping, gcp_hardware, gcp_machine, hardware
from ailab_cloud.settings import StackConfigError, StackSettings, key

ROLE_FRONTEND = "frontend"
ROLE_CONTROLLER = "controller"
ROLE_COMPUTE = "compute"
ROLE_STORAGE = "storage"
STORAGE_PREFIX = "stor"  # storage node names when the inventory has none: stor01, stor02, ...
# Addresses of the subnet the cloud keeps for itself (network, gateway, broadcast, DHCP/metadata ports).
RESERVED_ADDRESSES = 6
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True)
class PlannedHost:
    name: str
    role: str  # frontend / controller / compute / storage: which machine it gets
    groups: tuple[str, ...]  # inventory groups, flattened like Ansible's `groups` ("all" excluded)
    node_class: str | None = None
    osd_disks: int = 0

    @property
    def public(self) -> bool:
        """Only front-ends get a public address."""
        return self.role == ROLE_FRONTEND


@dataclass(frozen=True)
class PlannedClass:
    name: str  # e.g. compute_t4
    short_name: str  # e.g. t4: the config key and the node-class label
    hosts: tuple[str, ...]
    gpu: Gpu  # per node, as deployed
    gcp: GcpMachine | None = None
    flavor: str | None = None
    hardware: Mapping[str, Any] | None = None  # known before deploying on GCP; OpenStack reads its flavor


@dataclass(frozen=True)
class Plan:
    cluster_name: str
    cloud: str
    hosts: tuple[PlannedHost, ...]
    classes: tuple[PlannedClass, ...]
    storage_managed: bool  # the stack runs Ceph on its own storage nodes

    def role(self, role: str) -> tuple[PlannedHost, ...]:
        return tuple(h for h in self.hosts if h.role == role)

    def in_class(self, name: str) -> tuple[PlannedHost, ...]:
        return tuple(h for h in self.hosts if h.node_class == name)


def natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def host_names(
    existing: Iterable[str], count: int, *, default_prefix: str, taken: Iterable[str] = ()
) -> tuple[str, ...]:
    """``count`` names for a group of like machines.  The inventory's names come first (in order); extra
    machines continue the numbering of the last one (a256-t4-03 -> a256-t4-04, keeping the zero padding),
    so raising a count only ever adds names and lowering it drops the highest ones."""
    ordered = sorted(existing, key=natural_key)
    if count <= len(ordered):
        return tuple(ordered[:count])
    names = list(ordered)
    numbered = [m for m in (_NUMBERED.match(n) for n in ordered) if m]
    if numbered:
        prefix, width = numbered[-1].group(1), len(numbered[-1].group(2))
        number = max(int(m.group(2)) for m in numbered if m.group(1) == prefix) + 1
    else:
        prefix, width, number = default_prefix, 2, 1
    used = set(taken) | set(names)
    while len(names) < count:
        candidate = f"{prefix}{number:0{width}d}"
        if candidate not in used:
            names.append(candidate)
            used.add(candidate)
        number += 1
    return tuple(names)


def common_groups(hosts: Sequence[Host], fallback: tuple[str, ...]) -> tuple[str, ...]:
    """The groups every one of ``hosts`` is in: what an extra machine of the same kind joins."""
    if not hosts:
        return fallback
    shared = set(hosts[0].groups)
    for host in hosts[1:]:
        shared &= set(host.groups)
    return tuple(sorted(shared | set(fallback)))


def resolve_class_keys(
    values: Mapping[str, Any], cluster: Cluster, config_key: str, problems: list[Problem], where: str
) -> dict[str, Any]:
    """Per-class config (``nodes``, ``gpus``, ``flavors``) keyed by full node class name.  Accepts the
    short name (t4) or the group name (compute_t4); anything else is reported."""
    out: dict[str, Any] = {}
    shorts = {nc.short_name: nc.name for nc in cluster.node_classes.values()}
    for written, value in values.items():
        name = written if written in cluster.node_classes else shorts.get(written)
        if name is None:
            known = ", ".join(sorted(shorts)) or "none"
            problems.append(
                Problem(
                    where,
                    key(f"{config_key}.{written}"),
                    f"the inventory has no node class {written!r}",
                    f"use one of: {known} (or add group compute_{written} to the inventory)",
                )
            )
            continue
        if name in out:
            problems.append(
                Problem(
                    where, key(f"{config_key}.{written}"), "is set twice (short and group name)", "keep one"
                )
            )
        out[name] = value
    return out


def check_roles(cluster: Cluster, settings: StackSettings, where: str) -> list[Problem]:
    """The machines every stack needs: a front-end (the only public address) and a Slurm controller;
    Ceph on dedicated storage nodes."""
    problems: list[Problem] = []
    if not cluster.frontends:
        problems.append(
            Problem(
                where,
                key("inventory"),
                f"{settings.inventory} has no front-end (group {GROUP_FRONTEND} is empty): the cluster "
                "would have no login node and no public address",
                f"add the login node to group {GROUP_FRONTEND} in the inventory, "
                f"or point {key('inventory')} at one that has it",
            )
        )
    if not cluster.controllers:
        problems.append(
            Problem(
                where,
                key("inventory"),
                f"{settings.inventory} has no Slurm controller (group {GROUP_CONTROLLER} is empty)",
                f"add one host to group {GROUP_CONTROLLER} in the inventory",
            )
        )
    for host in cluster.hosts.values():
        if host.in_group(GROUP_CEPH) and (
            host.in_group(GROUP_FRONTEND) or host.in_group(GROUP_CONTROLLER) or host.in_group(GROUP_COMPUTE)
        ):
            problems.append(
                Problem(
                    where,
                    key("inventory"),
                    f"host {host.name} is in group {GROUP_CEPH} and another role; cloud stacks run Ceph on "
                    "dedicated storage nodes",
                    f"keep {host.name} in one of {GROUP_CEPH} / the other roles in the inventory",
                )
            )
    return problems


def make_plan(cluster: Cluster, settings: StackSettings, *, stack: str = "<stack>") -> Plan:
    where = f"Pulumi.{stack}.yaml"
    problems: list[Problem] = []
    counts = resolve_class_keys(settings.node_counts, cluster, "nodes", problems, where)
    gpu_counts = resolve_class_keys(settings.gpus, cluster, "gpus", problems, where)
    flavors: dict[str, Any] = {}
    if settings.openstack is not None:
        class_flavors = {
            k: v
            for k, v in settings.openstack.flavors.items()
            if k not in ("frontend", "controller", "storage")
        }
        flavors = resolve_class_keys(class_flavors, cluster, "flavors", problems, where)

    problems.extend(check_roles(cluster, settings, where))

    hosts: list[PlannedHost] = []
    taken = set(cluster.hosts)
    for host in cluster.hosts.values():
        if host.in_group(GROUP_COMPUTE) or host.in_group(GROUP_CEPH):
            continue
        if host.in_group(GROUP_FRONTEND):
            hosts.append(PlannedHost(host.name, ROLE_FRONTEND, host.groups))
        elif host.in_group(GROUP_CONTROLLER):
            hosts.append(PlannedHost(host.name, ROLE_CONTROLLER, host.groups))

    ceph_hosts = [cluster.hosts[n] for n in sorted(h.name for h in cluster.ceph_hosts)]
    storage_count = settings.storage_nodes if settings.storage_nodes is not None else len(ceph_hosts)
    if storage_count == 0 and cluster.ceph.managed:
        problems.append(
            Problem(
                where,
                key("storageNodes"),
                "is 0 but the inventory runs its own Ceph (ailab_ceph.managed: true)",
                f"pulumi config set {key('storageNodes')} 1 (or more)",
            )
        )
    storage_groups = common_groups(ceph_hosts, (GROUP_CEPH,))
    for name in host_names(
        (h.name for h in ceph_hosts), storage_count, default_prefix=STORAGE_PREFIX, taken=taken
    ):
        groups = cluster.hosts[name].groups if name in cluster.hosts else storage_groups
        hosts.append(PlannedHost(name, ROLE_STORAGE, groups, osd_disks=settings.osd_disks_per_node))
        taken.add(name)
    if storage_count and settings.openstack is not None and "storage" not in settings.openstack.flavors:
        problems.append(
            Problem(
                where,
                key("flavors.storage"),
                f"is missing, and the stack runs {storage_count} storage node(s)",
                f"pulumi config set --path '{key('flavors')}.storage' <flavor>",
            )
        )

    classes: list[PlannedClass] = []
    for node_class in sorted(cluster.node_classes.values(), key=lambda nc: nc.name):
        members = [cluster.hosts[n] for n in node_class.hosts]
        count = counts.get(node_class.name, len(members))
        names = host_names(
            node_class.hosts,
            count,
            default_prefix=f"{node_class.short_name}-",
            taken=taken - set(node_class.hosts),
        )
        taken.update(names)
        groups = common_groups(members, (GROUP_COMPUTE, node_class.name))
        for name in names:
            hosts.append(
                PlannedHost(
                    name,
                    ROLE_COMPUTE,
                    cluster.hosts[name].groups if name in cluster.hosts else groups,
                    node_class=node_class.name,
                )
            )
        planned = plan_class(cluster, node_class, names, gpu_counts, flavors, settings, where, problems)
        if planned is not None:
            classes.append(planned)

    problems.extend(check_partitions(cluster, hosts, counts, where))
    problems.extend(check_subnet(settings, len(hosts), where))
    if problems:
        raise StackConfigError(problems)
    plan = Plan(
        cluster_name=cluster.name,
        cloud=settings.cloud,
        hosts=tuple(hosts),
        classes=tuple(classes),
        storage_managed=storage_count > 0,
    )
    problems = check_generated_inventory(cluster, plan, settings, where)
    if problems:
        raise StackConfigError(problems)
    return plan


def plan_class(
    cluster: Cluster,
    node_class: NodeClass,
    names: tuple[str, ...],
    gpu_counts: Mapping[str, int],
    flavors: Mapping[str, str],
    settings: StackSettings,
    where: str,
    problems: list[Problem],
) -> PlannedClass | None:
    """The cloud machine of one node class, or a problem naming the config key to change."""
    short = node_class.short_name
    template = _class_hardware(cluster, node_class)
    if template is None or template.gpu is None:
        return None  # the inventory's own check reports it
    gpu = Gpu(template.gpu.model, gpu_counts.get(node_class.name, template.gpu.count), template.gpu.memory_gb)
    if not names:
        return PlannedClass(node_class.name, short, names, gpu)
    if settings.cloud == "openstack":
        flavor = flavors.get(node_class.name)
        if flavor is None:
            problems.append(
                Problem(
                    where,
                    key(f"flavors.{short}"),
                    f"GPU model {gpu.model} has no mapping on openstack: node class {short} has "
                    f"{len(names)} node(s) and no flavor",
                    f"pulumi config set --path '{key('flavors')}.{short}' "
                    f"<flavor with {gpu.count} {gpu.model} GPU(s)>",
                )
            )
            return None
        return PlannedClass(node_class.name, short, names, gpu, flavor=flavor)
    slurm = cluster.slurm
    try:
        machine = gcp_machine(
            gpu,
            gpu.count,
            min_vcpus=slurm.def_cpu_per_gpu * gpu.count,
            min_memory_mb=slurm.def_mem_per_gpu_mb * gpu.count,
        )
    except NoMapping as exc:
        field = {"model": f"nodes.{short}", "count": f"gpus.{short}"}.get(exc.subject, "inventory")
        fix = exc.fix
        if exc.subject == "count":
            fix = f"pulumi config set --path '{key('gpus')}.{short}' <N>: {exc.fix}"
        elif exc.subject == "model":
            fix = f"pulumi config set --path '{key('nodes')}.{short}' 0, or {exc.fix}"
        message = f"node class {short} ({gpu.count}x {gpu.model}) has no mapping on gcp: {exc.message}"
        problems.append(Problem(where, key(field), message, fix))
        return None
    return PlannedClass(node_class.name, short, names, gpu, gcp=machine, hardware=gcp_hardware(machine))


def _class_hardware(cluster: Cluster, node_class: NodeClass):
    for name in node_class.hosts:
        hw = cluster.hosts[name].hardware
        if hw is not None:
            return hw
    return None


def check_partitions(
    cluster: Cluster, hosts: Sequence[PlannedHost], counts: Mapping[str, int], where: str
) -> list[Problem]:
    """A class count of 0 must not leave a partition without nodes (slurm.conf would be invalid)."""
    problems = []
    for partition in cluster.partitions:
        members = [h for h in hosts if set(h.groups) & set(partition.node_groups)]
        if members or not partition.nodes:
            continue
        zeroed = sorted(
            cluster.node_classes[c].short_name
            for c, count in counts.items()
            if count == 0 and set(partition.nodes) & set(cluster.node_classes[c].hosts)
        )
        for short in zeroed or ["<class>"]:
            problems.append(
                Problem(
                    where,
                    key(f"nodes.{short}"),
                    f"leaves partition {partition.name} without nodes",
                    f"set {key('nodes')}.{short} to 1 or more, "
                    f"or remove partition {partition.name} from the inventory",
                )
            )
    return problems


def check_subnet(settings: StackSettings, host_count: int, where: str) -> list[Problem]:
    try:
        network = ipaddress.ip_network(settings.subnet_cidr)
    except ValueError:
        return []  # reported by parse_settings
    room = network.num_addresses - RESERVED_ADDRESSES
    if host_count > room:
        return [
            Problem(
                where,
                key("subnetCidr"),
                f"{network} has room for {max(room, 0)} machines, the stack plans {host_count}",
                f"use a larger network, e.g. {network.supernet(new_prefix=max(network.prefixlen - 2, 8))}",
            )
        ]
    return []


def planned_cluster(cluster: Cluster, plan: Plan, settings: StackSettings) -> tuple[Cluster, list[Problem]]:
    """The typed model of the cluster the stack will produce (addresses are placeholders from the
    subnet): what ``ailab inventory from-stack`` writes, for checking before deploying."""
    problems: list[Problem] = []
    addresses = ipaddress.ip_network(settings.subnet_cidr).hosts()
    next(addresses)  # the gateway
    classes = {c.name: c for c in plan.classes}
    hosts: dict[str, Host] = {}
    for planned in plan.hosts:
        hw = None
        if planned.node_class is not None:
            planned_class = classes.get(planned.node_class)
            raw = planned_class.hardware if planned_class and planned_class.hardware else None
            if raw is None and planned_class is not None:
                template = _class_hardware(cluster, cluster.node_classes[planned.node_class])
                if template is not None:
                    # OpenStack: the flavor's real size is read while deploying; until then the inventory's
                    raw = hardware(
                        vcpus=template.cpus,
                        memory_mb=template.memory_mb,
                        cpu_model=f"OpenStack {planned_class.flavor}",
                        gpu=planned_class.gpu,
                    )
            if raw is not None:
                hw = parse_hardware(dict(raw), f"host {planned.name}", problems)
        hosts[planned.name] = Host(
            name=planned.name,
            address=str(next(addresses)),
            groups=planned.groups,
            node_class=planned.node_class,
            hardware=hw,
        )
    node_classes = {
        name: NodeClass(name, tuple(sorted(h.name for h in plan.hosts if h.node_class == name)))
        for name in cluster.node_classes
    }
    partitions = tuple(
        dataclasses.replace(
            p, nodes=tuple(sorted(h.name for h in plan.hosts if set(h.groups) & set(p.node_groups)))
        )
        for p in cluster.partitions
    )
    ceph, monitoring = cluster.ceph, cluster.monitoring
    if plan.storage_managed:
        # As ailab.stack_inventory writes it: the stack's own Ceph, scraped on its storage nodes.
        ceph = dataclasses.replace(ceph, managed=True, monitors=())
        monitoring = dataclasses.replace(monitoring, ceph_exporters=())
    model = dataclasses.replace(
        cluster,
        hosts=hosts,
        node_classes=node_classes,
        partitions=partitions,
        ceph=ceph,
        monitoring=monitoring,
        sim=None,
    )
    return model, problems


def check_generated_inventory(
    cluster: Cluster, plan: Plan, settings: StackSettings, where: str
) -> list[Problem]:
    model, problems = planned_cluster(cluster, plan, settings)
    problems += validate(model)
    return [
        Problem(
            where,
            key("inventory"),
            f"the inventory this stack generates would fail `ailab inventory check`: {p.where}: {p.field}: "
            f"{p.message}",
            p.fix,
        )
        for p in problems
    ]
