"""Semantic checks of the typed model: what an operator would trip over before anything is deployed."""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence

from ailab.ceph import MAX_AUTO_REPLICAS
from ailab.frontend import cluster_network
from ailab.gpus import known_models
from ailab.model import (
    GROUP_CEPH,
    GROUP_COMPUTE,
    GROUP_CONTROLLER,
    GROUP_DIRECTORY,
    GROUP_FRONTEND,
    ROLE_GROUPS,
    USERNAME_RE,
    Cluster,
    Host,
    User,
    parse_duration,
)
from ailab.problems import Problem
from ailab.slurm import CGROUP_MODEL_KEYS, MODEL_KEYS
from ailab.slurm_keys import CGROUP_CONF_KEYS, SLURM_CONF_KEYS
from ailab.sshkeys import key_problem

HOSTNAME_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# An address that fits everywhere it goes: the GECOS field (no ',' or ':'), mail headers (no spaces, quotes
# or angle brackets) and Postfix aliases.  Local part: RFC 5322's atom characters and dots.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[^\s\"'<>]*)?$")
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# ailab_cluster.name ends up in paths (the secrets directory), mail headers ("name <noreply@...>") and the
# MOTD; ailab_sim.prefix/network in Docker container and network names and the simulator's secrets path.
CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DOCKER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
CEPH_FS_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # Ceph: file system and pool names [a-zA-Z0-9_-.]
PATH_CHARS_RE = re.compile(r"^[A-Za-z0-9._/-]+$")
FIRST_USER_ID = 1000  # below: system accounts (Debian policy 9.2.2)
# Debian policy 9.2.2: 60000-64999 are allocated by Debian packages, 65000-65533 reserved, 65534 is
# nobody/nogroup, 65535 was (uid_t)-1 with 16-bit ids (systemd's DynamicUser= range, 61184-65519, is
# inside); 4294967294 is (uid_t)-2 (NFS's nobody) and 4294967295 (uid_t)-1, "no id" for every tool.
RESERVED_ID_RANGES = ((60000, 65535), (4294967294, 4294967295))
RESERVED_IDS = {65534}  # nobody/nogroup (inside RESERVED_ID_RANGES)
LAST_ID = 4294967293
# Accounts and groups a Debian 12 node has before the accounts role runs (base-passwd, systemd, and the
# packages this project installs: sshd, munge, slurm, ceph, mariadb, postfix, chrony, nvidia).  A user of
# the inventory with such a name would take the account over (ansible's user/group modules change uid,
# gid, home and shell of an existing account), or its personal group would be a system group.
SYSTEM_NAMES = frozenset(
    " ".join(
        (
            # base-passwd's users and groups
            "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats",
            "nobody nogroup adm tty disk kmem dialout fax voice cdrom floppy tape sudo audio dip",
            "operator src shadow utmp video sasl plugdev staff users",
            # systemd, dbus, udev and friends
            "systemd-journal systemd-network systemd-resolve systemd-timesync systemd-coredump",
            "messagebus polkitd input kvm render sgx netdev crontab ssl-cert tss uuidd tcpdump",
            # daemons of this platform's packages
            "sshd _ssh munge slurm ceph mysql postfix postdrop _chrony chrony ntp statd _rpc",
            "nvidia-persistenced docker",
            # groups with admin rights elsewhere (sudo on other distributions)
            "wheel admin lpadmin",
        )
    ).split()
)
SYSTEM_PREFIXES = ("systemd-", "_")  # Debian: system accounts start with an underscore (policy 9.2.1)
# Host names something else gives a meaning to (case-insensitive): slurm.conf's NodeName=DEFAULT (defaults
# for the following lines) and Nodes=ALL (every node), Ansible's groups all and ungrouped, and localhost
# (127.0.0.1).  PartitionName=DEFAULT likewise (check_slurm).
HOST_RESERVED_NAMES = frozenset({"default", "all", "localhost", "ungrouped"})
# Directories of the operating system: CephFS must not be mounted on or under them.  /home is allowed (a
# shared /home is common on clusters; Debian keeps nothing but local users' homes there, and this platform
# has no local users).
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
)
CLASSIFICATION_LEVELS = (0, 1, 2, 3)  # AAU's model; the platform permits only some of them
# Slurm names (ailab/slurm.py): the cluster name prefixes MariaDB table names (40 characters at most, Slurm
# lower-cases it); accounts are lower-cased by sacctmgr, so a capital letter would never match again.
SLURM_CLUSTER_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SLURM_ACCOUNT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SLURM_PARTITION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def validate(cluster: Cluster) -> list[Problem]:
    problems: list[Problem] = []
    for check in (
        check_groups,
        check_hosts,
        check_compute,
        check_partitions,
        check_policy,
        check_job_limits,
        check_users,
        check_storage,
        check_sim,
        check_slurm,
        check_extra_config,
        check_admin_access,
        check_cluster,
        check_operations_host,
        check_backup,
        check_monitoring,
        check_idle_gpus,
        check_status_page,
        check_containers,
        check_directory,
    ):
        problems.extend(check(cluster))
    return sorted(set(problems), key=lambda p: (p.where, p.field, p.message))


def check_groups(cluster: Cluster) -> list[Problem]:
    out = []
    need = {
        GROUP_FRONTEND: "add the login node(s) to the frontend group",
        GROUP_CONTROLLER: "add the Slurm controller host to the slurm_controller group",
        GROUP_COMPUTE: "add GPU nodes under compute -> children -> compute_<class>",
    }
    for group, fix in need.items():
        if not cluster.group(group):
            out.append(Problem(f"group {group}", "hosts", "has no hosts", fix))
    if len(cluster.controllers) > 1:
        names = ", ".join(h.name for h in cluster.controllers)
        out.append(
            Problem(
                f"group {GROUP_CONTROLLER}",
                "hosts",
                f"has {len(cluster.controllers)} hosts ({names}); this layout runs one slurmctld",
                "keep one host in slurm_controller",
            )
        )
    for host in cluster.frontends:
        if host.in_group(GROUP_COMPUTE):
            out.append(
                Problem(
                    f"host {host.name}",
                    "groups",
                    "is both a front-end and a compute node; the front-end runs no slurmd",
                    "remove it from one of frontend / compute",
                )
            )
    return out


def _canonical(name: str) -> str:
    return name.lower().split(".", 1)[0]


ADDRESS_FIX = (
    "write the host's IPv4 address on the cluster network, e.g. ailab_address: 10.70.20.11 "
    "(no host name, no /prefix)"
)


def address_problem(text: str) -> str | None:
    """Why ``text`` cannot be a node's address on the cluster network, or None.

    IPv4 only: slurm.conf is rendered without CommunicationParameters=EnableIPv6 and ceph.conf's mon_host
    without the brackets an IPv6 address needs, so an IPv6 address would break slurmd and the monitors."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return f"{text!r} is not an IP address"
    if address.version == 6:
        return f"{text} is an IPv6 address; the Slurm and Ceph configuration this project writes is IPv4-only"
    for kind, test in (
        ("the unspecified address", address.is_unspecified),
        ("a loopback address (127.0.0.0/8)", address.is_loopback),
        ("a multicast address (224.0.0.0/4)", address.is_multicast),
        ("a link-local address (169.254.0.0/16)", address.is_link_local),
        ("the broadcast address", address == ipaddress.IPv4Address("255.255.255.255")),
        ("a reserved address (240.0.0.0/4)", address.is_reserved),
    ):
        if test:
            return f"{text} is {kind}, not a unicast address of the cluster network"
    return None


def check_hosts(cluster: Cluster) -> list[Problem]:
    out = []
    group_names = {
        *ROLE_GROUPS,
        *cluster.node_classes,
        *(g for p in cluster.partitions for g in p.node_groups),
    }
    by_address: dict[str, list[str]] = defaultdict(list)
    by_short: dict[str, list[str]] = defaultdict(list)
    for host in cluster.hosts.values():
        where = f"host {host.name}"
        by_short[_canonical(host.name)].append(host.name)
        if not HOSTNAME_RE.match(host.name):
            out.append(
                Problem(
                    where,
                    "name",
                    "is not a valid short hostname (lowercase letters, digits and '-', no dots)",
                    "rename the host, e.g. a256-t4-04; keep the domain in ailab_cluster.domain",
                )
            )
        elif host.name.lower() in HOST_RESERVED_NAMES:
            out.append(
                Problem(
                    where,
                    "name",
                    f"{host.name!r} is reserved (slurm.conf: NodeName=DEFAULT sets defaults, Nodes=ALL means "
                    "every node; Ansible: the groups all and ungrouped; localhost is 127.0.0.1)",
                    "rename the host, e.g. a256-t4-04",
                )
            )
        elif host.name in group_names:
            out.append(
                Problem(
                    where,
                    "name",
                    f"{host.name!r} is also the name of an inventory group; Ansible patterns and "
                    "node_groups could mean either",
                    "rename the host, e.g. a256-t4-04",
                )
            )
        if host.address:
            if problem := address_problem(host.address):
                out.append(Problem(where, "ailab_address", problem, ADDRESS_FIX))
            by_address[host.address].append(host.name)
        if not any(host.in_group(g) for g in (GROUP_FRONTEND, GROUP_CONTROLLER, GROUP_COMPUTE, GROUP_CEPH)):
            out.append(
                Problem(
                    where,
                    "groups",
                    "is in none of frontend, slurm_controller, compute, ceph; no role would configure it",
                    "add it to one of those groups or remove it",
                )
            )
    for address, names in by_address.items():
        if len(names) > 1:
            for name in names:
                out.append(
                    Problem(
                        f"host {name}",
                        "ailab_address",
                        f"duplicate host: address {address} is also used by "
                        + ", ".join(n for n in names if n != name),
                        "give every host its own address",
                    )
                )
    for short, names in by_short.items():
        if len(names) > 1:
            out.append(
                Problem(
                    f"host {names[0]}",
                    "name",
                    f"duplicate host: {', '.join(names)} are the same machine ({short})",
                    "list each host once, by its short name",
                )
            )
    return out


def check_compute(cluster: Cluster) -> list[Problem]:
    out = []
    for host in cluster.compute:
        where = f"host {host.name}"
        classes = [g for g in host.groups if g in cluster.node_classes]
        if not classes:
            out.append(
                Problem(
                    where,
                    "groups",
                    "is a compute node in no node class",
                    "put it under compute -> children -> compute_<class> (e.g. compute_t4)",
                )
            )
        elif len(classes) > 1:
            out.append(
                Problem(
                    where,
                    "groups",
                    f"duplicate host: listed in several node classes ({', '.join(classes)})",
                    "list the host in exactly one compute_<class> group",
                )
            )
        out.extend(_check_hardware(cluster, host))
    for node_class in cluster.node_classes.values():
        for name in node_class.hosts:
            if not cluster.hosts[name].in_group(GROUP_COMPUTE):
                out.append(
                    Problem(
                        f"host {name}",
                        "groups",
                        f"is in node class {node_class.name} but not in compute",
                        f"make {node_class.name} a child group of compute",
                    )
                )
    return out


def _check_hardware(cluster: Cluster, host: Host) -> list[Problem]:
    where = f"host {host.name}"
    hw = host.hardware
    if hw is None:
        return [
            Problem(
                where,
                "ailab_hardware",
                "is missing for a compute node",
                f"set ailab_hardware in group_vars/{host.node_class or 'compute_<class>'}.yml",
            )
        ]
    out = []
    installed = hw.memory_installed_gb
    if installed is not None and installed >= 1 and hw.memory_mb > installed * 1024:
        out.append(
            Problem(
                where,
                "ailab_hardware.memory_mb",
                f"{hw.memory_mb} MB is more than the {installed} GB installed "
                f"(ailab_hardware.memory_installed_gb: {installed * 1024} MB); slurmd would drain the node",
                f"set memory_mb to at most {installed * 1024} (a little less leaves room for the OS), "
                "or correct memory_installed_gb to the RAM the machine has",
            )
        )
    if TEXT_BAD.search(hw.cpu_model):
        out.append(
            Problem(
                where,
                "ailab_hardware.cpu_model",
                f"{hw.cpu_model!r} has '|' or a control character, which break the node table of the "
                "generated user docs",
                "write it on one line without '|', e.g. cpu_model: 2x AMD EPYC 7302 16-core",
            )
        )
    if hw.gpu is None:
        out.append(
            Problem(
                where,
                "ailab_hardware.gpu",
                "is missing; compute nodes are GPU nodes (seed 001 rule 5)",
                f"declare ailab_hardware.gpu, e.g. gpu: {{model: t4, count: 6}} (models: {known_models()})",
            )
        )
        return out
    if hw.gpu.count < 1:
        return out  # reported while parsing
    slurm = cluster.slurm
    need_mem = slurm.def_mem_per_gpu_mb * hw.gpu.count
    if hw.memory_mb >= 1 and need_mem > hw.memory_mb:  # below 1: reported while parsing
        per_gpu = hw.memory_mb // hw.gpu.count
        out.append(
            Problem(
                where,
                "ailab_hardware.memory_mb",
                f"{hw.memory_mb} MB cannot give each of its {hw.gpu.count} GPUs the default "
                f"{slurm.def_mem_per_gpu_mb} MB (ailab_slurm.def_mem_per_gpu_mb): {need_mem} MB needed",
                (f"set ailab_slurm.def_mem_per_gpu_mb to {per_gpu} or less, or " if per_gpu else "")
                + "correct memory_mb / gpu.count",
            )
        )
    need_cpu = slurm.def_cpu_per_gpu * hw.gpu.count
    if hw.cpus >= 1 and need_cpu > hw.cpus:
        per_gpu = hw.cpus // hw.gpu.count
        out.append(
            Problem(
                where,
                "ailab_hardware",
                f"{hw.cpus} CPUs cannot give each of its {hw.gpu.count} GPUs the default "
                f"{slurm.def_cpu_per_gpu} CPUs (ailab_slurm.def_cpu_per_gpu): {need_cpu} needed",
                (f"set ailab_slurm.def_cpu_per_gpu to {per_gpu} or less, or " if per_gpu else "")
                + "correct the CPU topology (sockets, cores_per_socket, threads_per_core) / gpu.count",
            )
        )
    return out


def check_partitions(cluster: Cluster) -> list[Problem]:
    out = []
    if not cluster.partitions:
        out.append(
            Problem(
                "group_vars/all",
                "ailab_partitions",
                "defines no partition",
                "add a default partition over group compute and one per node class",
            )
        )
        return out
    policy_max = cluster.policy.max_job_seconds
    names = [p.name for p in cluster.partitions]
    for name in {n for n in names if names.count(n) > 1}:
        out.append(
            Problem(f"partition {name}", "name", "is defined twice", "give each partition a unique name")
        )
    defaults = [p.name for p in cluster.partitions if p.default]
    if len(defaults) != 1:
        out.append(
            Problem(
                "group_vars/all",
                "ailab_partitions",
                f"{len(defaults)} partitions are marked default ({', '.join(defaults) or 'none'})",
                "mark exactly one partition default: true",
            )
        )
    for p in cluster.partitions:
        where = f"partition {p.name}"
        if not p.nodes:
            out.append(Problem(where, "node_groups", "has no nodes", "list a group with compute nodes in it"))
        for name in p.nodes:
            if name in cluster.hosts and not cluster.hosts[name].in_group(GROUP_COMPUTE):
                out.append(
                    Problem(
                        where,
                        "node_groups",
                        f"includes {name}, which is not a compute node",
                        "list only compute groups",
                    )
                )
        if p.max_time is not None and (problem := duration_problem(p.max_time)):
            out.append(Problem(where, "max_time", problem, 'write e.g. max_time: "04:00:00", or drop it'))
        elif p.max_time is not None and parse_duration(p.max_time) > policy_max:
            out.append(
                Problem(
                    where,
                    "max_time",
                    f"{p.max_time} is above the policy's max_job_time {cluster.policy.max_job_time}",
                    f"set max_time to {cluster.policy.max_job_time} or less, or drop it",
                )
            )
    in_partitions = {n for p in cluster.partitions for n in p.nodes}
    for host in cluster.compute:
        if host.name not in in_partitions:
            out.append(
                Problem(
                    f"host {host.name}",
                    "partitions",
                    "is a compute node in no partition; it would never run a job",
                    "add its node class group to a partition's node_groups",
                )
            )
    return out


def duration_problem(text: str) -> str | None:
    """Why a (well-formed) HH:MM:SS time limit cannot be one, or None."""
    seconds = parse_duration(text)
    if seconds == 0:
        return "is zero: no job fits a time limit of 0 (and Slurm reads 0 in a request as no limit)"
    if seconds % 60:
        return (
            f"{text} has seconds; Slurm keeps time limits in whole minutes and would round it up, while "
            "job_submit.lua rounds down"
        )
    return None


def _check_notices(cluster: Cluster) -> list[Problem]:
    """The yearly deletion's notices as ailab-retention needs them (it refuses an empty list)."""
    out = []
    where = "group_vars/all"
    notices = cluster.policy.deletion.notices
    if not notices:
        out.append(
            Problem(
                where,
                "ailab_policy.deletion.notices",
                "is empty: ailab-retention refuses to run, and nobody would be told before the deletion",
                'list the notices, e.g. notices: ["2 months", "1 month", "14 days", "2 days"]',
            )
        )
    for i, offset in enumerate(notices):
        if offset.months >= 12 or offset.days >= 365:
            out.append(
                Problem(
                    where,
                    f"ailab_policy.deletion.notices[{i}]",
                    f"{offset.label} is a year or more: the notice would fall before the previous "
                    "deletion, in the wrong cycle",
                    'give it less than a year, e.g. "2 months"',
                )
            )
    return out


def check_policy(cluster: Cluster) -> list[Problem]:
    out = []
    policy = cluster.policy
    where = "group_vars/all"
    bad_times = False
    for key, value, example in (
        ("max_job_time", policy.max_job_time, "12:00:00"),
        ("default_job_time", policy.default_job_time, "01:00:00"),
    ):
        if problem := duration_problem(value):
            bad_times = True
            out.append(Problem(where, f"ailab_policy.{key}", problem, f'write e.g. {key}: "{example}"'))
    if not bad_times and parse_duration(policy.default_job_time) > policy.max_job_seconds:
        out.append(
            Problem(
                where,
                "ailab_policy.default_job_time",
                f"{policy.default_job_time} is above max_job_time {policy.max_job_time}",
                f"set default_job_time to {policy.max_job_time} or less",
            )
        )
    out.extend(_check_notices(cluster))
    for key, value in (("support_email", policy.support_email), ("extension_url", policy.extension_url)):
        if not value:
            continue
        if key == "support_email" and not EMAIL_RE.match(value):
            out.append(
                Problem(
                    where,
                    "ailab_policy.support_email",
                    f"{value!r} is not an e-mail address (it is the Reply-To of every notice and root's "
                    "mail alias)",
                    "write a full address such as support@example.org",
                )
            )
        if key == "extension_url" and not URL_RE.match(value):
            out.append(
                Problem(
                    where,
                    "ailab_policy.extension_url",
                    f"{value!r} is not an http(s) URL (notices and the login message print it as a link)",
                    "write the whole address of the extension form, e.g. https://forms.example.org/extend",
                )
            )
    for level in policy.data_classification_levels:
        if level not in CLASSIFICATION_LEVELS:
            out.append(
                Problem(
                    where,
                    "ailab_policy.data_classification_levels",
                    f"{level} is not a level of the data classification model (0-3)",
                    "list levels from 0, 1, 2, 3",
                )
            )
    if not policy.data_classification_levels:
        out.append(
            Problem(
                where,
                "ailab_policy.data_classification_levels",
                "is empty",
                "list the allowed levels, e.g. [0, 1]",
            )
        )
    offsets = [(o.months, o.days) for o in policy.deletion.notices]
    if len(set(offsets)) != len(offsets):
        out.append(
            Problem(
                where,
                "ailab_policy.deletion.notices",
                "lists the same notice twice",
                "list each notice offset once",
            )
        )
    if any(m == 0 and d == 0 for m, d in offsets):
        out.append(
            Problem(
                where,
                "ailab_policy.deletion.notices",
                "has a notice 0 days before the deletion",
                "give every notice a lead time",
            )
        )
    days = policy.maintenance_notice_days
    if any(d <= 0 for d in days) or len(set(days)) != len(days):
        out.append(
            Problem(
                where,
                "ailab_policy.maintenance_notice_days",
                f"{list(days)} must be distinct positive day counts",
                "write e.g. [30, 14, 1]",
            )
        )
    try:
        zoneinfo.ZoneInfo(cluster.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        out.append(
            Problem(
                where,
                "ailab_cluster.timezone",
                f"{cluster.timezone!r} is not a time zone",
                "use an IANA name such as Europe/Copenhagen",
            )
        )
    return out


def _class_shares(cluster: Cluster, unit: str) -> dict[str, tuple[int, int, int]]:
    """Per node class: (share per GPU, CPUs or memory MB, GPUs) of its host with the smallest share of
    ``unit`` ("CPUs" or "MB") per GPU; hosts without GPU hardware are left out (reported elsewhere)."""
    shares: dict[str, tuple[int, int, int]] = {}
    for host in cluster.compute:
        hw = host.hardware
        if host.node_class is None or hw is None or hw.gpu is None or hw.gpu.count < 1:
            continue
        have = hw.cpus if unit == "CPUs" else hw.memory_mb
        if have < 1:
            continue
        mine = (have // hw.gpu.count, have, hw.gpu.count)
        if host.node_class not in shares or mine < shares[host.node_class]:
            shares[host.node_class] = mine
    return shares


def check_job_limits(cluster: Cluster) -> list[Problem]:
    """Rule 6's caps (ailab_policy.max_cpus_per_gpu, max_mem_per_gpu_mb, max_nodes_per_job) and the QOS job
    counts: a cap must fit every node class's share per GPU (else one GPU can carry most of a node, idling
    its other GPUs) and leave room for the Slurm defaults a plain ``--gres=gpu:1`` job gets."""
    out = []
    where = "group_vars/all"
    policy, slurm = cluster.policy, cluster.slurm
    caps = (
        ("max_cpus_per_gpu", policy.max_cpus_per_gpu, "def_cpu_per_gpu", slurm.def_cpu_per_gpu, "CPUs"),
        (
            "max_mem_per_gpu_mb",
            policy.max_mem_per_gpu_mb,
            "def_mem_per_gpu_mb",
            slurm.def_mem_per_gpu_mb,
            "MB",
        ),
    )
    for key, cap, default_key, default, unit in caps:
        if cap < 1:
            continue  # reported while parsing
        if cap < default:
            out.append(
                Problem(
                    where,
                    f"ailab_policy.{key}",
                    f"{cap} {unit} is below the {default} {unit} every GPU job gets by default "
                    f"(ailab_slurm.{default_key}): a job without options would be refused",
                    f"set ailab_policy.{key} to {default} or more, or lower ailab_slurm.{default_key}",
                )
            )
        for node_class, (share, have, gpus) in sorted(_class_shares(cluster, unit).items()):
            # A class that cannot even give the default per GPU is reported with its hardware.
            if cap > share and default <= share:
                out.append(
                    Problem(
                        where,
                        f"ailab_policy.{key}",
                        f"{cap} {unit} per GPU is more than {node_class} has per GPU ({have} {unit} / "
                        f"{gpus} GPUs = {share}): one GPU could hold more than its share of a node",
                        f"set ailab_policy.{key} to {share} or less",
                    )
                )
    nodes = len(cluster.compute)
    if nodes and policy.max_nodes_per_job > nodes:
        out.append(
            Problem(
                where,
                "ailab_policy.max_nodes_per_job",
                f"{policy.max_nodes_per_job} is more than the cluster's {nodes} compute nodes",
                f"set ailab_policy.max_nodes_per_job to {nodes} or less",
            )
        )
    if policy.max_jobs_per_user > policy.max_submit_jobs_per_user >= 1:  # below 1: reported while parsing
        out.append(
            Problem(
                where,
                "ailab_policy.max_jobs_per_user",
                f"{policy.max_jobs_per_user} running jobs per user is more than the "
                f"{policy.max_submit_jobs_per_user} a user may have queued and running together "
                "(max_submit_jobs_per_user): the smaller limit wins",
                f"set ailab_policy.max_jobs_per_user to {policy.max_submit_jobs_per_user} or less, or raise "
                "max_submit_jobs_per_user",
            )
        )
    return out


def check_users(cluster: Cluster) -> list[Problem]:
    out = []
    uids: dict[int, list[str]] = defaultdict(list)
    for user in cluster.users.values():
        where = f"user {user.name}"
        uids[user.uid].append(user.name)
        if not USERNAME_RE.match(user.name):
            out.append(
                Problem(
                    where,
                    "name",
                    "is not a valid username (lowercase letter or _, then lowercase letters, digits, _ or -, "
                    "at most 32)",
                    "use the university login, e.g. ab12cd",
                )
            )
        elif reserved := _system_name(cluster, user.name):
            out.append(
                Problem(
                    where,
                    "name",
                    f"{user.name!r} is {reserved}; role accounts would take that account or group over",
                    "use the person's university login (e.g. ab12cd); system names are reserved",
                )
            )
        for key, value in (("uid", user.uid), ("gid", user.gid)):
            if problem := _id_problem(value):
                out.append(Problem(where, key, f"{value} is {problem}", ID_FIX))
        if user.gid == cluster.accounts.admin_gid:
            out.append(
                Problem(
                    where,
                    "gid",
                    f"{user.gid} is the gid of the admin group {cluster.accounts.admin_group} "
                    "(accounts_admin_gid); the user's personal group would replace it",
                    "give the user's personal group its own gid (the convention: gid = uid)",
                )
            )
        out.extend(_check_gecos(user))
        for i, key in enumerate(user.ssh_keys):
            if found := key_problem(key):
                message, fix = found
                out.append(Problem(where, f"ssh_keys[{i}]", message, fix))
        if not user.email:
            out.append(
                Problem(
                    where,
                    "email",
                    "is missing",
                    "set email to the address that receives notices, e.g. email: name@example.org",
                )
            )
        elif not EMAIL_RE.match(user.email):
            out.append(
                Problem(
                    where,
                    "email",
                    f"{user.email!r} is not an e-mail address",
                    "write a full address such as name@example.org",
                )
            )
        if not user.project:
            known = ", ".join(sorted(cluster.projects)) or "none defined: add one to ailab_projects"
            out.append(
                Problem(
                    where, "project", "is missing", f"set project to the user's course or project: {known}"
                )
            )
        elif user.project not in cluster.projects:
            known = ", ".join(sorted(cluster.projects)) or "none defined"
            out.append(
                Problem(
                    where,
                    "project",
                    f"unknown project {user.project!r}",
                    f"add it to ailab_projects or use one of: {known}",
                )
            )
    for uid, names in uids.items():
        if len(names) > 1:
            for name in names:
                out.append(
                    Problem(
                        f"user {name}",
                        "uid",
                        f"duplicate uid {uid} (also {', '.join(n for n in names if n != name)})",
                        "give every user their own uid",
                    )
                )
    out.extend(_check_personal_groups(cluster))
    out.extend(_check_admin_group(cluster))
    return out


def _check_admin_group(cluster: Cluster) -> list[Problem]:
    """Role accounts' own group, when the inventory overrides accounts_admin_group/accounts_admin_gid."""
    out = []
    accounts = cluster.accounts
    if not USERNAME_RE.match(accounts.admin_group) or accounts.admin_group in SYSTEM_NAMES:
        out.append(
            Problem(
                "group_vars/all",
                "accounts_admin_group",
                f"{accounts.admin_group!r} cannot be the admin group (a group name of lowercase letters, "
                "digits, '_' or '-' that is not a system group)",
                "leave it at the role default, ailab-admins, or pick another such name",
            )
        )
    if problem := _id_problem(accounts.admin_gid):
        out.append(
            Problem(
                "group_vars/all",
                "accounts_admin_gid",
                f"{accounts.admin_gid} is {problem}",
                "leave it at the role default, 2900, or pick a free gid from 1000 to 59999",
            )
        )
    return out


ID_FIX = (
    f"use an id from {FIRST_USER_ID} to 59999 or from 65536 to {LAST_ID} (the inventory's users have "
    "e.g. 200101)"
)


def _id_problem(value: int) -> str | None:
    if value < FIRST_USER_ID:
        return f"a system id (below {FIRST_USER_ID})"
    if value > LAST_ID + 2:
        return "above the largest id, 4294967295"
    for low, high in RESERVED_ID_RANGES:
        if low <= value <= high:
            return f"in the range {low}-{high} that Debian reserves (65534 is nobody/nogroup)"
    return None


def _system_name(cluster: Cluster, name: str) -> str | None:
    """What ``name`` already is on a node, if anything."""
    if name == cluster.accounts.admin_group:
        return "the admin group of role accounts (accounts_admin_group)"
    if name in SYSTEM_NAMES:
        return "a system account or group of Debian 12"
    if name.startswith(SYSTEM_PREFIXES):
        return f"a system account name (names starting with {' or '.join(SYSTEM_PREFIXES)} are reserved)"
    return None


# Texts that go into line- and '|'-separated formats: sacctmgr -P output, Markdown tables.
TEXT_BAD = re.compile(r"[|\x00-\x1f\x7f]")
# chfn/usermod refuse ':', ',', '=' and control characters in GECOS fields: ':' ends the passwd field, ','
# separates the GECOS sub-fields (role accounts writes "full name,,,,e-mail").
GECOS_BAD = re.compile(r"[:,=\x00-\x1f\x7f]")


def _check_gecos(user: User) -> list[Problem]:
    bad = GECOS_BAD.findall(user.full_name)
    if not bad:
        return []
    shown = "".join(sorted({repr(c)[1:-1] for c in bad}))
    return [
        Problem(
            f"user {user.name}",
            "full_name",
            f"{user.full_name!r} contains {shown}, which the passwd file's GECOS field cannot hold",
            "write the name without ':', ',', '=' or line breaks, e.g. full_name: Anna Bech",
        )
    ]


def _check_personal_groups(cluster: Cluster) -> list[Problem]:
    """Every user gets a personal group named after them with their gid (role accounts): a gid must be
    unique per user, and should not be another user's uid (uid = gid is how everyone reads them)."""
    out = []
    by_gid: dict[int, list[str]] = defaultdict(list)
    by_uid = {u.uid: u.name for u in cluster.users.values()}
    for user in cluster.users.values():
        by_gid[user.gid].append(user.name)
    for gid, names in by_gid.items():
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                out.append(
                    Problem(
                        f"user {name}",
                        "gid",
                        f"duplicate gid {gid} (also {others}); each user's personal group needs its own gid",
                        "give every user their own gid (the convention: gid = uid)",
                    )
                )
    for user in cluster.users.values():
        owner = by_uid.get(user.gid)
        if owner is not None and owner != user.name and len(by_gid[user.gid]) == 1:
            out.append(
                Problem(
                    f"user {user.name}",
                    "gid",
                    f"{user.gid} is the uid of user {owner}; files of {user.name}'s group would look like "
                    f"{owner}'s",
                    f"use a gid no other user has as uid (the convention: gid = uid, here {user.uid})",
                )
            )
    return out


def check_storage(cluster: Cluster) -> list[Problem]:
    out = []
    ceph = cluster.ceph
    where = "group_vars/all"
    if ceph.client not in ("kernel", "fuse"):
        out.append(
            Problem(
                where, "ailab_ceph.client", f"{ceph.client!r} is not a CephFS client", "use kernel or fuse"
            )
        )
    elif cluster.sim is not None and ceph.client != "fuse":
        out.append(
            Problem(
                where,
                "ailab_ceph.client",
                "is kernel in a simulated cluster; the containers share the host's kernel, which has no "
                "CephFS module",
                "set ailab_ceph.client: fuse",
            )
        )
    if not CEPH_FS_NAME_RE.match(ceph.fs_name):
        out.append(
            Problem(
                where,
                "ailab_ceph.fs_name",
                f"{ceph.fs_name!r} is not a CephFS name (Ceph allows letters, digits, '_', '-' and '.')",
                "use e.g. fs_name: cephfs",
            )
        )
    paths = {"home_root": ceph.home_root, "datasets_path": ceph.datasets_path}
    good_paths = {}
    for key, path in paths.items():
        if path is None:
            continue
        found = path_problem(path)
        if found:
            out.append(Problem(where, f"ailab_ceph.{key}", *found))
        else:
            good_paths[key] = path
    if len(good_paths) == 2:
        home, datasets = ceph.home_root, ceph.datasets_path or ""
        if _inside(datasets, home) or _inside(home, datasets):
            relation = (
                "the same directory as"
                if home == datasets
                else ("inside" if _inside(datasets, home) else "above")
            )
            out.append(
                Problem(
                    where,
                    "ailab_ceph.datasets_path",
                    f"{datasets} is {relation} home_root {home}; one mount would hide the other (and a "
                    "directory in the homes named like a user would be a home)",
                    "pick separate directories, e.g. home_root: /ceph/home and datasets_path: /ceph/datasets",
                )
            )
    for key, path, example in (
        ("ailab_cephfs_home_dir", ceph.fs_home_dir, "/home"),
        ("ailab_cephfs_datasets_dir", ceph.fs_datasets_dir, "/datasets"),
    ):
        if not path.startswith("/") or path.strip("/") == "":
            out.append(
                Problem(
                    where,
                    key,
                    f"{path!r} is not a directory inside the CephFS (an absolute path below its root /)",
                    f"write it as an absolute path, e.g. {key}: {example}",
                )
            )
    if ceph.managed and not cluster.ceph_hosts:
        out.append(
            Problem(
                where,
                "ailab_ceph.managed",
                "is true but group ceph has no hosts",
                "add the storage node(s) to group ceph, or set managed: false and list monitors",
            )
        )
    if not ceph.managed and not ceph.monitors:
        out.append(
            Problem(
                where,
                "ailab_ceph.monitors",
                "is empty for an external Ceph cluster",
                "list the monitor addresses (or set managed: true and add a ceph group)",
            )
        )
    if not ceph.managed:
        out.extend(_check_monitors(cluster))
    elif cluster.ceph_hosts:
        out.extend(_check_pool_size(cluster))
    return out


def _inside(path: str, top: str) -> bool:
    """``path`` is ``top`` or below it (both normalised)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def path_problem(
    path: str,
    *,
    example: str = "e.g. /ceph/home or /ceph/datasets",
    taken_by: str = "mount units, passwd home fields and Ceph caps",
    at_root: str = "CephFS would be mounted over the whole system",
    in_system: str = "mounting CephFS there hides or shadows system files",
) -> tuple[str, str] | None:
    """(message, fix) when ``path`` cannot be a directory of its own for what is put there, or None: by
    default where CephFS is mounted; the keywords name the example, what takes the path as it is and why
    / and the system directories are wrong for another use (the backup destination)."""
    if not path.startswith("/"):
        return f"{path!r} is not an absolute path", f"start it with /, {example}"
    if not PATH_CHARS_RE.match(path):
        return (
            f"{path!r} has characters other than letters, digits, '.', '_', '-' and '/' ({taken_by} "
            "take it as it is)",
            f"rename the directory, {example}",
        )
    normal = "/" + "/".join(part for part in posixpath.normpath(path).split("/") if part)
    if normal != path:
        return (
            f"{path!r} is not a normalised path (no '.', '..', '//' or trailing '/')",
            f"write it as {normal}",
        )
    if path == "/":
        return f"is /: {at_root}", f"use a directory of its own, {example}"
    for system in SYSTEM_DIRS:
        if _inside(path, system):
            return (
                f"{path} is {'a' if path == system else 'inside'} {system}, a directory of the operating "
                f"system; {in_system}",
                f"use a directory of its own outside {', '.join(SYSTEM_DIRS)}, {example}",
            )
    return None


def _check_monitors(cluster: Cluster) -> list[Problem]:
    """External Ceph: each monitor is an IPv4 address, optionally with :port (ceph.conf mon_host and the
    kernel client's device string take them as they are; a bare address gets :6789)."""
    out = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(cluster.ceph.monitors):
        field = f"ailab_ceph.monitors[{i}]"
        address, _, port = entry.partition(":")
        problem = address_problem(address) if ":" not in port else f"{entry!r} is not address or address:port"
        if problem is None and ":" in entry and not (port.isdigit() and 1 <= int(port) <= 65535):
            problem = f"{entry!r} has port {port!r}, not a number from 1 to 65535"
        if problem is not None:
            out.append(
                Problem(
                    "group_vars/all",
                    field,
                    problem,
                    "write the monitor's IPv4 address, optionally with its port, e.g. 10.70.30.11 or "
                    "10.70.30.11:6789",
                )
            )
        elif address in seen:
            out.append(
                Problem(
                    "group_vars/all",
                    field,
                    f"{address} is listed twice (also ailab_ceph.monitors[{seen[address]}])",
                    "list each monitor once",
                )
            )
        else:
            seen[address] = i
    return out


def _check_pool_size(cluster: Cluster) -> list[Problem]:
    """Managed Ceph: the replica counts role ceph_cluster gives the CephFS pools must keep every write in
    two copies even with one host down (table in :func:`ailab.ceph.pool_size`)."""
    hosts = len(cluster.ceph_hosts)
    requested = cluster.ceph.pool_size
    size = requested or min(MAX_AUTO_REPLICAS, hosts)
    if size > hosts:
        return [
            Problem(
                "group_vars/all",
                "ailab_ceph.pool_size",
                f"is {size} but group ceph has {hosts} host(s); Ceph places each copy on its own host, so "
                "the pools could never be healthy",
                f"add {size - hosts} host(s) to group ceph, or set pool_size to at most {hosts}",
            )
        ]
    if size == 2:
        where, field = ("group_vars/all", "ailab_ceph.pool_size") if requested else ("group ceph", "hosts")
        cause = "ailab_ceph.pool_size 2" if requested else "2 storage hosts"
        return [
            Problem(
                where,
                field,
                f"{cause} give the CephFS pools size 2 / min_size 1: with one host down every write is "
                "acknowledged with a single copy, which the next disk failure loses",
                "add a third host to group ceph (size 3, min_size 2)"
                + (" and drop pool_size" if requested else ""),
            )
        ]
    if size == 1 and not requested and cluster.sim is None:
        return [
            Problem(
                "group ceph",
                "hosts",
                "has one storage host: the CephFS pools keep one copy of every file, a failed disk loses "
                "every home",
                "add two hosts to group ceph (size 3, min_size 2); for a test cluster without redundancy "
                "set ailab_ceph.pool_size: 1 and ceph_cluster_pool_size: 1",
            )
        ]
    return []


def check_sim(cluster: Cluster) -> list[Problem]:
    if cluster.sim is None:
        return []
    out = []
    where = "group_vars/all"
    for key, value in (("prefix", cluster.sim.prefix), ("network", cluster.sim.network)):
        if not DOCKER_NAME_RE.match(value):
            out.append(
                Problem(
                    where,
                    f"ailab_sim.{key}",
                    f"{value!r} cannot be part of a Docker container or network name (letters, digits, "
                    "'_', '.' and '-'; it also names the simulator's secrets directory)",
                    f"use e.g. {key}: ailab" + ("-sim" if key == "network" else ""),
                )
            )
    try:
        subnet = ipaddress.ip_network(cluster.sim.subnet)
    except ValueError:
        return [
            *out,
            Problem(
                where,
                "ailab_sim.subnet",
                f"{cluster.sim.subnet!r} is not a network",
                "write it as a CIDR, e.g. 10.213.0.0/24",
            ),
        ]
    if subnet.version != 4 or subnet.prefixlen > 29:
        return [
            *out,
            Problem(
                where,
                "ailab_sim.subnet",
                f"{subnet} is not an IPv4 network with room for the cluster (the nodes' addresses are IPv4)",
                "write an IPv4 CIDR of /29 or larger, e.g. 10.213.0.0/24",
            ),
        ]
    gateway = next(subnet.hosts())
    for host in cluster.hosts.values():
        if address_problem(host.address):
            continue  # reported by check_hosts
        address = ipaddress.ip_address(host.address)
        if address not in subnet or address in (gateway, subnet.network_address, subnet.broadcast_address):
            out.append(
                Problem(
                    f"host {host.name}",
                    "ailab_address",
                    f"{host.address} is not a usable address in the simulator's subnet {subnet} "
                    f"({gateway} is the gateway)",
                    f"pick a free address in {subnet}",
                )
            )
    return out


def network_list(
    texts: Sequence[str], where: str, key: str, *, malformed_fix: str, everything: tuple[str, str]
) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], list[Problem]]:
    """The networks of an inventory list of addresses/CIDRs (``key``), and a problem for each entry that is
    none, or is every address (/0: ``everything`` is why that is wrong, and the fix)."""
    networks, out = [], []
    for i, text in enumerate(texts):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            out.append(Problem(where, f"{key}[{i}]", f"{text!r} is not an address or network", malformed_fix))
            continue
        if net.prefixlen == 0:
            out.append(
                Problem(where, f"{key}[{i}]", f"{text} is every address: {everything[0]}", everything[1])
            )
        networks.append(net)
    return networks, out


def sim_gateway(cluster: Cluster) -> ipaddress.IPv4Address | None:
    """The address this machine has on a simulated inventory's network (its bridge's gateway, the subnet's
    first host); None for a real inventory, or a subnet check_sim refuses (it names the problem)."""
    if cluster.sim is None:
        return None
    try:
        subnet = ipaddress.ip_network(cluster.sim.subnet)
    except ValueError:
        return None
    if subnet.version != 4 or subnet.prefixlen > 29:
        return None
    return next(subnet.hosts())


def check_admin_access(cluster: Cluster) -> list[Problem]:
    """The front-end refuses root logins except from ``admin_networks`` (role sshd): without them the
    converge that applies that rule would lock Ansible, which connects as root, out of the front-end."""
    where, key = "group_vars/all", "ailab_cluster.admin_networks"
    if not cluster.admin_networks:
        return [
            Problem(
                where,
                key,
                "is empty: the front-end refuses root logins from every other address, so after the first "
                "converge Ansible (which logs in as root) could no longer reach it",
                "list the Ansible controller's and operators' addresses, e.g. admin_networks: [10.70.0.5/32]",
            )
        ]
    networks, out = network_list(
        cluster.admin_networks,
        where,
        key,
        malformed_fix="write an address or CIDR, e.g. 10.70.0.5/32 or 10.70.0.0/28",
        everything=(
            "root could log in to the front-end from anywhere",
            "name only the Ansible controller's and operators' addresses, e.g. 10.70.0.5/32",
        ),
    )
    gateway = sim_gateway(cluster)
    if gateway is not None and not any(gateway in net for net in networks):
        out.append(
            Problem(
                where,
                key,
                f"does not contain {gateway}, the address the simulator's Ansible controller (this "
                f"machine) has on {cluster.sim.subnet}",
                f"add {gateway}/32 to admin_networks",
            )
        )
    return out


def check_cluster(cluster: Cluster) -> list[Problem]:
    """Names that end up in paths, mail headers and host names."""
    out = []
    where = "group_vars/all"
    if not CLUSTER_NAME_RE.match(cluster.name):
        out.append(
            Problem(
                where,
                "ailab_cluster.name",
                f"{cluster.name!r} is not a name for paths and mail headers (letters, digits, '_', '.' and "
                "'-', at most 63; it names the secrets directory and the notices' sender)",
                "use e.g. name: ailab",
            )
        )
    if cluster.domain and not DOMAIN_RE.match(cluster.domain):
        out.append(
            Problem(
                where,
                "ailab_cluster.domain",
                f"{cluster.domain!r} is not a DNS domain (lowercase labels of letters, digits and '-', "
                "separated by dots; it makes the hosts' FQDNs and mail names)",
                "write it like domain: srv.example.org (lowercase, no trailing dot)",
            )
        )
    return out


def check_operations_host(cluster: Cluster) -> list[Problem]:
    """The daily operations timers (yearly deletion, maintenance notices) run on exactly one front-end."""
    frontends = [h.name for h in cluster.frontends]
    if not frontends or cluster.operations_host in frontends:
        return []  # no front-end at all: check_groups says so
    name = cluster.operations_host
    what = "is not in the inventory" if name not in cluster.hosts else "is not a front-end"
    return [
        Problem(
            "group_vars/all",
            "ailab_cluster.operations_host",
            f"{name!r} {what}: the yearly deletion and the maintenance notices run on a front-end (they "
            "need the homes, Slurm's client commands and the mail transport)",
            f"set operations_host to one of the hosts in group frontend ({', '.join(frontends)}), or drop "
            f"it for the first one ({frontends[0]})",
        )
    ]


def check_backup(cluster: Cluster) -> list[Problem]:
    """``ailab_backup``: the destination is a directory of its own (the site's backup file system is
    mounted there by the operators; ailab-backup refuses it on the host's root at run time), not a system
    directory and not on CephFS (the backup must outlive what it protects)."""
    b, out = cluster.backup, []
    where, example = (
        "group_vars/all",
        "e.g. mount the site's backup share at /srv/backup and set /srv/backup/ailab",
    )
    dest = b.destination
    found = None
    if dest:
        found = path_problem(
            dest,
            example=example,
            taken_by="systemd's RequiresMountsFor= and the archive paths",
            at_root="the root file system, which the backup must survive",
            in_system="it is on the disk of the host it backs up",
        )
        ceph_dir = next(
            (d for d in (cluster.ceph.home_root, cluster.ceph.datasets_path) if d and _inside(dest, d)), None
        )
        if found is None and ceph_dir:
            found = (
                f"{dest} is on CephFS ({ceph_dir}): the cluster's own storage is no place for the backup "
                "that must bring the cluster back",
                f"use the site's backup file system, {example}",
            )
    if found:
        out.append(Problem(where, "ailab_backup.destination", *found))
    cal = b.on_calendar
    if not cal.strip() or any(c in cal for c in "\n\r\"'\\"):
        out.append(
            Problem(
                where,
                "ailab_backup.on_calendar",
                f"{cal!r} is not a systemd calendar expression (empty, or a newline or quote in it)",
                'write one like "*-*-* 02:30:00" (systemd.time(7); check with `systemd-analyze calendar`)',
            )
        )
    return out


HOST_PORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}$")


def check_monitoring(cluster: Cluster) -> list[Problem]:
    """``ailab_monitoring`` and group ``monitoring``: one Prometheus/Alertmanager host (Alertmanager runs
    unclustered), mail addresses that are addresses, scrape endpoints that are host:port, thresholds that
    can fire."""
    m, out, where = cluster.monitoring, [], "group_vars/all"
    hosts = cluster.monitoring_hosts
    if len(hosts) > 1:
        out.append(
            Problem(
                "inventory",
                "monitoring",
                f"has {len(hosts)} hosts ({', '.join(sorted(h.name for h in hosts))}); Prometheus and "
                "Alertmanager run on one host (Alertmanager is not clustered)",
                "keep one host in group monitoring",
            )
        )
    if m.alerts_to and not hosts:
        out.append(
            Problem(
                where,
                "ailab_monitoring.alerts_to",
                "is set, but no host is in group monitoring: nothing would evaluate the alerts",
                "add the host that runs Prometheus to group monitoring (e.g. the Slurm controller)",
            )
        )
    for i, address in enumerate(m.alerts_to):
        if not EMAIL_RE.match(address):
            out.append(
                Problem(
                    where,
                    f"ailab_monitoring.alerts_to[{i}]",
                    f"{address!r} is not an e-mail address",
                    "write the operators' address, e.g. ailab-ops@example.org",
                )
            )
    if m.alerts_from and not EMAIL_RE.match(m.alerts_from):
        out.append(
            Problem(
                where,
                "ailab_monitoring.alerts_from",
                f"{m.alerts_from!r} is not an e-mail address",
                f"write e.g. alertmanager@{cluster.domain or 'example.org'}, or remove it for that default",
            )
        )
    for i, endpoint in enumerate(m.ceph_exporters):
        if not HOST_PORT_RE.match(endpoint):
            out.append(
                Problem(
                    where,
                    f"ailab_monitoring.ceph_exporters[{i}]",
                    f"{endpoint!r} is not host:port",
                    "write the Ceph mgr's prometheus module endpoint, e.g. ceph-mgr1.example.org:9283",
                )
            )
    if m.ceph_exporters and cluster.ceph.managed:
        out.append(
            Problem(
                where,
                "ailab_monitoring.ceph_exporters",
                "is set, but Ceph is managed: the ceph group's mgr endpoints are scraped already",
                "remove ailab_monitoring.ceph_exporters (it is for an external Ceph cluster)",
            )
        )
    if not 50 <= m.cephfs_full_percent <= 99:
        out.append(
            Problem(
                where,
                "ailab_monitoring.cephfs_full_percent",
                f"is {m.cephfs_full_percent}; the CephFS-full alert needs a threshold from 50 to 99",
                "set it to e.g. 85 (Ceph itself refuses writes at 95 %)",
            )
        )
    if m.scrape_interval_s > 300:
        out.append(
            Problem(
                where,
                "ailab_monitoring.scrape_interval_s",
                f"is {m.scrape_interval_s}; Prometheus treats a series older than 5 minutes as gone, so "
                "every alert would flap",
                "set it to 300 or less, e.g. 30",
            )
        )
    controllers = {h.name for h in cluster.controllers}
    if m.job_gpu_stats and len(hosts) == 1 and hosts[0].name not in controllers:
        out.append(
            Problem(
                "inventory",
                "monitoring",
                f"{hosts[0].name} runs Prometheus but is not the Slurm controller: the GPU figures of "
                "finished jobs (jobstats) are stored by the controller's EpilogSlurmctld, which asks "
                "Prometheus on its own loopback (Prometheus listens there alone)",
                "put the Slurm controller in group monitoring, or set ailab_monitoring.job_gpu_stats: false "
                "(jobstats then shows CPU and memory of finished jobs, and no GPU figures)",
            )
        )
    if m.node_down_minutes * 60 < 2 * m.scrape_interval_s:
        out.append(
            Problem(
                where,
                "ailab_monitoring.node_down_minutes",
                f"is {m.node_down_minutes}: shorter than two scrapes ({m.scrape_interval_s} s each), so one "
                "lost scrape would page the operators",
                f"set it to {max(1, -(-2 * m.scrape_interval_s // 60))} or more",
            )
        )
    return out


def check_idle_gpus(cluster: Cluster) -> list[Problem]:
    """Rule 6 for running jobs (``ailab_policy.idle_gpu_mail_minutes`` / ``idle_gpu_cancel_minutes``): the
    mail comes before a cancel, each window spans enough scrapes to tell an idle GPU from a lost scrape, and
    a cancel has a host that may cancel (the monitoring host must be a Slurm controller)."""
    out = []
    where = "group_vars/all"
    policy, interval = cluster.policy, cluster.monitoring.scrape_interval_s
    mail, cancel = policy.idle_gpu_mail_minutes, policy.idle_gpu_cancel_minutes
    if cancel and (not mail or cancel <= mail):
        out.append(
            Problem(
                where,
                "ailab_policy.idle_gpu_cancel_minutes",
                f"is {cancel}, but the owner is mailed "
                + (f"only after {mail} minutes" if mail else "never (idle_gpu_mail_minutes: 0)")
                + ": a job would be cancelled without a warning",
                f"set idle_gpu_cancel_minutes above idle_gpu_mail_minutes (e.g. {max(mail, 30) * 2}), "
                "or 0 to never cancel",
            )
        )
    least = max(1, -(-4 * interval // 60))  # four scrapes: one lost scrape is not an idle GPU
    for key, minutes in (("idle_gpu_mail_minutes", mail), ("idle_gpu_cancel_minutes", cancel)):
        if 0 < minutes < least:
            out.append(
                Problem(
                    where,
                    f"ailab_policy.{key}",
                    f"is {minutes}: shorter than four scrapes ({interval} s each, "
                    "ailab_monitoring.scrape_interval_s), too few samples to call a GPU idle",
                    f"set it to {least} or more, or 0 to turn it off",
                )
            )
    if cancel:
        hosts = cluster.monitoring_hosts
        if not hosts or not any(h.in_group(GROUP_CONTROLLER) for h in hosts):
            out.append(
                Problem(
                    where,
                    "ailab_policy.idle_gpu_cancel_minutes",
                    f"is {cancel}, but "
                    + (
                        f"the monitoring host {hosts[0].name} is not a Slurm controller"
                        if hosts
                        else "no host is in group monitoring"
                    )
                    + ": ailab-idle-gpus runs there and cancels with scancel as root",
                    "put the Slurm controller in group monitoring, or set idle_gpu_cancel_minutes: 0",
                )
            )
    return out


# Ports the front-end already listens on (sshd, the MTA, node-exporter): the status page cannot have them.
FRONTEND_PORTS = {22: "sshd", 25: "the MTA (role mail)", 9100: "prometheus-node-exporter"}


def check_status_page(cluster: Cluster) -> list[Problem]:
    """``ailab_monitoring.status_page``: a free port, networks that are networks and not everyone, the
    simulator's host inside them, and a controller whose exporter names no user."""
    page, out, where = cluster.monitoring.status_page, [], "group_vars/all"
    key = "ailab_monitoring.status_page"
    if not page.enabled:
        return out
    if page.port > 65535:
        out.append(Problem(where, f"{key}.port", f"is {page.port}, not a TCP port", "use e.g. port: 80"))
    elif page.port in FRONTEND_PORTS:
        out.append(
            Problem(
                where,
                f"{key}.port",
                f"is {page.port}, which {FRONTEND_PORTS[page.port]} listens on",
                "use another port, e.g. port: 80",
            )
        )
    networks, problems = network_list(
        page.allow,
        where,
        f"{key}.allow",
        malformed_fix="write an address or CIDR, e.g. 10.70.0.0/16, or remove allow for the cluster network",
        everything=(
            "the page is for the cluster network",
            "name the networks of the cluster and its users, e.g. 10.70.0.0/16, or remove allow",
        ),
    )
    out += problems
    net = cluster_network(cluster) if not page.allow else None
    if net is not None:  # None: no valid address, or IPv4 and IPv6 mixed (check_hosts names them)
        networks.append(net)
    controllers = [h.name for h in cluster.controllers if h.in_group(GROUP_COMPUTE)]
    if controllers:
        out.append(
            Problem(
                where,
                f"{key}.enabled",
                f"is true, but the Slurm controller {controllers[0]} is also a compute node: its "
                "ailab-exporter names users (job metrics), and the front-ends would have to read it",
                "set ailab_monitoring.status_page.enabled: false, or run the controller on a host "
                "outside group compute",
            )
        )
    gateway = sim_gateway(cluster)
    if gateway is not None and networks and not any(gateway in net for net in networks):
        out.append(
            Problem(
                where,
                f"{key}.allow",
                f"does not contain {gateway}, the address this machine (whose browser the tests use) "
                f"has on {cluster.sim.subnet}",
                f"add {gateway}/32 to {key}.allow, or remove allow for the cluster network",
            )
        )
    return out


def check_slurm(cluster: Cluster) -> list[Problem]:
    """Names Slurm would reject or silently change (slurm.conf, sacctmgr)."""
    out = []
    where = "group_vars/all"
    name = cluster.slurm.cluster_name
    if not SLURM_CLUSTER_RE.match(name):
        out.append(
            Problem(
                where,
                "ailab_slurm.cluster_name",
                f"{name!r} is not a Slurm cluster name (a lowercase letter, then lowercase letters, digits "
                "or _, 40 characters at most; it prefixes the accounting database's table names)",
                "use e.g. ailab",
            )
        )
    for project in cluster.projects.values():
        if not SLURM_ACCOUNT_RE.match(project.name):
            out.append(
                Problem(
                    f"project {project.name}",
                    "name",
                    f"{project.name!r} cannot be a Slurm account name (lowercase letters, digits, '.', '_' "
                    "or '-', at most 64; sacctmgr lower-cases names)",
                    "rename the project, e.g. cs-ml-2026, and update its users' project",
                )
            )
    for project in cluster.projects.values():
        if project.name.lower() == "root":
            out.append(
                Problem(
                    f"project {project.name}",
                    "name",
                    "'root' is Slurm's own top account, above every project's account",
                    "rename the project, e.g. cs-ml-2026, and update its users' project",
                )
            )
    for project in cluster.projects.values():
        if TEXT_BAD.search(project.description):
            out.append(
                Problem(
                    f"project {project.name}",
                    "description",
                    f"{project.description!r} has '|' or a control character; sacctmgr -P output (which the "
                    "accounting module reads back) splits fields at '|' and rows at line breaks",
                    "write the description on one line without '|', e.g. Machine Learning (CS, 7th semester)",
                )
            )
    for partition in cluster.partitions:
        if partition.name.lower() == "default":
            out.append(
                Problem(
                    f"partition {partition.name}",
                    "name",
                    "'DEFAULT' is a slurm.conf keyword (PartitionName=DEFAULT sets defaults for the other "
                    "partitions)",
                    "rename it, e.g. gpu, and mark the default partition with default: true",
                )
            )
        elif partition.name and not SLURM_PARTITION_RE.match(partition.name):
            out.append(
                Problem(
                    f"partition {partition.name}",
                    "name",
                    f"{partition.name!r} is not a Slurm partition name (letters, digits, '.', '_' or '-')",
                    "rename it, e.g. gpu or t4",
                )
            )
    return out


# A value Slurm would read differently from what the inventory says: "#" starts a comment, blanks end
# the value (Slurm's lists are comma-separated), line breaks end the line.
_VALUE_BAD = re.compile(r"[#\s\x00-\x1f\x7f]")


def check_extra_config(cluster: Cluster) -> list[Problem]:
    """The operator's additions to slurm.conf and cgroup.conf (ailab_slurm.extra_config and
    extra_cgroup_config): keys Slurm 22.05 knows, that the model does not write, each once, with values
    Slurm reads as written.  A bad key would stop slurmctld or slurmd at their next start."""
    out = []
    for field, settings, known, owned, manual in (
        ("ailab_slurm.extra_config", cluster.slurm.extra_config, SLURM_CONF_KEYS, MODEL_KEYS, "slurm.conf"),
        (
            "ailab_slurm.extra_cgroup_config",
            cluster.slurm.extra_cgroup_config,
            CGROUP_CONF_KEYS,
            CGROUP_MODEL_KEYS,
            "cgroup.conf",
        ),
    ):
        spelled = {key.lower(): key for key in known}
        model = {key.lower(): (key, source) for key, source in owned.items()}
        seen: dict[str, str] = {}
        for key, value in settings:
            name = f"{field}.{key}"
            lower = key.lower()
            if lower in model:
                real, source = model[lower]
                out.append(
                    Problem(
                        "group_vars/all",
                        name,
                        f"{real} is written from {source}, not from {field}",
                        f"remove {key} from {field}; change {source} instead",
                    )
                )
            elif lower not in spelled:
                close = difflib.get_close_matches(lower, spelled, n=1, cutoff=0.8)
                hint = f"did you mean {spelled[close[0]]}? " if close else ""
                out.append(
                    Problem(
                        "group_vars/all",
                        name,
                        f"{key!r} is not a key of Slurm 22.05's {manual}; the daemons would not start",
                        f"{hint}use a key from {manual}(5), or remove it",
                    )
                )
            if lower in seen:
                out.append(
                    Problem(
                        "group_vars/all",
                        name,
                        f"is the same Slurm key as {seen[lower]} (Slurm reads keys case-insensitively)",
                        "keep one of them",
                    )
                )
            seen.setdefault(lower, key)
            if _VALUE_BAD.search(value):
                out.append(
                    Problem(
                        "group_vars/all",
                        name,
                        f"{value!r} has a blank, '#' or a control character, which Slurm would read as the "
                        "end of the value or a comment",
                        "drop them; separate list items with commas, e.g. bf_continue,bf_window=60",
                    )
                )
    return out


CONTAINER_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEBIAN_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
CONTAINER_SUITES = ("bookworm",)  # what the nodes' package mirror serves (Debian 12 only)
REGISTRY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._/-]*)?$")


def check_containers(cluster: Cluster) -> list[Problem]:
    """``ailab_containers``: a catalogue directory inside the read-only shared area (the nodes mount it
    read-only, the admin host publishes into it), image names that are file names, Debian package names,
    a suite the package mirror serves; a registry mirror that is a host[:port][/path]."""
    c, out, where = cluster.containers, [], "group_vars/all"
    if not c.enabled:
        return out

    def problem(field_name: str, message: str, fix: str) -> None:
        out.append(Problem(where, f"ailab_containers.{field_name}", message, fix))

    datasets = cluster.ceph.datasets_path
    if not c.catalogue:
        problem(
            "catalogue",
            "is not set and ailab_ceph.datasets_path is unset (the catalogue's default is inside it)",
            "set ailab_ceph.datasets_path (e.g. /ceph/datasets) or ailab_containers.catalogue inside it",
        )
    elif not c.catalogue.startswith("/") or posixpath.normpath(c.catalogue) != c.catalogue.rstrip("/"):
        problem(
            "catalogue",
            f"{c.catalogue!r} is not a normalised absolute path",
            "write it like /ceph/datasets/containers",
        )
    elif (
        not datasets or not _inside(c.catalogue, datasets) or c.catalogue.rstrip("/") == datasets.rstrip("/")
    ):
        problem(
            "catalogue",
            f"{c.catalogue} is not a directory inside the shared read-only area ailab_ceph.datasets_path "
            f"({datasets or 'unset'}): students must not be able to change the images others build on",
            f"drop it for the default, or put it under {datasets or 'ailab_ceph.datasets_path'}, e.g. "
            f"{(datasets or '/ceph/datasets').rstrip('/')}/containers",
        )
    if not c.gpu_dir.startswith("/") or c.gpu_dir.rstrip("/") in ("", *SYSTEM_DIRS):
        problem(
            "gpu_dir", f"{c.gpu_dir!r} is not a directory of its own", "use e.g. /usr/local/lib/ailab-gpu"
        )
    if c.registry and not REGISTRY_RE.match(c.registry):
        problem(
            "registry",
            f"{c.registry!r} is not a registry host[:port][/path]",
            "write it like registry.example.org/ailab (no scheme), or drop it to build the catalogue here",
        )
    if not c.registry and not c.images:
        problem("images", "is empty: students would have no image to build FROM", "list at least one image")
    seen: set[str] = set()
    for i, image in enumerate(c.images):
        field_name = f"images[{i}]"
        if not CONTAINER_IMAGE_RE.match(image.name):
            problem(
                f"{field_name}.name",
                f"{image.name!r} is not an image name (it becomes <catalogue>/<name>.sqfs)",
                "use lower-case letters, digits, '.', '_' and '-', e.g. debian-bookworm-python",
            )
        elif image.name in seen:
            problem(f"{field_name}.name", f"{image.name!r} is listed twice", "give each image its own name")
        seen.add(image.name)
        if image.suite not in CONTAINER_SUITES:
            problem(
                f"{field_name}.suite",
                f"{image.suite!r} is not served by the nodes' package mirror",
                f"use one of: {', '.join(CONTAINER_SUITES)}",
            )
        for j, package in enumerate(image.packages):
            if not DEBIAN_PACKAGE_RE.match(package):
                problem(
                    f"{field_name}.packages[{j}]",
                    f"{package!r} is not a Debian package name",
                    "write the package name alone, e.g. python3 (no version, no options)",
                )
    return out


DN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*=[^,=+<>#;\\\"]+(,[A-Za-z][A-Za-z0-9-]*=[^,=+<>#;\\\"]+)*$")
LDAP_URI_RE = re.compile(r"^ldaps?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
RDN_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_directory(cluster: Cluster) -> list[Problem]:
    """``ailab_directory`` and group ``directory``: managed means exactly one slapd host (no replication
    yet) and a suffix; external means URIs that are LDAP URIs with TLS, a base DN and a bind identity whose
    password is in the (vaulted) inventory.  Absent: local accounts, and group ``directory`` must be empty."""
    d, out, where = cluster.directory, [], "group_vars/all"
    hosts = cluster.directory_hosts
    if not d.enabled:
        if hosts:
            out.append(
                Problem(
                    f"host {hosts[0].name}",
                    f"group {GROUP_DIRECTORY}",
                    "has hosts but ailab_directory is not set: nothing would run slapd there",
                    "set ailab_directory: {managed: true} in group_vars/all, or empty group directory",
                )
            )
        return out
    field = "ailab_directory"
    for key, value in (("users_ou", d.users_ou), ("groups_ou", d.groups_ou)):
        if not RDN_VALUE_RE.match(value):
            out.append(
                Problem(
                    where,
                    f"{field}.{key}",
                    f"{value!r} is not a plain name for an ou=",
                    f"use letters, digits, '.', '_' or '-', e.g. {key}: {getattr(type(d), key)}",
                )
            )
    if d.base_dn and not DN_RE.match(d.base_dn):
        out.append(
            Problem(
                where,
                f"{field}.base_dn",
                f"{d.base_dn!r} is not a distinguished name",
                "write it as attribute=value pairs separated by commas, e.g. dc=ailab,dc=example,dc=org",
            )
        )
    if d.managed:
        if len(hosts) != 1:
            names = ", ".join(h.name for h in hosts) or "none"
            out.append(
                Problem(
                    where,
                    f"group {GROUP_DIRECTORY}",
                    f"managed: true needs exactly one host in group directory (slapd), it has {names}",
                    "put one service host (e.g. the Slurm controller) in group directory in the inventory",
                )
            )
        if (
            d.base_dn
            and DN_RE.match(d.base_dn)
            and not all(rdn.split("=", 1)[0].lower() == "dc" for rdn in d.base_dn.split(","))
        ):
            out.append(
                Problem(
                    where,
                    f"{field}.base_dn",
                    f"{d.base_dn!r}: the managed directory's suffix is made of dc= parts (Debian's slapd "
                    "derives it from a domain)",
                    "leave base_dn out (it comes from ailab_cluster.domain) or write it as dc=...,dc=...",
                )
            )
        if not d.base_dn:
            out.append(
                Problem(
                    where,
                    f"{field}.base_dn",
                    "is empty and ailab_cluster.domain is not set to derive it from",
                    "set ailab_cluster.domain or base_dn, e.g. base_dn: dc=ailab,dc=example,dc=org",
                )
            )
        for key, value in (("uris", d.uris), ("bind_dn", d.bind_dn), ("ca_cert", d.ca_cert)):
            if value:
                out.append(
                    Problem(
                        where,
                        f"{field}.{key}",
                        "is only for an external directory (managed: false); the managed one sets it itself",
                        f"remove {key}, or set managed: false",
                    )
                )
        if d.bind_password_set:
            out.append(
                Problem(
                    where,
                    f"{field}.bind_password",
                    "is only for an external directory; the managed one generates its service account's "
                    "password into ailab_secrets_dir",
                    "remove bind_password, or set managed: false",
                )
            )
        if not RDN_VALUE_RE.match(d.service_account):
            out.append(
                Problem(
                    where,
                    f"{field}.service_account",
                    f"{d.service_account!r} is not a plain name for a cn=",
                    "use letters, digits, '.', '_' or '-', e.g. service_account: sssd",
                )
            )
        return out
    if hosts:
        out.append(
            Problem(
                f"host {hosts[0].name}",
                f"group {GROUP_DIRECTORY}",
                "has hosts but ailab_directory.managed is false (the university's LDAP is used)",
                "empty group directory, or set ailab_directory.managed: true",
            )
        )
    if not d.uris:
        out.append(
            Problem(
                where,
                f"{field}.uris",
                "is missing: an external directory (managed: false) needs its servers",
                "set uris: [ldaps://ldap1.example.org, ldaps://ldap2.example.org]",
            )
        )
    for i, uri in enumerate(d.uris):
        if not LDAP_URI_RE.match(uri):
            out.append(
                Problem(
                    where,
                    f"{field}.uris[{i}]",
                    f"{uri!r} is not an LDAP URI",
                    "write it as ldaps://host[:port] (or ldap://host with start_tls: true)",
                )
            )
        elif uri.startswith("ldap://") and not d.start_tls:
            out.append(
                Problem(
                    where,
                    f"{field}.uris[{i}]",
                    f"{uri!r} would send the bind password and users' data in clear text",
                    "use ldaps://, or set start_tls: true",
                )
            )
    if not d.base_dn:
        out.append(
            Problem(
                where,
                f"{field}.base_dn",
                "is missing: an external directory needs the base of its users and groups",
                "set base_dn, e.g. base_dn: dc=university,dc=example",
            )
        )
    if not d.bind_dn:
        out.append(
            Problem(
                where,
                f"{field}.bind_dn",
                "is missing: SSSD binds to the university's directory with a service account",
                "set bind_dn, e.g. bind_dn: cn=ailab-sssd,ou=services,dc=university,dc=example",
            )
        )
    elif not DN_RE.match(d.bind_dn):
        out.append(
            Problem(
                where,
                f"{field}.bind_dn",
                f"{d.bind_dn!r} is not a distinguished name",
                "write it as attribute=value pairs separated by commas",
            )
        )
    if not d.bind_password_set:
        out.append(
            Problem(
                where,
                f"{field}.bind_password",
                "is missing: SSSD needs the service account's password",
                "set it encrypted: ansible-vault encrypt_string --name bind_password, then paste it under "
                "ailab_directory",
            )
        )
    return out
