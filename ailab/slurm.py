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
from dataclasses import dataclass

from ailab.gpus import GPU_MODELS
from ailab.hostlist import compress, expand
from ailab.model import Cluster, Host, Partition, format_duration, parse_duration

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
GPU_DEVICE = "/dev/nvidia{index}"  # character devices 195:N, as the NVIDIA driver creates them
DEFAULT_QOS = "ailab"  # the QOS every association gets; caps GPUs per user (ailab_policy.max_gpus_per_user)

# The guideline numbers of seed 001 the job_submit plugin quotes.
RULE_MAX_TIME = 4
RULE_GPU_ONLY = 5

# slurm.conf keys that `scontrol reconfigure` cannot apply: a change needs a slurmctld restart.
# (Slurm 22.05 slurm.conf(5): "requires a restart"; node additions/removals are fatal to reconfigure.)
RESTART_KEYS = frozenset(
    {
        "AuthType",
        "ClusterName",
        "CredType",
        "GresTypes",
        "JobAcctGatherType",
        "MpiDefault",
        "PluginDir",
        "ProctrackType",
        "SelectType",
        "SelectTypeParameters",
        "SlurmctldHost",
        "SlurmctldParameters",
        "SlurmctldPort",
        "SlurmdPort",
        "SlurmUser",
        "StateSaveLocation",
        "SwitchType",
        "TaskPlugin",
        "AccountingStorageType",
        "AccountingStorageHost",
        "AccountingStoragePort",
        "AccountingStorageTRES",
        "PriorityType",
    }
)


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


def node_lines(cluster: Cluster) -> list[str]:
    """One NodeName line per group of identical compute nodes, names compressed, NodeAddr in the same
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
            f"NodeName={names} NodeAddr={addresses} CPUs={spec.cpus} Sockets={spec.sockets} "
            f"CoresPerSocket={spec.cores_per_socket} ThreadsPerCore={spec.threads_per_core} "
            f"RealMemory={spec.real_memory} Gres=gpu:{spec.gpu_model}:{spec.gpu_count} "
            f"Feature={features} Weight={spec.weight} State=UNKNOWN"
        )
    return lines


def _class_short(node_class: str) -> str:
    return node_class.removeprefix("compute_")


def partition_max_time(cluster: Cluster, partition: Partition) -> str:
    return partition.max_time or cluster.policy.max_job_time


def partition_line(cluster: Cluster, partition: Partition) -> str:
    max_time = partition_max_time(cluster, partition)
    default_time = min(cluster.policy.default_job_time, max_time, key=parse_duration)
    return (
        f"PartitionName={partition.name} Nodes={compress(partition.nodes)} "
        f"Default={'YES' if partition.default else 'NO'} MaxTime={slurm_time(max_time)} "
        f"DefaultTime={slurm_time(default_time)} OverSubscribe=NO State=UP"
    )


def controller(cluster: Cluster) -> Host:
    controllers = cluster.controllers
    if len(controllers) != 1:
        raise ValueError(f"group slurm_controller must hold exactly one host, it has {len(controllers)}")
    return controllers[0]


def render_slurm_conf(cluster: Cluster, host: str | None = None) -> str:
    """slurm.conf, identical on every Slurm node (controller, compute nodes, front-end)."""
    ctl = controller(cluster)
    s = cluster.slurm
    lines = [
        HEADER.format(what="slurm.conf").rstrip("\n"),
        f"ClusterName={s.cluster_name}",
        f"SlurmctldHost={ctl.name}({ctl.address})",
        f"SlurmUser={SLURM_USER}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"SlurmctldPort={SLURMCTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        f"StateSaveLocation={STATE_SAVE_LOCATION}",
        f"SlurmdSpoolDir={SLURMD_SPOOL_DIR}",
        "SlurmctldPidFile=/run/slurmctld.pid",
        "SlurmdPidFile=/run/slurmd.pid",
        f"SlurmctldLogFile={LOG_DIR}/slurmctld.log",
        f"SlurmdLogFile={LOG_DIR}/slurmd.log",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "",
        "# Processes and resources of a job are confined with cgroups (cgroup.conf).  task/affinity is left",
        "# out on purpose: it needs sched_setaffinity rights that containers lack and drains such nodes.",
        "ProctrackType=proctrack/cgroup",
        "TaskPlugin=task/cgroup",
        "JobAcctGatherType=jobacct_gather/cgroup",
        "JobAcctGatherFrequency=30",
        "# Every job gets an 'extern' step at allocation time: pam_slurm_adopt (role compute_login) adopts a",
        "# user's SSH session on a compute node into it, so the session is confined and ends with the job.",
        "PrologFlags=Contain",
        "",
        "# Scheduling: GPUs, cores and memory are consumable; a node is shared by jobs.",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "GresTypes=gpu",
        f"DefMemPerCPU={s.def_mem_per_cpu_mb}",
        f"DefMemPerGPU={s.def_mem_per_gpu_mb}",
        f"DefCpuPerGPU={s.def_cpu_per_gpu}",
        "PriorityType=priority/multifactor",
        "PriorityDecayHalfLife=7-0",
        "PriorityWeightFairshare=10000",
        "PriorityWeightAge=1000",
        "PriorityWeightJobSize=100",
        "",
        "# The platform's rules (ailab_policy): limits are checked at submission, not when a job starts;",
        "# job_submit.lua refuses CPU-only jobs and explains the rule.",
        "EnforcePartLimits=ALL",
        "JobSubmitPlugins=lua",
        "",
        "# Node health: the GPU check drains a node whose GPUs disagree with the inventory, and resumes it.",
        f"HealthCheckProgram={HEALTH_CHECK_PROGRAM}",
        f"HealthCheckInterval={HEALTH_CHECK_INTERVAL}",
        "HealthCheckNodeState=ANY",
        "ReturnToService=2",
        "SlurmdTimeout=120",
        "",
        "# Accounting through slurmdbd on the controller; every job needs an association (a user in an",
        "# account of the inventory) and obeys its QOS limits.",
        "AccountingStorageType=accounting_storage/slurmdbd",
        f"AccountingStorageHost={ctl.name}",
        f"AccountingStoragePort={SLURMDBD_PORT}",
        "AccountingStorageEnforce=associations,limits,qos",
        f"AccountingStorageTRES={accounting_tres(cluster)}",
        "JobCompType=jobcomp/none",
    ]
    if s.config_overrides:
        lines += [
            "",
            "# Simulator only (ailab_slurm.config_overrides): trust the declared node sizes.",
            "SlurmdParameters=config_overrides",
        ]
    lines += ["", "# Compute nodes (ailab_hardware of each compute_<class> group)."]
    lines += node_lines(cluster)
    lines += ["", "# Partitions (ailab_partitions); MaxTime defaults to ailab_policy.max_job_time."]
    lines += [partition_line(cluster, p) for p in cluster.partitions]
    return "\n".join(lines) + "\n"


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
    return (
        HEADER.format(what="cgroup.conf")
        + "ConstrainCores=yes\n"
        + "ConstrainDevices=yes\n"
        + "ConstrainRAMSpace=yes\n"
    )


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
    policy = cluster.policy
    hours = parse_duration(policy.max_job_time) / 3600
    limit = f"{hours:g} hours" if hours >= 1 else policy.max_job_time
    return {
        "no_gpu": (
            f"AI-LAB is not intended for CPU-only processing (usage guideline {RULE_GPU_ONLY}): "
            "request a GPU, e.g. add --gres=gpu:1 (or --gpus=1) to your sbatch/srun command"
        ),
        "too_long": (
            f"AI-LAB jobs can run no longer than {limit} (usage guideline {RULE_MAX_TIME}): "
            f"set --time={policy.max_job_time} or less, and save checkpoints to continue in a new job"
        ),
    }


def render_job_submit_lua(cluster: Cluster, host: str | None = None) -> str:
    """job_submit.lua (Lua 5.1, Slurm 22.05's job_submit/lua) enforcing the platform's rules at submit."""
    policy = cluster.policy
    messages = job_submit_messages(cluster)
    max_minutes = parse_duration(policy.max_job_time) // 60
    return _JOB_SUBMIT_LUA.format(
        header=HEADER.format(what="job_submit.lua from ailab_policy").replace("# ", "-- ", 1).rstrip("\n"),
        gpu_required="true" if policy.gpu_required else "false",
        max_minutes=max_minutes,
        slurm_user=_lua_string(SLURM_USER),
        msg_no_gpu=_lua_string(messages["no_gpu"]),
        msg_too_long=_lua_string(messages["too_long"]),
    )


# Lua braces are doubled for str.format.
_JOB_SUBMIT_LUA = """{header}
--
-- Refuses, at submission, jobs that break the AI-LAB usage guidelines, with a message that names the rule
-- and the fix.  Returns slurm.ESLURM_ACCESS_DENIED / ESLURM_INVALID_TIME_LIMIT (both exported to Lua by
-- Slurm 22.05): returning an undefined constant (nil) would silently ACCEPT the job.
-- root and the SlurmUser are exempt (operators' test and maintenance jobs).

local GPU_REQUIRED = {gpu_required}
local MAX_MINUTES = {max_minutes}
local SLURM_USER = {slurm_user}
local MSG_NO_GPU = {msg_no_gpu}
local MSG_TOO_LONG = {msg_too_long}

-- Every field through which 22.05 passes a GPU request: --gres (tres_per_node), --gpus (tres_per_job),
-- --gpus-per-node, --gpus-per-socket, --gpus-per-task.  Values look like "gres:gpu:t4:2" or "gres/gpu=1".
local GPU_FIELDS = {{ "tres_per_node", "tres_per_job", "tres_per_socket", "tres_per_task", "gres" }}

local function uid_of(name)
    local f = io.open("/etc/passwd", "r")
    if f == nil then return nil end
    for line in f:lines() do
        local user, uid = string.match(line, "^([^:]*):[^:]*:(%d+):")
        if user == name then
            f:close()
            return tonumber(uid)
        end
    end
    f:close()
    return nil
end

local EXEMPT = {{ [0] = true }}
local slurm_uid = uid_of(SLURM_USER)
if slurm_uid ~= nil then EXEMPT[slurm_uid] = true end

-- GPUs asked for by one TRES/GRES specification, e.g. "gres:gpu:t4:2,gres:shard:1" -> 2.
function ailab_gpus_in(spec)
    if spec == nil or spec == "" then return 0 end
    local total = 0
    for item in string.gmatch(spec, "[^,]+") do
        item = string.gsub(item, "^%s+", "")
        item = string.gsub(item, "^gres[:/]", "")
        local name = string.match(item, "^([%w_%-]+)")
        if name == "gpu" then
            local count = string.match(item, "[:=](%d+)[kKmMgG]?$")
            if count == nil then
                total = total + 1            -- "gpu" or "gpu:t4": one GPU
            else
                total = total + tonumber(count)
            end
        end
    end
    return total
end

function ailab_requested_gpus(job_desc)
    local total = 0
    for _, field in ipairs(GPU_FIELDS) do
        local ok, value = pcall(function() return job_desc[field] end)
        if ok and type(value) == "string" then
            total = total + ailab_gpus_in(value)
        end
    end
    return total
end

function ailab_check(job_desc, uid)
    if EXEMPT[uid] then return slurm.SUCCESS end
    if GPU_REQUIRED and ailab_requested_gpus(job_desc) < 1 then
        slurm.log_user(MSG_NO_GPU)
        slurm.log_info("ailab: refused job %s of uid %d: no GPU requested",
                       tostring(job_desc.name), uid)
        return slurm.ESLURM_ACCESS_DENIED
    end
    local limit = job_desc.time_limit
    if limit ~= nil and limit ~= slurm.NO_VAL and (limit == slurm.INFINITE or limit > MAX_MINUTES) then
        slurm.log_user(MSG_TOO_LONG)
        slurm.log_info("ailab: refused job %s of uid %d: time limit %d min over %d",
                       tostring(job_desc.name), uid, limit, MAX_MINUTES)
        return slurm.ESLURM_INVALID_TIME_LIMIT
    end
    return slurm.SUCCESS
end

function slurm_job_submit(job_desc, part_list, submit_uid)
    return ailab_check(job_desc, submit_uid)
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    if EXEMPT[modify_uid] then return slurm.SUCCESS end
    -- Only what the update sets is in job_desc: check a new GPU request or time limit if there is one.
    for _, field in ipairs(GPU_FIELDS) do
        local value = job_desc[field]
        if GPU_REQUIRED and type(value) == "string" and value ~= "" and ailab_gpus_in(value) < 1 then
            slurm.log_user(MSG_NO_GPU)
            return slurm.ESLURM_ACCESS_DENIED
        end
    end
    local limit = job_desc.time_limit
    if limit ~= nil and limit ~= slurm.NO_VAL and (limit == slurm.INFINITE or limit > MAX_MINUTES) then
        slurm.log_user(MSG_TOO_LONG)
        return slurm.ESLURM_INVALID_TIME_LIMIT
    end
    return slurm.SUCCESS
end

return slurm.SUCCESS
"""


def reload_action(old: str | None, new: str) -> str:
    """How slurmctld takes a new slurm.conf: ``"none"`` (same file, or first install: starting the
    daemon reads it), ``"reconfigure"`` (``scontrol reconfigure``) or ``"restart"`` (nodes added or removed,
    or a key in :data:`RESTART_KEYS` changed: reconfigure would be fatal or ignored)."""
    if not old or not old.strip():
        return "none"
    if old == new:
        return "none"
    old_keys, new_keys = _settings(old), _settings(new)
    if _node_names(old) != _node_names(new):
        return "restart"
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


def _node_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"^\s*NodeName\s*=\s*(\S+)", line, re.IGNORECASE)
        if match and match.group(1).upper() != "DEFAULT":
            names.update(expand(match.group(1)))
    return names


def accounting_spec(cluster: Cluster) -> dict[str, object]:
    """The Slurm accounting the inventory asks for: cluster, QOS, one account per project, one association
    per user in its project's account.  Input of the slurm_accounting module (roles/slurm_controller)."""
    return {
        "cluster": cluster.slurm.cluster_name,
        "qos": [
            {
                "name": DEFAULT_QOS,
                "description": "AI-LAB default: GPUs per user capped (ailab_policy.max_gpus_per_user)",
                "max_tres_per_user": f"gres/gpu={cluster.policy.max_gpus_per_user}",
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
