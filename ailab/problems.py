"""Problems found in an inventory: each names where, which field, what is wrong and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    where: str  # e.g. "host a256-t4-01", "group_vars/all", "partition t4"
    field: str  # e.g. "ailab_hardware.gpu.count"
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message} -- fix: {self.fix}"


class InventoryError(Exception):
    """Raised when an inventory cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
