"""The stack configuration (``Pulumi.<stack>.yaml``), read and checked before anything is declared.

Pure: :func:`parse_settings` takes the raw ``namespace:key -> value`` map Pulumi hands the program and
returns typed :class:`StackSettings`, or raises :class:`StackConfigError` carrying one
:class:`~ailab.problems.Problem` per bad key, each naming the key and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ailab.problems import Problem

NAMESPACE = "ailab-cloud"  # the Pulumi project name: config keys are ailab-cloud:<key>
CLOUDS = ("gcp", "openstack")
ROLE_KEYS = ("frontend", "controller", "storage")  # non-GPU machines in machineTypes / flavors
GCP_DEFAULT_IMAGE = "debian-cloud/debian-12"
GCP_DEFAULT_MACHINE_TYPES = {
    "frontend": "e2-standard-4",
    "controller": "e2-standard-4",
    "storage": "e2-standard-8",
}
DEFAULT_SUBNET = "10.80.0.0/24"
DEFAULT_ADMIN_USER = "debian"  # the Debian cloud images' login user

COMMON_KEYS = (
    "cloud",
    "inventory",
    "adminCidrs",
    "adminUser",
    "adminSshKey",
    "subnetCidr",
    "nodes",
    "gpus",
    "storageNodes",
    "osdDiskGb",
    "osdDisksPerNode",
    "image",
)
GCP_KEYS = (
    "gcpProject",
    "gcpRegion",
    "gcpZone",
    "machineTypes",
    "bootDiskGb",
    "computeBootDiskGb",
    "osdDiskType",
)
OPENSTACK_KEYS = ("externalNetwork", "flavors", "dnsNameservers", "volumeType")


class StackConfigError(Exception):
    """The stack configuration (or the inventory it names) cannot be deployed; carries every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(format_problems(problems))


def format_problems(problems: list[Problem]) -> str:
    lines = [str(p) for p in problems]
    lines.append(f"{len(problems)} problem(s) in the stack configuration; no resource was declared")
    return "\n".join(lines)


def key(name: str) -> str:
    """The full config key, as the operator types it after `pulumi config set`."""
    return f"{NAMESPACE}:{name}"


@dataclass(frozen=True)
class GcpSettings:
    project: str
    region: str
    zone: str
    image: str = GCP_DEFAULT_IMAGE
    machine_types: Mapping[str, str] = field(default_factory=lambda: dict(GCP_DEFAULT_MACHINE_TYPES))
    boot_disk_gb: int = 50
    compute_boot_disk_gb: int = 200
    osd_disk_type: str = "pd-balanced"


@dataclass(frozen=True)
class OpenStackSettings:
    external_network: str
    image: str
    flavors: Mapping[str, str]  # frontend / controller / storage and node classes (keys as written)
    dns_nameservers: tuple[str, ...] = ()
    volume_type: str | None = None


@dataclass(frozen=True)
class StackSettings:
    cloud: str
    inventory: str  # as configured: relative to the Pulumi project directory, or absolute
    admin_cidrs: tuple[str, ...]
    admin_ssh_key: str
    admin_user: str = DEFAULT_ADMIN_USER
    subnet_cidr: str = DEFAULT_SUBNET
    node_counts: Mapping[str, int] = field(default_factory=dict)  # class key as written -> count
    gpus: Mapping[str, int] = field(default_factory=dict)  # class key as written -> GPUs per node
    storage_nodes: int | None = None  # None: as many as the inventory's ceph group
    osd_disk_gb: int = 500
    osd_disks_per_node: int = 1
    gcp: GcpSettings | None = None
    openstack: OpenStackSettings | None = None


def namespace_config(raw: Mapping[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """The keys of one namespace (``ailab-cloud:nodes`` -> ``nodes``), values decoded from Pulumi's JSON
    encoding of structured config."""
    out: dict[str, Any] = {}
    prefix = f"{namespace}:"
    for full, value in raw.items():
        if full.startswith(prefix):
            out[full[len(prefix) :]] = decode(value)
    return out


def decode(value: Any) -> Any:
    """Pulumi passes every value as a string; objects and lists arrive JSON-encoded."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


class _Reader:
    def __init__(self, data: Mapping[str, Any], where: str):
        self.data = data
        self.where = where
        self.problems: list[Problem] = []

    def problem(self, name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.where, key(name), message, fix))

    def string(self, name: str, default: str | None = None, *, required: bool = False, hint: str = "") -> str:
        value = self.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problem(name, "is missing", f"pulumi config set {key(name)} {hint or '<value>'}")
            return default or ""
        if not isinstance(value, str):
            self.problem(name, f"must be a string, got {value!r}", f"pulumi config set {key(name)} <value>")
            return default or ""
        return value.strip()

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        number = _as_int(value)
        if number is None:
            self.problem(name, f"must be a whole number, got {value!r}", f"pulumi config set {key(name)} <N>")
            return None
        if number < minimum:
            self.problem(
                name, f"is {number}, below {minimum}", f"pulumi config set {key(name)} {minimum} (or more)"
            )
            return None
        return number

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        number = self.optional_integer(name, minimum=minimum)
        return default if number is None else number

    def string_list(self, name: str, *, required: bool = False, hint: str = "") -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            if required:
                self.problem(
                    name, "is missing", f"pulumi config set --path '{key(name)}[0]' {hint or '<value>'}"
                )
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(name, f"must be a list of strings, got {value!r}", f"set {key(name)} as a YAML list")
            return ()
        return tuple(v.strip() for v in value)

    def mapping(self, name: str, kind: type) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(
                name,
                f"must be a map of <node class> to value, got {value!r}",
                f"pulumi config set --path '{key(name)}.<class>' <value>",
            )
            return {}
        out: dict[str, Any] = {}
        for sub, item in value.items():
            if kind is int:
                number = _as_int(item)
                if number is None or number < 0:
                    self.problem(
                        f"{name}.{sub}",
                        f"is {item!r}; it must be a whole number, 0 or more",
                        f"pulumi config set --path '{key(name)}.{sub}' <N>, N >= 0",
                    )
                    continue
                out[str(sub)] = number
            else:
                if not isinstance(item, str) or not item.strip():
                    self.problem(
                        f"{name}.{sub}", f"must be a non-empty string, got {item!r}", "set it to a name"
                    )
                    continue
                out[str(sub)] = item.strip()
        return out


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def parse_settings(raw: Mapping[str, Any], *, stack: str = "<stack>") -> StackSettings:
    """Typed settings from the raw config map, or :class:`StackConfigError` naming each bad key."""
    data = namespace_config(raw)
    r = _Reader(data, f"Pulumi.{stack}.yaml")

    cloud = r.string("cloud", required=True, hint="gcp (or openstack)").lower()
    if cloud and cloud not in CLOUDS:
        r.problem("cloud", f"unknown cloud {cloud!r}", f"pulumi config set {key('cloud')} gcp (or openstack)")
    inventory = r.string("inventory", required=True, hint="../inventory/production")

    cidrs = r.string_list("adminCidrs", required=True, hint="203.0.113.0/24")
    for i, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            r.problem(f"adminCidrs[{i}]", f"{cidr!r} is not a CIDR", "write it as e.g. 192.0.2.0/24")
    if "adminCidrs" in data and not cidrs and not any(p.field == key("adminCidrs") for p in r.problems):
        r.problem("adminCidrs", "is empty: nobody could reach the front-end", "list the admins' networks")

    ssh_key = r.string("adminSshKey", required=True, hint='"ssh-ed25519 AAAA... you@host"')
    if ssh_key and not ssh_key.startswith(("ssh-", "ecdsa-", "sk-")):
        r.problem(
            "adminSshKey", "is not an OpenSSH public key", "paste the one line of ~/.ssh/id_ed25519.pub"
        )

    subnet = r.string("subnetCidr", DEFAULT_SUBNET)
    try:
        network = ipaddress.ip_network(subnet)
        if network.version != 4 or not network.is_private:
            r.problem("subnetCidr", f"{subnet} is not a private IPv4 network", "use e.g. 10.80.0.0/24")
    except ValueError:
        r.problem(
            "subnetCidr", f"{subnet!r} is not a network", "write it as e.g. 10.80.0.0/24 (host bits zero)"
        )

    storage_nodes = r.optional_integer("storageNodes")
    osd_disk_gb = r.integer("osdDiskGb", 500, minimum=10)
    osd_disks_per_node = r.integer("osdDisksPerNode", 1, minimum=1)
    admin_user = r.string("adminUser", DEFAULT_ADMIN_USER)
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", admin_user):
        r.problem("adminUser", f"{admin_user!r} is not a Linux user name", f"e.g. {DEFAULT_ADMIN_USER}")
    node_counts = r.mapping("nodes", int)
    gpus = r.mapping("gpus", int)
    for name, count in gpus.items():
        if count == 0:
            r.problem(f"gpus.{name}", "is 0; compute nodes are GPU nodes", "set 1 or more, or drop the key")

    gcp = openstack = None
    own_keys: tuple[str, ...] = COMMON_KEYS
    if cloud == "gcp":
        own_keys += GCP_KEYS
        machine_types = {**GCP_DEFAULT_MACHINE_TYPES, **r.mapping("machineTypes", str)}
        for name in machine_types:
            if name not in ROLE_KEYS:
                r.problem(
                    f"machineTypes.{name}",
                    "is not a role; GPU nodes get their machine type from the GPU model",
                    f"use one of: {', '.join(ROLE_KEYS)} (GPU count per node: {key('gpus')}.<class>)",
                )
        project = r.string("gcpProject", required=True, hint="<your GCP project id>")
        region = r.string("gcpRegion", required=True, hint="europe-west4")
        zone = r.string("gcpZone", required=True, hint="europe-west4-a")
        if region and zone and not zone.startswith(f"{region}-"):
            r.problem(
                "gcpZone", f"{zone} is not in region {region}", f"pick a zone of {region}, e.g. {region}-a"
            )
        gcp = GcpSettings(
            project=project,
            region=region,
            zone=zone,
            image=r.string("image", GCP_DEFAULT_IMAGE),
            machine_types=machine_types,
            boot_disk_gb=r.integer("bootDiskGb", 50, minimum=10),
            compute_boot_disk_gb=r.integer("computeBootDiskGb", 200, minimum=50),
            osd_disk_type=r.string("osdDiskType", "pd-balanced"),
        )
    elif cloud == "openstack":
        own_keys += OPENSTACK_KEYS
        flavors = r.mapping("flavors", str)
        for role in ROLE_KEYS:
            if role == "storage":
                continue  # only needed with storage nodes; checked against the plan
            if role not in flavors:
                r.problem(
                    f"flavors.{role}",
                    "is missing",
                    f"pulumi config set --path '{key('flavors')}.{role}' <flavor>",
                )
        nameservers = r.string_list("dnsNameservers")
        for i, server in enumerate(nameservers):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                r.problem(
                    f"dnsNameservers[{i}]", f"{server!r} is not an IP address", "list resolver addresses"
                )
        openstack = OpenStackSettings(
            external_network=r.string("externalNetwork", required=True, hint="public"),
            image=r.string("image", required=True, hint='"Debian 12"'),
            flavors=flavors,
            dns_nameservers=nameservers,
            volume_type=r.string("volumeType") or None,
        )
    if cloud in CLOUDS:
        for name in sorted(data):
            if name in own_keys:
                continue
            other = "openstack" if cloud == "gcp" else "gcp"
            used_by = other if name in (GCP_KEYS if other == "gcp" else OPENSTACK_KEYS) else None
            if used_by:
                r.problem(name, f"is only used when cloud is {used_by}", f"pulumi config rm {key(name)}")
            else:
                allowed = ", ".join(own_keys)
                r.problem(name, "unknown key", f"pulumi config rm {key(name)} (keys for {cloud}: {allowed})")

    if r.problems:
        raise StackConfigError(r.problems)
    return StackSettings(
        cloud=cloud,
        inventory=inventory,
        admin_cidrs=cidrs,
        admin_ssh_key=ssh_key,
        admin_user=admin_user,
        subnet_cidr=subnet,
        node_counts=node_counts,
        gpus=gpus,
        storage_nodes=storage_nodes,
        osd_disk_gb=osd_disk_gb,
        osd_disks_per_node=osd_disks_per_node,
        gcp=gcp,
        openstack=openstack,
    )
