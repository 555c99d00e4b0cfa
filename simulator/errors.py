"""The one error the simulator raises for anything a user can fix."""

from __future__ import annotations


class SimError(Exception):
    """What went wrong and how to fix it.  ``exit_code`` is what the CLI returns (2: bad input)."""

    def __init__(self, message: str, fix: str = "", exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


ENSURE_DOCKER = "sudo scripts/ensure-docker.sh  (installs docker.io if missing and starts dockerd)"
