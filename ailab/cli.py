"""The `ailab` command line.  Each area registers its own sub-commands; this module only dispatches."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ailab.problems import InventoryError

Handler = Callable[[argparse.Namespace], int]
DEFAULT_INVENTORY = "inventory/sim"


def add_inventory_arg(parser: argparse.ArgumentParser, default: str | None = DEFAULT_INVENTORY) -> None:
    parser.add_argument(
        "-i",
        "--inventory",
        default=default,
        required=default is None,
        help=f"inventory directory (default: {default})" if default else "inventory directory",
    )


def cmd_inventory_check(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster

    try:
        cluster, problems = load_cluster(args.inventory, strict=False)
    except InventoryError as exc:
        problems = exc.problems
        cluster = None
    if args.json:
        print(json.dumps({"ok": not problems, "problems": [p.__dict__ for p in problems]}, indent=2))
    else:
        for problem in problems:
            print(problem)
        if not problems and cluster is not None:
            gpus = sum(h.hardware.gpu.count for h in cluster.compute if h.hardware and h.hardware.gpu)
            print(
                f"{args.inventory}: OK: {len(cluster.hosts)} hosts, {len(cluster.compute)} GPU nodes "
                f"({gpus} GPUs) in {len(cluster.node_classes)} classes, {len(cluster.partitions)} "
                f"partitions, {len(cluster.users)} users"
            )
        else:
            print(f"{args.inventory}: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def register_inventory(sub: argparse._SubParsersAction) -> None:
    inv = sub.add_parser("inventory", help="inspect and check an inventory")
    inv_sub = inv.add_subparsers(dest="inventory_cmd", required=True)
    check = inv_sub.add_parser("check", help="validate an inventory; one line per problem, exit 1 if any")
    add_inventory_arg(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_inventory_check)


def playbook_args(remainder: Sequence[str]) -> list[str]:
    """The extra ansible-playbook arguments of ``ailab converge [...] -- --tags x``: argparse keeps the
    ``--`` that ends its own options, and ansible-playbook would take it as the end of its options too (so
    ``--tags`` as a playbook)."""
    return list(remainder[1:] if remainder[:1] == ["--"] else remainder)


def cmd_converge(args: argparse.Namespace) -> int:
    from ailab.inventory import load_cluster
    from ailab.playbook import run_playbook

    cluster, _ = load_cluster(args.inventory)  # bad input stops here, before any node is touched
    print(f"converge: ansible-playbook -i {args.inventory} {args.playbook} (progress below)", flush=True)
    extra = playbook_args(args.ansible_args)
    full = args.playbook == "site.yml" and not extra
    tree = sim_tree_digest() if cluster.sim is not None and full else None
    result = run_playbook(args.inventory, args.playbook, extra)
    print(f"converge: {result.summary()}; log: {result.log}")
    if cluster.sim is not None:
        record_sim_converge(args.inventory, cluster, tree if result.ok else None)
    if not result.ok:
        print("\n".join(result.output.splitlines()[-40:]), file=sys.stderr)
    return 0 if result.ok else 1


def sim_tree_digest() -> str:
    from simulator import stamp

    return stamp.tree_digest()


def record_sim_converge(inventory: str, cluster, tree: str | None) -> None:
    """A simulated cluster that a full site.yml just converged from the tree whose digest is ``tree`` (taken
    before the run; None: not a full, successful converge) gets a stamp the test session may take instead
    of converging once more (simulator/stamp.py); any other converge removes it."""
    import subprocess
    from pathlib import Path

    from simulator import stamp
    from simulator.api import Sim
    from simulator.errors import SimError

    stamp.clear(Path(inventory))
    if tree is None:
        return
    try:
        now = Sim(inventory, cluster=cluster).converge_stamp()
    except (SimError, OSError, subprocess.SubprocessError) as exc:
        print(f"converge: no stamp for the test session ({exc})", file=sys.stderr)
        return
    if now["tree"] == tree:  # nothing was edited while the playbook ran
        stamp.write(Path(inventory), now)


def register_converge(sub: argparse._SubParsersAction) -> None:
    conv = sub.add_parser("converge", help="check the inventory, then run a playbook (default site.yml)")
    add_inventory_arg(conv)
    conv.add_argument("--playbook", default="site.yml")
    conv.add_argument(
        "ansible_args",
        nargs=argparse.REMAINDER,
        help="extra ansible-playbook arguments, after -- (e.g. -- --tags x)",
    )
    conv.set_defaults(func=cmd_converge)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ailab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    register_inventory(sub)
    register_converge(sub)
    # Areas that depend on optional pieces register themselves if importable.
    from ailab import registry

    for register in registry.registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in the inventory; nothing was changed", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
