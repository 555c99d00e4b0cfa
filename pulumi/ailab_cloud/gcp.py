"""The cluster on Google Cloud: a VPC, a front-end with the only public address, GPU node pools without
public addresses (outbound through Cloud NAT), Ceph storage nodes with OSD disks, a dataset bucket."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pulumi

from ailab_cloud.nodes import Deployment, HostRecord, label_value, node_labels
from ailab_cloud.plan import ROLE_CONTROLLER, ROLE_FRONTEND, ROLE_STORAGE, Plan, PlannedClass, PlannedHost
from ailab_cloud.settings import GcpSettings, StackSettings

with warnings.catch_warnings():
    # pulumi_gcp announces its own renamed resources when its modules load: noise, not ours.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_gcp as gcp

    gcp.compute.Instance, gcp.storage.Bucket  # noqa: B018 (the submodules load on first use: here)

SCOPES_FRONTEND = (
    "https://www.googleapis.com/auth/devstorage.read_write",  # stage datasets from the bucket
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
)
SCOPES_NODE = (
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
)


def osd_device_name(index: int) -> str:
    """The device name of an attached OSD disk: the guest sees it as /dev/disk/by-id/google-<name>."""
    return f"osd{index}"


def frontend_tag(cluster: str) -> str:
    """The network tag the SSH firewall rule targets: only front-ends carry it."""
    return f"{cluster}-frontend"


class GcpNetwork(pulumi.ComponentResource):
    """VPC, subnet, firewall (SSH to the front-end from the admin CIDRs; everything inside the subnet)
    and Cloud NAT so that machines without public addresses can fetch packages."""

    def __init__(
        self, name: str, *, cluster: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ailab:gcp:Network", name, None, opts)
        g = _gcp(settings)
        child = pulumi.ResourceOptions(parent=self)
        self.network = gcp.compute.Network(
            f"{name}-vpc",
            project=g.project,
            auto_create_subnetworks=False,
            description=f"{cluster} cluster network",
            opts=child,
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=g.project,
            region=g.region,
            network=self.network.id,
            ip_cidr_range=settings.subnet_cidr,
            private_ip_google_access=True,
            opts=child,
        )
        self.ssh = gcp.compute.Firewall(
            f"{name}-ssh-frontend",
            project=g.project,
            network=self.network.id,
            direction="INGRESS",
            description="SSH to the front-end from the admins' networks; nothing else is open to outside",
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
            source_ranges=list(settings.admin_cidrs),
            target_tags=[frontend_tag(cluster)],
            opts=child,
        )
        self.internal = gcp.compute.Firewall(
            f"{name}-internal",
            project=g.project,
            network=self.network.id,
            direction="INGRESS",
            description="Slurm, Ceph, NFS-free homes: the cluster's machines talk freely inside the subnet",
            allows=[gcp.compute.FirewallAllowArgs(protocol="all")],
            source_ranges=[settings.subnet_cidr],
            opts=child,
        )
        self.router = gcp.compute.Router(
            f"{name}-router", project=g.project, region=g.region, network=self.network.id, opts=child
        )
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            project=g.project,
            region=g.region,
            router=self.router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=child,
        )
        self.register_outputs({"network": self.network.id, "subnet": self.subnet.id})


def _gcp(settings: StackSettings) -> GcpSettings:
    if settings.gcp is None:
        raise ValueError("GCP components need cloud: gcp settings")
    return settings.gcp


def instance(
    host: PlannedHost,
    *,
    cluster: str,
    settings: StackSettings,
    subnet: gcp.compute.Subnetwork,
    machine_type: str,
    disk_gb: int,
    parent: pulumi.Resource,
    planned_class: PlannedClass | None = None,
    nat_ip: pulumi.Input[str] | None = None,
    disks: Sequence[gcp.compute.Disk] = (),
) -> gcp.compute.Instance:
    """One VM named after its inventory host.  GPU VMs cannot live-migrate: they stop for host
    maintenance and restart by themselves."""
    g = _gcp(settings)
    machine = planned_class.gcp if planned_class else None
    accelerators = (
        [gcp.compute.InstanceGuestAcceleratorArgs(type=machine.accelerator, count=machine.accelerator_count)]
        if machine
        else None
    )
    access = (
        [gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=nat_ip)] if nat_ip is not None else None
    )
    return gcp.compute.Instance(
        host.name,
        name=host.name,
        project=g.project,
        zone=g.zone,
        machine_type=machine_type,
        boot_disk=gcp.compute.InstanceBootDiskArgs(
            auto_delete=True,
            initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                image=g.image, size=disk_gb, type="pd-balanced"
            ),
        ),
        network_interfaces=[
            gcp.compute.InstanceNetworkInterfaceArgs(subnetwork=subnet.id, access_configs=access)
        ],
        guest_accelerators=accelerators,
        scheduling=gcp.compute.InstanceSchedulingArgs(
            on_host_maintenance="TERMINATE" if machine else "MIGRATE",
            automatic_restart=True,
        ),
        attached_disks=[
            gcp.compute.InstanceAttachedDiskArgs(source=disk.self_link, device_name=osd_device_name(i))
            for i, disk in enumerate(disks)
        ]
        or None,
        tags=[frontend_tag(cluster)] if host.role == ROLE_FRONTEND else None,
        labels=node_labels(cluster, host, planned_class.short_name if planned_class else None),
        metadata={"ssh-keys": f"{settings.admin_user}:{settings.admin_ssh_key}", "enable-oslogin": "FALSE"},
        service_account=gcp.compute.InstanceServiceAccountArgs(
            scopes=list(SCOPES_FRONTEND if host.role == ROLE_FRONTEND else SCOPES_NODE)
        ),
        allow_stopping_for_update=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _address(inst: gcp.compute.Instance) -> pulumi.Output[str]:
    return inst.network_interfaces.apply(lambda nics: nics[0].network_ip)


class GcpRoleNodes(pulumi.ComponentResource):
    """Front-ends (each with a static public address) or the Slurm controller: plain VMs."""

    def __init__(
        self,
        name: str,
        *,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: GcpNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        role = hosts[0].role if hosts else ROLE_CONTROLLER
        super().__init__(
            "ailab:gcp:FrontEnd" if role == ROLE_FRONTEND else "ailab:gcp:Controller", name, None, opts
        )
        g = _gcp(settings)
        self.records: list[HostRecord] = []
        for host in hosts:
            public = None
            if host.public:
                public = gcp.compute.Address(
                    f"{host.name}-public",
                    project=g.project,
                    region=g.region,
                    address_type="EXTERNAL",
                    description=f"public address of {host.name}",
                    opts=pulumi.ResourceOptions(parent=self),
                ).address
            inst = instance(
                host,
                cluster=cluster,
                settings=settings,
                subnet=network.subnet,
                machine_type=g.machine_types[host.role],
                disk_gb=g.boot_disk_gb,
                parent=self,
                nat_ip=public,
            )
            self.records.append(HostRecord(host, _address(inst), public))
        self.register_outputs({})


class GcpGpuNodePool(pulumi.ComponentResource):
    """One node class: a VM per host, on the machine type and accelerators its GPU model maps to."""

    def __init__(
        self,
        name: str,
        *,
        planned_class: PlannedClass,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: GcpNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ailab:gcp:GpuNodePool", name, None, opts)
        if planned_class.gcp is None:
            raise ValueError(f"node class {planned_class.name} has no GCP machine")
        self.records = [
            HostRecord(
                host,
                _address(
                    instance(
                        host,
                        cluster=cluster,
                        settings=settings,
                        subnet=network.subnet,
                        machine_type=planned_class.gcp.machine_type,
                        disk_gb=_gcp(settings).compute_boot_disk_gb,
                        parent=self,
                        planned_class=planned_class,
                    )
                ),
            )
            for host in hosts
        ]
        self.register_outputs({})


class GcpStorageNodes(pulumi.ComponentResource):
    """Ceph storage nodes, each with its OSD data disks."""

    def __init__(
        self,
        name: str,
        *,
        hosts: Sequence[PlannedHost],
        cluster: str,
        settings: StackSettings,
        network: GcpNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ailab:gcp:StorageNodes", name, None, opts)
        g = _gcp(settings)
        self.records: list[HostRecord] = []
        for host in hosts:
            disks = [
                gcp.compute.Disk(
                    f"{host.name}-osd{i}",
                    name=f"{host.name}-osd{i}",
                    project=g.project,
                    zone=g.zone,
                    size=settings.osd_disk_gb,
                    type=g.osd_disk_type,
                    labels=node_labels(cluster, host, None),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                for i in range(host.osd_disks)
            ]
            inst = instance(
                host,
                cluster=cluster,
                settings=settings,
                subnet=network.subnet,
                machine_type=g.machine_types[ROLE_STORAGE],
                disk_gb=g.boot_disk_gb,
                parent=self,
                disks=disks,
            )
            devices = tuple(f"/dev/disk/by-id/google-{osd_device_name(i)}" for i in range(len(disks)))
            self.records.append(HostRecord(host, _address(inst), osd_devices=devices))
        self.register_outputs({})


def dataset_bucket(cluster: str, settings: StackSettings) -> gcp.storage.Bucket:
    """Where users stage datasets before copying them to CephFS: private, uniform access."""
    g = _gcp(settings)
    return gcp.storage.Bucket(
        f"{cluster}-datasets",
        project=g.project,
        location=g.region.upper(),
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        labels={"cluster": label_value(cluster), "role": "datasets"},
    )


def deploy(plan: Plan, settings: StackSettings) -> Deployment:
    cluster = plan.cluster_name
    out = Deployment()
    network = GcpNetwork("network", cluster=cluster, settings=settings)
    for role, name in ((ROLE_FRONTEND, "frontend"), (ROLE_CONTROLLER, "controller")):
        hosts = plan.role(role)
        if hosts:
            out.records += GcpRoleNodes(
                name, hosts=hosts, cluster=cluster, settings=settings, network=network
            ).records
    for planned_class in plan.classes:
        hosts = plan.in_class(planned_class.name)
        if not hosts or planned_class.gcp is None or planned_class.hardware is None:
            continue
        out.records += GcpGpuNodePool(
            planned_class.name,
            planned_class=planned_class,
            hosts=hosts,
            cluster=cluster,
            settings=settings,
            network=network,
        ).records
        out.hardware[planned_class.name] = dict(planned_class.hardware)
        out.machines[planned_class.name] = planned_class.gcp.machine_type
    storage = plan.role(ROLE_STORAGE)
    if storage:
        out.records += GcpStorageNodes(
            "storage", hosts=storage, cluster=cluster, settings=settings, network=network
        ).records
    out.extra["dataset_bucket"] = dataset_bucket(cluster, settings).url
    return out
