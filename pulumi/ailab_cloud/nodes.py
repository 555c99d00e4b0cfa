"""What every cloud's components hand back: one record per machine, for the stack outputs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from ailab_cloud.plan import PlannedHost


@dataclass(frozen=True)
class HostRecord:
    """One machine as declared: its plan and its addresses (known once the cloud has created it)."""

    host: PlannedHost
    address: pulumi.Output[str]  # on the cluster network
    public_address: pulumi.Output[str] | None = None
    # Storage nodes: the OSD disks' stable device paths (/dev/disk/by-id/...), for the ceph_cluster role
    osd_devices: tuple[pulumi.Input[str], ...] = ()


@dataclass
class Deployment:
    """What a cloud's ``deploy`` declared, for the stack outputs."""

    records: list[HostRecord] = field(default_factory=list)
    hardware: dict[str, pulumi.Input[Mapping[str, Any]]] = field(default_factory=dict)  # node class -> hw
    machines: dict[str, str] = field(default_factory=dict)  # node class -> machine type or flavor
    extra: dict[str, pulumi.Input[Any]] = field(default_factory=dict)  # further stack outputs


def hosts_output(records: Sequence[HostRecord]) -> pulumi.Output[dict[str, Any]]:
    """The `hosts` stack output: name -> address, public address, groups, node class and role."""
    values = [pulumi.Output.all(r.address, r.public_address, list(r.osd_devices)) for r in records]

    def shape(resolved: list[list[Any]]) -> dict[str, Any]:
        out = {}
        for record, (address, public, osd_devices) in zip(records, resolved, strict=True):
            out[record.host.name] = {
                "address": address,
                "public_address": public,
                "groups": list(record.host.groups),
                "node_class": record.host.node_class,
                "role": record.host.role,
            }
            if osd_devices:
                out[record.host.name]["osd_devices"] = list(osd_devices)
        return out

    return pulumi.Output.all(*values).apply(shape)


_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def label_value(text: str) -> str:
    """A GCP label value (lowercase letters, digits, _ and -, at most 63)."""
    return _LABEL_BAD.sub("-", text.lower())[:63] or "none"


def node_labels(cluster: str, host: PlannedHost, short_class: str | None) -> dict[str, str]:
    return {
        "cluster": label_value(cluster),
        "role": host.role,
        "node-class": label_value(short_class) if short_class else "none",
    }
