"""The operations tools from the operator's machine (the controller side of ailab.retention and
ailab.maintenance, which run on the front-end).

- ``ailab maintenance schedule|cancel|list`` runs ``ailab-maintenance`` on the operations host through
  Ansible (the notice state lives there) and reads its result from the ailab_events callback.
- ``ailab retention schedule|config`` prints the deletion calendar and the ops.json the inventory renders,
  on the controller.

Not in the node package (:mod:`ailab.nodepkg`): this module needs Ansible and the inventory.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ailab.maintenance import add_window_commands, window_from_args
from ailab.retention import cycle_year, format_schedule, schedule_for
from ailab.runtime import ToolError, parse_now, tool_main

# `ailab maintenance ...` on the operator's machine: the same tool, run on the front-end via Ansible -------

REMOTE_TOOL = "/usr/local/sbin/ailab-maintenance"


def remote_command(inventory: str, host: str, argv: Sequence[str]) -> list[str]:
    exe = Path(sys.executable).parent / "ansible"
    return [
        str(exe) if exe.exists() else "ansible",
        "-i",
        inventory,
        host,
        "-m",
        "ansible.builtin.command",
        "-a",
        shlex.join([REMOTE_TOOL, *argv]),
    ]


def remote_result(events: Sequence[dict], host: str) -> tuple[int, str, str]:
    """(rc, stdout, stderr) of the command on ``host``, from the run's ailab_events JSON lines
    (plugins/callback/ailab_events.py)."""
    for event in events:
        if event.get("event") != "result" or event.get("host") != host:
            continue
        if event["status"] == "unreachable":
            raise ToolError(f"{host} is unreachable: {event.get('msg', '')} -- fix: is the node up?")
        if "rc" not in event:
            raise ToolError(f"on {host}: {event.get('msg', event)}")
        return int(event["rc"]), event.get("stdout", ""), event.get("stderr", "")
    raise ToolError(f"ansible returned no result for {host}")


def run_remote(inventory: str, argv: Sequence[str]) -> int:
    from ailab.inventory import load_cluster
    from ailab.playbook import EVENTS_ENV, ROOT, EventReader, ansible_env

    cluster, _ = load_cluster(inventory)  # a bad inventory stops here
    if not cluster.frontends:
        raise ToolError(f"{inventory} has no host in group frontend")
    host = cluster.operations_host  # where the notice state (who was told about which window) lives
    cmd = remote_command(str(Path(inventory).resolve()), host, argv)
    with tempfile.TemporaryDirectory(prefix="ailab-maintenance-") as tmp:
        events = EventReader(Path(tmp) / "events.jsonl")
        # Ad-hoc runs load the enabled callbacks (ailab_events) only when asked to.
        env = {**ansible_env(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", EVENTS_ENV: str(events.path)}
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        events.poll()
    if not events.events and result.returncode != 0:
        raise ToolError(
            f"ansible failed before running anything: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    rc, stdout, stderr = remote_result(events.events, host)
    sys.stdout.write(stdout + ("\n" if stdout and not stdout.endswith("\n") else ""))
    if stderr:
        print(stderr, file=sys.stderr)
    return rc


def _cmd_remote(args: argparse.Namespace) -> int:
    argv: list[str] = []
    if args.now:
        argv += ["--now", args.now]
    argv.append(args.maintenance_cmd)
    if args.maintenance_cmd == "schedule":
        window_from_args(args)  # check locally first, nothing is touched on bad input
        for option in ("date", "start", "end", "name"):
            if getattr(args, option):
                argv += [f"--{option}", getattr(args, option)]
        if args.no_notify:
            argv.append("--no-notify")
    elif args.maintenance_cmd == "cancel":
        argv.append(args.name)
        if args.no_notify:
            argv.append("--no-notify")
    elif args.maintenance_cmd == "list" and args.json:
        argv.append("--json")
    return tool_main(lambda: run_remote(args.inventory, argv))


def register_maintenance(sub: argparse._SubParsersAction) -> None:
    from ailab.cli import add_inventory_arg

    main_parser = sub.add_parser(
        "maintenance", help="maintenance windows (rule 8), run on the front-end through Ansible"
    )
    main_parser.add_argument("--now", help="a fixed clock for notices (tests)")
    msub = main_parser.add_subparsers(dest="maintenance_cmd", required=True)
    for p in add_window_commands(msub):
        add_inventory_arg(p)
        p.set_defaults(func=_cmd_remote)


# `ailab retention ...` on the operator's machine ------------------------------------------------------


def register_retention(sub: argparse._SubParsersAction) -> None:
    from ailab.cli import add_inventory_arg

    ret = sub.add_parser("retention", help="the yearly data deletion (rule 1)")
    ret_sub = ret.add_subparsers(dest="retention_cmd", required=True)
    sched = ret_sub.add_parser("schedule", help="print the deletion date and each notice date of a year")
    add_inventory_arg(sched)
    sched.add_argument("--year", type=int, help="default: the next deletion")
    sched.set_defaults(func=_cmd_schedule)
    conf = ret_sub.add_parser(
        "config", help="print the JSON the front-end's tools read (/etc/ailab/ops.json)"
    )
    add_inventory_arg(conf)
    conf.set_defaults(func=_cmd_config)


def _cmd_schedule(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster

    cluster, _ = load_cluster(args.inventory)
    policy = cluster.policy.deletion
    year = args.year if args.year is not None else cycle_year(policy, parse_now(None).date())
    if not 1 <= year <= 9998:
        print(f"error: --year {year} is not a year -- fix: e.g. --year 2027", file=sys.stderr)
        return 2
    sys.stdout.write(format_schedule(schedule_for(policy, year), cluster.name))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster
    from ailab.opsconfig import ops_config_data

    cluster, _ = load_cluster(args.inventory)
    print(json.dumps(ops_config_data(cluster), indent=2, sort_keys=True))
    return 0
