"""A thin wrapper around the ``docker`` command line (no SDK): every call is one subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from simulator.errors import ENSURE_DOCKER, SimError


class DockerError(SimError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]):
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        tail = detail[-1] if detail else f"exit status {result.returncode}"
        super().__init__(f"docker {' '.join(args[:3])} ... failed: {tail}")
        self.result = result


class Docker:
    def __init__(self, binary: str = "docker"):
        self.binary = binary
        self._checked = False

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input: str | bytes | None = None,
        timeout: float | None = 120,
        capture: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        self.ensure_available()
        return self._run(args, check=check, input=input, timeout=timeout, capture=capture)

    def _run(self, args, *, check=True, input=None, timeout=120.0, capture=True):
        text = not isinstance(input, bytes)
        result = subprocess.run(
            [self.binary, *args],
            input=input,
            capture_output=capture,
            text=text,
            timeout=timeout,
            check=False,
        )
        if not text:  # bytes in: decode what came back so callers always see str
            result = subprocess.CompletedProcess(
                result.args,
                result.returncode,
                (result.stdout or b"").decode(errors="replace"),
                (result.stderr or b"").decode(errors="replace"),
            )
        if check and result.returncode != 0:
            raise DockerError(list(args), result)
        return result

    def ensure_available(self) -> str:
        """The server version; a clear error with the fix when there is no reachable Docker Engine."""
        if self._checked:
            return ""
        if shutil.which(self.binary) is None:
            raise SimError(f"the {self.binary!r} command is not installed", ENSURE_DOCKER)
        try:
            result = self._run(["version", "--format", "{{.Server.Version}}"], check=False, timeout=20)
        except subprocess.TimeoutExpired:
            raise SimError(
                "the Docker Engine does not answer (docker version timed out)", ENSURE_DOCKER
            ) from None
        if result.returncode != 0 or not result.stdout.strip():
            reason = (result.stderr.strip().splitlines() or ["no server version"])[-1]
            raise SimError(f"no Docker Engine is reachable: {reason}", ENSURE_DOCKER)
        self._checked = True
        return result.stdout.strip()

    # Queries ---------------------------------------------------------------------------------------

    def inspect(self, kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """``docker <kind> inspect`` of the names that exist (missing ones are left out)."""
        if not names:
            return []
        result = self.run([kind, "inspect", *names], check=False)
        try:
            return json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return []

    def ids(self, kind: str, label_filter: str) -> list[str]:
        """Names of containers/networks/volumes carrying a label (``kind``: container, network, volume)."""
        if kind == "container":
            args = ["ps", "-a", "--filter", label_filter, "--format", "{{.Names}}"]
        elif kind == "network":
            args = ["network", "ls", "--filter", label_filter, "--format", "{{.Name}}"]
        else:
            args = ["volume", "ls", "--filter", label_filter, "--format", "{{.Name}}"]
        return sorted(line for line in self.run(args).stdout.splitlines() if line.strip())

    def image_exists(self, tag: str) -> bool:
        return self.run(["image", "inspect", "--format", "{{.Id}}", tag], check=False).returncode == 0
