"""``ailab sim ...``: the simulated cluster from the command line.  A thin layer over :mod:`simulator.api`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ailab.cli import add_inventory_arg
from simulator.errors import SimError


def _sim(args: argparse.Namespace):
    from simulator.api import Sim

    return Sim(args.inventory)


def _gpus(status) -> str:
    if not status.gpus:
        return "-"
    text = f"{status.gpus}x {status.gpu_model}"
    if status.failed_gpus:
        text += " (failed: " + ",".join(str(i) for i in status.failed_gpus) + ")"
    return text


def render_status(statuses: Sequence) -> str:
    """The ``ailab sim status`` table."""
    rows = [("NODE", "GROUPS", "STATE", "SYSTEMD", "ADDRESS", "GPUS")]
    for s in statuses:
        address = s.address or "-"
        if s.state not in ("absent",) and not s.connected:
            address += " (disconnected)"
        state = s.state if s.in_inventory else f"{s.state} (not in inventory)"
        rows.append((s.name, ",".join(s.groups) or "-", state, s.systemd or "-", address, _gpus(s)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def _hosts(text: str | None) -> list[str] | None:
    return [h for h in (text or "").split(",") if h] or None


def cmd_up(args: argparse.Namespace) -> int:
    sim = _sim(args)
    result = sim.up(timeout=args.timeout, only=_hosts(args.only))
    print(render_status(sim.status()), end="")
    print(
        f"up in {result.seconds:.1f}s: {len(result.created)} created, {len(result.started)} started, "
        f"{len(result.unchanged)} already running; image {result.image}",
        file=sys.stderr,
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    result = _sim(args).down()
    print(
        f"removed {len(result.containers)} containers, {len(result.networks)} networks, "
        f"{len(result.volumes)} volumes, {len(result.cgroups_removed)} leftover cgroups"
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    result = _sim(args).prune()
    names = ", ".join(result.containers) or "none"
    print(
        f"removed containers not in the inventory: {names}; {len(result.volumes)} volumes, "
        f"{len(result.cgroups_removed)} leftover cgroups"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    statuses = _sim(args).status()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        print(render_status(statuses), end="")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    return _sim(args).exec_interactive(args.node, ["bash", "-l"], user=args.user)


def split_exec_args(rest: Sequence[str], user: str | None = None) -> tuple[str | None, list[str]]:
    """(user, command) from what follows NODE: ``[--user NAME] [--] COMMAND [ARGS...]``.  (argparse hands
    over everything after NODE, options included, so ``--user`` may come before or after NODE.)"""
    words = list(rest)
    while words:
        word = words[0]
        if word == "--":
            return user, words[1:]
        if word in ("--user", "-u") and len(words) > 1:
            user, words = words[1], words[2:]
        elif word.startswith("--user="):
            user, words = word.partition("=")[2], words[1:]
        else:
            break
    return user, words


def cmd_exec(args: argparse.Namespace) -> int:
    user, cmd = split_exec_args(args.cmd, args.user)
    if not cmd:
        raise SimError(
            "no command given", "ailab sim exec NODE [--user NAME] -- COMMAND [ARGS...]", exit_code=2
        )
    return _sim(args).exec_interactive(args.node, cmd, user=user)


def cmd_stop(args: argparse.Namespace) -> int:
    _sim(args).stop(args.node)
    print(f"{args.node}: stopped")
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    result = _sim(args).destroy(args.node)
    print(
        f"{args.node}: destroyed ({', '.join(result.containers + result.volumes)}); "
        "`ailab sim up` creates it again, empty, and `ailab converge` rebuilds it"
    )
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    _sim(args).start(args.node, timeout=args.timeout)
    print(f"{args.node}: running")
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    changed = _sim(args).disconnect(args.node)
    print(f"{args.node}: {'disconnected' if changed else 'was already disconnected'}")
    return 0


def cmd_reconnect(args: argparse.Namespace) -> int:
    changed = _sim(args).reconnect(args.node)
    print(f"{args.node}: {'reconnected' if changed else 'was already connected'}")
    return 0


def cmd_gpu_fail(args: argparse.Namespace) -> int:
    _sim(args).gpu_fail(args.node, args.index)
    print(f"{args.node}: GPU {args.index} failed (nvidia-smi no longer lists it and exits 15)")
    return 0


def cmd_gpu_restore(args: argparse.Namespace) -> int:
    _sim(args).gpu_restore(args.node, args.index)
    print(f"{args.node}: GPU {args.index} restored")
    return 0


def cmd_gpu_load(args: argparse.Namespace) -> int:
    _sim(args).gpu_load(args.node, args.index, args.percent, memory_mib=args.memory_mib)
    if args.percent == 0 and args.memory_mib == 0:
        print(f"{args.node}: GPU {args.index} idle (0% utilisation, 0 MiB used)")
    else:
        print(
            f"{args.node}: GPU {args.index} reports {args.percent}% utilisation, "
            f"{args.memory_mib} MiB memory used"
        )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from simulator.docker import Docker
    from simulator.images import ensure_images
    from simulator.progress import Progress

    print(ensure_images(Docker(), Progress()))
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster
    from simulator.emulate import Emulation

    cluster, _ = load_cluster(args.inventory)
    emulation = Emulation(cluster, str(args.inventory), prefix=args.prefix)
    if args.down:
        removed = emulation.down()
        print(f"removed {', '.join(removed) if removed else 'nothing (no emulation was running)'}")
        return 0
    user, cmd = split_exec_args(args.cmd, args.user)
    emulation.check_user(user)  # before anything starts
    if not cmd or not emulation.ready():
        result = emulation.up(timeout=args.timeout, log=lambda text: print(text, file=sys.stderr))
        if result.started:
            print(
                f"ailab sim emulate: {result.nodes} nodes of {args.inventory} idle in {result.seconds:.1f}s "
                f"(container {result.name})",
                file=sys.stderr,
            )
    if not cmd:
        return 0
    return emulation.run(cmd, user=user).returncode


def cmd_scenario(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ailab.inventory import load_cluster
    from simulator import ssh
    from simulator.scenario import scenario_names, write_scenario_inventory

    dest = Path(args.dest)
    inventory = dest / "inventory"
    prefix = write_scenario_inventory(
        Path(args.inventory), inventory, args.name, scenario_names(Path(args.molecule_dir))
    )
    cluster, _ = load_cluster(inventory)
    (dest / "ssh_config").write_text(ssh.ssh_config_text(cluster, ssh.ssh_files(cluster)))
    print(f"{dest}: inventory and ssh_config of Molecule scenario {args.name} (prefix {prefix})")
    return 0


def _guard(func):
    """SimError -> a clear message on stderr and its exit code (InventoryError is handled by ailab.cli)."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except SimError as exc:
            print(f"ailab sim: error: {exc}", file=sys.stderr)
            return exc.exit_code

    return handler


def _whole(what: str):
    """An argparse type: a whole number 0 or more (the API checks the upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{what} must be 0 or more, not {value}")
        return value

    return parse


_index = _whole("GPU index")


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="the simulated cluster: systemd containers on this machine")
    cmds = sim.add_subparsers(dest="sim_cmd", required=True)

    def command(name: str, func, help: str, node: bool = False) -> argparse.ArgumentParser:
        parser = cmds.add_parser(name, help=help, description=help)
        add_inventory_arg(parser)
        if node:
            parser.add_argument("node", help="host name from the inventory, e.g. fe01")
        parser.set_defaults(func=_guard(func))
        return parser

    up = command(
        "up", cmd_up, "build images if needed, create/start every host's container, wait for systemd"
    )
    up.add_argument("--timeout", type=float, default=300, help="seconds to wait for systemd (default 300)")
    up.add_argument(
        "--only", metavar="HOST,...", help="only these hosts of the inventory (a Molecule scenario's)"
    )
    command("down", cmd_down, "remove the containers, network, volumes and host cgroups of this cluster")
    command(
        "prune",
        cmd_prune,
        "remove the containers of hosts no longer in the inventory (retired nodes: drain, converge first)",
    )
    status = command("status", cmd_status, "one line per host: state, systemd, address, GPUs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    build = cmds.add_parser("build", help="build the images (content-hashed; a no-op when up to date)")
    build.set_defaults(func=_guard(cmd_build))
    shell = command("shell", cmd_shell, "a login shell in a host", node=True)
    shell.add_argument("--user", "-u", help="run as this user (default root)")
    exe = command("exec", cmd_exec, "run a command in a host; its exit status is passed through", node=True)
    exe.add_argument("--user", "-u", help="run as this user (default root)")
    exe.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command, after --")
    emulate = command(
        "emulate",
        cmd_emulate,
        "run a command in a full-size emulation of the inventory's scheduler (real slurmctld, slurmdbd and "
        "one slurmd per node in one container), starting it first if needed",
    )
    emulate.add_argument(
        "--user", "-u", help="run as this user of the inventory, in their home (default root)"
    )
    emulate.add_argument("--down", action="store_true", help="remove the emulation")
    emulate.add_argument(
        "--prefix", default="ailab-emu", help="container/network name prefix (default ailab-emu)"
    )
    emulate.add_argument("--timeout", type=float, default=600, help="seconds to wait for every node idle")
    emulate.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command, after --")
    scenario = command(
        "scenario",
        cmd_scenario,
        "write a Molecule scenario's inventory: the simulated inventory on the scenario's own prefix, "
        "network and addresses, compute nodes renamed mol-NAME (molecule/README.md)",
    )
    scenario.add_argument("name", help="the scenario (molecule/<name>/molecule.yml), named after its role")
    scenario.add_argument(
        "--dest", required=True, help="directory to write: DEST/inventory (replaced) and DEST/ssh_config"
    )
    scenario.add_argument(
        "--molecule-dir", default="molecule", help="where the scenarios are (default ./molecule)"
    )
    command("stop", cmd_stop, "stop a host (systemd shuts down cleanly)", node=True)
    command(
        "destroy",
        cmd_destroy,
        "remove a host's container and its own volumes, as if its disk died (not Ceph's storage hosts)",
        node=True,
    )
    start = command("start", cmd_start, "start a stopped host and wait for systemd", node=True)
    start.add_argument("--timeout", type=float, default=300)
    command("disconnect", cmd_disconnect, "take a host off the cluster network", node=True)
    command("reconnect", cmd_reconnect, "put a host back on the network with its address", node=True)
    fail = command("gpu-fail", cmd_gpu_fail, "make a GPU fall off the bus (nvidia-smi reports it)", node=True)
    fail.add_argument("index", type=_index, help="GPU index (minor number), 0 .. count-1")
    restore = command("gpu-restore", cmd_gpu_restore, "undo gpu-fail", node=True)
    restore.add_argument("index", type=_index, help="GPU index (minor number), 0 .. count-1")
    load = command(
        "gpu-load",
        cmd_gpu_load,
        "make a GPU look busy: nvidia-smi reports this utilisation and memory used (0 0: idle again)",
        node=True,
    )
    load.add_argument("index", type=_index, help="GPU index (minor number), 0 .. count-1")
    load.add_argument("percent", type=_whole("GPU utilisation"), help="utilization.gpu in percent, 0 .. 100")
    load.add_argument(
        "--memory-mib",
        type=_whole("GPU memory used"),
        default=0,
        metavar="N",
        help="memory.used in MiB, 0 .. the GPU's memory (default 0)",
    )
