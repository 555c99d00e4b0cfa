"""Helpers of the operations tests (rules 1 and 8): read delivered mail, run the front-end's tools with a
test copy of their configuration (own state files, a unique cluster name in every subject)."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import mailbox as mailbox_module
import shlex
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ailab.bench import scratch_ops_config

TOOLS_CONFIG = "/etc/ailab/ops.json"


def mailbox(sim, node: str, user: str) -> list[email.message.Message]:
    """Every message in ``user``'s mbox on ``node`` (postfix local delivery: /var/mail/<user>), parsed as a
    mail reader does (folded headers unfolded, encoded words decoded)."""
    text = sim.exec(node, f"cat /var/mail/{shlex.quote(user)} 2>/dev/null || true").stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mbox"
        path.write_text(text)
        box = mailbox_module.mbox(path, create=False)
        try:
            return [
                email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                for key in box.iterkeys()
            ]
        finally:
            box.close()


def wait_for_mail(
    sim,
    node: str,
    user: str,
    match: Callable[[email.message.Message], bool],
    count: int,
    timeout: float = 60,
) -> list[email.message.Message]:
    """The messages in ``user``'s mailbox that ``match``, once there are ``count`` (or when time is up:
    the test then sees how many arrived).  Waits a moment more to catch duplicates."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in mailbox(sim, node, user) if match(m)]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(2)
    if len(found) == count:
        time.sleep(2)  # anything more (a duplicate) would be in the queue by now
        sim.exec(node, "postqueue -f >/dev/null 2>&1 || true", check=False)
        found = [m for m in mailbox(sim, node, user) if match(m)]
    return found


@dataclass
class ToolRun:
    """The front-end's tools run against a test configuration in ``directory``."""

    sim: Any
    node: str
    directory: str
    cluster: str  # unique per test: every subject starts with [cluster]

    @property
    def config(self) -> str:
        return f"{self.directory}/ops.json"

    def run(self, tool: str, *args: str, now: str | None = None, check: bool = True):
        argv = [f"/usr/local/sbin/{tool}", "--config", self.config]
        if now:
            argv += ["--now", now]
        return self.sim.exec(self.node, shlex.join([*argv, *args]), check=check)

    def ours(self, message: email.message.Message) -> bool:
        return str(message.get("Subject", "")).startswith(f"[{self.cluster}]")

    def tags(self, sim_user: str, expected: int, timeout: float = 60) -> list[str]:
        """X-Ailab-Notice tags of this test's messages to ``sim_user``, after ``expected`` arrived."""
        found = wait_for_mail(self.sim, self.node, sim_user, self.ours, expected, timeout)
        return [str(m["X-Ailab-Notice"]) for m in found]

    def cleanup(self) -> None:
        self.sim.exec(self.node, f"rm -rf {shlex.quote(self.directory)}", check=False)


def tool_run(sim, node: str, change: Callable[[dict[str, Any]], None] | None = None) -> ToolRun:
    """Copy the deployed /etc/ailab/ops.json to a fresh directory with its own state files and a unique
    cluster name; ``change`` may edit it further (users, manifest directory)."""
    tag = uuid.uuid4().hex[:8]
    directory = f"/root/ailab-test-{tag}"
    deployed = json.loads(sim.exec(node, f"cat {TOOLS_CONFIG}").stdout)
    data = scratch_ops_config(deployed, directory, f"test-{tag}")
    if change:
        change(data)
    sim.exec(node, f"mkdir -p {directory} && cat > {directory}/ops.json", input=json.dumps(data, indent=2))
    return ToolRun(sim, node, directory, data["cluster"])
