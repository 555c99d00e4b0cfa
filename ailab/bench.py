"""`make bench`: measure the simulated cluster so every change can be compared against these numbers.

Measures (seconds, MiB): cold `make up` (simulator images removed first: image build + containers + first
converge + demo job), warm `ailab sim up` + converge (containers recreated from cached images), the second
site.yml run (nothing to change), and RAM per node container read from the memory cgroup
(/sys/fs/cgroup/memory/docker/<id>/memory.usage_in_bytes, and RSS from memory.stat).  Prints a table and
JSON (also written to bench-results.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ailab.playbook import ROOT, run_playbook

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")


@dataclass
class BenchResult:
    seconds: dict[str, float] = field(default_factory=dict)
    ram_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)


def memory_of(container_id: str, root: Path = CGROUP_MEMORY) -> dict[str, float]:
    """usage (page cache included) and rss of one container, in MiB, from its memory cgroup (v1)."""
    base = root / container_id
    usage = int((base / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
    rss = int(stat.get("total_rss", stat.get("rss", 0)))
    return {"usage": round(usage / 2**20, 1), "rss": round(rss / 2**20, 1)}


def render_table(result: BenchResult) -> str:
    rows = [("measurement", "value")]
    rows += [(name, f"{value:.1f} s") for name, value in result.seconds.items()]
    for node, mem in sorted(result.ram_mib.items()):
        rows.append((f"RAM {node}", f"{mem['usage']:.0f} MiB (rss {mem['rss']:.0f} MiB)"))
    if result.ram_mib:
        total = sum(m["usage"] for m in result.ram_mib.values())
        rows.append(("RAM all nodes", f"{total:.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.insert(1, "-" * (width + 20))
    return "\n".join(lines)


def timed(result: BenchResult, name: str, action: Callable[[], object]) -> object:
    print(f"==> {name}", flush=True)
    start = time.monotonic()
    value = action()
    result.seconds[name] = round(time.monotonic() - start, 1)
    print(f"    {name}: {result.seconds[name]:.1f}s", flush=True)
    return value


def converge_ok(inventory: Path) -> None:
    outcome = run_playbook(inventory, "site.yml")
    if not outcome.ok:
        raise SystemExit(f"bench: site.yml failed: {outcome.summary()} (log {outcome.log})")


def remove_sim_images(label: str) -> list[str]:
    ids = subprocess.run(
        ["docker", "images", "-q", "--filter", f"label={label}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True, check=False)
    return ids


def main(argv: list[str] | None = None) -> int:
    from simulator.api import Sim
    from simulator.plan import LABEL_IMAGE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventory/sim")
    parser.add_argument("--skip-cold", action="store_true", help="keep cached images (no cold build)")
    parser.add_argument("--json", default=str(ROOT / "bench-results.json"))
    parser.add_argument("--force", action="store_true", help="remove an existing simulated cluster first")
    args = parser.parse_args(argv)
    inventory = Path(args.inventory)
    sim = Sim(inventory)
    result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})

    running = [s.name for s in sim.status() if s.state != "absent"]
    if running and not args.force:
        print(
            f"bench: the simulated cluster of {inventory} exists ({', '.join(running)}); the bench removes "
            "and rebuilds it. Run `make down` first, or pass --force (make bench BENCH_ARGS=--force).",
            file=sys.stderr,
        )
        return 2
    sim.down()
    if not args.skip_cold:
        removed = remove_sim_images(LABEL_IMAGE)
        result.notes.append(f"cold: removed {len(removed)} cached simulator image(s)")

        def cold_up() -> None:
            sim.up()
            converge_ok(inventory)
            from ailab.demo import run_demo

            if run_demo(str(inventory)) != 0:
                raise SystemExit("bench: the demo job failed")

        timed(result, "cold make up (build + up + converge + demo job)", cold_up)
        sim.down()
    timed(result, "warm sim up (cached images)", sim.up)
    timed(result, "warm first converge", lambda: converge_ok(inventory))
    timed(result, "second site.yml run (no changes)", lambda: converge_ok(inventory))
    time.sleep(5)  # let services settle before reading memory
    for status in sim.status():
        container_id = subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", status.container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        result.ram_mib[status.name] = memory_of(container_id)
    print(render_table(result))
    text = json.dumps(asdict(result), indent=2)
    print(text)
    Path(args.json).write_text(text + "\n")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
