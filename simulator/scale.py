"""Scratch inventories of N GPU compute nodes, generated from a simulated inventory (``make bench``'s scale
run): the same front-end, controller, storage node, users, policy and node classes, the compute nodes
spread over the source's classes, on a network and prefix of their own so the scale cluster runs beside
the test cluster.

:func:`plan_nodes` is pure; :func:`write_scale_inventory` copies the source directory and rewrites two
files.  Bad input (N below 1, more nodes than the subnet holds) is refused before anything is written.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ailab.model import GROUP_COMPUTE, Cluster
from simulator.errors import SimError

FIRST_COMPUTE_OFFSET = 20  # compute nodes from .21 on: the service hosts keep their addresses below
# Slurm settings of inventory/sim that only make its tests quicker, left out of a scale inventory so the
# rendered defaults apply: a GPU health check every 10 s on 64 nodes kept the 2-core machine saturated
# (load about 290), and systemd's hostnamed then timed out on a third of the nodes in the no-op converge.
SCALE_DROPPED_SLURM_EXTRA = ("HealthCheckInterval",)


@dataclass(frozen=True)
class ScaleNode:
    name: str
    node_class: str  # compute_<class>
    address: str


def plan_nodes(cluster: Cluster, n: int, subnet: str) -> list[ScaleNode]:
    """``n`` compute nodes over the source's node classes (round robin, in class order), named
    ``<class>s-NN`` (not the source's names: Slurm's host cgroups are named by node, and the test cluster
    may run beside) and addressed from ``.21`` of ``subnet``."""
    classes = sorted(cluster.node_classes)
    if not classes:
        raise SimError("the source inventory has no compute_<class> groups", "use inventory/sim", exit_code=2)
    if n < 1:
        raise SimError(f"a scale run needs at least 1 compute node, got {n}", "pass e.g. --scale 8,32,64", 2)
    net = ipaddress.ip_network(subnet)
    hosts = list(net.hosts())
    room = len(hosts) - FIRST_COMPUTE_OFFSET
    if n > room:
        raise SimError(
            f"{n} compute nodes do not fit in {subnet}: it holds {room} after the service hosts "
            f"(addresses .{FIRST_COMPUTE_OFFSET + 1} to the last)",
            f"ask for at most {room} nodes, or a larger ailab_sim.subnet "
            f"(a /22 holds {1022 - FIRST_COMPUTE_OFFSET})",
            exit_code=2,
        )
    counts = dict.fromkeys(classes, 0)
    out = []
    for i in range(n):
        group = classes[i % len(classes)]
        counts[group] += 1
        short = group.removeprefix(f"{GROUP_COMPUTE}_")
        out.append(ScaleNode(f"{short}s-{counts[group]:02d}", group, str(hosts[FIRST_COMPUTE_OFFSET + i])))
    return out


def readdress(address: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """``address`` moved onto ``net``, keeping its last octet."""
    return str(net.network_address + (int(ipaddress.ip_address(address)) & 0xFF))


def set_sim_network(
    inventory: Path, prefix: str, subnet: str, header: str = "", drop_slurm_extra: tuple[str, ...] = ()
) -> None:
    """Give the inventory copy at ``inventory`` its own ``ailab_sim`` prefix, network and subnet, and the
    subnet's gateway as the admin network, and leave ``drop_slurm_extra`` out of
    ``ailab_slurm.extra_config`` (group_vars/all/cluster.yml rewritten once)."""
    gateway = next(ipaddress.ip_network(subnet).hosts())
    cluster_file = inventory / "group_vars" / "all" / "cluster.yml"
    data = yaml.safe_load(cluster_file.read_text())
    data["ailab_sim"] = {"prefix": prefix, "network": prefix, "subnet": subnet}
    data["ailab_cluster"] = {**data["ailab_cluster"], "admin_networks": [f"{gateway}/32"]}
    extra = (data.get("ailab_slurm") or {}).get("extra_config") or {}
    if any(key in extra for key in drop_slurm_extra):
        data["ailab_slurm"]["extra_config"] = {k: v for k, v in extra.items() if k not in drop_slurm_extra}
    cluster_file.write_text(header + yaml.safe_dump(data, sort_keys=False, width=4096))


def scale_hosts_yml(source: dict, cluster: Cluster, nodes: list[ScaleNode], subnet: str) -> dict:
    """The source's hosts.yml tree with its compute classes replaced by ``nodes`` and every service host
    moved onto ``subnet`` (same last octet)."""
    net = ipaddress.ip_network(subnet)
    data = yaml.safe_load(yaml.safe_dump(source))  # a deep copy

    def visit(group: dict) -> None:
        for name, child in (group.get("children") or {}).items():
            if name in cluster.node_classes:
                child["hosts"] = {
                    node.name: {"ailab_address": node.address} for node in nodes if node.node_class == name
                }
            else:
                visit(child or {})
        for host in group.get("hosts") or {}:
            vars_ = group["hosts"][host] or {}
            if "ailab_address" in vars_:
                vars_["ailab_address"] = readdress(vars_["ailab_address"], net)

    visit(data["all"])
    return data


def write_scale_inventory(
    source_dir: Path, cluster: Cluster, n: int, dest: Path, *, prefix: str, subnet: str
) -> list[ScaleNode]:
    """Copy ``source_dir`` to ``dest`` with ``n`` compute nodes, its own ``ailab_sim`` prefix, network and
    subnet, and the subnet's gateway as the admin network.  Returns the compute nodes."""
    nodes = plan_nodes(cluster, n, subnet)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest)
    hosts_file = dest / "hosts.yml"
    hosts_file.write_text(
        "# Generated by the scale benchmark (simulator/scale.py); removed after the run.\n"
        + yaml.safe_dump(scale_hosts_yml(yaml.safe_load(hosts_file.read_text()), cluster, nodes, subnet))
    )
    set_sim_network(dest, prefix, subnet, drop_slurm_extra=SCALE_DROPPED_SLURM_EXTRA)
    return nodes


def renumber(name: str, offset: int) -> str:
    """``name`` with ``offset`` added to its trailing number, the number's width kept (``t4-01`` + 50 is
    ``t4-51``).  A name without a trailing number is refused: the copy could not tell its nodes apart."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    if not match:
        raise SimError(
            f"compute node {name!r} does not end in a number, so a copy of the inventory cannot renumber it",
            "name compute nodes <class>-NN, as inventory/sim does (t4-01)",
            exit_code=2,
        )
    stem, number = match.groups()
    return f"{stem}{int(number) + offset:0{len(number)}d}"


def copy_hosts_yml(source: dict, cluster: Cluster, subnet: str, offset: int) -> dict:
    """The source's hosts.yml tree with every host moved onto ``subnet`` (same last octet) and each compute
    node renumbered by ``offset`` (:func:`renumber`): the same classes, node counts and order, other names."""
    net = ipaddress.ip_network(subnet)
    data = yaml.safe_load(yaml.safe_dump(source, sort_keys=False))  # a deep copy, in the source's order

    def visit(group: dict, compute: bool) -> None:
        for name, child in (group.get("children") or {}).items():
            visit(child or {}, compute or name in cluster.node_classes)
        hosts = group.get("hosts") or {}
        if compute:
            hosts = {renumber(host, offset): vars_ for host, vars_ in hosts.items()}
            if hosts:
                group["hosts"] = hosts
        for vars_ in hosts.values():
            if vars_ and "ailab_address" in vars_:
                vars_["ailab_address"] = readdress(vars_["ailab_address"], net)

    visit(data["all"], False)
    return data


def write_copy_inventory(
    source_dir: Path, cluster: Cluster, dest: Path, *, prefix: str, subnet: str, offset: int
) -> None:
    """Copy ``source_dir`` to ``dest`` as a second simulated cluster that runs beside the first (the
    integration suite's other worker): its own ``ailab_sim`` prefix, network and subnet, and its compute
    nodes renumbered by ``offset``, since Slurm names its host cgroups by node (``slurm_<node>``, shared by
    every container on the machine)."""
    if cluster.sim is None:
        raise SimError(f"{source_dir} is not a simulated inventory (no ailab_sim)", "use inventory/sim", 2)
    if ipaddress.ip_network(subnet).prefixlen != ipaddress.ip_network(cluster.sim.subnet).prefixlen:
        raise SimError(
            f"subnet {subnet} is not the size of the source's {cluster.sim.subnet}: the hosts keep "
            "their last octet", f"pick a /{ipaddress.ip_network(cluster.sim.subnet).prefixlen}", exit_code=2,
        )  # fmt: skip
    hosts = yaml.safe_load((source_dir / "hosts.yml").read_text())
    data = copy_hosts_yml(hosts, cluster, subnet, offset)  # refuses bad names before anything is written
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest)
    (dest / "hosts.yml").write_text(
        f"# Generated from {source_dir} (simulator/scale.py, write_copy_inventory): a second cluster.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    set_sim_network(dest, prefix, subnet)


# The emulation's scale run (``make bench``, issue 15): production-like GPU nodes in ten classes.  Each
# class: (group suffix, GPU model, GPU memory GB, GPUs, sockets, cores per socket, threads per core,
# RealMemory MB); every class gives a GPU at least the production policy's caps (5 CPUs, 42000 MB).
EMULATION_CLASSES: tuple[tuple[str, str, int, int, int, int, int, int], ...] = (
    ("t4", "t4", 16, 4, 2, 16, 1, 257000),
    ("l4", "l4", 24, 8, 2, 24, 1, 770000),
    ("a10", "a10", 24, 4, 2, 16, 1, 257000),
    ("a40", "a40", 48, 4, 2, 16, 1, 514000),
    ("l40s", "l40s", 48, 8, 2, 32, 1, 1030000),
    ("a100_40", "a100", 40, 4, 2, 16, 1, 514000),
    ("a100_80", "a100", 80, 8, 2, 64, 1, 1030000),
    ("v100_16", "v100", 16, 4, 2, 12, 2, 385000),
    ("v100_32", "v100", 32, 16, 2, 24, 2, 1540000),
    ("h100", "h100", 80, 8, 2, 48, 1, 2060000),
)
EMULATION_NETWORK = "10.99.0.0/16"  # addresses only written into slurm.conf's model, never routed


def emulation_hosts(n: int) -> list[ScaleNode]:
    """``n`` GPU nodes over :data:`EMULATION_CLASSES` (round robin), named ``<class>-nNNNN``."""
    if n < 1:
        raise SimError(f"an emulation needs at least 1 compute node, got {n}", "pass e.g. 100,300,1000", 2)
    net = ipaddress.ip_network(EMULATION_NETWORK)
    if n > net.num_addresses - 300:
        raise SimError(f"{n} nodes do not fit {EMULATION_NETWORK}", "emulate at most 65,000 nodes", 2)
    counters: dict[str, int] = {}
    out = []
    for i in range(n):
        suffix = EMULATION_CLASSES[i % len(EMULATION_CLASSES)][0]
        counters[suffix] = counters.get(suffix, 0) + 1
        address = net.network_address + 256 + i + 1
        out.append(
            ScaleNode(
                f"{suffix.replace('_', '-')}-n{counters[suffix]:04d}", f"compute_{suffix}", str(address)
            )
        )
    return out


def write_emulation_inventory(
    source_dir: Path, n: int, dest: Path, users: list[dict], project: str
) -> list[ScaleNode]:
    """Copy ``source_dir`` (a production inventory) to ``dest`` with ``n`` GPU nodes in the ten classes,
    a partition per class besides the default one, cluster name ``emu<n>`` and ``users`` in ``project``
    (which must be one of the source's projects).  Returns the compute nodes."""
    nodes = emulation_hosts(n)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest)
    for old in [*dest.glob("group_vars/compute_*.yml"), *dest.glob("host_vars/*")]:
        old.unlink()
    hosts = yaml.safe_load((dest / "hosts.yml").read_text())
    classes = {
        f"compute_{suffix}": {
            "hosts": {
                node.name: {"ailab_address": node.address}
                for node in nodes
                if node.node_class == f"compute_{suffix}"
            }
        }
        for suffix, *_ in EMULATION_CLASSES
    }
    hosts["all"]["children"]["compute"] = {"children": {k: v for k, v in classes.items() if v["hosts"]}}
    header = "# Generated by the emulation benchmark (simulator/scale.py); removed after the run.\n"
    (dest / "hosts.yml").write_text(header + yaml.safe_dump(hosts, sort_keys=False))
    for suffix, model, gpu_gb, count, sockets, cores, threads, memory in EMULATION_CLASSES:
        hardware = {
            "sockets": sockets,
            "cores_per_socket": cores,
            "threads_per_core": threads,
            "memory_mb": memory,
            "gpu": {"model": model, "count": count, "memory_gb": gpu_gb},
        }
        (dest / "group_vars" / f"compute_{suffix}.yml").write_text(
            header + yaml.safe_dump({"ailab_hardware": hardware})
        )
    partitions = [{"name": "gpu", "node_groups": ["compute"], "default": True}]
    partitions += [
        {"name": suffix, "node_groups": [f"compute_{suffix}"]}
        for suffix, *_ in EMULATION_CLASSES
        if classes[f"compute_{suffix}"]["hosts"]
    ]
    (dest / "group_vars" / "all" / "partitions.yml").write_text(
        header + yaml.safe_dump({"ailab_partitions": partitions}, sort_keys=False)
    )
    users_file = dest / "group_vars" / "all" / "users.yml"
    data = yaml.safe_load(users_file.read_text())
    if project not in {p["name"] for p in data["ailab_projects"]}:
        raise SimError(f"project {project!r} is not in {source_dir}", "pass one of its ailab_projects", 2)
    data["ailab_users"] = users
    users_file.write_text(header + yaml.safe_dump(data, sort_keys=False, width=4096))
    cluster_file = dest / "group_vars" / "all" / "cluster.yml"
    data = yaml.safe_load(cluster_file.read_text())
    data["ailab_slurm"] = {**data["ailab_slurm"], "cluster_name": f"emu{n}"}
    cluster_file.write_text(header + yaml.safe_dump(data, sort_keys=False, width=4096))
    return nodes
