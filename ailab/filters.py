"""Every Jinja filter of the project, in one place; plugins/filter/ailab.py hands them to Ansible.

The filters that read the model take ``hostvars`` and ``groups`` (a play's magic variables) and get the
model from :func:`ailab.ansible_bridge.cluster_from_play`; the others are thin wrappers around pure
functions (ailab/ceph.py, ailab/slurm.py, ailab/notices.py).

{{ hostvars | ailab_model(groups) }}                        the whole model as plain data
{{ hostvars | ailab_model(groups, 'ceph') }}                one field of Cluster: what a role reads
{{ hostvars | ailab_problems(groups) }}                     problem lines (empty when the inventory is good)
{{ hostvars | ailab_render(groups, 'slurm.conf') }}         a file rendered by ailab/render.py
{{ hostvars | ailab_home_dirs(groups, '/home', '0700') }}   one entry per inventory user
{{ hostvars | ailab_ops_config(groups, mail_from=...) }}    /etc/ailab/ops.json of role operations
{{ hostvars | ailab_operations_host(groups) }}              the front-end that runs the operations timers
{{ hostvars | ailab_backup_config(groups, host, state_dir) }}  /etc/ailab/backup.json of role backup
{{ hostvars | ailab_monitoring(groups, host) }}             ports, collectors, retention for the metrics roles
{{ hostvars | ailab_status_page(groups, host, conf) }}      the front-end's status page: nginx site, units
{{ hostvars | ailab_containers(groups) }}                  role containers: enabled, catalogue, GPU directory
{{ hostvars | ailab_directory_settings(groups) }}          role directory: LDAP on or off, URIs, base DN
{{ 'slurm' | ailab_layout }}                               Slurm's paths, ports, user, database
{{ 'node' | ailab_layout }}                                the node package: root, archive, bin, commands
{{ ailab_users | ailab_live_users(record) }}                ailab_users without those the deletion deleted
{{ ailab_users | ailab_deleted_listed(record) }}            those users (name, cycle, on)
{{ record | ailab_deleted_names }}                         everyone the deletion deleted (role directory)
{{ ailab_users | ailab_deleted_warning(record, file, host) }}  the warning naming them and the fix
{{ new_conf | slurm_reload_action(old_conf) }}              none, reconfigure or restart (slurmctld)
{{ '/ceph/home' | ailab_mount_unit }}                       ceph-home.mount
{{ 'cephfs' | ailab_ceph_caps(['/home'], ['/datasets']) }}  caps like `ceph fs authorize`
{{ caps | ailab_ceph_caps_args }}                           [mds, '...', mon, '...', osd, '...']
{{ n_osd_hosts | ailab_ceph_pool_size(0) }}                 {size: 1, min_size: 1}
{{ groups['ceph'] | ailab_ceph_mon_hosts(3) }}              the monitor hosts
{{ mon_dump_json | ailab_ceph_mon_addresses }}              mon_host entries
{{ mounts | ailab_cephfs_check_config(...) }}               settings of the mount watchdog
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ailab import ansible_bridge, backup, ceph, containers, directory, frontend, monitoring
from ailab.model import Cluster
from ailab.opsconfig import ops_config_data
from ailab.retention import deleted_listed_warning, deleted_users, parse_state_text, split_deleted
from ailab.runtime import ToolError
from ailab.slurm import reload_action


def _cluster(hostvars, groups) -> Cluster:
    try:
        return ansible_bridge.cluster_from_play(hostvars, groups)
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc


def warm(hostvars, groups) -> None:
    """Build (or find) the model in the controller, before Ansible forks the workers of a task: they inherit
    it and find it unchanged (plugins/callback/ailab_model.py calls this at the start of each task that
    uses a model filter).  A bad inventory is remembered too; the worker's filter call reports it."""
    ansible_bridge.built_from_play(hostvars, groups)


# The filters that build the model from hostvars (what the callback looks for in a task).
MODEL_FILTERS = (
    "ailab_model",
    "ailab_render",
    "ailab_home_dirs",
    "ailab_ops_config",
    "ailab_operations_host",
    "ailab_backup_config",
    "ailab_monitoring",
    "ailab_status_page",
    "ailab_containers",
    "ailab_directory_settings",
)


def uses_model(*values: Any) -> bool:
    """Whether any string in ``values`` (a task's args, vars, loop, conditions; nested) calls a model
    filter."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "ailab_" in value and any(name in value for name in MODEL_FILTERS):
                return True
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


# --- the model ---------------------------------------------------------------------------------------


def ailab_model(hostvars, groups, part=None):
    """The model as plain data, or only its field ``part`` (``ceph``, ``directory``, ``timezone``, ...): the
    settings a role reads, with the model's defaults applied (ailab/model.py, ailab/parse.py), so no role
    repeats them.  Roles bind a part once, in their vars/main.yml (e.g. ``cephfs_client_ceph``)."""
    cluster = _cluster(hostvars, groups)
    if part is None:
        return ansible_bridge.to_data(cluster)
    if str(part) not in MODEL_PARTS:
        raise AnsibleFilterError(
            f"ailab_model: the model has no part {part!r} -- fix: use one of {', '.join(MODEL_PARTS)}"
        )
    return ansible_bridge.to_data(getattr(cluster, str(part)))


# The fields of the model ailab_model hands out one by one (ailab.model.Cluster).
MODEL_PARTS = tuple(f.name for f in dataclasses.fields(Cluster))


def ailab_problems(hostvars, groups):
    _, problems = ansible_bridge.check_play(hostvars, groups)
    return [str(p) for p in problems]


def ailab_render(hostvars, groups, name, host=None):
    try:
        return ansible_bridge.render_from_play(hostvars, groups, name, host)
    except ansible_bridge.ModelProblems as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc
    except KeyError as exc:
        raise AnsibleFilterError(f"ailab_render: {exc}") from exc


def ailab_home_dirs(hostvars, groups, fs_home_dir="/home", mode="0700"):
    return ceph.home_dirs(_cluster(hostvars, groups), str(fs_home_dir), str(mode))


def ailab_ops_config(hostvars, groups, **options):
    """/etc/ailab/ops.json: users, e-mails, extension dates, home root and the deletion/maintenance policy."""
    data = ops_config_data(_cluster(hostvars, groups), **options)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- Slurm -------------------------------------------------------------------------------------------


def slurm_reload_action(new: str, old: str | None) -> str:
    """How slurmctld must take a changed slurm.conf: none, reconfigure or restart (a node's definition or a
    key slurm.conf(5) says needs a restart changed)."""
    return reload_action(old, new)


# --- Ceph (the logic is in ailab/ceph.py) --------------------------------------------------------------


def ailab_mount_unit(path):
    return ceph.mount_unit_name(str(path))


def ailab_ceph_caps(fs_name, rw_paths=(), r_paths=(), p=False):
    return ceph.client_caps(str(fs_name), [str(x) for x in rw_paths], [str(x) for x in r_paths], p=bool(p))


def ailab_ceph_caps_args(caps):
    return ceph.caps_args({str(k): str(v) for k, v in caps.items()})


def ailab_ceph_caps_differ(current, wanted):
    return ceph.caps_differ(current or {}, {str(k): str(v) for k, v in wanted.items()})


def ailab_ceph_pool_size(osd_hosts, requested=0):
    return ceph.pool_size(int(osd_hosts), int(requested or 0))


def ailab_ceph_mon_hosts(ceph_hosts, count=3):
    return ceph.mon_hosts([str(h) for h in ceph_hosts], int(count))


def ailab_ceph_client_name(name):
    return ceph.check_client_name(str(name))


def ailab_ceph_mon_addresses(mon_dump):
    return ceph.mon_addresses(mon_dump)


def _seconds(value):
    """A whole number of seconds as the inventory gave it; digit strings (from -e key=value) count too."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def ailab_cephfs_check_config(
    mounts, client_name, fs_name, client, interval, probe_timeout, hung_grace, slurmd
):
    return ceph.mount_check_config(
        list(mounts),
        client_name=str(client_name),
        fs_name=str(fs_name),
        client=str(client),
        interval=_seconds(interval),
        probe_timeout=_seconds(probe_timeout),
        hung_grace=_seconds(hung_grace),
        slurmd=bool(slurmd),
    )


def ailab_operations_host(hostvars, groups):
    """``ailab_cluster.operations_host`` or the first front-end: the one host that runs the timers of the
    yearly deletion and the maintenance notices and keeps their state (the deletion record)."""
    return _cluster(hostvars, groups).operations_host


def ailab_backup_config(hostvars, groups, host, operations_state_dir="/var/lib/ailab"):
    """/etc/ailab/backup.json of ``host``: the destination, how many to keep and what ``host`` keeps that
    only a backup gives back (controllers: slurmctld state and accounting; operations host: its state)."""
    data = backup.config_data(_cluster(hostvars, groups), str(host), str(operations_state_dir))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def ailab_monitoring(hostvars, groups, host):
    """Ports, exporter collectors, retention and the mail path of ``host`` (ailab/monitoring.py)."""
    return monitoring.host_settings(_cluster(hostvars, groups), str(host))


def ailab_status_page(hostvars, groups, host, config_dir):
    """The status page of front-end ``host`` (ailab/frontend.py): enabled, url, the nginx site and units."""
    cluster = _cluster(hostvars, groups)
    return frontend.status_page_settings(cluster, str(host), str(config_dir))


def ailab_containers(hostvars, groups):
    """``ailab_containers`` as role containers reads it (ailab/containers.py)."""
    return containers.settings(_cluster(hostvars, groups))


def ailab_directory_settings(hostvars, groups):
    """``ailab_directory`` as role directory reads it (ailab/directory.py): where SSSD connects."""
    return directory.settings(_cluster(hostvars, groups))


def _split(users, record, source):
    try:
        return split_deleted(list(users or []), parse_state_text(str(record or ""), source))
    except ToolError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def ailab_layout(component):
    """Where a component's files live and which ports it uses, so the roles and the renderers share one
    source: ``'slurm'`` the constants of ailab/slurm.py; ``'node'`` the node package's paths
    (ailab/nodepkg.py) with ``commands``, each node command's launcher by name."""
    from ailab import nodepkg, slurm

    if component == "slurm":
        return slurm.layout()
    if component == "node":
        return {
            **nodepkg.layout(),
            "commands": {c.name: c.path for c in nodepkg.COMMANDS},
            "services": list(nodepkg.SERVICES),
        }
    raise ValueError(f"ailab_layout: unknown component {component!r} -- fix: use 'slurm' or 'node'")


def ailab_live_users(users, record, source="the deletion record"):
    """``users`` without those the deletion record (retention.json's text, '' if absent) says are deleted
    (and not readmitted): what every role sees for the rest of the run (playbooks/preflight.yml)."""
    return _split(users, record, source)[0]


def ailab_deleted_listed(users, record, source="the deletion record"):
    """The users in ``users`` that the deletion record says are deleted: name, cycle, on."""
    return [{"name": d.name, "cycle": d.cycle, "on": d.on} for d in _split(users, record, source)[1]]


def ailab_deleted_names(record, source="the deletion record"):
    """Everyone the deletion record says is deleted (and not readmitted), listed or not: role directory
    deletes their entries."""
    try:
        return sorted(deleted_users(parse_state_text(str(record or ""), source)))
    except ToolError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def ailab_deleted_warning(users, record, users_file, operations_host, source="the deletion record"):
    return deleted_listed_warning(_split(users, record, source)[1], users_file, operations_host)


def _wrap(func):
    """A ValueError of the pure function becomes an Ansible filter error naming the filter."""

    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(f"{func.__name__}: {exc}") from exc

    run.__name__ = func.__name__
    return run


FILTERS: dict[str, Callable[..., Any]] = {
    "ailab_model": ailab_model,
    "ailab_problems": ailab_problems,
    "ailab_render": ailab_render,
    "ailab_ops_config": ailab_ops_config,
    "ailab_operations_host": ailab_operations_host,
    "ailab_backup_config": ailab_backup_config,
    "ailab_monitoring": ailab_monitoring,
    "ailab_status_page": ailab_status_page,
    "ailab_containers": ailab_containers,
    "ailab_directory_settings": ailab_directory_settings,
    "ailab_layout": ailab_layout,
    "ailab_live_users": ailab_live_users,
    "ailab_deleted_listed": ailab_deleted_listed,
    "ailab_deleted_warning": ailab_deleted_warning,
    "ailab_deleted_names": ailab_deleted_names,
    "slurm_reload_action": slurm_reload_action,
    **{
        f.__name__: _wrap(f)
        for f in (
            ailab_mount_unit,
            ailab_ceph_caps,
            ailab_ceph_caps_args,
            ailab_ceph_caps_differ,
            ailab_ceph_pool_size,
            ailab_ceph_mon_hosts,
            ailab_ceph_client_name,
            ailab_home_dirs,
            ailab_ceph_mon_addresses,
            ailab_cephfs_check_config,
        )
    },
}
