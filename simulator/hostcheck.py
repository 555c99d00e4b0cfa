"""Kernel limits of the machine that many systemd containers need.

Every container runs its own systemd, and all of them are root of the same user namespace, so they share
one per-user inotify budget.  At Linux's default of 128 instances a few clusters exhaust it and units fail
with ``Result: resources`` (path units, journald, logind, ...).  ``up`` raises the limits when they are
lower than these (it never lowers them), or says how to.
"""

from __future__ import annotations

from pathlib import Path

from simulator.progress import Progress

MINIMUMS = {
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_user_watches": 524288,
}


def sysctl_path(name: str, root: Path = Path("/proc/sys")) -> Path:
    return root / name.replace(".", "/")


def too_low(current: dict[str, int], minimums: dict[str, int] = MINIMUMS) -> dict[str, int]:
    """The settings to raise: name -> wanted value (unknown settings are left alone)."""
    return {name: want for name, want in minimums.items() if name in current and current[name] < want}


def ensure_limits(progress: Progress, root: Path = Path("/proc/sys")) -> list[str]:
    """Raise what is too low; return warnings for what could not be raised."""
    current = {}
    for name in MINIMUMS:
        try:
            current[name] = int(sysctl_path(name, root).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    warnings = []
    for name, want in too_low(current).items():
        try:
            sysctl_path(name, root).write_text(f"{want}\n")
        except OSError as exc:
            warnings.append(
                f"{name} is {current[name]} (systemd units in the containers may fail with 'resources'); "
                f"could not raise it ({exc.strerror}): run `sudo sysctl -w {name}={want}`"
            )
            continue
        progress.say(f"==> raised {name} from {current[name]} to {want} (many systemd containers share it)")
    for warning in warnings:
        progress.say(f"warning: {warning}")
    return warnings
