"""Turn plain inventory data (Ansible's groups and host variables) into the typed model.

Pure functions: no Ansible, no files.  Type and shape problems are collected as :class:`Problem`s (the
caller decides whether to stop); a field with a problem falls back to a safe value so that one run reports
as many problems as possible.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ailab.gpus import GPU_MODELS, known_models
from ailab.model import (
    GROUP_COMPUTE,
    GROUP_FRONTEND,
    AccountSettings,
    BackupSettings,
    CephSettings,
    Cluster,
    ContainerImage,
    ContainerSettings,
    DeletionPolicy,
    DirectorySettings,
    Gpu,
    Hardware,
    Host,
    LoginLimits,
    MonitoringSettings,
    NodeClass,
    NoticeOffset,
    Partition,
    Policy,
    Project,
    SimSettings,
    SlurmSettings,
    StatusPageSettings,
    User,
    domain_dn,
)
from ailab.problems import Problem

# Variables that describe the whole cluster: they belong in group_vars/all and must not differ per host.
CLUSTER_VARS = (
    "ailab_cluster",
    "ailab_policy",
    "ailab_slurm",
    "ailab_ceph",
    "ailab_partitions",
    "ailab_projects",
    "ailab_users",
    "ailab_sim",
    "ailab_secrets_dir",
    "ailab_backup",
    "ailab_monitoring",
    "ailab_containers",
    "ailab_directory",
    "ailab_cephfs_home_dir",
    "ailab_cephfs_datasets_dir",
)
# Role variables the checks must see as the roles will (their defaults are the model's): the admin group
# of role accounts (cluster-wide, like CLUSTER_VARS) and the pool size of role ceph_cluster (ceph hosts).
ACCOUNT_VARS = ("accounts_admin_group", "accounts_admin_gid")
CEPH_POOL_SIZE_VAR = "ceph_cluster_pool_size"
ROLE_VARS = (*ACCOUNT_VARS, CEPH_POOL_SIZE_VAR)
NODE_CLASS_PREFIX = f"{GROUP_COMPUTE}_"
# The yearly deletion day must exist every year (a 29 February would skip three years in four).
DATE_IN_EVERY_YEAR_FIX = (
    "pick a day that exists in every year: 1-28 in February, 1-30 in April, June, September and November, "
    "1-31 otherwise (e.g. month: 8, day: 1)"
)
_OFFSET_RE = re.compile(r"^\s*(\d+)\s*(month|months|day|days)\s*$")


def _setting_text(value: Any) -> str | None:
    """One configuration value as its file text, or None when it has no plain form (a mapping, an empty
    value, a list holding one)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Sequence) and value:
        items = [_setting_text(item) for item in value]
        nested = any(isinstance(item, Sequence) and not isinstance(item, str) for item in value)
        if nested or None in items:
            return None
        return ",".join(item for item in items if item is not None)
    return None


class Reader:
    """Reads typed fields out of one mapping, recording a Problem for each bad one."""

    def __init__(self, data: Any, where: str, path: str, problems: list[Problem]):
        self.where = where
        self.path = path
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.problem("", f"must be a mapping, got {type(data).__name__}", "write it as key: value pairs")
            data = {}
        self.data: Mapping[str, Any] = data

    def field_name(self, key: str) -> str:
        if not self.path:
            return key
        return f"{self.path}.{key}" if key else self.path

    def problem(self, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.where, self.field_name(key), message, fix))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def child(self, key: str) -> Reader:
        return Reader(self.data.get(key), self.where, self.field_name(key), self.problems)

    def unknown_keys(self, allowed: Sequence[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.problem(str(key), "unknown field", f"remove it or use one of: {', '.join(allowed)}")

    def string(
        self, key: str, default: str | None = None, *, required: bool = False, example: str = ""
    ) -> str:
        value = self.data.get(key)
        example = example or default or ""
        like = f', e.g. {key}: "{example}"' if example else ""
        if value is None:
            if required:
                self.problem(key, "is missing", f"set {key}{like}")
            return default if default is not None else ""
        if not isinstance(value, str) or not value.strip():
            self.problem(
                key,
                f"must be a non-empty string, got {value!r}",
                f"write {key} as a non-empty string in quotes{like}",
            )
            return default if default is not None else ""
        return value.strip()

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        required: bool = False,
        example: int | None = None,
    ) -> int:
        value = self.data.get(key)
        if example is None:
            example = default if default is not None else minimum
        like = f", e.g. {key}: {example}" if example is not None else ""
        if value is None:
            if required or default is None:
                self.problem(key, "is missing", f"set {key} to a whole number{like}")
            return default if default is not None else 0
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                self.problem(
                    key,
                    f"must be a whole number, got {value!r}",
                    f"write {key} as a whole number without quotes or units{like}",
                )
                return default if default is not None else 0
        if minimum is not None and value < minimum:
            self.problem(key, f"is {value}, below the minimum {minimum}", f"set {key} to {minimum} or more")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {value!r}", f"set {key}: true or {key}: false")
            return default
        return value

    def duration(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        text = str(value)
        if isinstance(value, int):
            # YAML 1.1 reads an unquoted 12:00:00 as the sexagesimal number 43200.
            self.problem(
                key,
                f"{value!r} was read as a number",
                f'quote it as an HH:MM:SS string, e.g. {key}: "12:00:00"',
            )
            return default
        from ailab.model import parse_duration

        try:
            parse_duration(text)
        except ValueError as exc:
            self.problem(key, f"{exc}", f'write it as HH:MM:SS, e.g. {key}: "12:00:00"')
            return default
        return text

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            self.problem(key, f"must be a list, got {value!r}", f"write {key} as a YAML list")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(
                    f"{key}[{i}]",
                    f"must be a non-empty string, got {item!r}",
                    "write the entry as a non-empty string in quotes, or remove it",
                )
            else:
                out.append(item.strip())
        return tuple(out)

    def settings(self, key: str, *, example: str) -> tuple[tuple[str, str], ...]:
        """A table of configuration settings (``Key: value``) as (key, text) pairs in the inventory's order:
        a number as written, true/false as yes/no, a list of plain values joined with commas (Slurm's list
        syntax).  Which keys are allowed is a semantic check (ailab.validate)."""
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            self.problem(
                key,
                f"must be a mapping of setting names to values, got {value!r}",
                f"write {key} as Key: value pairs, e.g. {key}: {{{example}}}",
            )
            return ()
        out = []
        for name, item in value.items():
            if not isinstance(name, str) or not name.strip():
                self.problem(
                    f"{key}.{name}", "is not a setting name", f"write names as in the manual, e.g. {example}"
                )
                continue
            text = _setting_text(item)
            if text is None:
                self.problem(
                    f"{key}.{name}",
                    f"must be a string, a number, true/false or a list of them, got {item!r}",
                    f"write it as Slurm would read it, e.g. {example}",
                )
                continue
            out.append((name.strip(), text))
        return tuple(out)

    def int_list(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) or not isinstance(value, Sequence):
            self.problem(key, f"must be a list of whole numbers, got {value!r}", f"write {key} as a list")
            return default
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int):
                self.problem(
                    f"{key}[{i}]",
                    f"must be a whole number, got {item!r}",
                    "write the entry as a whole number without quotes, e.g. "
                    + (str(default[0]) if default else "1"),
                )
            else:
                out.append(item)
        return tuple(out)

    def date(self, key: str) -> dt.date | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.problem(key, f"{value!r} is not a date", f"write it as YYYY-MM-DD, e.g. {key}: 2027-08-01")
            return None


def parse_offset(text: Any) -> NoticeOffset | None:
    match = _OFFSET_RE.match(str(text))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return NoticeOffset(months=number) if unit.startswith("month") else NoticeOffset(days=number)


def parse_hardware(raw: Any, where: str, problems: list[Problem]) -> Hardware:
    r = Reader(raw, where, "ailab_hardware", problems)
    r.unknown_keys(
        (
            "sockets",
            "cores_per_socket",
            "threads_per_core",
            "cpus",
            "memory_mb",
            "memory_installed_gb",
            "cpu_model",
            "gpu",
        )
    )
    hardware = Hardware(
        sockets=r.integer("sockets", 1, minimum=1, required=True, example=2),
        cores_per_socket=r.integer("cores_per_socket", 1, minimum=1, required=True, example=16),
        threads_per_core=r.integer("threads_per_core", 1, minimum=1),
        memory_mb=r.integer("memory_mb", 1024, minimum=1, required=True, example=257000),
        cpu_model=r.string("cpu_model", "", example="2x AMD EPYC 7302 16-core"),
        gpu=None,
        memory_installed_gb=r.integer("memory_installed_gb", minimum=1, example=256)
        if r.has("memory_installed_gb")
        else None,
    )
    if r.has("cpus"):
        declared = r.integer("cpus", hardware.cpus)
        if declared != hardware.cpus:
            r.problem(
                "cpus",
                f"is {declared} but sockets x cores_per_socket x threads_per_core = "
                f"{hardware.sockets} x {hardware.cores_per_socket} x {hardware.threads_per_core} "
                f"= {hardware.cpus}",
                "correct the CPU topology or drop cpus (it is derived)",
            )
    if r.has("gpu"):
        g = r.child("gpu")
        g.unknown_keys(("model", "count", "memory_gb"))
        raw_model = g.string("model", required=True, example="t4")
        model = raw_model.lower()
        count = g.integer("count", 0, required=True, example=6)
        if count < 1:
            g.problem(
                "count",
                f"is {count}; every compute node class is a GPU class (seed 001 rule 5)",
                "set gpu.count to the number of GPUs per node (1 or more)",
            )
        spec = GPU_MODELS.get(model)
        memory = 0
        if model and spec is None:
            g.problem("model", f"unknown GPU model {raw_model!r}", f"use one of: {known_models()}")
        elif spec is not None:
            memory = g.integer("memory_gb", spec.default_memory_gb, minimum=1)
            if memory not in spec.memory_gb:
                sizes = ", ".join(str(m) for m in spec.memory_gb)
                g.problem(
                    "memory_gb",
                    f"{spec.product} has no {memory} GB variant",
                    f"use one of: {sizes} (or drop it for the default)",
                )
        hardware = Hardware(**{**hardware.__dict__, "gpu": Gpu(model=model, count=count, memory_gb=memory)})
    return hardware


def parse_policy(raw: Any, problems: list[Problem]) -> Policy:
    where = "group_vars/all"
    r = Reader(raw, where, "ailab_policy", problems)
    r.unknown_keys(
        (
            "max_job_time",
            "default_job_time",
            "gpu_required",
            "max_gpus_per_user",
            "max_cpus_per_gpu",
            "max_mem_per_gpu_mb",
            "max_nodes_per_job",
            "max_submit_jobs_per_user",
            "max_jobs_per_user",
            "idle_gpu_mail_minutes",
            "idle_gpu_cancel_minutes",
            "data_classification_levels",
            "deletion",
            "maintenance_notice_days",
            "login_limits",
            "default_quota_gb",
            "extension_url",
            "support_email",
        )
    )
    defaults = Policy()
    d = r.child("deletion")
    d.unknown_keys(("month", "day", "notices"))
    notices: list[NoticeOffset] = []
    raw_notices = d.data.get("notices")
    if raw_notices is None:
        notices = list(defaults.deletion.notices)
    elif isinstance(raw_notices, str) or not isinstance(raw_notices, Sequence):
        d.problem("notices", "must be a list", 'write e.g. notices: ["2 months", "1 month", "14 days"]')
    else:
        for i, item in enumerate(raw_notices):
            offset = parse_offset(item)
            if offset is None:
                d.problem(f"notices[{i}]", f"{item!r} is not 'N months' or 'N days'", 'write e.g. "14 days"')
            else:
                notices.append(offset)
    month = d.integer("month", 8, minimum=1)
    day = d.integer("day", 1, minimum=1)
    try:
        dt.date(2001, month, day)  # a non-leap year: 29 February would skip three years in four
    except ValueError:
        d.problem("day", f"month {month} day {day} is not a date in every year", DATE_IN_EVERY_YEAR_FIX)
        month, day = 8, 1
    deletion = DeletionPolicy(month=month, day=day, notices=tuple(notices))

    ll = r.child("login_limits")
    ll.unknown_keys(("cpu_quota_percent", "memory_max_mb", "tasks_max"))
    login = LoginLimits(
        cpu_quota_percent=ll.integer("cpu_quota_percent", defaults.login_limits.cpu_quota_percent, minimum=1),
        memory_max_mb=ll.integer("memory_max_mb", defaults.login_limits.memory_max_mb, minimum=64),
        tasks_max=ll.integer("tasks_max", defaults.login_limits.tasks_max, minimum=16),
    )
    return Policy(
        max_job_time=r.duration("max_job_time", defaults.max_job_time) or defaults.max_job_time,
        default_job_time=r.duration("default_job_time", defaults.default_job_time)
        or defaults.default_job_time,
        gpu_required=r.boolean("gpu_required", defaults.gpu_required),
        max_gpus_per_user=r.integer("max_gpus_per_user", defaults.max_gpus_per_user, minimum=1),
        max_cpus_per_gpu=r.integer("max_cpus_per_gpu", defaults.max_cpus_per_gpu, minimum=1),
        max_mem_per_gpu_mb=r.integer("max_mem_per_gpu_mb", defaults.max_mem_per_gpu_mb, minimum=1),
        max_nodes_per_job=r.integer("max_nodes_per_job", defaults.max_nodes_per_job, minimum=1),
        max_submit_jobs_per_user=r.integer(
            "max_submit_jobs_per_user", defaults.max_submit_jobs_per_user, minimum=1
        ),
        max_jobs_per_user=r.integer("max_jobs_per_user", defaults.max_jobs_per_user, minimum=1),
        idle_gpu_mail_minutes=r.integer("idle_gpu_mail_minutes", defaults.idle_gpu_mail_minutes, minimum=0),
        idle_gpu_cancel_minutes=r.integer(
            "idle_gpu_cancel_minutes", defaults.idle_gpu_cancel_minutes, minimum=0
        ),
        data_classification_levels=r.int_list(
            "data_classification_levels", defaults.data_classification_levels
        ),
        deletion=deletion,
        maintenance_notice_days=r.int_list("maintenance_notice_days", defaults.maintenance_notice_days),
        login_limits=login,
        default_quota_gb=r.integer("default_quota_gb", defaults.default_quota_gb, minimum=1),
        extension_url=r.string("extension_url", "", example="https://forms.example.org/extension"),
        support_email=r.string("support_email", "", example="support@example.org"),
    )


def parse_users(raw: Any, problems: list[Problem]) -> dict[str, User]:
    users: dict[str, User] = {}
    if raw is None:
        return users
    if not isinstance(raw, list):
        problems.append(
            Problem(
                "group_vars/all",
                "ailab_users",
                "must be a list",
                "write it as a YAML list, one entry per user (- name: ab12cd ...)",
            )
        )
        return users
    fields = (
        "name",
        "uid",
        "gid",
        "full_name",
        "email",
        "project",
        "quota_gb",
        "ssh_keys",
        "extension_until",
        "admin",
    )
    for i, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"user {name}" if isinstance(name, str) else f"ailab_users[{i}]"
        r = Reader(entry, where, f"ailab_users[{i}]", problems)
        r.unknown_keys(fields)
        user = User(
            name=r.string("name", required=True, example="ab12cd"),
            uid=r.integer("uid", 0, required=True, example=200101),
            gid=r.integer("gid", 0, required=True, example=200101),
            full_name=r.string("full_name", "", example="Anna Bech"),
            email=r.string("email", "", example="ab12cd@student.example.org"),
            project=r.string("project", "", example="cs-ml-2026"),
            quota_gb=r.integer("quota_gb", minimum=1, example=200) if r.has("quota_gb") else None,
            ssh_keys=r.string_list("ssh_keys"),
            extension_until=r.date("extension_until"),
            admin=r.boolean("admin", False),
        )
        if user.name in users:
            r.problem("name", f"user {user.name!r} is listed twice", "keep one entry per user")
        elif user.name:
            users[user.name] = user
    return users


def parse_projects(raw: Any, problems: list[Problem]) -> dict[str, Project]:
    projects: dict[str, Project] = {}
    if raw is None:
        return projects
    if not isinstance(raw, list):
        problems.append(
            Problem(
                "group_vars/all",
                "ailab_projects",
                "must be a list",
                "write it as a YAML list, one entry per project (- name: cs-ml-2026 ...)",
            )
        )
        return projects
    for i, entry in enumerate(raw):
        r = Reader(entry, "group_vars/all", f"ailab_projects[{i}]", problems)
        r.unknown_keys(("name", "description"))
        project = Project(
            name=r.string("name", required=True, example="cs-ml-2026"),
            description=r.string("description", "", example="Machine Learning (CS, 7th semester)"),
        )
        if project.name in projects:
            r.problem("name", f"project {project.name!r} is listed twice", "keep one entry per project")
        elif project.name:
            projects[project.name] = project
    return projects


def parse_partitions(
    raw: Any, groups: Mapping[str, Sequence[str]], problems: list[Problem]
) -> tuple[Partition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(
            Problem(
                "group_vars/all",
                "ailab_partitions",
                "must be a list",
                "write it as a YAML list, one entry per partition (- name: gpu ...)",
            )
        )
        return ()
    partitions = []
    for i, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"partition {name}" if isinstance(name, str) else "group_vars/all"
        r = Reader(entry, where, f"ailab_partitions[{i}]", problems)
        r.unknown_keys(("name", "node_groups", "default", "max_time"))
        node_groups = r.string_list("node_groups")
        nodes: set[str] = set()
        for group in node_groups:
            if group not in groups:
                r.problem("node_groups", f"group {group!r} is not in the inventory", "name an existing group")
            nodes.update(groups.get(group, ()))
        partitions.append(
            Partition(
                name=r.string("name", required=True, example="gpu"),
                node_groups=node_groups,
                nodes=tuple(sorted(nodes)),
                default=r.boolean("default", False),
                max_time=r.duration("max_time", None),
            )
        )
    return tuple(partitions)


def parse_pool_size(
    cr: Reader, groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]
) -> int:
    """``ailab_ceph.pool_size``, or the value role ceph_cluster reads today (``ceph_cluster_pool_size`` of
    the ceph hosts, default 0) when the model does not say; both set and different is a problem."""
    role_values = {hostvars[h].get(CEPH_POOL_SIZE_VAR) for h in groups.get("ceph", ()) if h in hostvars}
    role_values.discard(None)
    role = Reader({CEPH_POOL_SIZE_VAR: next(iter(role_values), None)}, "group ceph", "", cr.problems)
    if len(role_values) > 1:
        role.problem(
            CEPH_POOL_SIZE_VAR,
            f"differs between the ceph hosts ({', '.join(sorted(map(str, role_values)))})",
            "set ailab_ceph.pool_size once in group_vars/all instead",
        )
        return 0
    role_size = role.integer(CEPH_POOL_SIZE_VAR, 0, minimum=0)
    if not cr.has("pool_size"):
        return role_size
    size = cr.integer("pool_size", 0, minimum=0, example=3)
    if size != role_size:
        # Until roles/ceph_cluster reads ailab_ceph.pool_size, the two must agree or the model would lie.
        cr.problem(
            "pool_size",
            f"is {size} but role ceph_cluster reads {CEPH_POOL_SIZE_VAR}, which is {role_size}"
            + ("" if role_values else " (its default)"),
            f"set {CEPH_POOL_SIZE_VAR}: {size} in group_vars/ceph.yml as well (the role does not read "
            "ailab_ceph.pool_size yet), or drop ailab_ceph.pool_size",
        )
    return size


def cluster_vars(
    hostvars: Mapping[str, Mapping[str, Any]], problems: list[Problem], keys: Sequence[str] = CLUSTER_VARS
) -> dict[str, Any]:
    """The cluster-wide variables, which every host must see with the same value."""
    values: dict[str, Any] = {}
    for key in keys:
        seen: dict[str, Any] = {}
        for host, hv in sorted(hostvars.items()):
            seen[host] = hv.get(key)
        distinct = {repr(v) for v in seen.values()}
        if len(distinct) > 1:
            first = next(iter(seen.values()))
            odd = sorted(h for h, v in seen.items() if repr(v) != repr(first))
            problems.append(
                Problem(
                    f"host {odd[0]}",
                    key,
                    f"differs between hosts ({', '.join(odd[:5])} disagree with the rest)",
                    f"{key} describes the whole cluster: set it once in group_vars/all, not per host/group",
                )
            )
        values[key] = next(iter(seen.values()), None)
    return values


def parse_cephfs_dirs(cvars: Mapping[str, Any], problems: list[Problem]) -> dict[str, str]:
    """``ailab_cephfs_home_dir`` and ``ailab_cephfs_datasets_dir``: the directories inside the CephFS that
    are mounted at ``ailab_ceph.home_root`` and ``datasets_path`` (default /home and /datasets)."""
    keys = {"fs_home_dir": "ailab_cephfs_home_dir", "fs_datasets_dir": "ailab_cephfs_datasets_dir"}
    r = Reader({key: cvars.get(key) for key in keys.values()}, "group_vars/all", "", problems)
    d = CephSettings()
    return {field: r.string(key, getattr(d, field)) for field, key in keys.items()}


def build_cluster(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]
) -> tuple[Cluster, list[Problem]]:
    """Build the typed model from Ansible's ``groups`` and ``hostvars``.

    Returns the model and the shape/type problems found on the way; semantic checks are in
    :func:`ailab.validate.validate`.
    """
    problems: list[Problem] = []
    cvars = cluster_vars(hostvars, problems)

    c = Reader(cvars["ailab_cluster"], "group_vars/all", "ailab_cluster", problems)
    c.unknown_keys(("name", "domain", "timezone", "admin_networks", "operations_host"))
    s = Reader(cvars["ailab_slurm"], "group_vars/all", "ailab_slurm", problems)
    s.unknown_keys(
        (
            "cluster_name",
            "def_mem_per_gpu_mb",
            "def_cpu_per_gpu",
            "def_mem_per_cpu_mb",
            "config_overrides",
            "extra_config",
            "extra_cgroup_config",
        )
    )
    sd = SlurmSettings()
    slurm = SlurmSettings(
        cluster_name=s.string("cluster_name", sd.cluster_name),
        def_mem_per_gpu_mb=s.integer("def_mem_per_gpu_mb", sd.def_mem_per_gpu_mb, minimum=1),
        def_cpu_per_gpu=s.integer("def_cpu_per_gpu", sd.def_cpu_per_gpu, minimum=1),
        def_mem_per_cpu_mb=s.integer("def_mem_per_cpu_mb", sd.def_mem_per_cpu_mb, minimum=1),
        config_overrides=s.boolean("config_overrides", sd.config_overrides),
        extra_config=s.settings("extra_config", example="SlurmdTimeout: 300"),
        extra_cgroup_config=s.settings("extra_cgroup_config", example="AllowedSwapSpace: 0"),
    )
    cr = Reader(cvars["ailab_ceph"], "group_vars/all", "ailab_ceph", problems)
    cr.unknown_keys(("fs_name", "home_root", "datasets_path", "monitors", "managed", "client", "pool_size"))
    cd = CephSettings()
    ceph = CephSettings(
        fs_name=cr.string("fs_name", cd.fs_name),
        home_root=cr.string("home_root", cd.home_root),
        datasets_path=cr.string("datasets_path", example="/ceph/datasets") or None,
        monitors=cr.string_list("monitors"),
        managed=cr.boolean("managed", cd.managed),
        client=cr.string("client", cd.client),
        pool_size=parse_pool_size(cr, groups, hostvars),
        **parse_cephfs_dirs(cvars, problems),
    )
    avars = cluster_vars(hostvars, problems, ACCOUNT_VARS)
    a = Reader(avars, "group_vars/all", "", problems)
    ad = AccountSettings()
    accounts = AccountSettings(
        admin_group=a.string("accounts_admin_group", ad.admin_group),
        admin_gid=a.integer("accounts_admin_gid", ad.admin_gid),
    )
    b = Reader(cvars["ailab_backup"], "group_vars/all", "ailab_backup", problems)
    b.unknown_keys(("destination", "keep", "on_calendar"))
    bd = BackupSettings()
    backup = BackupSettings(
        destination=b.string("destination", "", example="/srv/backup/ailab"),
        keep=b.integer("keep", bd.keep, minimum=1),
        on_calendar=b.string("on_calendar", bd.on_calendar),
    )
    monitoring = parse_monitoring(cvars["ailab_monitoring"], problems)
    containers = parse_containers(cvars["ailab_containers"], ceph, problems)
    domain = c.string("domain", "", example="srv.example.org")
    directory = parse_directory(cvars["ailab_directory"], domain, problems)
    sim = None
    if cvars["ailab_sim"] is not None:
        sr = Reader(cvars["ailab_sim"], "group_vars/all", "ailab_sim", problems)
        sr.unknown_keys(("prefix", "network", "subnet"))
        sim = SimSettings(
            prefix=sr.string("prefix", SimSettings.prefix),
            network=sr.string("network", SimSettings.network),
            subnet=sr.string("subnet", SimSettings.subnet),
        )

    node_classes = {
        g: NodeClass(name=g, hosts=tuple(sorted(members)))
        for g, members in groups.items()
        if g.startswith(NODE_CLASS_PREFIX)
    }
    hosts: dict[str, Host] = {}
    for name, hv in sorted(hostvars.items()):
        where = f"host {name}"
        member_of = tuple(sorted(g for g, members in groups.items() if name in members and g != "all"))
        classes = [g for g in member_of if g in node_classes]
        address = hv.get("ailab_address")
        if not isinstance(address, str) or not address.strip():
            problems.append(
                Problem(
                    where,
                    "ailab_address",
                    "is missing",
                    "set ailab_address to the host's address on the cluster network (host_vars or inventory)",
                )
            )
            address = ""
        hardware = None
        if hv.get("ailab_hardware") is not None:
            hardware = parse_hardware(hv["ailab_hardware"], where, problems)
        hosts[name] = Host(
            name=name,
            address=address.strip(),
            groups=member_of,
            node_class=classes[0] if len(classes) == 1 else None,
            hardware=hardware,
        )

    cluster = Cluster(
        name=c.string("name", "ailab"),
        domain=domain,
        timezone=c.string("timezone", "UTC"),
        hosts=hosts,
        node_classes=node_classes,
        partitions=parse_partitions(cvars["ailab_partitions"], groups, problems),
        policy=parse_policy(cvars["ailab_policy"], problems),
        slurm=slurm,
        ceph=ceph,
        projects=parse_projects(cvars["ailab_projects"], problems),
        users=parse_users(cvars["ailab_users"], problems),
        sim=sim,
        admin_networks=c.string_list("admin_networks"),
        secrets_dir=_secrets_dir(cvars["ailab_secrets_dir"], problems),
        accounts=accounts,
        operations_host=c.string("operations_host", "", example="fe01")
        or next((h.name for h in hosts.values() if h.in_group(GROUP_FRONTEND)), ""),
        backup=backup,
        monitoring=monitoring,
        containers=containers,
        directory=directory,
    )
    return cluster, problems


def parse_monitoring(raw: Any, problems: list[Problem]) -> MonitoringSettings:
    r = Reader(raw, "group_vars/all", "ailab_monitoring", problems)
    r.unknown_keys(
        (
            "scrape_interval_s",
            "retention_days",
            "alerts_to",
            "alerts_from",
            "node_down_minutes",
            "idle_gpu_minutes",
            "alert_group_wait_s",
            "cephfs_full_percent",
            "ceph_exporters",
            "status_page",
            "job_gpu_stats",
        )
    )
    d = MonitoringSettings()
    sp = r.child("status_page")
    sp.unknown_keys(("enabled", "port", "allow"))
    spd = StatusPageSettings()
    status_page = StatusPageSettings(
        enabled=sp.boolean("enabled", spd.enabled),
        port=sp.integer("port", spd.port, minimum=1),
        allow=sp.string_list("allow"),
    )
    return MonitoringSettings(
        scrape_interval_s=r.integer("scrape_interval_s", d.scrape_interval_s, minimum=5),
        retention_days=r.integer("retention_days", d.retention_days, minimum=1),
        alerts_to=r.string_list("alerts_to"),
        alerts_from=r.string("alerts_from", "", example="alertmanager@ailab.example.org"),
        node_down_minutes=r.integer("node_down_minutes", d.node_down_minutes, minimum=1),
        idle_gpu_minutes=r.integer("idle_gpu_minutes", d.idle_gpu_minutes, minimum=1),
        alert_group_wait_s=r.integer("alert_group_wait_s", d.alert_group_wait_s, minimum=0),
        cephfs_full_percent=r.integer("cephfs_full_percent", d.cephfs_full_percent, minimum=1),
        ceph_exporters=r.string_list("ceph_exporters"),
        status_page=status_page,
        job_gpu_stats=r.boolean("job_gpu_stats", d.job_gpu_stats),
    )


def parse_containers(raw: Any, ceph: CephSettings, problems: list[Problem]) -> ContainerSettings:
    """``ailab_containers``; the catalogue defaults to ``<ailab_ceph.datasets_path>/containers``."""
    r = Reader(raw, "group_vars/all", "ailab_containers", problems)
    r.unknown_keys(("enabled", "catalogue", "images", "registry", "gpu_dir"))
    d = ContainerSettings()
    images = d.images
    if r.has("images"):
        value = r.data["images"]
        if isinstance(value, str) or not isinstance(value, Sequence):
            r.problem("images", f"must be a list, got {value!r}", "write images as a YAML list of mappings")
        else:
            parsed = []
            for i, item in enumerate(value):
                ir = Reader(item, r.where, r.field_name(f"images[{i}]"), problems)
                ir.unknown_keys(("name", "packages", "suite", "description"))
                parsed.append(
                    ContainerImage(
                        name=ir.string("name", required=True, example="debian-bookworm-python"),
                        packages=ir.string_list("packages"),
                        suite=ir.string("suite", ContainerImage.suite),
                        description=ir.string("description", ""),
                    )
                )
            images = tuple(parsed)
    default_catalogue = f"{ceph.datasets_path.rstrip('/')}/containers" if ceph.datasets_path else ""
    return ContainerSettings(
        enabled=r.boolean("enabled", d.enabled),
        catalogue=r.string("catalogue", default_catalogue, example="/ceph/datasets/containers"),
        images=images,
        registry=r.string("registry", "", example="registry.example.org/ailab"),
        gpu_dir=r.string("gpu_dir", d.gpu_dir),
    )


DIRECTORY_KEYS = (
    "managed",
    "base_dn",
    "uris",
    "bind_dn",
    "bind_password",
    "start_tls",
    "ca_cert",
    "users_ou",
    "groups_ou",
    "service_account",
)


def parse_directory(raw: Any, domain: str, problems: list[Problem]) -> DirectorySettings:
    """``ailab_directory``: absent or null means local accounts (role accounts), as before."""
    if raw is None:
        return DirectorySettings()
    r = Reader(raw, "group_vars/all", "ailab_directory", problems)
    r.unknown_keys(DIRECTORY_KEYS)
    d = DirectorySettings()
    if not r.has("managed"):
        r.problem(
            "managed",
            "is missing",
            "set managed: true (slapd on the host of group directory) or managed: false (the university's "
            "LDAP: also uris, base_dn, bind_dn and a vaulted bind_password)",
        )
    managed = r.boolean("managed", False)
    default_base = domain_dn(domain) if managed and domain else ""
    return DirectorySettings(
        enabled=True,
        managed=managed,
        base_dn=r.string("base_dn", default_base or None, example="dc=ailab,dc=example,dc=org"),
        uris=r.string_list("uris"),
        bind_dn=r.string("bind_dn", "", example="cn=ailab-sssd,ou=services,dc=example,dc=org"),
        bind_password_set=r.has("bind_password"),
        start_tls=r.boolean("start_tls", d.start_tls),
        ca_cert=r.string("ca_cert", "", example="/etc/ssl/certs/university-ca.pem"),
        users_ou=r.string("users_ou", d.users_ou),
        groups_ou=r.string("groups_ou", d.groups_ou),
        service_account=r.string("service_account", d.service_account),
    )


def _secrets_dir(value: Any, problems: list[Problem]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value.startswith("/"):
        problems.append(
            Problem(
                "group_vars/all",
                "ailab_secrets_dir",
                f"{value!r} is not an absolute path",
                "set ailab_secrets_dir in group_vars/all/cluster.yml to an absolute directory on the Ansible "
                "controller, e.g. /root/.local/share/ailab/<cluster>",
            )
        )
        return ""
    return value
