"""Runs the ailab-cloud Pulumi program against Pulumi's mock monitor (pulumi.runtime.set_mocks): every
resource the program registers is recorded with its type, name, URN and inputs; the stack outputs are
resolved.  The mocks answer what the clouds would: internal and public addresses, the external network,
flavors."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from ailab_cloud import program

ROOT = Path(__file__).resolve().parents[2]
PULUMI_DIR = ROOT / "pulumi"
PROJECT = "ailab-cloud"
ADMIN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyTestKeyTestKeyTestKeyTestKey admin@test"

# Flavors of the mocked OpenStack: name -> (vcpus, ram MB, extra specs)
FLAVORS: dict[str, tuple[int, int, dict[str, str]]] = {
    "m1.large": (4, 8192, {}),
    "m1.xlarge": (8, 16384, {}),
    "g1.t4x4": (32, 262144, {"pci_passthrough:alias": "t4:4"}),
    "g1.l4x8": (64, 524288, {"pci_passthrough:alias": "l4:8"}),
    "g1.a100x8": (128, 1048576, {"pci_passthrough:alias": "a100:8"}),
    "g1.v100x8": (96, 786432, {"pci_passthrough:alias": "v100:4,v100:4"}),
    "g1.a40x2": (16, 131072, {"pci_passthrough:alias": "a40:2"}),
}


def gcp_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "cloud": "gcp",
        "inventory": "../inventory/production",
        "gcpProject": "ailab-test",
        "gcpRegion": "europe-west4",
        "gcpZone": "europe-west4-a",
        "adminCidrs": ["192.0.2.0/24", "198.51.100.7/32"],
        "adminSshKey": ADMIN_KEY,
        "gpus": {"t4": 4, "v100": 8},
        "storageNodes": 3,
        "osdDiskGb": 500,
    }
    config.update(overrides)
    return config


def openstack_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "cloud": "openstack",
        "inventory": "../inventory/production",
        "externalNetwork": "public",
        "image": "Debian 12",
        "adminCidrs": ["192.0.2.0/24"],
        "adminSshKey": ADMIN_KEY,
        "flavors": {
            "frontend": "m1.large",
            "controller": "m1.large",
            "storage": "m1.xlarge",
            "t4": "g1.t4x4",
            "l4": "g1.l4x8",
            "a100": "g1.a100x8",
            "v100": "g1.v100x8",
        },
        "storageNodes": 3,
        "osdDisksPerNode": 2,
    }
    config.update(overrides)
    return config


def encode(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as the Pulumi language host passes it: ailab-cloud:<key> -> string (JSON for structures)."""
    return {
        f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in config.items()
        if v is not None
    }


@dataclass(frozen=True)
class Registered:
    typ: str
    name: str
    urn: str
    inputs: dict[str, Any]
    custom: bool


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self._internal = ipaddress.ip_network("10.80.0.0/16").hosts()
        next(self._internal)
        self._public = ipaddress.ip_network("203.0.113.0/24").hosts()
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "gcp:compute/instance:Instance":
            nics = [dict(nic) for nic in outputs.get("networkInterfaces", [])]
            nics[0]["networkIp"] = str(next(self._internal))
            outputs["networkInterfaces"] = nics
        elif args.typ == "gcp:compute/address:Address":
            outputs["address"] = str(next(self._public))
        elif args.typ == "gcp:compute/disk:Disk":
            outputs["selfLink"] = (
                f"https://www.googleapis.com/compute/v1/projects/p/zones/z/disks/{args.name}"
            )
        elif args.typ == "gcp:storage/bucket:Bucket":
            outputs["url"] = f"gs://{args.name}-0a1b2c"
        elif args.typ == "openstack:networking/port:Port":
            outputs["allFixedIps"] = [str(next(self._internal))]
        elif args.typ == "openstack:networking/floatingIp:FloatingIp":
            outputs["address"] = str(next(self._public))
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        self.calls.append(args)
        if args.token == "openstack:networking/getNetwork:getNetwork":
            return {"id": f"{args.args.get('name')}-net-id", "name": args.args.get("name"), "external": True}
        if args.token == "openstack:compute/getFlavor:getFlavor":
            vcpus, ram, specs = FLAVORS[args.args["name"]]
            return {
                "id": args.args["name"],
                "name": args.args["name"],
                "vcpus": vcpus,
                "ram": ram,
                "extraSpecs": specs,
            }
        return {}


class RecordingMonitor(MockMonitor):
    """Records the URN and inputs of every registration (components included)."""

    def __init__(self, mocks: CloudMocks):
        super().__init__(mocks)
        self.recorded: list[Registered] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.recorded.append(
                Registered(request.type, request.name, response.urn, dict(inputs), request.custom)
            )
        return response


@dataclass
class StackRun:
    resources: list[Registered]
    outputs: dict[str, Any] = field(default_factory=dict)
    calls: list[MockCallArgs] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"{len(found)} resources named {name}"
        return found[0]

    @property
    def urns(self) -> set[str]:
        return {r.urn for r in self.resources}

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def custom(self) -> Iterator[Registered]:
        return (r for r in self.resources if r.custom)


def run_stack(config: Mapping[str, Any], *, stack: str = "test") -> StackRun:
    """Run the program with ``config`` (keys without the ailab-cloud: prefix).  Exceptions from the
    program (e.g. StackConfigError) propagate; what was registered until then is in ``last_run``."""
    mocks = CloudMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(encode(config))
    run = StackRun(monitor.recorded, calls=mocks.calls)
    last_run[0] = run

    @pulumi.runtime.test
    def declare():
        outputs = program.run(project_dir=PULUMI_DIR)
        return pulumi.Output.from_input(outputs).apply(run.outputs.update)

    declare()
    return run


last_run: list[StackRun] = [StackRun([])]
