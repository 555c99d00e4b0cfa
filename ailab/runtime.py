"""The runtime of the node-side operations tools: errors, commands, the clock, files written safely.

Standard library only: it runs on the nodes (the node package, :mod:`ailab.nodepkg`).

- :class:`ToolError` is a problem the operator must fix (its message names the field or file and the fix);
  :func:`tool_main` turns it into one ``error:`` line and exit code 2.
- :func:`run_command` runs a system command and turns every way it can fail into a ToolError.
- :func:`parse_now` reads ``--now``/``AILAB_NOW``: a fixed clock for tests.
- :func:`atomic_file` and :func:`write_atomic` (temporary file, fsync, rename, directory fsync) and
  :class:`StateFile` (a JSON state saved atomically, guarded by ``flock``); :func:`read_json_config` reads
  a role-rendered JSON file with a fix hint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

DATE_ENV = "AILAB_NOW"  # YYYY-MM-DD[THH:MM]: a fixed clock for tests (same as --now)


class ToolError(Exception):
    """A problem the operator must fix; the message names the field or file and the fix."""

    exit_code = 2


def shown(argv: Sequence[str], most: int = 8) -> str:
    """A command line for an error message, without the hundreds of names a bulk call carries."""
    if len(argv) <= most:
        return shlex.join(argv)
    return f"{shlex.join(argv[: most - 2])} ... ({len(argv) - most + 2} more arguments)"


def run_command(
    run: Callable[..., subprocess.CompletedProcess],
    argv: Sequence[str],
    *,
    ok: Sequence[int] = (0,),
    timeout: float = 120,
    fix: str = "",
) -> subprocess.CompletedProcess:
    """Run a system command for a tool (``run`` is subprocess.run, or a test's stand-in).  That it cannot
    start, times out or exits with a code not in ``ok`` is a ToolError naming the command, what it said
    and, when given, the ``fix``."""
    hint = f" -- fix: {fix}" if fix else ""
    try:
        result = run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{shown(argv)}: {exc}{hint}") from None
    if result.returncode not in ok:
        said = (result.stderr or result.stdout or "").strip()
        raise ToolError(f"{shown(argv)} exited {result.returncode}: {said}{hint}")
    return result


def tool_main(body: Callable[[], int]) -> int:
    """A node-side command's ``main``: ``body``'s exit code, or a ToolError printed as one ``error:`` line
    (the message names the fix) and its exit code."""
    try:
        return body()
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def parse_now(text: str | None, tz: dt.tzinfo | None = None) -> dt.datetime:
    """``--now``/``AILAB_NOW`` (YYYY-MM-DD, or YYYY-MM-DDTHH:MM) as an aware datetime; None: the clock."""
    text = text or os.environ.get(DATE_ENV) or None
    if text is None:
        return dt.datetime.now(tz).astimezone(tz)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"--now/{DATE_ENV}: {text!r} is not a date -- fix: write YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz) if tz is not None else value.astimezone()
    return value


# State -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file for writing that becomes ``path`` only when the block ends without an exception: written
    as a hidden temporary file in the same directory, fsynced, renamed, the directory fsynced.  On an
    exception the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` via a temporary file in the same directory, fsync file and directory, rename."""
    with atomic_file(path, mode) as handle:
        handle.write(data)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateFile:
    """A JSON document on disk, saved atomically; ``locked()`` keeps two runs from interleaving."""

    def __init__(self, path: str | os.PathLike[str], empty: Mapping[str, Any]):
        self.path = Path(path)
        self.empty = dict(empty)

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return json.loads(json.dumps(self.empty))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"state file {self.path} is not valid JSON ({exc}) -- fix: restore it from backup or move it "
                "aside (every notice would then be considered unsent)"
            ) from None
        if not isinstance(data, dict) or data.get("version") != self.empty.get("version"):
            raise ToolError(
                f"state file {self.path} has an unknown format (version {data.get('version')!r} "
                f"if a mapping) -- fix: use the tool version that wrote it"
            )
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ToolError(
                    f"another run holds {self.path}.lock -- fix: wait for it to finish (systemctl status)"
                ) from None
            yield


def read_json_config(path: str | os.PathLike[str], fix: str) -> Any:
    """The JSON a role rendered at ``path``; a missing or broken file is a ToolError ending in ``fix``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror} -- fix: {fix}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path} is not valid JSON ({exc}) -- fix: {fix}") from None
