"""Clean-up of the cgroups Slurm leaves on the machine.

The containers share the host's cgroup namespace (``--cgroupns=host``, cgroups v1), so slurmd creates its
hierarchy at the top of every controller of the *host*: ``/sys/fs/cgroup/<controller>/slurm_<node>/...``.
Removing the container does not remove those; ``down`` does, for this inventory's node names only.
(Docker itself removes ``/sys/fs/cgroup/<controller>/docker/<id>``, systemd's slices inside included.)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def slurm_dir_name(node: str) -> str:
    return f"slurm_{node}"


def leftover_roots(root: Path, nodes: Iterable[str]) -> list[Path]:
    """``<root>/<controller>/slurm_<node>`` that exist, one per real directory (controllers mounted
    together and their symlinks, e.g. ``cpu,cpuacct`` and ``cpu``, are listed once)."""
    names = {slurm_dir_name(n) for n in nodes}
    seen: set[Path] = set()
    out = []
    try:
        controllers = sorted(root.iterdir())
    except OSError:
        return []
    for controller in controllers:
        if controller.is_symlink():  # e.g. cpu -> cpu,cpuacct: the real directory is listed too
            continue
        for name in sorted(names):
            candidate = controller / name
            if not candidate.is_dir():
                continue
            real = candidate.resolve()
            if real not in seen:
                seen.add(real)
                out.append(candidate)
    return out


def bottom_up(top: Path) -> list[Path]:
    """Every directory under ``top`` and ``top`` itself, deepest first (the only order rmdir accepts)."""
    dirs = [Path(current) for current, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


@dataclass
class CleanupReport:
    removed: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)  # still has tasks: a process of a job lives on


def remove_leftovers(nodes: Iterable[str], root: Path = CGROUP_ROOT) -> CleanupReport:
    """rmdir the Slurm cgroups of ``nodes``, bottom-up.  A cgroup that still has tasks (EBUSY) is kept
    and reported, with its parents."""
    report = CleanupReport()
    for top in leftover_roots(root, nodes):
        for directory in bottom_up(top):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    report.busy.append(directory)
                    continue
                raise
            report.removed.append(directory)
    return report
