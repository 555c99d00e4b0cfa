"""The mount table and mounts that may hang: what the node-side tools check before they touch a file system.

Standard library only: part of the node package (ailab/nodepkg.py) with the operations and backup tools.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from ailab.runtime import ToolError

PROBE_TIMEOUT = 20.0  # seconds a stat + listdir of a mount may take before a tool refuses


def unescape_mount_path(text: str) -> str:
    """Mount points in /proc/self/mountinfo and /proc/mounts escape space, tab, newline and backslash
    as octal (``\\040``)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def mount_type(mount_table: str, path: str) -> str | None:
    """The file system type of the mount on top at ``path`` (exactly there, not above it), or None.

    ``mount_table`` is the text of /proc/self/mountinfo (fields ``... mount-point ... - fstype source``)
    or of /proc/mounts (``source mount-point fstype options 0 0``); later lines are mounted over earlier
    ones, so the last entry for ``path`` wins (a directory bind-mounted over CephFS is not CephFS)."""
    found = None
    for line in mount_table.splitlines():
        fields = line.split()
        if "-" in fields[6:]:
            sep = fields.index("-", 6)
            if len(fields) > sep + 1 and unescape_mount_path(fields[4]) == path:
                found = fields[sep + 1]
        elif len(fields) >= 3 and unescape_mount_path(fields[1]) == path:
            found = fields[2]
    return found


def mount_points(mount_table: str) -> list[str]:
    """Every mount point in ``mount_table`` (/proc/self/mountinfo or /proc/mounts text), in table order."""
    out = []
    for line in mount_table.splitlines():
        fields = line.split()
        if "-" in fields[6:]:
            out.append(unescape_mount_path(fields[4]))
        elif len(fields) >= 3:
            out.append(unescape_mount_path(fields[1]))
    return out


def containing_mount(mount_table: str, path: str) -> str:
    """The mount point of the file system ``path`` is on: the longest mount point that is ``path`` or one
    of its parents ("/" when nothing else is).  ``path`` must be absolute and normalized."""
    best = "/"
    for point in mount_points(mount_table):
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


def read_mount_table() -> str:
    for path in ("/proc/self/mountinfo", "/proc/mounts"):
        with contextlib.suppress(OSError):
            return Path(path).read_text()
    raise ToolError("cannot read /proc/self/mountinfo or /proc/mounts -- fix: mount /proc")


def probe_directory(path: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a stat and a listing of ``path`` answer within ``timeout`` seconds, else why not.

    They run in a child process: a stat on a hung CephFS client can sleep uninterruptibly, and a child
    left behind (it ends when the mount answers or is aborted) does not keep this run from refusing."""
    code = "import os, sys; os.stat(sys.argv[1]); os.listdir(sys.argv[1])"
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot start the probe ({exc})"
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # no wait(): a child stuck in the mount ends when the mount answers
        return f"a stat and listing of it did not answer within {timeout:.0f}s (hung mount?)"
    if child.returncode != 0:
        lines = (err or "").strip().splitlines()
        return f"a stat and listing of it failed: {lines[-1] if lines else f'exit {child.returncode}'}"
    return None
