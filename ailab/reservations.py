"""Maintenance windows as Slurm has them: MAINT reservations read from ``scontrol -o show reservation``.

Shared by the maintenance tool (:mod:`ailab.maintenance`, which creates them and mails the notices), the
login message (:mod:`ailab.nodetools.motd`) and the students' status page (:mod:`ailab.nodetools.statuspage`),
which show the next one.  Pure and standard library only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A maintenance window: one MAINT reservation.  Times are naive, in the cluster's local time."""

    name: str
    start: dt.datetime
    end: dt.datetime
    nodes: str = "ALL"
    flags: tuple[str, ...] = ("MAINT", "IGNORE_JOBS")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.start:%Y-%m-%dT%H:%M}"

    @property
    def span(self) -> str:
        if self.start.date() == self.end.date():
            return f"{self.start:%A %-d %B %Y}, {self.start:%H:%M}-{self.end:%H:%M}"
        return f"{self.start:%A %-d %B %Y %H:%M} - {self.end:%A %-d %B %Y %H:%M}"


def parse_reservations(text: str) -> list[Window]:
    """MAINT reservations from ``scontrol -o show reservation`` (one reservation per line), by start."""
    windows = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        flags = tuple(f for f in fields.get("Flags", "").upper().split(",") if f)
        if "MAINT" not in flags:
            continue
        try:
            start = dt.datetime.fromisoformat(fields["StartTime"])
            end = dt.datetime.fromisoformat(fields["EndTime"])
        except (KeyError, ValueError):
            continue
        windows.append(Window(fields.get("ReservationName", "?"), start, end, fields.get("Nodes", ""), flags))
    return sorted(windows, key=lambda w: (w.start, w.name))


def upcoming_windows(windows: Sequence[Window], now: dt.datetime) -> list[Window]:
    """Windows that have not ended yet, earliest first (what the login message shows)."""
    return sorted((w for w in windows if w.end > now), key=lambda w: w.start)
