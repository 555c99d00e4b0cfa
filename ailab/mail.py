"""Mail the node-side tools send: :class:`Mail` (one message, its headers) and :class:`Sendmail` (the local
MTA's ``sendmail -t -oi`` interface).  Standard library only: it runs on the nodes."""

from __future__ import annotations

import datetime as dt
import email.message
import email.policy
import email.utils
import os
import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ailab.runtime import ToolError

MAIL_POLICY = email.policy.default.clone(max_line_length=998)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    sender: str
    reply_to: str = ""
    tag: str = ""  # X-Ailab-Notice header: which event and notice, for filters and tests

    def message(self, now: dt.datetime | None = None) -> email.message.EmailMessage:
        # Headers stay on one line up to RFC 5322's 998 characters: the default 78 folds a long subject
        # that starts with "[cluster]" right after "Subject:", which some mail readers show as empty.
        msg = email.message.EmailMessage(policy=MAIL_POLICY)
        msg["From"] = self.sender
        msg["To"] = self.to
        msg["Subject"] = self.subject
        msg["Date"] = email.utils.format_datetime(now or dt.datetime.now().astimezone())
        msg["Message-ID"] = email.utils.make_msgid(domain=self.sender.rpartition("@")[2].strip(">") or None)
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        if self.tag:
            msg["X-Ailab-Notice"] = self.tag
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(self.body)
        return msg


def mail_body(paragraphs: Sequence[str], width: int = 76) -> str:
    """Paragraphs wrapped for e-mail; a paragraph starting with two spaces (a command, a URL) is kept."""
    out = [p if p.startswith("  ") else textwrap.fill(p, width) for p in paragraphs]
    return "\n\n".join(out) + "\n"


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


class Sendmail:
    """Hands messages to the local MTA through the sendmail interface (postfix, exim4 and others)."""

    def __init__(self, path: str = "/usr/sbin/sendmail", timeout: float = 60):
        self.path = path
        self.timeout = timeout

    def send(self, mail: Mail) -> None:
        if not os.access(self.path, os.X_OK):
            raise ToolError(
                f"{self.path} is not executable -- fix: install an MTA (role mail) or set sendmail"
            )
        result = subprocess.run(
            [self.path, "-t", "-oi"],
            input=mail.message().as_bytes(),
            capture_output=True,
            timeout=self.timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ToolError(
                f"{self.path} refused the message to {mail.to} (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()} -- fix: check the MTA (mailq, journalctl)"
            )
