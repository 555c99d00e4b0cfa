"""The exactly-once notice machinery shared by the yearly deletion (rule 1) and maintenance windows (rule 8).

Both tools run on the front-end from a daily systemd timer, so this module only uses the standard library
(it is copied there together with :mod:`ailab.model`, see roles/retention).

Pure parts
    :func:`pick_notice` decides, for one recipient and one event, which notice to send today and which
    missed ones are superseded.  Operator's rule for missed days: only the *latest* due notice is sent
    ("deletion in 9 days" is useful; "deletion in two months" arriving together with it is noise), and the
    older unsent ones are recorded as ``superseded`` so they are never sent later.  Nothing is sent on or
    after the event itself.

I/O parts
    :class:`StateFile` (JSON, written atomically and fsynced, guarded by ``flock``), :class:`Mail` and
    :class:`Sendmail` (the MTA's ``sendmail -t -oi`` interface).  A notice is recorded as ``sent`` right
    after the MTA accepted it and the state is saved before the next one is sent; a crash between the two
    can at worst send that one message twice, never skip it (at-least-once, once per recipient in practice).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.message
import email.policy
import email.utils
import fcntl
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ailab.model import USERNAME_RE, DeletionPolicy, NoticeOffset

if TYPE_CHECKING:
    from ailab.model import Cluster

SENT = "sent"
SUPERSEDED = "superseded"
DATE_ENV = "AILAB_NOW"  # YYYY-MM-DD[THH:MM]: a fixed clock for tests (same as --now)


class ToolError(Exception):
    """A problem the operator must fix; the message names the field or file and the fix."""

    exit_code = 2


def shown(argv: Sequence[str], most: int = 8) -> str:
    """A command line for an error message, without the hundreds of names a bulk call carries."""
    if len(argv) <= most:
        return shlex.join(argv)
    return f"{shlex.join(argv[: most - 2])} ... ({len(argv) - most + 2} more arguments)"


def run_command(
    run: Callable[..., subprocess.CompletedProcess],
    argv: Sequence[str],
    *,
    ok: Sequence[int] = (0,),
    timeout: float = 120,
    fix: str = "",
) -> subprocess.CompletedProcess:
    """Run a system command for a tool (``run`` is subprocess.run, or a test's stand-in).  That it cannot
    start, times out or exits with a code not in ``ok`` is a ToolError naming the command, what it said
    and, when given, the ``fix``."""
    hint = f" -- fix: {fix}" if fix else ""
    try:
        result = run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{shown(argv)}: {exc}{hint}") from None
    if result.returncode not in ok:
        said = (result.stderr or result.stdout or "").strip()
        raise ToolError(f"{shown(argv)} exited {result.returncode}: {said}{hint}")
    return result


def tool_main(body: Callable[[], int]) -> int:
    """A node-side command's ``main``: ``body``'s exit code, or a ToolError printed as one ``error:`` line
    (the message names the fix) and its exit code."""
    try:
        return body()
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


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


def parse_now(text: str | None, tz: dt.tzinfo | None = None) -> dt.datetime:
    """``--now``/``AILAB_NOW`` (YYYY-MM-DD, or YYYY-MM-DDTHH:MM) as an aware datetime; None: the clock."""
    text = text or os.environ.get(DATE_ENV) or None
    if text is None:
        return dt.datetime.now(tz).astimezone(tz)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"--now/{DATE_ENV}: {text!r} is not a date -- fix: write YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz) if tz is not None else value.astimezone()
    return value


# State -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file for writing that becomes ``path`` only when the block ends without an exception: written
    as a hidden temporary file in the same directory, fsynced, renamed, the directory fsynced.  On an
    exception the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` via a temporary file in the same directory, fsync file and directory, rename."""
    with atomic_file(path, mode) as handle:
        handle.write(data)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateFile:
    """A JSON document on disk, saved atomically; ``locked()`` keeps two runs from interleaving."""

    def __init__(self, path: str | os.PathLike[str], empty: Mapping[str, Any]):
        self.path = Path(path)
        self.empty = dict(empty)

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return json.loads(json.dumps(self.empty))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"state file {self.path} is not valid JSON ({exc}) -- fix: restore it from backup or move it "
                "aside (every notice would then be considered unsent)"
            ) from None
        if not isinstance(data, dict) or data.get("version") != self.empty.get("version"):
            raise ToolError(
                f"state file {self.path} has an unknown format (version {data.get('version')!r} "
                f"if a mapping) -- fix: use the tool version that wrote it"
            )
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ToolError(
                    f"another run holds {self.path}.lock -- fix: wait for it to finish (systemctl status)"
                ) from None
            yield


# Mail ------------------------------------------------------------------------------------------------


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


# Configuration ---------------------------------------------------------------------------------------
# One JSON document on the front-end (/etc/ailab/ops.json), rendered by role `retention` from the model with
# :func:`ops_config_data`, read by both tools with :func:`parse_ops_config`.


@dataclass(frozen=True)
class Person:
    """A user as the notice tools see them."""

    name: str
    uid: int
    email: str
    full_name: str = ""
    extension_until: dt.date | None = None
    admin: bool = False
    removed: bool = False  # no longer in the inventory: known from role accounts' state and passwd

    @property
    def greeting(self) -> str:
        return self.full_name or self.name


@dataclass(frozen=True)
class OpsConfig:
    cluster: str
    timezone: str
    home_root: str
    deletion: DeletionPolicy
    maintenance_notice_days: tuple[int, ...]
    users: tuple[Person, ...]
    mail_from: str
    retention_state: str
    manifest_dir: str
    maintenance_state: str
    extension_url: str = ""
    support_email: str = ""
    sendmail: str = "/usr/sbin/sendmail"
    mail_spool: str = "/var/mail"
    catch_up_days: int = 30
    slurm: bool = True
    # Role accounts' list of the users it manages (managed-accounts.json on this host): the users in it
    # but not in ``users`` were removed from the inventory; their data is deleted like everyone's.
    accounts_state: str = ""
    # Users come from the directory (ailab_directory): the removed users are also those of role directory's
    # list (directory_state: every user the directory holds, locked ones included), and the accounts to lock
    # and delete are not local; their entries go with the next converge (role directory's reconcile reads
    # the deletion record).
    directory_state: str = ""

    @property
    def tz(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def user(self, name: str) -> Person | None:
        return next((u for u in self.users if u.name == name), None)


def default_sender(cluster: Cluster) -> str:
    """The From of the mail the cluster's tools send users: ``<cluster name> <noreply@<cluster domain>>``."""
    return f"{cluster.name} <noreply@{cluster.domain or 'localhost'}>"


def ops_config_data(
    cluster: Cluster,
    *,
    mail_from: str = "",
    state_dir: str = "/var/lib/ailab",
    sendmail: str = "/usr/sbin/sendmail",
    mail_spool: str = "/var/mail",
    catch_up_days: int = 30,
    slurm: bool = True,
    accounts_state: str = "/var/lib/ailab/managed-accounts.json",
    directory_state: str = "/var/lib/ailab/directory-users.json",
) -> dict[str, Any]:
    """The tools' configuration as plain JSON data, derived from the model (role retention renders it)."""
    policy = cluster.policy
    sender = mail_from or default_sender(cluster)
    return {
        "version": CONFIG_VERSION,
        "cluster": cluster.name,
        "timezone": cluster.timezone,
        "home_root": cluster.ceph.home_root,
        "deletion": {
            "month": policy.deletion.month,
            "day": policy.deletion.day,
            "notices": [{"months": o.months, "days": o.days} for o in policy.deletion.notices],
        },
        "maintenance_notice_days": list(policy.maintenance_notice_days),
        "extension_url": policy.extension_url,
        "support_email": policy.support_email,
        "mail_from": sender,
        "sendmail": sendmail,
        "mail_spool": mail_spool,
        "retention_state": f"{state_dir}/retention.json",
        "manifest_dir": f"{state_dir}/retention-manifests",
        "maintenance_state": f"{state_dir}/maintenance.json",
        "catch_up_days": catch_up_days,
        "slurm": slurm,
        "accounts_state": accounts_state,
        "directory_state": directory_state if cluster.directory.enabled else "",
        "users": [
            {
                "name": u.name,
                "uid": u.uid,
                "email": u.email,
                "full_name": u.full_name,
                "extension_until": u.extension_until.isoformat() if u.extension_until else None,
                "admin": u.admin,
            }
            for u in sorted(cluster.users.values(), key=lambda u: u.name)
        ],
    }


CONFIG_VERSION = 1


RERENDER = "re-render the file from the inventory (site.yml, role operations)"


class _Fields:
    """Typed reads of one mapping; every problem names the field and the fix."""

    def __init__(self, data: Any, prefix: str, problems: list[str]):
        self.data = data if isinstance(data, Mapping) else {}
        self.prefix = prefix
        self.problems = problems
        if not isinstance(data, Mapping):
            problems.append(f"{prefix or 'config'}: must be a JSON object -- fix: re-render it (site.yml)")

    def problem(self, key: str, message: str, fix: str) -> None:
        self.problems.append(f"{self.prefix}{key}: {message} -- fix: {fix}")

    def text(self, key: str, *, required: bool = True, absolute: bool = False) -> str:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.problem(key, "is missing", RERENDER)
            return ""
        if not isinstance(value, str):
            self.problem(
                key, f"must be a string, got {value!r}", f"write {key} as a JSON string, or {RERENDER}"
            )
            return ""
        if absolute and not value.startswith("/"):
            self.problem(
                key, f"{value!r} is not an absolute path", f"write the full path from /, or {RERENDER}"
            )
            return ""
        return value

    def number(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, got {value!r}", f"set {key} to a whole number")
            return default or 0
        if value < minimum:
            self.problem(key, f"is {value}, below {minimum}", f"set {key} to {minimum} or more")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {value!r}", f"set {key} to true or false")
            return default
        return value

    def date(self, key: str) -> dt.date | None:
        value = self.data.get(key)
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.problem(key, f"{value!r} is not a date", "write it as YYYY-MM-DD")
            return None


def parse_ops_config(data: Any, source: str = "config") -> OpsConfig:
    """Check the whole document and build :class:`OpsConfig`; raise one ToolError listing every problem."""
    problems: list[str] = []
    f = _Fields(data, "", problems)
    if f.data and f.data.get("version") != CONFIG_VERSION:
        f.problem("version", f"is {f.data.get('version')!r}, expected {CONFIG_VERSION}", RERENDER)
    timezone = f.text("timezone")
    if timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            f.problem("timezone", f"{timezone!r} is not a time zone", "use an IANA name (install tzdata)")
    home_root = f.text("home_root", absolute=True)
    if home_root and os.path.normpath(home_root) == "/":
        f.problem(
            "home_root",
            "is /",
            "set ailab_ceph.home_root to the directory that holds the homes, e.g. /ceph/home, "
            "and re-run site.yml",
        )
    d = _Fields(f.data.get("deletion"), "deletion.", problems)
    month, day = d.number("month", 8, minimum=1), d.number("day", 1, minimum=1)
    try:
        dt.date(2001, month, day)
    except ValueError:
        d.problem(
            "day",
            f"month {month} day {day} is not a date in every year",
            "pick a day that exists in every year (e.g. month 8, day 1) in ailab_policy.deletion",
        )
        month, day = 8, 1
    offsets = []
    raw_notices = d.data.get("notices")
    if not isinstance(raw_notices, list) or not raw_notices:
        d.problem("notices", "must be a non-empty list", 'list e.g. [{"months": 2}, {"days": 14}]')
        raw_notices = []
    for i, raw in enumerate(raw_notices):
        n = _Fields(raw, f"deletion.notices[{i}].", problems)
        offset = NoticeOffset(months=n.number("months", 0), days=n.number("days", 0))
        if offset.months == 0 and offset.days == 0:
            n.problem("days", "the notice has no lead time", 'give it a lead time, e.g. {"days": 14}')
        else:
            offsets.append(offset)
    maintenance_days = f.data.get("maintenance_notice_days", [])
    if not isinstance(maintenance_days, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in maintenance_days
    ):
        f.problem(
            "maintenance_notice_days", f"{maintenance_days!r} is not a list of positive days", "e.g. [30]"
        )
        maintenance_days = []
    users: list[Person] = []
    raw_users = f.data.get("users")
    if not isinstance(raw_users, list):
        f.problem("users", "must be a list", "re-render the configuration from the inventory")
        raw_users = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_users):
        u = _Fields(raw, f"users[{i}].", problems)
        name = u.text("name")
        if name and not USERNAME_RE.match(name):
            u.problem(
                "name",
                f"{name!r} is not a valid user name",
                "rename the user in ailab_users (a lowercase letter or _, then lowercase letters, digits, "
                "_ or -, at most 32), then re-run site.yml",
            )
            name = ""
        if name in seen:
            u.problem("name", f"{name!r} is listed twice", "list each user once")
        seen.add(name)
        email_addr = u.text("email")
        if email_addr and "@" not in email_addr:
            u.problem(
                "email",
                f"{email_addr!r} is not an e-mail address",
                "write a full address such as name@example.org in ailab_users, then re-run site.yml",
            )
        person = Person(
            name=name,
            uid=u.number("uid", 0, minimum=1000),
            email=email_addr,
            full_name=u.text("full_name", required=False),
            extension_until=u.date("extension_until"),
            admin=u.flag("admin", False),
        )
        if name:
            users.append(person)
    config = OpsConfig(
        cluster=f.text("cluster"),
        timezone=timezone or "UTC",
        home_root=home_root,
        deletion=DeletionPolicy(month=month, day=day, notices=tuple(offsets)),
        maintenance_notice_days=tuple(maintenance_days),
        users=tuple(users),
        mail_from=f.text("mail_from"),
        retention_state=f.text("retention_state", absolute=True),
        manifest_dir=f.text("manifest_dir", absolute=True),
        maintenance_state=f.text("maintenance_state", absolute=True),
        extension_url=f.text("extension_url", required=False),
        support_email=f.text("support_email", required=False),
        sendmail=f.text("sendmail", absolute=True) or "/usr/sbin/sendmail",
        mail_spool=f.text("mail_spool", absolute=True) or "/var/mail",
        catch_up_days=f.number("catch_up_days", 30, minimum=0),
        slurm=f.flag("slurm", True),
        accounts_state=f.text("accounts_state", required=False, absolute=True),
        directory_state=f.text("directory_state", required=False, absolute=True),
    )
    if problems:
        raise ToolError(f"{source} has problems; nothing was done:\n  " + "\n  ".join(problems))
    return config


def read_json_config(path: str | os.PathLike[str], fix: str) -> Any:
    """The JSON a role rendered at ``path``; a missing or broken file is a ToolError ending in ``fix``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror} -- fix: {fix}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path} is not valid JSON ({exc}) -- fix: {fix}") from None


def load_ops_config(path: str | os.PathLike[str]) -> OpsConfig:
    return parse_ops_config(read_json_config(path, "converge the front-end (site.yml)"), str(path))
