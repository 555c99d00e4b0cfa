"""Run ansible-playbook and read what it did: per-host recap and which tasks changed.

Used by `ailab converge`, the integration tests and the benchmarks.  What the run did comes from the
project's event callback (plugins/callback/ailab_events.py: JSON lines in the file named by AILAB_EVENTS),
read by the pure functions below, not from Ansible's screen output; that output goes to a log file for
people, and one progress line per play (and failure) is printed from the events as they arrive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_ENV = "AILAB_EVENTS"


@dataclass(frozen=True)
class HostRecap:
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class PlaybookResult:
    returncode: int
    seconds: float
    recap: dict[str, HostRecap]
    changed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (task, host)
    output: str = ""
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(r.failed == 0 and r.unreachable == 0 for r in self.recap.values())

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.recap.values())

    def summary(self) -> str:
        hosts = len(self.recap)
        return (
            f"rc={self.returncode} {self.seconds:.0f}s hosts={hosts} changed={self.changed} "
            f"failed={sum(r.failed for r in self.recap.values())} "
            f"unreachable={sum(r.unreachable for r in self.recap.values())}"
        )


def recap_from_events(events: Iterable[dict[str, Any]]) -> dict[str, HostRecap]:
    """Each host's recap from the run's ``stats`` event (none: the run ended before its recap)."""
    recap: dict[str, HostRecap] = {}
    for event in events:
        if event.get("event") == "stats":
            recap = {host: HostRecap(**counts) for host, counts in event["hosts"].items()}
    return recap


def changed_tasks_from_events(events: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, host) of every result that changed something, in order."""
    return [(e["task"], e["host"]) for e in events if e.get("event") == "result" and e["status"] == "changed"]


class EventReader:
    """Reads the JSON lines an ``ailab_events`` callback appends to ``path``, as they arrive."""

    def __init__(self, path: Path):
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._offset = 0

    def poll(self) -> list[dict[str, Any]]:
        """The events written since the last poll (complete lines only)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        new = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
        self.events += new
        return new


def progress_line(event: dict[str, Any], elapsed: float, tasks: bool = False) -> str | None:
    """The line ``ailab converge`` prints for ``event``: plays, failures (and tasks when asked)."""
    kind = event.get("event")
    if kind == "play":
        return f"  [{elapsed:5.0f}s] play: {event['name']}"
    if kind == "task" and tasks:
        return f"  [{elapsed:5.0f}s]   task: {event['name']}"
    if kind == "result" and event["status"] in ("failed", "unreachable") and not event.get("ignored"):
        why = str(event.get("msg") or event.get("stderr") or "")[:300]
        return f"  [{elapsed:5.0f}s]   {event['status']}: [{event['host']}] {event['task']}: {why}"
    return None


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    # The ansible-playbook next to this interpreter (the project venv) must see the ailab package.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def new_log(directory: Path, stem: str) -> Path:
    """``directory/<stem>.log``, or ``<stem>-2.log``, ... when another run (e.g. the other test worker's, in
    the same second) has it: the name is claimed by creating the file."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = directory / (f"{stem}.log" if n == 1 else f"{stem}-{n}.log")
        try:
            path.touch(exist_ok=False)
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"no free log name for {stem} in {directory}")


def run_playbook(
    inventory: str | os.PathLike[str],
    playbook: str | os.PathLike[str] = "site.yml",
    extra_args: Sequence[str] = (),
    *,
    log: Path | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> PlaybookResult:
    """Run a playbook from the project root; stream its output into ``log``; print progress lines."""
    exe = Path(sys.executable).parent / "ansible-playbook"
    cmd = [str(exe) if exe.exists() else "ansible-playbook", "-i", str(inventory), str(playbook), *extra_args]
    log = log or new_log(ROOT / ".cache" / "logs", f"{Path(playbook).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    log.parent.mkdir(parents=True, exist_ok=True)
    events = EventReader(log.with_suffix(".events.jsonl"))
    events.path.unlink(missing_ok=True)
    env = {**ansible_env(), EVENTS_ENV: str(events.path)}
    show_tasks = bool(os.environ.get("AILAB_VERBOSE_PROGRESS"))
    start = time.monotonic()
    lines: list[str] = []
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            lines.append(line)
            if progress:
                elapsed = time.monotonic() - start
                shown = [progress_line(e, elapsed, show_tasks) for e in events.poll()]
                # Ansible's own errors (syntax, inventory) come before any event: shown from its output.
                if line.startswith("[ERROR]"):
                    shown.append(f"  [{elapsed:5.0f}s]   {line.rstrip()[:300]}")
                for text in shown:
                    if text:
                        print(text, flush=True)
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                break
        returncode = proc.wait()
    events.poll()
    return PlaybookResult(
        returncode=returncode,
        seconds=time.monotonic() - start,
        recap=recap_from_events(events.events),
        changed_tasks=changed_tasks_from_events(events.events),
        output="".join(lines),
        log=log,
    )
