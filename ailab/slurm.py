"""Slurm's configuration files, rendered from the typed cluster model.

Pure functions: each takes the :class:`~ailab.model.Cluster` (and, for per-node files, the inventory
hostname) and returns the file's text.  They are registered in :data:`ailab.render.RENDERERS`, so roles
write them with ``{{ hostvars | ailab_render(groups, 'slurm.conf') }}``.

Paths and daemon settings are Debian 12's (slurm-wlm 22.05): ``/etc/slurm``, ``/var/lib/slurm``,
``/var/log/slurm``, PID files in ``/run``, SlurmUser ``slurm``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ailab.gpus import GPU_MODELS
from ailab.hostlist import compress, expand
from ailab.model import Cluster, Host, Partition, format_duration, parse_duration
from ailab.nodepkg import command_path

HEADER = "# Managed by ailab-iac from the inventory ({what}); local changes are overwritten.\n"

SLURM_USER = "slurm"
CONF_DIR = "/etc/slurm"
STATE_SAVE_LOCATION = "/var/lib/slurm/slurmctld"
SLURMD_SPOOL_DIR = "/var/lib/slurm/slurmd"
LOG_DIR = "/var/log/slurm"
SLURMCTLD_PORT = 6817
SLURMD_PORT = 6818
SLURMDBD_PORT = 6819
ACCOUNTING_DB = "slurm_acct_db"
HEALTH_CHECK_PROGRAM = "/usr/local/sbin/ailab-gpu-health"
HEALTH_CHECK_CONFIG = f"{CONF_DIR}/gpu-health.json"
HEALTH_CHECK_INTERVAL = 30  # seconds; slurmd also runs it once when it starts
HEALTH_REASON_PREFIX = "gpu-health:"  # the health check only resumes nodes whose drain reason starts so


def layout() -> dict[str, str | int]:
    """The paths, ports, user and database above (and the node tools slurm.conf names), for the roles
    (filter ``ailab_layout``)."""
    return {
        "user": SLURM_USER,
        "conf_dir": CONF_DIR,
        "state_save_location": STATE_SAVE_LOCATION,
        "slurmd_spool_dir": SLURMD_SPOOL_DIR,
        "log_dir": LOG_DIR,
        "slurmctld_port": SLURMCTLD_PORT,
        "slurmd_port": SLURMD_PORT,
        "slurmdbd_port": SLURMDBD_PORT,
        "accounting_db": ACCOUNTING_DB,
        "health_check_config": HEALTH_CHECK_CONFIG,
        "health_check_program": HEALTH_CHECK_PROGRAM,
        "jobstats_tool": JOBSTATS_TOOL,
        "jobstats_epilog": JOBSTATS_EPILOG,
    }


# jobstats (ailab/nodetools/jobstats.py): installed on the front-end and the controller; on the controller
# slurmctld runs the epilog wrapper (as SlurmUser) when a job ends, to store its GPU figures.
JOBSTATS_TOOL = command_path("jobstats")  # the node package's launcher (role common)
JOBSTATS_EPILOG = "/usr/local/sbin/ailab-jobstats-epilog"
GPU_DEVICE = "/dev/nvidia{index}"  # character devices 195:N, as the NVIDIA driver creates them
# The QOS every association gets: caps GPUs per user (ailab_policy.max_gpus_per_user) and jobs per user
# (max_jobs_per_user running, max_submit_jobs_per_user queued and running; an array counts per task).
DEFAULT_QOS = "ailab"

# The guideline numbers of seed 001 the job_submit plugin quotes.
RULE_MAX_TIME = 4
RULE_GPU_ONLY = 5
RULE_RIGHT_SIZE = 6

# Error codes job_submit.lua returns (Slurm 22.05 slurm/slurm_errno.h).  job_submit/lua exports some as
# slurm.ESLURM_*; ESLURM_INVALID_GRES it does not, so the script carries the number.  A job *update* shows
# the user only the code's text (22.05 discards log_user() in slurm_job_modify), so updates that drop the
# GPU get the GRES code: "Invalid generic resource (gres) specification".
ESLURM_ACCESS_DENIED = 2002
ESLURM_INVALID_NODE_COUNT = 2006
ESLURM_INVALID_TIME_LIMIT = 2051
ESLURM_INVALID_GRES = 2072

# What students may not see of each other (slurm.conf PrivateData, enforced by slurmctld: squeue, scontrol
# show job, sshare).  Not "reservations": students must see the maintenance windows (MAINT reservations,
# Users=root, which slurmctld would hide from anyone who cannot use them) with `sinfo -T` or `scontrol show
# reservation` to fit their jobs before one; the login message (ailab.nodetools.motd, run by pam_motd)
# reads them the same way.  "accounts" and "users" act only without slurmdbd: they are in slurmdbd.conf.
PRIVATE_DATA = "jobs,usage"
# The same for slurmdbd (sacct, sacctmgr, sreport).  Reservations stay visible there too.
DBD_PRIVATE_DATA = "accounts,jobs,usage,users"

# slurm.conf keys that `scontrol reconfigure` does not apply: a change needs a slurmctld restart.  First the
# ones Slurm 22.05's slurm.conf(5) documents so ("A restart of slurmctld [and the slurmd daemons] is
# required", "must be restarted"), then plugin and daemon settings that 22.05's reconfigure does not reload
# (it keeps the plugins it loaded and its listening ports, identity and accounting connection).
DOCUMENTED_RESTART_KEYS = frozenset(
    {
        "AccountingStorageEnforce",
        "AuthType",
        "CoreSpecPlugin",
        "CredType",
        "GresTypes",
        "JobContainerType",
        "MaxJobCount",
        "MaxNodeCount",
        "PluginDir",
        "PowerPlugin",
        "ProctrackType",
        "SchedulerType",
        "SelectType",
        "SelectTypeParameters",
        "SlurmctldHost",
        "SlurmctldParameters",
        "SlurmctldPort",
        "SlurmdPort",
        "StateSaveLocation",
        "SwitchType",
    }
)
RESTART_KEYS = DOCUMENTED_RESTART_KEYS | frozenset(
    {
        "AccountingStorageHost",
        "AccountingStoragePort",
        "AccountingStorageTRES",  # a new TRES (gres/gpu:<model>) is registered when slurmctld starts
        "AccountingStorageType",
        "ClusterName",
        # prep/script reads it when slurmctld starts: on 22.05 a reconfigure shows the new value in `scontrol
        # show config` but never runs the program (tried on the simulator).
        "EpilogSlurmctld",
        "JobAcctGatherType",
        "MpiDefault",
        "PriorityType",
        "SlurmUser",
        "TaskPlugin",
    }
)


# slurm.conf keys the model writes, which ailab_slurm.extra_config may not set: where each comes from (the
# inventory field to change instead, or the part of the platform that depends on it).  Checked by
# ailab.validate.check_extra_config, case-insensitively as Slurm reads keys.
_CONTROLLER = "the slurm_controller group (its host's name and ailab_address)"
_ACCOUNTING = "accounting through slurmdbd on the controller (role slurm_controller; QOS from ailab_policy)"
_PATHS = "Debian's paths and ports in ailab/slurm.py, which the roles, systemd units and backups use"
_CONFINEMENT = "the cgroup confinement every job's limits rely on (cgroup.conf, pam_slurm_adopt)"
MODEL_KEYS: dict[str, str] = {
    "NodeName": "ailab_hardware of each compute_<class> group (one NodeName line per kind of node)",
    "PartitionName": "ailab_partitions",
    "NodeSet": "ailab_partitions (node_groups)",
    "DownNodes": "the node's state in Slurm (scontrol update NodeName=... State=DRAIN Reason=...)",
    "FrontendName": "nothing: this cluster has no front-end nodes in Slurm's sense",
    "Include": "ailab_slurm.extra_config itself (write the included settings there)",
    "ClusterName": "ailab_slurm.cluster_name",
    "SlurmctldHost": _CONTROLLER,
    "ControlMachine": _CONTROLLER,
    "ControlAddr": _CONTROLLER,
    "BackupController": _CONTROLLER,
    "BackupAddr": _CONTROLLER,
    "SlurmctldAddr": _CONTROLLER,
    "DefMemPerCPU": "ailab_slurm.def_mem_per_cpu_mb",
    "DefMemPerGPU": "ailab_slurm.def_mem_per_gpu_mb",
    "DefCpuPerGPU": "ailab_slurm.def_cpu_per_gpu",
    "SlurmdParameters": "ailab_slurm.config_overrides",
    "GresTypes": "ailab_hardware.gpu of the compute_<class> groups (GPUs are the cluster's generic resource)",
    "AccountingStorageTRES": "ailab_hardware.gpu of the compute_<class> groups (one TRES per GPU model)",
    "JobSubmitPlugins": "ailab_policy (the usage rules job_submit.lua enforces)",
    "EnforcePartLimits": "ailab_policy and ailab_partitions (limits are checked at submission)",
    "PrivateData": "the rule that students see only their own jobs (PRIVATE_DATA in ailab/slurm.py)",
    "AccountingStorageType": _ACCOUNTING,
    "AccountingStorageHost": _ACCOUNTING,
    "AccountingStoragePort": _ACCOUNTING,
    "AccountingStorageEnforce": _ACCOUNTING,
    "AuthType": "munge (role munge)",
    "CredType": "munge (role munge)",
    "SlurmUser": _PATHS,
    "SlurmctldPort": _PATHS,
    "SlurmdPort": _PATHS,
    "StateSaveLocation": _PATHS,
    "SlurmdSpoolDir": _PATHS,
    "SlurmctldPidFile": _PATHS,
    "SlurmdPidFile": _PATHS,
    "SlurmctldLogFile": _PATHS,
    "SlurmdLogFile": _PATHS,
    "ProctrackType": _CONFINEMENT,
    "TaskPlugin": _CONFINEMENT,
    "JobAcctGatherType": _CONFINEMENT,
    "PrologFlags": _CONFINEMENT,
    "SelectType": "the consumable GPUs, cores and memory that ailab_policy's per-GPU caps (rule 6) rely on",
    "SelectTypeParameters": "the consumable GPUs, cores and memory that ailab_policy's per-GPU caps rely on",
    "HealthCheckProgram": "the GPU health check of role slurm_compute",
    "HealthCheckNodeState": "the GPU health check of role slurm_compute",
    "EpilogSlurmctld": "the GPU figures of finished jobs for jobstats (ailab_monitoring.job_gpu_stats)",
}
# The same for cgroup.conf (ailab_slurm.extra_cgroup_config).
CGROUP_MODEL_KEYS: dict[str, str] = {
    key: "the platform's promise that a job's CPUs, memory and GPUs hold for everything it runs"
    for key in ("ConstrainCores", "ConstrainDevices", "ConstrainRAMSpace")
}

# One line of a key=value configuration file: a setting (key, value), or a comment ("# ...") or "" (blank).
Line = tuple[str, str] | str


def splice(settings: list[Line], extra: Sequence[tuple[str, str | None]], source: str) -> list[Line]:
    """Settings with ``extra`` (from ``source``) spliced in last: one whose key (case-insensitively, as
    Slurm reads keys) the settings have replaces that value where it stands, with a comment naming the
    default (None drops the setting); the others follow in a section of their own, in ``extra``'s
    order."""
    wanted = {key.lower(): (key, value) for key, value in extra}
    used: set[str] = set()
    out: list[Line] = []
    for line in settings:
        if isinstance(line, str) or line[0].lower() not in wanted:
            out.append(line)
            continue
        used.add(line[0].lower())
        key, value = wanted[line[0].lower()]
        if value is not None:
            out += [f"# {source} (the platform's default is {line[1]})", (key, value)]
    rest: list[Line] = [(k, v) for k, v in extra if k.lower() not in used and v is not None]
    if rest:
        out += ["", f"# Site settings ({source}).", *rest]
    return out


def conf_lines(settings: list[Line], extra: Sequence[tuple[str, str | None]], source: str) -> list[str]:
    """The one serializer of Slurm's key=value files: :func:`splice`, then each setting as ``Key=value``
    and comments as they are."""
    return [
        line if isinstance(line, str) else f"{line[0]}={line[1]}" for line in splice(settings, extra, source)
    ]


def record(fields: dict[str, object]) -> str:
    """A slurm.conf line of several settings (NodeName=..., PartitionName=...), in the given order."""
    return " ".join(f"{key}={value}" for key, value in fields.items())


def slurm_time(duration: str) -> str:
    """A model duration (``HH:MM:SS``, hours may exceed 23) as Slurm writes it: ``[D-]HH:MM:SS``."""
    seconds = parse_duration(duration)
    days, rest = divmod(seconds, 86400)
    text = format_duration(rest)
    return f"{days}-{text}" if days else text


def _gpu_hosts(cluster: Cluster) -> list[Host]:
    return sorted(
        (h for h in cluster.compute if h.hardware is not None and h.hardware.gpu is not None),
        key=lambda h: h.name,
    )


def gpu_models(cluster: Cluster) -> list[str]:
    """The GPU models (GRES types) of the cluster's compute nodes, sorted."""
    return sorted({h.hardware.gpu.model for h in _gpu_hosts(cluster)})  # type: ignore[union-attr]


def accounting_tres(cluster: Cluster) -> str:
    """AccountingStorageTRES: GPUs in total and per model, so sacct/sreport show e.g. gres/gpu:t4."""
    return ",".join(["gres/gpu", *(f"gres/gpu:{model}" for model in gpu_models(cluster))])


@dataclass(frozen=True)
class NodeSpec:
    """What one NodeName line says about its nodes (hosts with equal specs share a line)."""

    cpus: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    real_memory: int
    gpu_model: str
    gpu_count: int
    gpu_memory_gb: int
    node_class: str

    @classmethod
    def of(cls, host: Host) -> NodeSpec:
        hw = host.hardware
        if hw is None or hw.gpu is None:
            raise ValueError(f"host {host.name}: a compute node needs ailab_hardware with a gpu")
        return cls(
            cpus=hw.cpus,
            sockets=hw.sockets,
            cores_per_socket=hw.cores_per_socket,
            threads_per_core=hw.threads_per_core,
            real_memory=hw.memory_mb,
            gpu_model=hw.gpu.model,
            gpu_count=hw.gpu.count,
            gpu_memory_gb=hw.gpu.memory_gb,
            node_class=host.node_class or "",
        )

    @property
    def weight(self) -> int:
        """Slurm fills low weights first: small GPUs before big ones, so large jobs find big GPUs free."""
        return max(self.gpu_memory_gb, 1)


def node_records(cluster: Cluster) -> list[dict[str, object]]:
    """One NodeName record per group of identical compute nodes, names compressed, NodeAddr in the same
    order as Slurm expands the names."""
    groups: dict[NodeSpec, list[Host]] = {}
    for host in _gpu_hosts(cluster):
        groups.setdefault(NodeSpec.of(host), []).append(host)
    lines = []
    for spec, hosts in sorted(groups.items(), key=lambda item: item[1][0].name):
        names = compress(h.name for h in hosts)
        by_name = {h.name: h.address for h in hosts}
        # NodeAddr pairs with NodeName entry by entry, in the order Slurm expands the hostlist.
        addresses = ",".join(by_name[name] for name in expand(names))
        features = ",".join(dict.fromkeys(f for f in (spec.gpu_model, _class_short(spec.node_class)) if f))
        lines.append(
            {
                "NodeName": names,
                "NodeAddr": addresses,
                "CPUs": spec.cpus,
                "Sockets": spec.sockets,
                "CoresPerSocket": spec.cores_per_socket,
                "ThreadsPerCore": spec.threads_per_core,
                "RealMemory": spec.real_memory,
                "Gres": f"gpu:{spec.gpu_model}:{spec.gpu_count}",
                "Feature": features,
                "Weight": spec.weight,
                "State": "UNKNOWN",
            }
        )
    return lines


def node_lines(cluster: Cluster) -> list[str]:
    return [record(fields) for fields in node_records(cluster)]


def _class_short(node_class: str) -> str:
    return node_class.removeprefix("compute_")


def partition_max_time(cluster: Cluster, partition: Partition) -> str:
    return partition.max_time or cluster.policy.max_job_time


def partition_line(cluster: Cluster, partition: Partition) -> str:
    max_time = partition_max_time(cluster, partition)
    default_time = min(cluster.policy.default_job_time, max_time, key=parse_duration)
    return record(
        {
            "PartitionName": partition.name,
            "Nodes": compress(partition.nodes),
            "Default": "YES" if partition.default else "NO",
            "MaxTime": slurm_time(max_time),
            "DefaultTime": slurm_time(default_time),
            "OverSubscribe": "NO",
            "State": "UP",
        }
    )


def controller(cluster: Cluster) -> Host:
    controllers = cluster.controllers
    if len(controllers) != 1:
        raise ValueError(f"group slurm_controller must hold exactly one host, it has {len(controllers)}")
    return controllers[0]


def job_gpu_stats(cluster: Cluster) -> bool:
    """Whether slurmctld stores each finished job's GPU figures (EpilogSlurmctld): asked for, and the one
    monitoring host (Prometheus, on loopback) is the controller.  ailab.validate refuses the other case."""
    monitors = cluster.monitoring_hosts
    return (
        cluster.monitoring.job_gpu_stats
        and len(monitors) == 1
        and len(cluster.controllers) == 1
        and monitors[0].name == cluster.controllers[0].name
    )


def slurm_conf_settings(cluster: Cluster) -> list[Line]:
    """slurm.conf's settings before the operator's extra_config, the nodes and the partitions."""
    ctl = controller(cluster)
    s = cluster.slurm
    settings: list[Line] = [
        HEADER.format(what="slurm.conf").rstrip("\n"),
        ("ClusterName", s.cluster_name),
        ("SlurmctldHost", f"{ctl.name}({ctl.address})"),
        ("SlurmUser", SLURM_USER),
        ("AuthType", "auth/munge"),
        ("CredType", "cred/munge"),
        ("SlurmctldPort", str(SLURMCTLD_PORT)),
        ("SlurmdPort", str(SLURMD_PORT)),
        ("StateSaveLocation", STATE_SAVE_LOCATION),
        ("SlurmdSpoolDir", SLURMD_SPOOL_DIR),
        ("SlurmctldPidFile", "/run/slurmctld.pid"),
        ("SlurmdPidFile", "/run/slurmd.pid"),
        ("SlurmctldLogFile", f"{LOG_DIR}/slurmctld.log"),
        ("SlurmdLogFile", f"{LOG_DIR}/slurmd.log"),
        ("MpiDefault", "none"),
        ("SwitchType", "switch/none"),
        "",
        "# Processes and resources of a job are confined with cgroups (cgroup.conf).  task/affinity is left",
        "# out on purpose: it needs sched_setaffinity rights that containers lack and drains such nodes.",
        ("ProctrackType", "proctrack/cgroup"),
        ("TaskPlugin", "task/cgroup"),
        # jobacct_gather/cgroup reads each step process's /proc/PID/stat and /proc/PID/io (as root: needs
        # CAP_SYS_PTRACE, roles/slurm_compute/README.md), then the task cgroup's memory.stat: MaxRSS.
        ("JobAcctGatherType", "jobacct_gather/cgroup"),
        ("JobAcctGatherFrequency", "30"),
        "# Every job gets an 'extern' step at allocation time: pam_slurm_adopt (role compute_login) adopts a",
        "# user's SSH session on a compute node into it, so the session is confined and ends with the job.",
        ("PrologFlags", "Contain"),
        "",
        "# Scheduling: GPUs, cores and memory are consumable; a node is shared by jobs.",
        ("SchedulerType", "sched/backfill"),
        ("SelectType", "select/cons_tres"),
        ("SelectTypeParameters", "CR_Core_Memory"),
        ("GresTypes", "gpu"),
        ("DefMemPerCPU", str(s.def_mem_per_cpu_mb)),
        ("DefMemPerGPU", str(s.def_mem_per_gpu_mb)),
        ("DefCpuPerGPU", str(s.def_cpu_per_gpu)),
        ("PriorityType", "priority/multifactor"),
        ("PriorityDecayHalfLife", "7-0"),
        ("PriorityWeightFairshare", "10000"),
        ("PriorityWeightAge", "1000"),
        ("PriorityWeightJobSize", "100"),
        "",
        "# The platform's rules (ailab_policy): limits are checked at submission, not when a job starts;",
        "# job_submit.lua refuses CPU-only jobs and explains the rule.",
        ("EnforcePartLimits", "ALL"),
        ("JobSubmitPlugins", "lua"),
        "# Students see only their own jobs and usage; root, SlurmUser and AdminLevel Operator/Administrator",
        "# (ailab_users admin: true) see everything.",
        ("PrivateData", PRIVATE_DATA),
        "",
        "# Node health: the GPU check drains a node whose GPUs disagree with the inventory, and resumes it.",
        ("HealthCheckProgram", HEALTH_CHECK_PROGRAM),
        ("HealthCheckInterval", str(HEALTH_CHECK_INTERVAL)),
        ("HealthCheckNodeState", "ANY"),
        ("ReturnToService", "2"),
        ("SlurmdTimeout", "120"),
        "",
        "# Accounting through slurmdbd on the controller; every job needs an association (a user in an",
        "# account of the inventory) and obeys its QOS limits.",
        ("AccountingStorageType", "accounting_storage/slurmdbd"),
        ("AccountingStorageHost", ctl.name),
        ("AccountingStoragePort", str(SLURMDBD_PORT)),
        ("AccountingStorageEnforce", "associations,limits,qos"),
        ("AccountingStorageTRES", accounting_tres(cluster)),
        ("JobCompType", "jobcomp/none"),
    ]
    if job_gpu_stats(cluster):
        settings += [
            "",
            "# When a job ends, its GPU figures (average use, peak memory) from Prometheus on this host go",
            "# into its AdminComment for jobstats (ailab_monitoring.job_gpu_stats); always exits 0.",
            ("EpilogSlurmctld", JOBSTATS_EPILOG),
        ]
    if s.config_overrides:
        settings += [
            "",
            "# Simulator only (ailab_slurm.config_overrides): trust the declared node sizes.",
            ("SlurmdParameters", "config_overrides"),
        ]
    return splice(settings, s.extra_config, "ailab_slurm.extra_config")


def assemble_slurm_conf(cluster: Cluster, settings: list[Line], nodes: list[str]) -> str:
    """slurm.conf's text: the settings, the node lines, the partitions of the model."""
    lines = conf_lines(settings, (), "")
    lines += ["", "# Compute nodes (ailab_hardware of each compute_<class> group)."]
    lines += nodes
    lines += ["", "# Partitions (ailab_partitions); MaxTime defaults to ailab_policy.max_job_time."]
    lines += [partition_line(cluster, p) for p in cluster.partitions]
    return "\n".join(lines) + "\n"


def render_slurm_conf(cluster: Cluster, host: str | None = None) -> str:
    """slurm.conf, identical on every Slurm node (controller, compute nodes, front-end)."""
    return assemble_slurm_conf(cluster, slurm_conf_settings(cluster), node_lines(cluster))


def gpu_devices(count: int) -> list[str]:
    return [GPU_DEVICE.format(index=i) for i in range(count)]


def render_gres_conf(cluster: Cluster, host: str | None = None) -> str:
    """gres.conf: the typed GPUs of one compute node (``host``), or of every compute node when None."""
    if host is not None:
        if host not in cluster.hosts:
            raise KeyError(f"gres.conf: {host!r} is not in the inventory")
        hosts = [cluster.hosts[host]]
        if not hosts[0].in_group("compute") or hosts[0].hardware is None or hosts[0].hardware.gpu is None:
            raise ValueError(f"gres.conf: {host} is not a GPU compute node")
    else:
        hosts = _gpu_hosts(cluster)
    lines = [HEADER.format(what="gres.conf").rstrip("\n"), "AutoDetect=off"]
    for h in hosts:
        gpu = h.hardware.gpu  # type: ignore[union-attr]
        lines.append(f"NodeName={h.name} Name=gpu Type={gpu.model} File={compress(gpu_devices(gpu.count))}")
    return "\n".join(lines) + "\n"


def render_cgroup_conf(cluster: Cluster, host: str | None = None) -> str:
    """cgroup.conf: jobs see only their cores, memory and GPUs (device files)."""
    settings: list[Line] = [
        HEADER.format(what="cgroup.conf").rstrip("\n"),
        ("ConstrainCores", "yes"),
        ("ConstrainDevices", "yes"),
        ("ConstrainRAMSpace", "yes"),
    ]
    extra = cluster.slurm.extra_cgroup_config
    return "\n".join(conf_lines(settings, extra, "ailab_slurm.extra_cgroup_config")) + "\n"


def render_slurmdbd_conf(cluster: Cluster, host: str | None = None) -> str:
    """slurmdbd.conf.  MariaDB runs on the controller and authenticates slurmdbd by its Unix user
    (unix_socket plugin): there is no database password to keep."""
    ctl = controller(cluster)
    return HEADER.format(what="slurmdbd.conf") + "\n".join(
        [
            "AuthType=auth/munge",
            f"DbdHost={ctl.name}",
            f"DbdPort={SLURMDBD_PORT}",
            f"SlurmUser={SLURM_USER}",
            f"LogFile={LOG_DIR}/slurmdbd.log",
            "PidFile=/run/slurmdbd.pid",
            "StorageType=accounting_storage/mysql",
            "StorageHost=localhost",
            f"StorageUser={SLURM_USER}",
            f"StorageLoc={ACCOUNTING_DB}",
            "# sacct/sacctmgr/sreport: students see their own jobs, usage, user and accounts only.",
            f"PrivateData={DBD_PRIVATE_DATA}",
            "# Accounting records outlive the yearly data deletion by a year, for reports.",
            "PurgeEventAfter=24months",
            "PurgeJobAfter=24months",
            "PurgeResvAfter=24months",
            "PurgeStepAfter=3months",
            "PurgeSuspendAfter=3months",
            "",
        ]
    )


def health_check_config(cluster: Cluster, host: str) -> dict[str, object]:
    """What the GPU health check of ``host`` expects to see."""
    h = cluster.hosts.get(host)
    if h is None or h.hardware is None or h.hardware.gpu is None:
        raise ValueError(f"gpu-health.json: {host} is not a GPU compute node")
    gpu = h.hardware.gpu
    spec = GPU_MODELS[gpu.model]
    return {
        "node": h.name,
        "model": gpu.model,
        "product": spec.product,
        "count": gpu.count,
        "memory_gb": gpu.memory_gb,
        "devices": gpu_devices(gpu.count),
        "reason_prefix": HEALTH_REASON_PREFIX,
    }


def render_gpu_health_json(cluster: Cluster, host: str | None = None) -> str:
    if host is None:
        raise ValueError("gpu-health.json is per node: pass the inventory hostname")
    return json.dumps(health_check_config(cluster, host), indent=2, sort_keys=True) + "\n"


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for printable text


def job_submit_messages(cluster: Cluster) -> dict[str, str]:
    """What job_submit.lua tells a student whose job it refuses, by reason."""
    policy = cluster.policy
    hours = parse_duration(policy.max_job_time) / 3600
    limit = f"{hours:g} hours" if hours >= 1 else policy.max_job_time
    rule6 = f"(usage guideline {RULE_RIGHT_SIZE}: allocate only what you use)"
    per_gpu = f"{policy.max_cpus_per_gpu} CPUs and {policy.max_mem_per_gpu_mb} MB of memory"
    return {
        "no_gpu": (
            f"AI-LAB is not intended for CPU-only processing (usage guideline {RULE_GPU_ONLY}): "
            "request a GPU, e.g. add --gres=gpu:1 (or --gpus=1) to your sbatch/srun command"
        ),
        "too_long": (
            f"AI-LAB jobs can run no longer than {limit} (usage guideline {RULE_MAX_TIME}): "
            f"set --time={policy.max_job_time} or less, and save checkpoints to continue in a new job"
        ),
        "exclusive": (
            f"AI-LAB jobs cannot take whole nodes {rule6}: drop --exclusive and ask for the GPUs you use, "
            f"e.g. --gres=gpu:1; each GPU may bring up to {per_gpu}"
        ),
        "all_memory": (
            f"AI-LAB jobs cannot take all of a node's memory {rule6}: drop --mem=0 and ask for what you "
            f"use, e.g. --mem-per-gpu={policy.max_mem_per_gpu_mb}M or less"
        ),
        "too_many_nodes": (
            f"AI-LAB jobs can span at most {policy.max_nodes_per_job} node(s) {rule6}: "
            f"set --nodes={policy.max_nodes_per_job} or less"
        ),
        "too_many_cpus": (
            f"AI-LAB jobs can have at most {policy.max_cpus_per_gpu} CPUs per GPU they ask for {rule6}: "
            f"ask for fewer CPUs (--cpus-per-gpu={policy.max_cpus_per_gpu} or less, -c/--ntasks), or for "
            "as many GPUs as your job uses"
        ),
        "too_much_memory": (
            f"AI-LAB jobs can have at most {policy.max_mem_per_gpu_mb} MB of memory per GPU they ask for "
            f"{rule6}: ask for less (--mem-per-gpu={policy.max_mem_per_gpu_mb}M or less), or for as many "
            "GPUs as your job uses"
        ),
    }


def render_job_submit_lua(cluster: Cluster, host: str | None = None) -> str:
    """job_submit.lua (Lua 5.1, Slurm 22.05's job_submit/lua) enforcing the platform's rules at submission
    and on every job update (``scontrol update``): a GPU (rule 5), the time limit (rule 4), and rule 6's
    size caps: no whole nodes (--exclusive, --mem=0), at most ``max_nodes_per_job`` nodes, at most
    ``max_cpus_per_gpu`` CPUs and ``max_mem_per_gpu_mb`` MB per GPU the job asks for.

    Why here and not in slurm.conf/QOS: Slurm 22.05 has no per-GPU maximum (only the defaults DefCpuPerGPU
    and DefMemPerGPU); partition MaxCPUsPerNode/MaxMemPerNode cap a job per node whatever its GPUs (a
    1-GPU job could still take a node's CPUs), and QOS MaxTRESPerJob caps absolute amounts, not ratios.
    MaxNodes could be a partition setting, but one place that explains every refusal with the rule is
    easier on students; EnforcePartLimits and the QOS still back up the time and GPU limits."""
    policy = cluster.policy
    config = [
        f"local GPU_REQUIRED = {'true' if policy.gpu_required else 'false'}",
        f"local MAX_MINUTES = {parse_duration(policy.max_job_time) // 60}",
        f"local MAX_CPUS_PER_GPU = {policy.max_cpus_per_gpu}",
        f"local MAX_MEM_PER_GPU_MB = {policy.max_mem_per_gpu_mb}",
        f"local MAX_NODES = {policy.max_nodes_per_job}",
        f"local ESLURM_INVALID_GRES = {ESLURM_INVALID_GRES}",
        f"local SLURM_USER = {_lua_string(SLURM_USER)}",
        "local MSG = {",
        *(f"    {key} = {_lua_string(text)}," for key, text in sorted(job_submit_messages(cluster).items())),
        "}",
    ]
    header = HEADER.format(what="job_submit.lua from ailab_policy").replace("# ", "-- ", 1).rstrip("\n")
    return fill_lua_template(JOB_SUBMIT_LUA.read_text(), header, config)


# The Lua itself lives in a file of its own, valid Lua that luacheck lints (`make lint`, .luacheckrc): its
# first line is replaced by the generated-file header and its block between the config markers by the
# cluster's values.
JOB_SUBMIT_LUA = Path(__file__).resolve().parent / "templates" / "job_submit.lua"
_CONFIG_BEGIN, _CONFIG_END = "-- ailab:config:begin", "-- ailab:config:end"


def fill_lua_template(template: str, header: str, config: list[str]) -> str:
    """``template`` with its first line replaced by ``header`` and the lines from the config-begin marker
    to the config-end marker (both included) by ``config``."""
    lines = template.splitlines()
    if not lines or not lines[0].startswith("-- ailab:header"):
        raise ValueError(f"{JOB_SUBMIT_LUA}: the first line must be the '-- ailab:header' marker")
    begins = [i for i, line in enumerate(lines) if line.startswith(_CONFIG_BEGIN)]
    ends = [i for i, line in enumerate(lines) if line.startswith(_CONFIG_END)]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise ValueError(
            f"{JOB_SUBMIT_LUA}: needs exactly one '{_CONFIG_BEGIN}' line before one '{_CONFIG_END}'"
        )
    return "\n".join([header, *lines[1 : begins[0]], *config, *lines[ends[0] + 1 :]]) + "\n"


def reload_action(old: str | None, new: str) -> str:
    """How slurmctld takes a new slurm.conf: ``"none"`` (same file, or first install: starting the
    daemon reads it), ``"reconfigure"`` (``scontrol reconfigure``) or ``"restart"``.

    Restart when a key of :data:`RESTART_KEYS` changed, or any node's definition did (a node added or
    removed, or its CPUs, memory, GRES, address, features or weight changed): slurm.conf(5) for 22.05 says
    "Changes in node configuration (e.g. adding nodes, changing their processor count, etc.) require
    restarting both the slurmctld daemon and the slurmd daemons" (role slurm_compute restarts slurmd on any
    change).  Keys compare case-insensitively, as Slurm reads them; partitions and the other keys take a
    reconfigure."""
    if not old or not old.strip():
        return "none"
    if old == new:
        return "none"
    if _nodes(old) != _nodes(new):
        return "restart"
    old_keys, new_keys = _settings(old), _settings(new)
    for key in RESTART_KEYS:
        if old_keys.get(key.lower()) != new_keys.get(key.lower()):
            return "restart"
    return "reconfigure"


_LINE_RE = re.compile(r"^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")


def _settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        match = _LINE_RE.match(line)
        if match and match.group(1).lower() not in ("nodename", "partitionname"):
            out[match.group(1).lower()] = match.group(2)
    return out


def _nodes(text: str) -> dict[str, dict[str, str]]:
    """Every node's definition in a slurm.conf: name -> its NodeName line's other settings (lower-case
    keys; NodeAddr and NodeHostname paired with the names; NodeName=DEFAULT lines folded into the nodes
    after them)."""
    nodes: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not re.match(r"^NodeName\s*=", line, re.IGNORECASE):
            continue
        fields: dict[str, str] = {}
        for item in line.split():
            key, _, value = item.partition("=")
            fields[key.lower()] = value
        names = fields.pop("nodename", "")
        if names.upper() == "DEFAULT":
            defaults.update(fields)
            continue
        expanded = expand(names)
        paired = {}
        for key in ("nodeaddr", "nodehostname"):
            if key in fields:
                values = fields.pop(key).split(",")
                paired[key] = values if len(values) == len(expanded) else [",".join(values)] * len(expanded)
        for i, name in enumerate(expanded):
            nodes[name] = {**defaults, **fields, **{key: values[i] for key, values in paired.items()}}
    return nodes


def accounting_spec(cluster: Cluster) -> dict[str, object]:
    """The Slurm accounting the inventory asks for: cluster, QOS, one account per project, one association
    per user in its project's account.  Input of the slurm_accounting module (roles/slurm_controller)."""
    return {
        "cluster": cluster.slurm.cluster_name,
        "qos": [
            {
                "name": DEFAULT_QOS,
                "description": "AI-LAB default: GPUs and jobs per user capped (ailab_policy)",
                "max_tres_per_user": f"gres/gpu={cluster.policy.max_gpus_per_user}",
                "max_jobs_per_user": cluster.policy.max_jobs_per_user,
                "max_submit_jobs_per_user": cluster.policy.max_submit_jobs_per_user,
            }
        ],
        "default_qos": DEFAULT_QOS,
        "accounts": [
            {"name": p.name.lower(), "description": p.description or p.name}
            for p in sorted(cluster.projects.values(), key=lambda p: p.name)
        ],
        "users": [
            {"name": u.name, "account": u.project.lower(), "admin": u.admin}
            for u in sorted(cluster.users.values(), key=lambda u: u.name)
        ],
    }


def render_accounting_json(cluster: Cluster, host: str | None = None) -> str:
    return json.dumps(accounting_spec(cluster), indent=2, sort_keys=True) + "\n"
