"""Metrics and alerts: the configuration of Prometheus and Alertmanager, rendered from the model.

Prometheus and Alertmanager run on the host of group ``monitoring`` (role monitoring); every node runs
prometheus-node-exporter, compute nodes and controllers also ailab-exporter (role metrics, exporter in
ailab/nodetools/exporter.py).  Each file is built as plain data and written by one serializer (YAML), so the
scrape targets, thresholds and mail route all come from the inventory:

* ``prometheus.yml``: a scrape job per exporter, each target labelled ``instance: <inventory host>``;
  Prometheus and Alertmanager listen on loopback (operators use an SSH tunnel), the exporters on the
  cluster address, ailab-exporter answering the monitoring host alone (its job metrics name users) and,
  on a controller, also the front-ends (the status page reads its Slurm figures, which name no user);
* ``ailab-rules.yml``: the alert rules (node down, drained, GPU drained by the health check, Slurm daemons,
  Ceph health and fullness, GPUs idle in a job, exporters down);
* ``alertmanager.yml``: every alert mailed to ``ailab_monitoring.alerts_to`` through the front-end's MTA;
* ``idle-gpus.json``: the configuration of ailab-idle-gpus (ailab/nodetools/idlegpus.py), which mails the
  owner of a job whose GPU stays idle and cancels it where the policy opts in (rule 6), through that MTA too.

The ports are the Debian packages' defaults (and the one of ours); they are the only source the roles use.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ailab.model import Cluster, Host
from ailab.opsconfig import default_sender
from ailab.slurm import JOBSTATS_TOOL, SLURMDBD_PORT, job_gpu_stats

NODE_EXPORTER_PORT = 9100
EXPORTER_PORT = 9110  # ailab-exporter (GPUs, jobs' GPUs, Slurm)
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
CEPH_MGR_PORT = 9283  # the Ceph mgr's prometheus module
SMTP_PORT = 25
RULES_FILE = "/etc/prometheus/ailab-rules.yml"
IDLE_GPUS_STATE = "/var/lib/ailab/idle-gpus.json"  # the jobs ailab-idle-gpus mailed about or cancelled
# The drain reason prefix of the GPU health check (ailab/nodetools/gpuhealth.py).
GPU_HEALTH_REASON_PREFIX = "gpu-health:"


HEADER = "Rendered by ailab-iac (ailab.monitoring) from the inventory; edits are overwritten."


def _yaml(header: str, data: Any) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=110)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body


def _target(host: Host, port: int, **labels: str) -> dict[str, Any]:
    return {"targets": [f"{host.address}:{port}"], "labels": {"instance": str(host.name), **labels}}


def _loopback(host: Host, port: int) -> dict[str, Any]:
    return {"targets": [f"127.0.0.1:{port}"], "labels": {"instance": str(host.name)}}


def _sorted(hosts: tuple[Host, ...]) -> list[Host]:
    return sorted(hosts, key=lambda h: h.name)


def exporter_collectors(cluster: Cluster, host: str) -> tuple[str, ...]:
    """What ailab-exporter collects on ``host``: GPUs on compute nodes, Slurm on controllers; () none."""
    h = cluster.hosts[host]
    out = []
    if h.in_group("compute"):
        out.append("gpu")
    if h.in_group("slurm_controller"):
        out.append("slurm")
    return tuple(out)


def ceph_targets(cluster: Cluster) -> list[dict[str, Any]]:
    if cluster.ceph.managed:
        return [_target(h, CEPH_MGR_PORT) for h in _sorted(cluster.ceph_hosts)]
    return [
        {"targets": [str(endpoint)], "labels": {"instance": str(endpoint).rsplit(":", 1)[0]}}
        for endpoint in cluster.monitoring.ceph_exporters
    ]


def prometheus_config(cluster: Cluster) -> dict[str, Any]:
    m = cluster.monitoring
    interval = f"{m.scrape_interval_s}s"
    monitors = _sorted(cluster.monitoring_hosts)
    jobs: list[dict[str, Any]] = [
        # Both listen on loopback alone: the job metrics name users and their jobs, which Slurm shows a
        # student only for their own (PrivateData), and no one else may silence an alert.
        {"job_name": "prometheus", "static_configs": [_loopback(h, PROMETHEUS_PORT) for h in monitors]},
        {"job_name": "alertmanager", "static_configs": [_loopback(h, ALERTMANAGER_PORT) for h in monitors]},
        {
            "job_name": "node",
            # ``node`` as well: the Slurm alerts name the node so, and a NodeDown inhibits them.
            "static_configs": [
                _target(h, NODE_EXPORTER_PORT, node=str(h.name))
                for h in _sorted(tuple(cluster.hosts.values()))
            ],
        },
        {
            "job_name": "ailab",
            "static_configs": [
                _target(h, EXPORTER_PORT)
                for h in _sorted(tuple(cluster.hosts.values()))
                if exporter_collectors(cluster, h.name)
            ],
        },
    ]
    ceph = ceph_targets(cluster)
    if ceph:
        # As Ceph's documentation asks: some of the mgr's series carry their own ``instance`` (the daemon's
        # host), which must win over the target's.
        jobs.append({"job_name": "ceph", "honor_labels": True, "static_configs": ceph})
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": f"{min(10, m.scrape_interval_s)}s",
            "evaluation_interval": interval,
            "external_labels": {"cluster": str(cluster.name)},
        },
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]}]
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    }


def render_prometheus_yml(cluster: Cluster, host: str | None = None) -> str:
    return _yaml(
        HEADER,
        prometheus_config(cluster),
    )


def _rule(
    name: str, expr: str, minutes: int, severity: str, summary: str, description: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if minutes:
        rule["for"] = f"{minutes}m"
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def alert_rules(cluster: Cluster) -> dict[str, Any]:
    m = cluster.monitoring
    full = m.cephfs_full_percent
    prefix = GPU_HEALTH_REASON_PREFIX
    nodes = [
        _rule(
            "NodeDown",
            'up{job="node"} == 0',
            m.node_down_minutes,
            "critical",
            "{{ $labels.instance }} is down",
            f"The node exporter of {{{{ $labels.instance }}}} has not answered for {m.node_down_minutes} "
            "minute(s): the host is off, hung or off the network.",
        ),
        _rule(
            "SlurmNodeDown",
            'ailab_slurm_node_state{state="down"} == 1',
            m.node_down_minutes,
            "critical",
            "Slurm node {{ $labels.node }} is DOWN",
            "slurmctld has lost the node's slurmd; its jobs were requeued or failed.",
        ),
        _rule(
            "SlurmNodeDrained",
            f'ailab_slurm_node_drained{{reason!~"{prefix}.*"}} == 1',
            0,
            "warning",
            "Slurm node {{ $labels.node }} is drained",
            "Reason: {{ $labels.reason }}. Resume it with `scontrol update nodename={{ $labels.node }} "
            "state=resume` once fixed.",
        ),
        _rule(
            "GpuDrainedByHealthCheck",
            f'ailab_slurm_node_drained{{reason=~"{prefix}.*"}} == 1',
            0,
            "critical",
            "The GPU health check drained {{ $labels.node }}",
            "{{ $labels.reason }}. The health check resumes the node once every GPU is back.",
        ),
        _rule(
            "GpuFellOffTheBus",
            "ailab_gpu_smi_ok == 0",
            m.node_down_minutes,
            "critical",
            "nvidia-smi fails on {{ $labels.instance }}",
            "nvidia-smi cannot see every GPU (or the driver): check `nvidia-smi` and the kernel log.",
        ),
    ]
    services = [
        _rule(
            "SlurmctldDown",
            'ailab_slurm_daemon_up{daemon="slurmctld"} == 0',
            1,
            "critical",
            "slurmctld does not answer",
            "`scontrol ping` fails on {{ $labels.instance }}: no job can be submitted or scheduled.",
        ),
        _rule(
            "SlurmdbdDown",
            'ailab_slurm_daemon_up{daemon="slurmdbd"} == 0',
            1,
            "critical",
            "slurmdbd does not answer",
            f"Nothing listens on the slurmdbd port ({SLURMDBD_PORT}) of {{{{ $labels.instance }}}}: "
            "accounting and the QOS limits are stale.",
        ),
        _rule(
            "ExporterDown",
            'up{job!="node"} == 0',
            m.node_down_minutes,
            "warning",
            "{{ $labels.job }} on {{ $labels.instance }} cannot be scraped",
            "Prometheus cannot scrape this target: its alerts cannot fire while it is down.",
        ),
    ]
    storage = [
        _rule(
            "CephNotHealthy",
            "ceph_health_status != 0",
            5,
            "critical",
            "Ceph is not HEALTH_OK",
            "`ceph health detail` says why (1: HEALTH_WARN, 2: HEALTH_ERR).",
        ),
        _rule(
            "CephFSFull",
            f"ceph_pool_percent_used * on(pool_id) group_left(name) ceph_pool_metadata * 100 > {full}",
            5,
            "critical",
            'Ceph pool {{ $labels.name }} is {{ $value | printf "%.0f" }} % full',
            f"Above {full} %: CephFS stops taking writes at 95 %. Add OSDs or ask users to clean up.",
        ),
    ]
    jobs = [
        _rule(
            "JobGpuIdle",
            "ailab_job_gpu_utilization_percent == 0",
            m.idle_gpu_minutes,
            "warning",
            "Job {{ $labels.jobid }} of {{ $labels.user }} holds an idle GPU",
            f"GPU {{{{ $labels.gpu }}}} of {{{{ $labels.node }}}} has been at 0 % for {m.idle_gpu_minutes} "
            "minutes (rule 6: release resources you do not use).",
        ),
    ]
    return {
        "groups": [
            {"name": "ailab-nodes", "rules": nodes},
            {"name": "ailab-services", "rules": services},
            {"name": "ailab-storage", "rules": storage},
            {"name": "ailab-jobs", "rules": jobs},
        ]
    }


def render_alert_rules(cluster: Cluster, host: str | None = None) -> str:
    return _yaml(
        HEADER,
        alert_rules(cluster),
    )


def mail_host(cluster: Cluster) -> Host | None:
    """The MTA the alerts go through: the operations front-end's (role mail)."""
    return cluster.hosts.get(cluster.operations_host)


def alerts_from(cluster: Cluster) -> str:
    m = cluster.monitoring
    return str(m.alerts_from or f"alertmanager@{cluster.domain or 'localhost'}")


def alertmanager_config(cluster: Cluster) -> dict[str, Any]:
    m = cluster.monitoring
    mta = mail_host(cluster)
    receivers: list[dict[str, Any]] = [{"name": "nobody"}]
    route: dict[str, Any] = {
        "receiver": "nobody",
        "group_by": ["alertname", "instance", "node"],
        "group_wait": f"{m.alert_group_wait_s}s",
        "group_interval": "5m",
        "repeat_interval": "12h",
    }
    config: dict[str, Any] = {"route": route, "receivers": receivers}
    if m.alerts_to and mta is not None:
        config["global"] = {
            "smtp_smarthost": f"{mta.address}:{SMTP_PORT}",
            "smtp_from": alerts_from(cluster),
            "smtp_hello": str(cluster.monitoring_hosts[0].name) if cluster.monitoring_hosts else "localhost",
            # The front-end's MTA takes mail from the monitoring host alone, on the cluster network.
            "smtp_require_tls": False,
        }
        route["receiver"] = "operators"
        receivers.append(
            {
                "name": "operators",
                "email_configs": [{"to": ", ".join(str(a) for a in m.alerts_to), "send_resolved": True}],
            }
        )
    # A node down also makes its exporters and its Slurm node go down: mail the cause, not the echoes.
    config["inhibit_rules"] = [
        {
            "source_matchers": ['alertname="NodeDown"'],
            "target_matchers": ['alertname=~"ExporterDown|GpuFellOffTheBus"'],
            "equal": ["instance"],
        },
        {
            "source_matchers": ['alertname="NodeDown"'],
            "target_matchers": ['alertname=~"SlurmNodeDown|SlurmNodeDrained"'],
            "equal": ["node"],
        },
    ]
    return config


def render_alertmanager_yml(cluster: Cluster, host: str | None = None) -> str:
    return _yaml(
        HEADER,
        alertmanager_config(cluster),
    )


def idle_gpus_mail(cluster: Cluster) -> bool:
    """Whether the monitoring host runs ailab-idle-gpus (rule 6 for running jobs; the policy may say no)."""
    policy = cluster.policy
    return bool(cluster.monitoring_hosts and (policy.idle_gpu_mail_minutes or policy.idle_gpu_cancel_minutes))


def idle_gpus_config(cluster: Cluster) -> dict[str, Any]:
    """ailab-idle-gpus' configuration (read by ailab.nodetools.idlegpus.parse_config): the policy's windows,
    Prometheus on loopback, the front-end's MTA and every user's address (the file is root's alone)."""
    mta = mail_host(cluster)
    monitor = next(iter(_sorted(cluster.monitoring_hosts)), None)
    return {
        "cluster": cluster.name,
        "prometheus": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        "scrape_interval_s": cluster.monitoring.scrape_interval_s,
        "mail_minutes": cluster.policy.idle_gpu_mail_minutes,
        "cancel_minutes": cluster.policy.idle_gpu_cancel_minutes,
        "smtp": f"{mta.address if mta else '127.0.0.1'}:{SMTP_PORT}",
        "helo": str(monitor.name) if monitor else "localhost",
        "mail_from": default_sender(cluster),  # as the operations tools' notices
        "support_email": cluster.policy.support_email,
        "state": IDLE_GPUS_STATE,
        "users": {u.name: u.email for u in sorted(cluster.users.values(), key=lambda u: u.name)},
    }


def render_idle_gpus_json(cluster: Cluster, host: str | None = None) -> str:
    return json.dumps(idle_gpus_config(cluster), indent=1) + "\n"


def smtp_clients(cluster: Cluster) -> tuple[str, ...]:
    """The addresses the front-end's MTA takes SMTP from (role mail): the monitoring host's, if it mails
    (alerts to the operators, or the idle-GPU mail to students)."""
    if not (cluster.monitoring.alerts_to or idle_gpus_mail(cluster)):
        return ()
    return tuple(str(h.address) for h in _sorted(cluster.monitoring_hosts))


def exporter_scrapers(cluster: Cluster, host: str) -> list[str]:
    """The addresses ``host``'s ailab-exporter answers (``--allow``; loopback always)."""
    scrapers = [str(m.address) for m in _sorted(cluster.monitoring_hosts)]
    if cluster.monitoring.status_page.enabled and exporter_collectors(cluster, host) == ("slurm",):
        scrapers += [str(f.address) for f in _sorted(cluster.frontends) if str(f.address) not in scrapers]
    return scrapers or ["127.0.0.1"]


def host_settings(cluster: Cluster, host: str) -> dict[str, Any]:
    """What roles metrics, monitoring, mail and ceph_cluster need to know about ``host``
    (the ``ailab_monitoring`` filter)."""
    h = cluster.hosts[host]
    controller = next(iter(_sorted(cluster.controllers)), None)
    return {
        "address": str(h.address),
        "collectors": list(exporter_collectors(cluster, host)),
        # Who may scrape ailab-exporter (besides loopback): the monitoring host; and on a controller the
        # front-ends too, for the status page (the slurm collector names no user; a host that also
        # collects gpu does, and ailab.validate refuses the status page then).
        "scrapers": exporter_scrapers(cluster, host),
        "slurmdbd": f"{controller.address}:{SLURMDBD_PORT}" if controller else "",
        "node_exporter_port": NODE_EXPORTER_PORT,
        "exporter_port": EXPORTER_PORT,
        "prometheus_port": PROMETHEUS_PORT,
        "alertmanager_port": ALERTMANAGER_PORT,
        "retention_days": cluster.monitoring.retention_days,
        "monitoring_host": h.in_group("monitoring"),
        "smtp_clients": list(smtp_clients(cluster)) if mail_host(cluster) is h else [],
        "rules_file": RULES_FILE,
        "idle_gpus": idle_gpus_mail(cluster) and h.in_group("monitoring"),
    }


def render_jobstats_epilog(cluster: Cluster, host: str | None = None) -> str:
    """The EpilogSlurmctld wrapper (slurm.conf names a program, without arguments): jobstats' epilog,
    asking Prometheus on the controller's loopback (ailab.slurm.job_gpu_stats).  Without it, a wrapper that
    does nothing, so a stale EpilogSlurmctld never fails."""
    head = "#!/bin/sh\n# " + HEADER + "\n"
    if not job_gpu_stats(cluster):
        return (
            head
            + "# ailab_monitoring.job_gpu_stats is off, or Prometheus does not run on the controller.\n"
            + "exit 0\n"
        )
    interval = cluster.monitoring.scrape_interval_s
    return head + (
        "# slurmctld runs this as SlurmUser when a job ends: its GPU figures go into its AdminComment.\n"
        f"exec {JOBSTATS_TOOL} epilog --prometheus http://127.0.0.1:{PROMETHEUS_PORT} "
        f"--scrape-interval {interval}\n"
    )
