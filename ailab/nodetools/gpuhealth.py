"""Slurm HealthCheckProgram of an AI-LAB GPU node (installed by role slurm_compute).

Compares the GPUs ``nvidia-smi`` reports with what the inventory says the node has
(/etc/slurm/gpu-health.json, rendered from ailab_hardware.gpu) and

* drains the node with a reason naming the GPU, e.g.
  ``gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1``;
* resumes it once the GPUs are all back, but only if the drain reason is its own (it starts with
  ``gpu-health:``): a node an operator drained stays drained.

slurmd runs it when it starts and every HealthCheckInterval.  ``--dry-run`` prints the verdict and the
action without changing anything.  Exit status 0 once it has acted (slurmd only logs other values), 1 when
it could not read or update the node.  Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass

CONFIG = "/etc/slurm/gpu-health.json"
QUERY = ["nvidia-smi", "--query-gpu=index,name,pci.bus_id", "--format=csv,noheader"]
TIMEOUT = 20  # seconds; slurmd kills a health check after 60
HANDLE_ERROR = re.compile(r"Unable to determine the device handle for GPU ([0-9A-Fa-f:.]+)")


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str  # "" when healthy; otherwise the drain reason, prefix included
    found: int


def evaluate(expected: dict, returncode: int | None, stdout: str, stderr: str) -> Verdict:
    """The node's GPU health from one ``nvidia-smi --query-gpu=index,name,pci.bus_id`` run.

    ``returncode`` None means nvidia-smi could not be run at all (not installed, or it hung).
    """
    prefix = expected.get("reason_prefix", "gpu-health:")
    count = int(expected["count"])
    product = str(expected["product"])

    def summary_of(found: int) -> str:
        return f"expected {count}x {expected['model']}, found {found}"

    if returncode is None:
        return Verdict(False, f"{prefix} nvidia-smi did not run ({stderr.strip()}): {summary_of(0)}", 0)

    present: dict[int, str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and cells[0].isdigit():
            present[int(cells[0])] = cells[1]
    found = len(present)
    summary = summary_of(found)

    if not present and returncode != 0:
        detail = (stdout.strip() or stderr.strip() or "no output").splitlines()[0][:120]
        return Verdict(False, f"{prefix} nvidia-smi failed (exit {returncode}: {detail}): {summary}", 0)

    wrong = sorted(i for i, name in present.items() if product.lower() not in name.lower())
    if wrong:
        i = wrong[0]
        return Verdict(False, f"{prefix} GPU {i} is {present[i]}, not {product}: {summary}", found)
    missing = [i for i in range(count) if i not in present]
    if missing:
        which = ",".join(str(i) for i in missing)
        noun = "GPU" if len(missing) == 1 else "GPUs"
        return Verdict(False, f"{prefix} {noun} {which} ({product}) missing: {summary}", found)
    lost = HANDLE_ERROR.findall(stderr)
    if lost:  # more GPUs than the inventory knows, and one of them failed: still a broken node
        return Verdict(False, f"{prefix} GPU at {lost[0]} ({product}) failed: {summary}", found)
    return Verdict(True, "", found)


def parse_node(text: str) -> tuple[set[str], str]:
    """(state flags, reason) from ``scontrol show node -o NAME``; the reason without its [user@time]."""
    state = re.search(r"\bState=(\S+)", text)
    flags = set(state.group(1).upper().replace("*", "").split("+")) if state else set()
    reason = re.search(r"\bReason=(.*?)(?:\s+\[[^\]]*@[^\]]*\])?\s*$", text.strip())
    return flags, reason.group(1).strip() if reason else ""


def decide(verdict: Verdict, flags: set[str], reason: str, prefix: str) -> str:
    """``drain``, ``resume`` or ``none`` for the node, given the verdict and its Slurm state."""
    drained = bool(flags & {"DRAIN", "DRAINED", "DRAINING"})
    ours = reason.startswith(prefix)
    if not verdict.healthy:
        if not drained:
            return "drain"
        if ours and reason != verdict.reason:
            return "drain"  # e.g. a second GPU failed: keep the reason current
        return "none"  # already drained, by us with this reason or by an operator
    if drained and ours:
        return "resume"
    return "none"


def run(cmd: list[str], timeout: int = TIMEOUT) -> tuple[int | None, str, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return None, "", f"{cmd[0]} not found"
    except subprocess.TimeoutExpired:
        return None, "", f"{cmd[0]} timed out after {timeout}s"
    return done.returncode, done.stdout, done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--dry-run", action="store_true", help="print the verdict, change nothing")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        expected = json.load(fh)
    node = expected["node"]
    prefix = expected.get("reason_prefix", "gpu-health:")

    verdict = evaluate(expected, *run(QUERY))
    rc, out, err = run(["scontrol", "show", "node", "-o", node], timeout=10)
    if rc != 0:
        print(f"ailab-gpu-health: cannot read node {node}: {err.strip()}", file=sys.stderr)
        return 1
    flags, reason = parse_node(out)
    action = decide(verdict, flags, reason, prefix)
    print(f"{node}: {'healthy' if verdict.healthy else verdict.reason}; action: {action}")
    if args.dry_run or action == "none":
        return 0
    update = ["scontrol", "update", f"nodename={node}"]
    update += ["state=drain", f"reason={verdict.reason}"] if action == "drain" else ["state=resume"]
    rc, _, err = run(update, timeout=10)
    if rc != 0:
        print(f"ailab-gpu-health: {' '.join(update)} failed: {err.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
