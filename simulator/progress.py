"""Step names and elapsed seconds for the long parts (image builds, boots), on stderr."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from simulator.errors import SimError


class Progress:
    def __init__(self, out: TextIO | None = None, heartbeat: float = 15.0):
        self.out = out if out is not None else sys.stderr
        self.heartbeat = heartbeat
        self.timings: dict[str, float] = {}

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.say(f"==> {name}")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.say(f"    {name}: failed after {time.monotonic() - start:.1f}s")
            raise
        elapsed = time.monotonic() - start
        self.timings[name] = elapsed
        self.say(f"    {name}: done in {elapsed:.1f}s")

    def run_logged(
        self, pipeline: Sequence[Sequence[str]], log: Path, env: dict[str, str] | None = None
    ) -> None:
        """Run ``cmd1 | cmd2 | ...`` with all their output in ``log``; every ``heartbeat`` seconds print the
        elapsed time and the log's last line.  A failure raises SimError quoting the log's tail."""
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with log.open("w") as sink:
            procs: list[subprocess.Popen[bytes]] = []
            for i, cmd in enumerate(pipeline):
                last = i == len(pipeline) - 1
                stdin = procs[-1].stdout if procs else subprocess.DEVNULL
                proc = subprocess.Popen(
                    list(cmd), stdin=stdin, stdout=sink if last else subprocess.PIPE, stderr=sink, env=env
                )
                if procs and procs[-1].stdout is not None:
                    procs[-1].stdout.close()  # the next process owns the pipe now
                procs.append(proc)
            next_beat = start + self.heartbeat
            while any(p.poll() is None for p in procs):
                time.sleep(0.5)
                if time.monotonic() >= next_beat:
                    next_beat += self.heartbeat
                    self.say(f"    [{time.monotonic() - start:5.0f}s] {last_line(log)}")
        failed = [(cmd, p.returncode) for cmd, p in zip(pipeline, procs, strict=True) if p.returncode != 0]
        if failed:
            cmd, code = failed[0]
            tail = "\n".join("    " + line for line in tail_lines(log, 25))
            what = " ".join(cmd[:2])
            raise SimError(
                f"{what} failed (exit {code}); last lines of {log}:\n{tail}",
                f"read {log}; the build starts over on the next run",
            )


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][-count:]


def last_line(path: Path) -> str:
    lines = tail_lines(path, 1)
    return lines[0][:150] if lines else "(no output yet)"
