"""The operations tools' configuration: /etc/ailab/ops.json on the front-end.

Rendered from the model by :func:`ops_config_data` (role operations, through the ``ailab_ops_config``
filter), read on the node by :func:`load_ops_config`/:func:`parse_ops_config`, which check the whole document
and name every bad field with its fix.  Standard library only: it runs on the nodes.
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ailab.model import USERNAME_RE, DeletionPolicy, NoticeOffset
from ailab.runtime import ToolError, read_json_config

if TYPE_CHECKING:
    from ailab.model import Cluster


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


def load_ops_config(path: str | os.PathLike[str]) -> OpsConfig:
    return parse_ops_config(read_json_config(path, "converge the front-end (site.yml)"), str(path))
