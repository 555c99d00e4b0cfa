"""The exactly-once notice machinery shared by the yearly deletion (rule 1) and maintenance windows (rule 8).

Both tools run on the front-end from a daily systemd timer: standard library only (the node package,
:mod:`ailab.nodepkg`).  Their runtime is :mod:`ailab.runtime`, their mail :mod:`ailab.mail`, their
configuration :mod:`ailab.opsconfig`.

Pure parts
    :func:`pick_notice` decides, for one recipient and one event, which notice to send today and which
    missed ones are superseded.  Operator's rule for missed days: only the *latest* due notice is sent
    ("deletion in 9 days" is useful; "deletion in two months" arriving together with it is noise), and the
    older unsent ones are recorded as ``superseded`` so they are never sent later.  Nothing is sent on or
    after the event itself.

Exactly once
    The state is a :class:`ailab.runtime.StateFile`; the mail goes through :class:`ailab.mail.Sendmail`.  A
    notice is recorded as ``sent`` right after the MTA accepted it and the state is saved before the next
    one is sent; a crash between the two can at worst send that one message twice, never skip it
    (at-least-once, once per recipient in practice).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SENT = "sent"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class ScheduledNotice:
    """One notice of an event: ``key`` identifies it in the state file (e.g. "2 months")."""

    key: str
    date: dt.date


@dataclass(frozen=True)
class NoticeDecision:
    send: ScheduledNotice | None
    superseded: tuple[ScheduledNotice, ...] = ()


def pick_notice(
    notices: Sequence[ScheduledNotice], recorded: Mapping[str, Any], today: dt.date, event: dt.date
) -> NoticeDecision:
    """Which notice one recipient gets today for one event.

    ``recorded`` maps notice keys already handled (sent or superseded) for this recipient and event.
    The latest notice whose date has come is sent unless it was handled; every older unhandled one is
    superseded.  On or after the event day nothing is sent.
    """
    if today >= event:
        return NoticeDecision(None)
    due = sorted((n for n in notices if n.date <= today), key=lambda n: n.date)
    if not due:
        return NoticeDecision(None)
    latest = due[-1]
    older = tuple(n for n in due[:-1] if n.key not in recorded)
    if latest.key in recorded:
        return NoticeDecision(None, older)
    return NoticeDecision(latest, older)
