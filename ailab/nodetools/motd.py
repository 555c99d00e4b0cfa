"""The front-end's login message: the platform rules, the next yearly deletion, the next maintenance window.

Run at every login by pam_motd (/etc/update-motd.d/60-ailab-policy), so dates are always current.  Part
of the node package (:mod:`ailab.nodepkg`): the deletion date is :func:`ailab.model.next_deletion`, the
windows :func:`ailab.reservations.parse_reservations`, as the operations tools compute them.

    ailab-motd --config /etc/ailab/policy.json [--now YYYY-MM-DDTHH:MM] [--reservations FILE|-]

Maintenance windows are read from Slurm (`scontrol -o show reservation`: reservations with the MAINT flag).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys

from ailab.model import next_deletion
from ailab.reservations import Window, parse_reservations, upcoming_windows

LEVEL_NAMES = {0: "public", 1: "internal", 2: "confidential", 3: "sensitive"}


def render(config: dict, now: dt.datetime, windows: list[Window]) -> str:
    policy = config["policy"]
    levels = policy["data_classification_levels"]
    level_text = " and ".join(f"{lvl} ({LEVEL_NAMES.get(lvl, '?')})" for lvl in levels)
    deletion = next_deletion(now.date(), policy["deletion"]["month"], policy["deletion"]["day"])
    days_left = (deletion - now.date()).days
    limits = policy["login_limits"]
    lines = [
        f"Welcome to {config['cluster']} -- a shared GPU platform for students.",
        "",
        "Rules of use (read them; the platform enforces most of them):",
        f"  * Data: only classification levels {level_text}. No confidential or sensitive data.",
        f"  * Jobs run at most {policy['max_job_time']} (default {policy['default_job_time']}); "
        "longer requests are refused.",
    ]
    if policy.get("gpu_required", True):
        lines.append(
            "  * Not for CPU-only work: every job must request a GPU, e.g. sbatch --gres=gpu:1 job.sh"
        )
    lines += [
        f"  * At most {policy['max_gpus_per_user']} GPUs per user at a time; allocate only what you use.",
        f"  * This front-end is for light work: each user gets at most {limits['cpu_quota_percent']}% CPU "
        f"and {limits['memory_max_mb']} MB of memory here.",
        f"  * All data and accounts are deleted on {deletion:%d %B %Y} (in {days_left} days). "
        "Copy your files off before then.",
    ]
    if policy.get("extension_url"):
        lines.append(f"    Need your data longer? Request an extension: {policy['extension_url']}")
    upcoming = upcoming_windows(windows, now)
    if upcoming:
        w = upcoming[0]
        lines += [
            f"  * Scheduled maintenance: {w.start:%Y-%m-%d %H:%M} - {w.end:%Y-%m-%d %H:%M}.",
            "    No jobs run then;",
            "    jobs whose --time would cross it wait until after the window.",
        ]
    else:
        lines.append("  * No maintenance window is scheduled.")
    if policy.get("support_email"):
        lines += ["", f"Questions: {policy['support_email']}"]
    return "\n".join(lines) + "\n"


def read_reservations(source: str | None) -> str:
    if source == "-":
        return sys.stdin.read()
    if source:
        with open(source) as handle:
            return handle.read()
    scontrol = shutil.which("scontrol")
    if not scontrol:
        return ""
    try:
        result = subprocess.run(
            [scontrol, "-o", "show", "reservation"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/ailab/policy.json")
    parser.add_argument("--now", help="YYYY-MM-DDTHH:MM (for tests)")
    parser.add_argument("--reservations", help="file with `scontrol -o show reservation` output, or -")
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        config = json.load(handle)
    now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now()
    sys.stdout.write(render(config, now, parse_reservations(read_reservations(args.reservations))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
