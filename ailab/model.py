"""The typed description of the cluster.

Everything in the project (roles, Pulumi stacks, the simulator, generated docs) reads the cluster through
these types.  They are built from an Ansible inventory by :mod:`ailab.inventory` and checked by
:mod:`ailab.validate`; nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

# Inventory group names with a fixed meaning.
GROUP_FRONTEND = "frontend"
GROUP_CONTROLLER = "slurm_controller"
GROUP_COMPUTE = "compute"
GROUP_CEPH = "ceph"
GROUP_MONITORING = "monitoring"
GROUP_DIRECTORY = "directory"
ROLE_GROUPS = (GROUP_FRONTEND, GROUP_CONTROLLER, GROUP_COMPUTE, GROUP_CEPH)
# A user name: what `ailab inventory check` accepts and what the node-side tools trust (one rule for both).
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def parse_duration(text: str) -> int:
    """Seconds in a Slurm-style ``HH:MM:SS`` duration (hours may exceed 23).  Raises ValueError."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() and len(p) >= 2 for p in parts):
        raise ValueError(f"{text!r} is not HH:MM:SS")
    hours, minutes, seconds = (int(p) for p in parts)
    if minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} has minutes or seconds above 59")
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True)
class Gpu:
    model: str  # a key of ailab.gpus.GPU_MODELS, used as the Slurm GRES type
    count: int
    memory_gb: int


@dataclass(frozen=True)
class Hardware:
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_mb: int  # Slurm's RealMemory (MiB): what jobs may use, a little below what is installed
    cpu_model: str = ""
    gpu: Gpu | None = None
    # The RAM the machine has (GiB, as its datasheet says: 256, 768, ...); what the user docs show.  None: the
    # docs fall back to memory_mb.  memory_mb may not exceed memory_installed_gb * 1024.
    memory_installed_gb: int | None = None

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # the address on the cluster network: /etc/hosts, slurm.conf NodeAddr, Ceph monitors
    groups: tuple[str, ...]  # every group the host is in, "all" excluded
    node_class: str | None = None  # the child group of `compute` that gives its hardware
    hardware: Hardware | None = None

    def in_group(self, group: str) -> bool:
        return group in self.groups


@dataclass(frozen=True)
class NodeClass:
    """A child group of `compute`: hosts of one kind of hardware (e.g. compute_t4)."""

    name: str
    hosts: tuple[str, ...]

    @property
    def short_name(self) -> str:
        return self.name.removeprefix(f"{GROUP_COMPUTE}_")


@dataclass(frozen=True)
class Partition:
    name: str
    node_groups: tuple[str, ...]
    nodes: tuple[str, ...]  # hosts of node_groups, sorted
    default: bool = False
    max_time: str | None = None  # None: the policy's max_job_time


@dataclass(frozen=True)
class NoticeOffset:
    """How long before an event a notice goes out: months and/or days."""

    months: int = 0
    days: int = 0

    def before(self, when: dt.date) -> dt.date:
        year, month = when.year, when.month - self.months
        while month < 1:
            month += 12
            year -= 1
        # Clamp the day for shorter months (e.g. 31 May minus 1 month -> 30 April).
        day = when.day
        while True:
            try:
                shifted = dt.date(year, month, day)
                break
            except ValueError:
                day -= 1
        return shifted - dt.timedelta(days=self.days)

    @property
    def label(self) -> str:
        parts = []
        if self.months:
            parts.append(f"{self.months} month" + ("s" if self.months != 1 else ""))
        if self.days:
            parts.append(f"{self.days} day" + ("s" if self.days != 1 else ""))
        return " ".join(parts) or "0 days"


@dataclass(frozen=True)
class DeletionPolicy:
    month: int = 8
    day: int = 1
    notices: tuple[NoticeOffset, ...] = (
        NoticeOffset(months=2),
        NoticeOffset(months=1),
        NoticeOffset(days=14),
        NoticeOffset(days=2),
    )

    def next_date(self, today: dt.date) -> dt.date:
        """The next yearly deletion on or after ``today``."""
        return next_deletion(today, self.month, self.day)


def next_deletion(today: dt.date, month: int, day: int) -> dt.date:
    """The next yearly deletion date (``month``/``day``) on or after ``today``: the one calendar rule the
    retention tool, the login message and the status page share."""
    this_year = dt.date(today.year, month, day)
    return this_year if this_year >= today else dt.date(today.year + 1, month, day)


@dataclass(frozen=True)
class LoginLimits:
    """Per-user limits on the front-end (systemd user slices)."""

    cpu_quota_percent: int = 200  # 100 = one full core
    memory_max_mb: int = 8192
    tasks_max: int = 512


@dataclass(frozen=True)
class Policy:
    max_job_time: str = "12:00:00"
    default_job_time: str = "01:00:00"
    gpu_required: bool = True
    max_gpus_per_user: int = 8
    # Rule 6 (allocate only what you use): what one allocated GPU may bring along, and how many nodes a job
    # may span.  Enforced by job_submit.lua at submission and on every job update; validated against each
    # node class (a cap above a class's share per GPU lets one GPU carry a node) and against the Slurm
    # defaults (ailab_slurm.def_cpu_per_gpu / def_mem_per_gpu_mb, which a default job must fit).
    max_cpus_per_gpu: int = 4
    max_mem_per_gpu_mb: int = 32000
    max_nodes_per_job: int = 2
    # Per-user job counts, enforced by the platform QOS (MaxSubmitJobsPerUser / MaxJobsPerUser): queued and
    # running together, and running at once.  A job array counts one job per task.
    max_submit_jobs_per_user: int = 100
    max_jobs_per_user: int = 8
    # Rule 6 for running jobs (ailab-idle-gpus on the monitoring host, every minute, from Prometheus): a job
    # with a GPU at 0 % utilisation for ``idle_gpu_mail_minutes`` gets one mail to its owner (0: none); a job
    # whose GPUs are all at 0 % for ``idle_gpu_cancel_minutes`` is cancelled and its owner told (opt-in, 0:
    # never; longer than the mail's time, so the mail always comes first).
    idle_gpu_mail_minutes: int = 60
    idle_gpu_cancel_minutes: int = 0
    data_classification_levels: tuple[int, ...] = (0, 1)
    deletion: DeletionPolicy = field(default_factory=DeletionPolicy)
    maintenance_notice_days: tuple[int, ...] = (30, 14, 1)
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    default_quota_gb: int = 100
    extension_url: str = ""
    support_email: str = ""

    @property
    def max_job_seconds(self) -> int:
        return parse_duration(self.max_job_time)


@dataclass(frozen=True)
class Project:
    """A course or project: a Slurm account students are associated with."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    full_name: str
    email: str
    project: str
    quota_gb: int | None = None  # None: the policy's default_quota_gb
    ssh_keys: tuple[str, ...] = ()
    extension_until: dt.date | None = None  # approved extension past the yearly deletion
    admin: bool = False


@dataclass(frozen=True)
class SlurmSettings:
    cluster_name: str = "ailab"
    def_mem_per_gpu_mb: int = 16384
    def_cpu_per_gpu: int = 4
    def_mem_per_cpu_mb: int = 2048
    # SlurmdParameters=config_overrides: trust the inventory's node sizes over what slurmd detects.  Only for
    # the simulator, whose containers see the host's CPUs and memory; on real hardware a node that lost a
    # DIMM or a CPU must be drained, so the default is off.
    config_overrides: bool = False
    # The operator's escape hatch: slurm.conf / cgroup.conf settings the model has no field for, as (key,
    # value) in the inventory's order.  A key the rendered file already sets takes the operator's value in
    # place; keys the model owns (ailab.slurm.MODEL_KEYS) are refused by the checks.
    extra_config: tuple[tuple[str, str], ...] = ()
    extra_cgroup_config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CephSettings:
    fs_name: str = "cephfs"
    home_root: str = "/ceph/home"
    datasets_path: str | None = None  # shared read-only area, e.g. /ceph/datasets
    monitors: tuple[str, ...] = ()  # external cluster: monitor addresses; managed: from the ceph group
    managed: bool = False  # True: the ceph group runs the cluster (role ceph_cluster)
    client: str = "fuse"  # "kernel" or "fuse"
    # The directories inside the CephFS (its own paths, not the nodes') mounted at home_root and
    # datasets_path: the inventory's ailab_cephfs_home_dir and ailab_cephfs_datasets_dir, read by roles
    # cephfs_client, user_dirs and containers (each may still override its own role variable).
    fs_home_dir: str = "/home"
    fs_datasets_dir: str = "/datasets"
    # Managed Ceph: copies of every object in the CephFS pools.  0: min(3, hosts in group ceph), with
    # min_size = size - 1 (ailab.ceph.pool_size; role ceph_cluster's ceph_cluster_pool_size, default 0).
    pool_size: int = 0


@dataclass(frozen=True)
class AccountSettings:
    """What role accounts creates besides the users (its defaults; an inventory may override them)."""

    admin_group: str = "ailab-admins"  # accounts_admin_group: members may log in anywhere and use sudo
    admin_gid: int = 2900  # accounts_admin_gid


@dataclass(frozen=True)
class BackupSettings:
    """``ailab_backup``: the daily backup of what a rebuilt controller or operations host cannot recreate
    from the inventory (slurmctld's StateSaveLocation, the accounting database, the operations state).

    ``destination`` is a directory on a file system mounted separately from the backed-up host's root (the
    site's backup or NFS share, mounted by the operators); empty: no backups.  Each host writes
    ``<destination>/<host>/``; the newest ``keep`` backups of each host are kept."""

    destination: str = ""
    keep: int = 14
    on_calendar: str = "*-*-* 02:30:00"


@dataclass(frozen=True)
class StatusPageSettings:
    """``ailab_monitoring.status_page``: the students' read-only status page, served by nginx on each
    front-end's cluster address (role frontend; ailab.frontend renders its files): free and total GPUs per
    class, the queue per partition, nodes out of service, maintenance windows and the next deletion date,
    refreshed every minute from the controller's ailab-exporter and Slurm."""

    enabled: bool = True
    port: int = 80
    # Networks (CIDR) whose machines may read the page; () = the cluster network: the smallest network
    # holding every host's address (a simulated inventory: its subnet; ailab.frontend.cluster_network).
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonitoringSettings:
    """``ailab_monitoring``: Prometheus and Alertmanager on the host of group ``monitoring`` (ailab.monitoring
    renders their configuration).  Every node runs prometheus-node-exporter; compute nodes and controllers
    also run ailab-exporter (GPUs, jobs' GPUs, Slurm).  Alerts go by mail through the front-end's MTA to
    ``alerts_to``; none set: the alerts are evaluated and shown by Alertmanager, but mailed to no one."""

    scrape_interval_s: int = 30
    retention_days: int = 30
    alerts_to: tuple[str, ...] = ()
    alerts_from: str = ""  # default alertmanager@<cluster domain>
    node_down_minutes: int = 2  # a node's exporter unreachable this long: NodeDown
    idle_gpu_minutes: int = 30  # a job's GPU at 0 % this long: JobGpuIdle
    # Alertmanager's group_wait: how long a new alert waits for others of its group before the mail goes out.
    alert_group_wait_s: int = 30
    cephfs_full_percent: int = 85
    # External Ceph: the mgr prometheus module's endpoints (host:port) to scrape; managed Ceph: the ceph
    # group's hosts, on the module's port (role ceph_cluster enables it).
    ceph_exporters: tuple[str, ...] = ()
    status_page: StatusPageSettings = field(default_factory=StatusPageSettings)
    # The GPU figures of finished jobs (jobstats): the controller's EpilogSlurmctld asks Prometheus, on its
    # loopback, for each job's GPU use and stores it in the job's accounting record.  Needs the monitoring
    # host to be the Slurm controller (ailab.validate says so); false: jobstats shows no GPU figures of
    # finished jobs.
    job_gpu_stats: bool = True


@dataclass(frozen=True)
class ContainerImage:
    """One base image of the container catalogue: Debian ``suite`` (minbase) plus ``packages``, built by
    role containers with mmdebstrap from the nodes' own package mirror and published read-only as
    ``<catalogue>/<name>.sqfs``."""

    name: str
    packages: tuple[str, ...] = ()
    suite: str = "bookworm"
    description: str = ""


DEFAULT_CONTAINER_IMAGES = (
    ContainerImage(
        name="debian-bookworm-python",
        packages=("python3", "python3-venv", "ca-certificates"),
        description="Debian 12 with Python 3.11",
    ),
)


@dataclass(frozen=True)
class ContainerSettings:
    """``ailab_containers``: unprivileged containers (Charliecloud) for students: built on the front-end
    (``ailab-ch-build``), run in a GPU job (``ailab-ch-run``); role containers and ailab/containers.py.

    ``catalogue``: the read-only directory on CephFS where the admin-provided base images are published
    (default ``<ailab_ceph.datasets_path>/containers``).  ``registry``: production may name a registry
    mirror instead: then no image is built here and FROM lines are pulled from it."""

    enabled: bool = False
    catalogue: str = ""
    images: tuple[ContainerImage, ...] = DEFAULT_CONTAINER_IMAGES
    registry: str = ""
    gpu_dir: str = "/usr/local/lib/ailab-gpu"


def domain_dn(domain: str) -> str:
    """The LDAP suffix of a DNS domain: ``ailab.example.org`` -> ``dc=ailab,dc=example,dc=org``."""
    return ",".join(f"dc={part}" for part in domain.split(".") if part)


@dataclass(frozen=True)
class DirectorySettings:
    """``ailab_directory``: users and groups come from LDAP, resolved on every node by SSSD (NSS, PAM, SSH
    keys); no student is a local account.  Absent (``enabled`` false): local accounts (role accounts).

    ``managed``: OpenLDAP (Debian's slapd, role directory) runs on the host of group ``directory``, with the
    suffix ``base_dn`` (default from the cluster domain), TLS from a cluster CA kept in the secrets dir, and
    the inventory's users reconciled into it in one bulk operation.  Not managed: the university's
    directory at ``uris`` (``ldaps://`` or ``start_tls``), read by SSSD binding as ``bind_dn`` with the
    vaulted ``bind_password`` (never in the model: roles read it from the inventory); ``ca_cert`` is the
    controller-side file of the CA that signed its certificate."""

    enabled: bool = False
    managed: bool = False
    base_dn: str = ""
    uris: tuple[str, ...] = ()
    bind_dn: str = ""
    bind_password_set: bool = False
    start_tls: bool = False
    ca_cert: str = ""
    users_ou: str = "people"
    groups_ou: str = "groups"
    # Managed only: the read-only account SSSD binds as, under ou=services.
    service_account: str = "sssd"

    @property
    def users_dn(self) -> str:
        return f"ou={self.users_ou},{self.base_dn}"

    @property
    def groups_dn(self) -> str:
        return f"ou={self.groups_ou},{self.base_dn}"


@dataclass(frozen=True)
class SimSettings:
    """Only in a simulated inventory: how the simulator names and wires its containers."""

    prefix: str = "ailab"
    network: str = "ailab-sim"
    subnet: str = "10.213.0.0/24"

    def container(self, host: str) -> str:
        return f"{self.prefix}-{host}"


@dataclass(frozen=True)
class Cluster:
    name: str
    domain: str
    timezone: str
    hosts: dict[str, Host]
    node_classes: dict[str, NodeClass]
    partitions: tuple[Partition, ...]
    policy: Policy
    slurm: SlurmSettings
    ceph: CephSettings
    projects: dict[str, Project]
    users: dict[str, User]
    sim: SimSettings | None = None
    # Networks (CIDR) of the operators' machines and the Ansible controller.  The front-end refuses root
    # logins from everywhere else (role sshd); root keeps key-only logins from these, so Ansible, which
    # connects as root, can still converge the front-end after its first converge.
    admin_networks: tuple[str, ...] = ()
    # Where generated secrets live on the Ansible controller (munge key, Ceph keys; in a simulated
    # inventory also Ansible's SSH key and the pinned host keys): ``ailab_secrets_dir``.
    secrets_dir: str = ""
    accounts: AccountSettings = field(default_factory=AccountSettings)
    # The one front-end that runs the daily operations timers (the yearly deletion and the maintenance
    # notices) and keeps their state: ``ailab_cluster.operations_host``, default the first front-end (by
    # name).  The tools are installed on every front-end; their timers run only here.
    operations_host: str = ""
    backup: BackupSettings = field(default_factory=BackupSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    containers: ContainerSettings = field(default_factory=ContainerSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)

    def group(self, name: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts.values() if h.in_group(name))

    @property
    def frontends(self) -> tuple[Host, ...]:
        return self.group(GROUP_FRONTEND)

    @property
    def controllers(self) -> tuple[Host, ...]:
        return self.group(GROUP_CONTROLLER)

    @property
    def compute(self) -> tuple[Host, ...]:
        return self.group(GROUP_COMPUTE)

    @property
    def monitoring_hosts(self) -> tuple[Host, ...]:
        """The hosts of group ``monitoring`` (Prometheus, Alertmanager)."""
        return self.group(GROUP_MONITORING)

    @property
    def directory_hosts(self) -> tuple[Host, ...]:
        """The hosts of group ``directory`` (slapd, when ``ailab_directory.managed``)."""
        return self.group(GROUP_DIRECTORY)

    @property
    def ceph_hosts(self) -> tuple[Host, ...]:
        return self.group(GROUP_CEPH)

    def quota_gb(self, user: User) -> int:
        return user.quota_gb if user.quota_gb is not None else self.policy.default_quota_gb
