"""What the front-end's policy MOTD and login limits are made of, derived from the model."""

from __future__ import annotations

import json

from ailab.model import Cluster

# The rules as one JSON document, read at login by ailab/nodetools/motd.py on the front-end.


def policy_config(cluster: Cluster) -> dict:
    p = cluster.policy
    return {
        "cluster": cluster.name,
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
