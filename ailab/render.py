"""Files rendered from the model by pure functions, by name, for the `ailab_render` Ansible filter.

Each entry maps a file name to ``module:function``; the function takes ``(cluster, host)`` (host is the
inventory hostname the file is for, or None for cluster-wide files) and returns the file's text.
"""

from __future__ import annotations

import importlib
import ipaddress

from ailab.model import Cluster

RENDERERS: dict[str, str] = {
    "hosts": "ailab.render:render_hosts",
    "motd": "ailab.render:render_motd",
    "shosts.equiv": "ailab.render:render_shosts_equiv",
    "policy.json": "ailab.frontend:render_policy_json",
    "user-slice.conf": "ailab.frontend:render_user_slice",
    "banner": "ailab.frontend:render_banner",
    "slurm.conf": "ailab.slurm:render_slurm_conf",
    "gres.conf": "ailab.slurm:render_gres_conf",
    "cgroup.conf": "ailab.slurm:render_cgroup_conf",
    "slurmdbd.conf": "ailab.slurm:render_slurmdbd_conf",
    "job_submit.lua": "ailab.slurm:render_job_submit_lua",
    "gpu-health.json": "ailab.slurm:render_gpu_health_json",
    "slurm-accounting.json": "ailab.slurm:render_accounting_json",
    "prometheus.yml": "ailab.monitoring:render_prometheus_yml",
    "ailab-rules.yml": "ailab.monitoring:render_alert_rules",
    "alertmanager.yml": "ailab.monitoring:render_alertmanager_yml",
    "idle-gpus.json": "ailab.monitoring:render_idle_gpus_json",
    "jobstats-epilog": "ailab.monitoring:render_jobstats_epilog",
    "containers.json": "ailab.containers:render_containers_json",
    "catalogue.json": "ailab.containers:render_catalogue_json",
    "directory.json": "ailab.directory:render_directory_json",
}

# The files whose text depends on the host they are for; every other renderer ignores ``host``, so the
# filters render it once for all hosts (tests/unit/test_model_memo.py checks both claims).
PER_HOST = frozenset({"motd", "gres.conf", "gpu-health.json"})


def render(name: str, cluster: Cluster, host: str | None = None) -> str:
    if name not in RENDERERS:
        raise KeyError(f"no renderer for {name!r}; known: {', '.join(sorted(RENDERERS))}")
    module_name, func = RENDERERS[name].split(":")
    return getattr(importlib.import_module(module_name), func)(cluster, host)


def render_hosts(cluster: Cluster, host: str | None = None) -> str:
    """The cluster's entries for /etc/hosts: address, FQDN (when a domain is set), short name."""
    lines = []
    for h in sorted(cluster.hosts.values(), key=lambda h: (ipaddress.ip_address(h.address), h.name)):
        names = [f"{h.name}.{cluster.domain}", h.name] if cluster.domain else [h.name]
        lines.append(f"{h.address:<15} {' '.join(names)}")
    return "\n".join(lines)


def render_shosts_equiv(cluster: Cluster, host: str | None = None) -> str:
    """The hosts whose users a compute node trusts by host-based SSH authentication: the front-ends, by
    address (sshd does not resolve the client's address, UseDNS no) and by name."""
    names = []
    for h in sorted(cluster.frontends, key=lambda h: h.name):
        names += [h.address, f"{h.name}.{cluster.domain}", h.name] if cluster.domain else [h.address, h.name]
    return "\n".join(names)


def node_role(cluster: Cluster, host: str) -> str:
    h = cluster.hosts[host]
    roles = []
    if h.in_group("frontend"):
        roles.append("front-end (login) node")
    if h.in_group("slurm_controller"):
        roles.append("Slurm controller")
    if h.in_group("ceph"):
        roles.append("storage node")
    if h.hardware and h.hardware.gpu:
        g = h.hardware.gpu
        roles.append(f"GPU compute node ({g.count}x {g.model.upper()} {g.memory_gb} GB)")
    return ", ".join(roles) or "node"


def render_motd(cluster: Cluster, host: str | None = None) -> str:
    """A short MOTD naming the cluster and what this node is; the front-end role replaces it with the
    policy banner."""
    what = node_role(cluster, host) if host else "node"
    return f"{cluster.name}: {host or ''} -- {what}\nManaged by ailab-iac; local changes are overwritten.\n"
