"""What the front-end's policy MOTD, login limits and status page are made of, derived from the model."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from ailab.model import Cluster, Partition
from ailab.monitoring import EXPORTER_PORT
from ailab.nodepkg import command_path

# The rules as one JSON document, read at login by ailab/nodetools/motd.py on the front-end.


def partition_gpu_types(cluster: Cluster, partition: Partition) -> list[str]:
    """The GPU models (Slurm GRES types) of a partition's nodes, sorted."""
    models = {
        h.hardware.gpu.model
        for name in partition.nodes
        if (h := cluster.hosts.get(name)) is not None and h.hardware is not None and h.hardware.gpu
    }
    return sorted(models)


def policy_config(cluster: Cluster) -> dict:
    p = cluster.policy
    return {
        "cluster": cluster.name,
        # The partitions students submit to, in the inventory's order (the status page lists them).
        "partitions": [
            {"name": part.name, "gpu_types": partition_gpu_types(cluster, part)}
            for part in cluster.partitions
        ],
        "policy": {
            "max_job_time": p.max_job_time,
            "default_job_time": p.default_job_time,
            "gpu_required": p.gpu_required,
            "max_gpus_per_user": p.max_gpus_per_user,
            "data_classification_levels": list(p.data_classification_levels),
            "deletion": {
                "month": p.deletion.month,
                "day": p.deletion.day,
                "notices": [o.label for o in p.deletion.notices],
            },
            "maintenance_notice_days": list(p.maintenance_notice_days),
            "login_limits": {
                "cpu_quota_percent": p.login_limits.cpu_quota_percent,
                "memory_max_mb": p.login_limits.memory_max_mb,
                "tasks_max": p.login_limits.tasks_max,
            },
            "extension_url": p.extension_url,
            "support_email": p.support_email,
        },
    }


def render_policy_json(cluster: Cluster, host: str | None = None) -> str:
    return json.dumps(policy_config(cluster), indent=2, sort_keys=True) + "\n"


def render_user_slice(cluster: Cluster, host: str | None = None) -> str:
    """systemd drop-in for every user-UID.slice: the per-user limits on the login node."""
    limits = cluster.policy.login_limits
    return (
        "# Generated from ailab_policy.login_limits: one student cannot starve the others.\n"
        "[Slice]\n"
        "CPUAccounting=yes\n"
        "MemoryAccounting=yes\n"
        "TasksAccounting=yes\n"
        f"CPUQuota={limits.cpu_quota_percent}%\n"
        f"MemoryMax={limits.memory_max_mb}M\n"
        f"TasksMax={limits.tasks_max}\n"
    )


def render_banner(cluster: Cluster, host: str | None = None) -> str:
    """The short pre-login banner (sshd Banner): the rules a user agrees to by logging in."""
    p = cluster.policy
    levels = " and ".join(str(level) for level in p.data_classification_levels)
    return (
        f"{cluster.name}: authorised users only. By logging in you accept the usage rules:\n"
        f"data of classification levels {levels} only; jobs of at most {p.max_job_time} that use GPUs;\n"
        f"all data is deleted every year on {p.deletion.day}/{p.deletion.month} (day/month).\n"
    )


# --- the students' status page (ailab_monitoring.status_page; ailab/nodetools/statuspage.py) ----------

STATUS_PAGE_DIR = "/run/ailab-status"  # the service's RuntimeDirectory: one file, index.html
STATUS_PAGE_UNIT = "ailab-status-page"
STATUS_PAGE_SITE = "ailab-status"
# The system user that writes the page (role frontend creates it): not a DynamicUser, whose preserved
# RuntimeDirectory systemd keeps under /run/private (0700), where nginx could not read it.
STATUS_PAGE_USER = "ailab-status"
STATUS_PAGE_FETCH_TIMEOUT_S = 10
HEADER = "Rendered by ailab-iac (ailab.frontend) from the inventory; edits are overwritten."


def cluster_network(cluster: Cluster) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The cluster network: a simulated inventory's subnet, else the smallest network that holds every
    host's ``ailab_address`` (None: no valid address, or both IPv4 and IPv6)."""
    if cluster.sim is not None:
        try:
            return ipaddress.ip_network(cluster.sim.subnet)
        except ValueError:
            pass  # check_sim names it
    addresses = []
    for h in cluster.hosts.values():
        try:
            addresses.append(ipaddress.ip_address(h.address))
        except ValueError:
            continue
    if not addresses or len({a.version for a in addresses}) > 1:
        return None
    net = ipaddress.ip_network(addresses[0])
    while not all(a in net for a in addresses):
        net = net.supernet()
    return net


def status_page_networks(cluster: Cluster) -> list[str]:
    """Who may read the page: ``status_page.allow`` as networks, or the cluster network."""
    allow = cluster.monitoring.status_page.allow
    if allow:
        return [str(ipaddress.ip_network(a, strict=False)) for a in allow]
    net = cluster_network(cluster)
    return [str(net)] if net is not None else []


def url_host(address: str) -> str:
    """``address`` as the host part of a URL or an nginx ``listen`` (an IPv6 address in brackets)."""
    return f"[{address}]" if ":" in address else address


def status_page_exporter(cluster: Cluster) -> str:
    """The /metrics URL of the controller's ailab-exporter (its slurm collector), which the page reads."""
    controller = min(cluster.controllers, key=lambda h: h.name)
    return f"http://{url_host(controller.address)}:{EXPORTER_PORT}/metrics"


def render_status_nginx(cluster: Cluster, host: str) -> str:
    """nginx site of ``host``: the page alone, GET/HEAD only, on the host's cluster address and the port of
    ``status_page``, for the allowed networks."""
    page = cluster.monitoring.status_page
    listen = url_host(cluster.hosts[host].address)
    allow = "".join(f"    allow {net};\n" for net in status_page_networks(cluster))
    return (
        f"# {HEADER}\n"
        "# The students' status page (role frontend): one static page, read-only, cluster network only.\n"
        "server {\n"
        f"    listen {listen}:{page.port};\n"
        "    server_name _;\n"
        "    server_tokens off;\n"
        f"    root {STATUS_PAGE_DIR};\n"
        f"{allow}"
        "    deny all;\n"
        '    add_header Cache-Control "no-cache" always;\n'
        '    add_header X-Content-Type-Options "nosniff" always;\n'
        "    add_header Content-Security-Policy \"default-src 'none'; style-src 'unsafe-inline'\" always;\n"
        "    location = / {\n"
        "        limit_except GET { deny all; }\n"
        "        try_files /index.html =404;\n"
        "    }\n"
        "    location / {\n"
        "        return 404;\n"
        "    }\n"
        "}\n"
    )


def render_status_service(cluster: Cluster, config_dir: str) -> str:
    """The oneshot unit that writes the page: an unprivileged system user without capabilities, nothing
    writable but the page's directory (kept between runs, readable by nginx)."""
    command = (
        f"{command_path('ailab-status-page')} --exporter {status_page_exporter(cluster)}"
        f" --config {config_dir}/policy.json --out {STATUS_PAGE_DIR}/index.html"
        f" --timeout {STATUS_PAGE_FETCH_TIMEOUT_S}"
    )
    return (
        f"# {HEADER}\n"
        "# The students' status page (role frontend): the controller's ailab-exporter and Slurm's\n"
        "# maintenance reservations -> one static page for nginx.  Started by the timer every minute.\n"
        "[Unit]\n"
        "Description=ailab status page: write the students' status page\n"
        "After=network-online.target munge.service\n"
        "Wants=network-online.target\n"
        "# Started by its timer and by hand (operators, tests): no start rate limit to trip.\n"
        "StartLimitIntervalSec=0\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={command}\n"
        f"User={STATUS_PAGE_USER}\n"
        f"Group={STATUS_PAGE_USER}\n"
        f"RuntimeDirectory={STATUS_PAGE_DIR.removeprefix('/run/')}\n"
        "RuntimeDirectoryMode=0755\n"
        "RuntimeDirectoryPreserve=yes\n"
        "UMask=0022\n"
        "ProtectSystem=strict\n"
        "ProtectHome=yes\n"
        "PrivateTmp=yes\n"
        "PrivateDevices=yes\n"
        "NoNewPrivileges=yes\n"
        "CapabilityBoundingSet=\n"
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"
        f"TimeoutStartSec={3 * STATUS_PAGE_FETCH_TIMEOUT_S + 10}\n"
    )


def render_status_timer(cluster: Cluster | None = None) -> str:
    return (
        f"# {HEADER}\n"
        "[Unit]\n"
        "Description=ailab status page: refresh every minute\n"
        "\n"
        "[Timer]\n"
        "# Once when the timer starts (boot, converge), then at every minute.\n"
        "OnActiveSec=1s\n"
        "OnCalendar=*-*-* *:*:00\n"
        "AccuracySec=1s\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def status_page_settings(cluster: Cluster, host: str, config_dir: str) -> dict[str, Any]:
    """Everything role frontend needs for the page of front-end ``host`` (the ``ailab_status_page``
    filter): whether it is on, where it is served, and the nginx site and systemd units as text."""
    page = cluster.monitoring.status_page
    if not page.enabled:
        return {"enabled": False}
    return {
        "enabled": True,
        "url": f"http://{url_host(cluster.hosts[host].address)}:{page.port}/",
        "port": page.port,
        "allow": status_page_networks(cluster),
        "dir": STATUS_PAGE_DIR,
        "unit": STATUS_PAGE_UNIT,
        "user": STATUS_PAGE_USER,
        "site": STATUS_PAGE_SITE,
        "nginx_site": render_status_nginx(cluster, host),
        "service": render_status_service(cluster, config_dir),
        "timer": render_status_timer(cluster),
    }
