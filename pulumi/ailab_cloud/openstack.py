"""The cluster on OpenStack: a network routed to the external network, security groups with the same
rules as on GCP (SSH to the front-end from the admin CIDRs, everything inside the subnet), one port and
server per host on the flavor of its node class, OSD volumes on the storage nodes and a floating IP for
the front-end only."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Sequence
from typing import Any

import pulumi

from ailab.model import Gpu
from ailab_cloud.machines import openstack_hardware
from ailab_cloud.nodes import Deployment, HostRecord, node_labels
from ailab_cloud.plan import ROLE_CONTROLLER, ROLE_FRONTEND, ROLE_STORAGE, Plan, PlannedClass, PlannedHost
from ailab_cloud.settings import OpenStackSettings, StackSettings

with warnings.catch_warnings():
    # pulumi_openstack 5.x announces its own renamed resources when imported: noise, not ours.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_openstack as openstack

    openstack.networking.Port, openstack.compute.Instance, openstack.blockstorage.Volume  # noqa: B018


def _os(settings: StackSettings) -> OpenStackSettings:
    if settings.openstack is None:
        raise ValueError("OpenStack components need cloud: openstack settings")
    return settings.openstack


def virtio_device(volume_id: str) -> str:
    """A Cinder volume's stable path in the guest: virtio-blk exposes the volume id, cut to 20 characters,
    as the disk's serial (Nova's own `device` answer is only a hint libvirt may ignore)."""
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def ethertype(cidr: str) -> str:
    return "IPv6" if ipaddress.ip_network(cidr, strict=False).version == 6 else "IPv4"


class OpenStackNetwork(pulumi.ComponentResource):
    def __init__(
        self, name: str, *, cluster: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ailab:openstack:Network", name, None, opts)
        o = _os(settings)
        prefix = f"{cluster}-{pulumi.get_stack()}"
        child = pulumi.ResourceOptions(parent=self)
        self.network = openstack.networking.Network(
            f"{name}-net", name=prefix, admin_state_up=True, opts=child
        )
        self.subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=prefix,
            network_id=self.network.id,
            cidr=settings.subnet_cidr,
            ip_version=4,
            dns_nameservers=list(o.dns_nameservers) or None,
            opts=child,
        )
        external = openstack.networking.get_network_output(name=o.external_network, external=True)
        self.router = openstack.networking.Router(
            f"{name}-router", name=prefix, external_network_id=external.id, admin_state_up=True, opts=child
        )
        self.router_interface = openstack.networking.RouterInterface(
            f"{name}-router-interface", router_id=self.router.id, subnet_id=self.subnet.id, opts=child
        )
        self.ssh = openstack.networking.SecGroup(
            f"{name}-ssh-frontend",
            name=f"{prefix}-ssh-frontend",
            description="SSH to the front-end from the admins' networks; only the front-end's port has it",
            opts=child,
        )
        self.ssh_rules = [
            openstack.networking.SecGroupRule(
                f"{name}-ssh-frontend-{i}",
                security_group_id=self.ssh.id,
                direction="ingress",
                ethertype=ethertype(cidr),
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix=cidr,
                description=f"SSH from {cidr}",
                opts=child,
            )
            for i, cidr in enumerate(settings.admin_cidrs)
        ]
        self.internal = openstack.networking.SecGroup(
            f"{name}-internal",
            name=f"{prefix}-internal",
            description="the cluster's machines talk freely inside the subnet",
            opts=child,
        )
        self.internal_rule = openstack.networking.SecGroupRule(
            f"{name}-internal-all",
            security_group_id=self.internal.id,
            direction="ingress",
            ethertype="IPv4",
            remote_ip_prefix=settings.subnet_cidr,
            description="everything from inside the cluster subnet",
            opts=child,
        )
        self.keypair = openstack.compute.Keypair(
            f"{name}-admin-key", name=f"{prefix}-admin", public_key=settings.admin_ssh_key, opts=child
        )
        self.register_outputs({"network": self.network.id, "subnet": self.subnet.id})


def server(
    host: PlannedHost,
    *,
    cluster: str,
    settings: StackSettings,
    network: OpenStackNetwork,
    flavor: str,
    parent: pulumi.Resource,
    short_class: str | None = None,
) -> tuple[openstack.compute.Instance, openstack.networking.Port]:
    """A port (with the security groups: ssh only on front-ends) and a server named after its host."""
    o = _os(settings)
    groups = [network.internal.id] + ([network.ssh.id] if host.role == ROLE_FRONTEND else [])
    child = pulumi.ResourceOptions(parent=parent)
    port = openstack.networking.Port(
        f"{host.name}-port",
        name=host.name,
        network_id=network.network.id,
        fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=network.subnet.id)],
        security_group_ids=groups,
        admin_state_up=True,
        opts=child,
    )
    inst = openstack.compute.Instance(
        host.name,
        name=host.name,
        flavor_name=flavor,
        image_name=o.image,
        key_pair=network.keypair.name,
        networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
        metadata=node_labels(cluster, host, short_class),
        opts=child,
    )
    return inst, port


def _address(port: openstack.networking.Port) -> pulumi.Output[str]:
    return port.all_fixed_ips.apply(lambda ips: ips[0])


class OpenStackRoleNodes(pulumi.ComponentResource):
    """Front-ends (each with a floating IP) or the Slurm controller."""

    def __init__(
        self,
        name: str,
        *,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: OpenStackNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        role = hosts[0].role if hosts else ROLE_CONTROLLER
        kind = "ailab:openstack:FrontEnd" if role == ROLE_FRONTEND else "ailab:openstack:Controller"
        super().__init__(kind, name, None, opts)
        o = _os(settings)
        self.records: list[HostRecord] = []
        for host in hosts:
            _, port = server(
                host,
                cluster=cluster,
                settings=settings,
                network=network,
                flavor=o.flavors[host.role],
                parent=self,
            )
            public = None
            if host.public:
                fip = openstack.networking.FloatingIp(
                    f"{host.name}-fip",
                    pool=o.external_network,
                    description=f"public address of {host.name}",
                    opts=pulumi.ResourceOptions(parent=self),
                )
                openstack.networking.FloatingIpAssociate(
                    f"{host.name}-fip-associate",
                    floating_ip=fip.address,
                    port_id=port.id,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[network.router_interface]),
                )
                public = fip.address
            self.records.append(HostRecord(host, _address(port), public))
        self.register_outputs({})


class OpenStackGpuNodePool(pulumi.ComponentResource):
    """One node class on its flavor.  The class's hardware is read from the flavor (vCPUs, RAM and the
    GPUs its extra specs pass through), so the generated inventory describes the real servers."""

    def __init__(
        self,
        name: str,
        *,
        planned_class: PlannedClass,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: OpenStackNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ailab:openstack:GpuNodePool", name, None, opts)
        flavor = planned_class.flavor
        if flavor is None:
            raise ValueError(f"node class {planned_class.name} has no flavor")
        self.records = []
        for host in hosts:
            _, port = server(
                host,
                cluster=cluster,
                settings=settings,
                network=network,
                flavor=flavor,
                parent=self,
                short_class=planned_class.short_name,
            )
            self.records.append(HostRecord(host, _address(port)))
        self.hardware = flavor_hardware(flavor, planned_class.gpu)
        self.register_outputs({})


def flavor_hardware(flavor: str, gpu: Gpu) -> pulumi.Output[dict[str, Any]]:
    found = openstack.compute.get_flavor_output(name=flavor)
    return found.apply(lambda f: openstack_hardware(flavor, f.vcpus, f.ram, gpu, f.extra_specs))


class OpenStackStorageNodes(pulumi.ComponentResource):
    """Ceph storage nodes, each with its OSD volumes attached."""

    def __init__(
        self,
        name: str,
        *,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: OpenStackNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ailab:openstack:StorageNodes", name, None, opts)
        o = _os(settings)
        child = pulumi.ResourceOptions(parent=self)
        self.records: list[HostRecord] = []
        for host in hosts:
            inst, port = server(
                host,
                cluster=cluster,
                settings=settings,
                network=network,
                flavor=o.flavors[ROLE_STORAGE],
                parent=self,
            )
            devices = []
            for i in range(host.osd_disks):
                volume = openstack.blockstorage.Volume(
                    f"{host.name}-osd{i}",
                    name=f"{host.name}-osd{i}",
                    size=settings.osd_disk_gb,
                    volume_type=o.volume_type,
                    metadata=node_labels(cluster, host, None),
                    opts=child,
                )
                openstack.compute.VolumeAttach(
                    f"{host.name}-osd{i}-attach", instance_id=inst.id, volume_id=volume.id, opts=child
                )
                devices.append(volume.id.apply(virtio_device))
            self.records.append(HostRecord(host, _address(port), osd_devices=tuple(devices)))
        self.register_outputs({})


def deploy(plan: Plan, settings: StackSettings) -> Deployment:
    cluster = plan.cluster_name
    out = Deployment()
    network = OpenStackNetwork("network", cluster=cluster, settings=settings)
    for role, name in ((ROLE_FRONTEND, "frontend"), (ROLE_CONTROLLER, "controller")):
        hosts = plan.role(role)
        if hosts:
            out.records += OpenStackRoleNodes(
                name, hosts=hosts, cluster=cluster, settings=settings, network=network
            ).records
    for planned_class in plan.classes:
        hosts = plan.in_class(planned_class.name)
        if not hosts or planned_class.flavor is None:
            continue
        pool = OpenStackGpuNodePool(
            planned_class.name,
            planned_class=planned_class,
            hosts=hosts,
            cluster=cluster,
            settings=settings,
            network=network,
        )
        out.records += pool.records
        out.hardware[planned_class.name] = pool.hardware
        out.machines[planned_class.name] = planned_class.flavor
    storage = plan.role(ROLE_STORAGE)
    if storage:
        out.records += OpenStackStorageNodes(
            "storage", hosts=storage, cluster=cluster, settings=settings, network=network
        ).records
    return out
