"""Run ansible-playbook and read what it did: per-host recap and which tasks changed.

Used by `ailab converge`, the integration tests and the benchmarks.  Parsing is pure and unit-tested; the
runner streams Ansible's output to a log file and prints one progress line per play/task.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?"
    r"(?:\s+ignored=(?P<ignored>\d+))?"
)
TASK_RE = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \**$")
PLAY_RE = re.compile(r"^PLAY \[(?P<name>.*)\] \**$")
CHANGED_RE = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")


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


def parse_recap(output: str) -> dict[str, HostRecap]:
    recap: dict[str, HostRecap] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = RECAP_RE.match(line.strip())
            if match:
                values = {k: int(v) for k, v in match.groupdict().items() if k != "host" and v is not None}
                recap[match["host"]] = HostRecap(**values)
    return recap


def parse_changed_tasks(output: str) -> list[tuple[str, str]]:
    changed = []
    task = ""
    for line in output.splitlines():
        match = TASK_RE.match(line)
        if match:
            task = match["name"]
            continue
        match = CHANGED_RE.match(line)
        if match:
            changed.append((task, match["host"]))
    return changed


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    # The ansible-playbook next to this interpreter (the project venv) must see the ailab package.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


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
    log = log or ROOT / ".cache" / "logs" / f"{Path(playbook).stem}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    lines: list[str] = []
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            lines.append(line)
            if progress:
                stripped = line.rstrip()
                play, task = PLAY_RE.match(stripped), TASK_RE.match(stripped)
                elapsed = time.monotonic() - start
                if play:
                    print(f"  [{elapsed:5.0f}s] play: {play['name']}", flush=True)
                elif task and os.environ.get("AILAB_VERBOSE_PROGRESS"):
                    print(f"  [{elapsed:5.0f}s]   task: {task['name']}", flush=True)
                elif stripped.startswith(("fatal:", "failed:")) or stripped.startswith("[ERROR]"):
                    print(f"  [{elapsed:5.0f}s]   {stripped[:300]}", flush=True)
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                break
        returncode = proc.wait()
    output = "".join(lines)
    return PlaybookResult(
        returncode=returncode,
        seconds=time.monotonic() - start,
        recap=parse_recap(output),
        changed_tasks=parse_changed_tasks(output),
        output=output,
        log=log,
    )
