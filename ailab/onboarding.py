"""`ailab users import FORM.csv`: new students from the application form's CSV export into ``ailab_users``.

Pure functions do the work; :func:`run_import` is the thin I/O shell the CLI calls.

- :func:`parse_form` reads the CSV (UTF-8 with or without BOM, ``,`` or ``;`` sniffed from the header line,
  header names trimmed and case-insensitive, other columns ignored) into :class:`FormRow`\\ s and checks each
  cell.  Problems name the row as a spreadsheet shows it (the header is row 1) and the column.
- :func:`plan_import` decides what happens to every row: a new user gets the next uid (gid = uid), a name
  the uid record knows gets its recorded uid back, a name already in ``ailab_users`` is updated (full name,
  e-mail, project, extension) and keeps its uid, SSH keys, quota and admin flag.
- :func:`check_plan` runs the model's own checks (:func:`ailab.validate.validate`) on the result.
- :func:`render_users_file` edits the users file's text: entries that do not change stay byte-identical,
  changed ones get only their changed values replaced, new ones are appended in form order.
  :func:`render_uid_record` writes the record of every uid ever issued.

The uid record (``uids.yml`` next to the users file, variable ``ailab_uid_record``: name -> uid) keeps an
entry for every uid the import issued or found in ``ailab_users``.  An entry outlives its user: a removed
user's uid is never given to another person (role accounts leaves their files on CephFS, owned by that
uid), and the same username coming back gets that uid again.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import difflib
import io
import re
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ailab.model import USERNAME_RE, Cluster, User
from ailab.problems import Problem
from ailab.validate import EMAIL_RE, GECOS_BAD, _id_problem

REQUIRED_COLUMNS = ("username", "full_name", "email", "project")
OPTIONAL_COLUMNS = ("supervisor", "extension_until")
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
COLUMN_ALIASES = {"e_mail": "email"}
# The first uid the import gives when neither the record nor ailab_users has one (the inventories' users
# have 200001 and up; well above Debian's reserved 60000-65535 and the admin group's 2900).
FIRST_IMPORT_UID = 200001
RECORD_FILE = "uids.yml"
RECORD_VAR = "ailab_uid_record"
USERS_VAR = "ailab_users"
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UTF8_FIX = (
    "export the form as UTF-8 (Excel: Save As 'CSV UTF-8 (Comma delimited)'; LibreOffice: character set "
    "Unicode (UTF-8)) and import that file"
)


@dataclass(frozen=True)
class FormRow:
    """One applicant, as the form's row ``row`` (the spreadsheet's row number: the header is row 1)."""

    row: int
    username: str
    full_name: str
    email: str
    project: str
    supervisor: str = ""
    extension_until: dt.date | None = None


@dataclass(frozen=True)
class Change:
    """What the import does to one user."""

    row: int
    name: str
    uid: int
    kind: str  # "add" (a new uid), "return" (the recorded uid again), "update", "unchanged"
    fields: tuple[str, ...] = ()  # for "update": the fields that change

    def describe(self, user: User) -> str:
        if self.kind == "update":
            return f"update {self.name} (uid {self.uid}): {', '.join(self.fields)}"
        how = "new uid" if self.kind == "add" else "their recorded uid, back"
        return f"add {self.name} (uid {self.uid}, {how}; project {user.project}): no SSH key yet"


@dataclass(frozen=True)
class ImportPlan:
    users: tuple[User, ...]  # the whole new ailab_users: the existing ones in their order, then the new
    record: dict[str, int]  # the whole new uid record
    changes: tuple[Change, ...]  # one per good row, in form order
    problems: tuple[Problem, ...]

    @property
    def changed(self) -> bool:
        return any(c.kind != "unchanged" for c in self.changes)


# Reading the form ------------------------------------------------------------------------------------


def column_key(header: str) -> str:
    """``" Full Name "`` -> ``full_name``: trimmed, case-folded, spaces and dashes as ``_`` (and
    ``E-mail`` -> ``email``)."""
    key = re.sub(r"[\s-]+", "_", header.strip().casefold())
    return COLUMN_ALIASES.get(key, key)


def sniff_delimiter(header_line: str) -> str:
    """``;`` when the header line has more semicolons than commas outside quotes, else ``,``."""
    counts = {",": 0, ";": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif char in counts and not quoted:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def decode_form(data: bytes, source: str) -> tuple[str | None, list[Problem]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        return None, [
            Problem(
                f"{source} row {row}",
                "file",
                f"is not UTF-8 (byte 0x{byte} at offset {exc.start}); Excel's plain 'CSV' is Windows-1252",
                UTF8_FIX,
            )
        ]
    return text, []


def parse_form(data: bytes | str, source: str = "form") -> tuple[list[FormRow], list[Problem]]:
    """The rows of a form export and every problem with its cells.  ``source`` (the file's name) starts
    each problem's place: ``form.csv row 3``."""
    if isinstance(data, bytes):
        text, problems = decode_form(data, source)
        if text is None:
            return [], problems
    else:
        text = data.removeprefix("\ufeff")
    header_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header_line))
    try:
        records = list(reader)
    except csv.Error as exc:
        return [], [
            Problem(
                f"{source} row {reader.line_num}",
                "file",
                f"is not CSV: {exc}",
                "export the form again as CSV (a quote inside a cell must be doubled)",
            )
        ]
    if not records or not any(cell.strip() for cell in records[0]):
        return [], [
            Problem(f"{source} row 1", "header", "is empty", f"start the file with the header row: {COLUMNS}")
        ]
    index, problems = _header(records[0], source)
    if problems:
        return [], problems
    rows: list[FormRow] = []
    first_row: dict[str, int] = {}
    for number, cells in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # spreadsheets export trailing empty rows
        row, row_problems = _row(number, cells, index, source)
        if row is not None and row.username in first_row:
            first = first_row[row.username]
            row_problems.append(
                Problem(
                    f"{source} row {number}",
                    "username",
                    f"duplicate username {row.username!r}: also on row {first}",
                    f"keep one row per person: merge row {number} into row {first} and delete it",
                )
            )
        elif row is not None:
            first_row[row.username] = number
        problems += row_problems
        if row is not None and not row_problems:
            rows.append(row)
    return rows, problems


def _header(cells: Sequence[str], source: str) -> tuple[dict[str, int], list[Problem]]:
    index: dict[str, int] = {}
    problems = []
    for i, cell in enumerate(cells):
        key = column_key(cell)
        if key not in COLUMNS:
            continue  # the form tool's own columns: ID, start time, completion time, ...
        if key in index:
            problems.append(
                Problem(
                    f"{source} row 1",
                    key,
                    f"column {key!r} appears twice (columns {index[key] + 1} and {i + 1})",
                    "delete or rename one of them",
                )
            )
        else:
            index[key] = i
    found = ", ".join(repr(c.strip()) for c in cells if c.strip())
    for key in REQUIRED_COLUMNS:
        if key not in index:
            problems.append(
                Problem(
                    f"{source} row 1",
                    key,
                    f"required column is missing (the header has {found or 'nothing'})",
                    f"add a column named {key} (any case; optional: {', '.join(OPTIONAL_COLUMNS)})",
                )
            )
    return index, problems


def _row(
    number: int, cells: Sequence[str], index: Mapping[str, int], source: str
) -> tuple[FormRow | None, list[Problem]]:
    where = f"{source} row {number}"
    values = {key: cells[i].strip() if i < len(cells) else "" for key, i in index.items()}
    problems = []

    def problem(column: str, message: str, fix: str) -> None:
        problems.append(Problem(where, column, message, fix))

    for key in REQUIRED_COLUMNS:
        if not values[key]:
            problem(key, "is empty", f"fill in {key} (required for every applicant)")
    username = values["username"]
    if username and not USERNAME_RE.match(username):
        lower = username.lower()
        hint = (
            f"write it as {lower!r}" if USERNAME_RE.match(lower) else "use the university login, e.g. ab12cd"
        )
        problem(
            "username",
            f"{username!r} is not a POSIX username (a lowercase letter or _, then lowercase letters, digits, "
            "_ or -, at most 32)",
            hint,
        )
    full_name = values["full_name"]
    if bad := GECOS_BAD.findall(full_name):
        shown = "".join(sorted({repr(c)[1:-1] for c in bad}))
        problem(
            "full_name",
            f"{full_name!r} contains {shown}, which the passwd file's GECOS field cannot hold",
            "write the name without ':', ',', '=' or line breaks, e.g. Anna Bech",
        )
    email = values["email"]
    local, at, domain = email.rpartition("@")
    if email and (not at or not local or "." not in domain.strip(".")):
        problem(
            "email",
            f"{email!r} has no domain",
            "write the whole address, e.g. ab12cd@student.aau.dk",
        )
    elif email and not EMAIL_RE.match(email):
        problem(
            "email",
            f"{email!r} is not an e-mail address",
            "write one plain address such as ab12cd@student.aau.dk (no name, spaces or <>)",
        )
    extension = None
    text = values.get("extension_until", "")
    if text:
        try:
            if not ISO_DATE_RE.match(text):
                raise ValueError(text)
            extension = dt.date.fromisoformat(text)
        except ValueError:
            problem(
                "extension_until",
                f"{text!r} is not a date",
                "write it as YYYY-MM-DD, e.g. 2027-08-01, or leave it empty",
            )
    if problems:
        return (
            FormRow(number, username, full_name, email, values["project"]) if username else None
        ), problems
    return (
        FormRow(
            row=number,
            username=username,
            full_name=full_name,
            email=email,
            project=values["project"],
            supervisor=values.get("supervisor", ""),
            extension_until=extension,
        ),
        problems,
    )


# Planning --------------------------------------------------------------------------------------------


def record_problems(users: Mapping[str, User], record: Mapping[str, int], where: str) -> list[Problem]:
    """Where ``ailab_users`` and the uid record disagree: a user whose uid is not the recorded one, a uid
    recorded for someone else, the same uid recorded twice."""
    out = []
    owner: dict[int, str] = {}
    for name, uid in record.items():
        if uid in owner:
            out.append(
                Problem(
                    where,
                    f"{RECORD_VAR}.{name}",
                    f"uid {uid} is recorded for both {owner[uid]} and {name}",
                    "keep the entry of the person who had it first; the other one needs a new uid",
                )
            )
        else:
            owner[uid] = name
    for user in users.values():
        recorded = record.get(user.name)
        if recorded is not None and recorded != user.uid:
            out.append(
                Problem(
                    f"user {user.name}",
                    "uid",
                    f"is {user.uid} but the uid record gave {user.name} uid {recorded}; their files on "
                    f"CephFS belong to {recorded}",
                    f"set uid and gid of {user.name} back to {recorded}",
                )
            )
        holder = owner.get(user.uid)
        if recorded is None and holder is not None and holder not in users:
            out.append(
                Problem(
                    f"user {user.name}",
                    "uid",
                    f"uid clash: {user.uid} was issued to {holder} (removed, their files remain), so "
                    f"{user.name} would own {holder}'s files",
                    f"give {user.name} a uid nobody had: delete their entry and import their form row",
                )
            )
    return out


def highest_uid(taken: Iterable[int]) -> int:
    """The highest uid of the import's range in ``taken`` (FIRST_IMPORT_UID - 1 when there is none)."""
    return max((u for u in taken if u >= FIRST_IMPORT_UID - 1), default=FIRST_IMPORT_UID - 1)


def next_uid(taken: Collection[int], avoid: Collection[int] = (), after: int | None = None) -> int:
    """The uid after the highest one ever issued (``taken``; ``after`` when the caller keeps it), skipping
    ids the checks refuse and ``avoid`` (e.g. the admin group's gid).  Never a gap's uid: a gap may be a
    removed user's."""
    uid = (highest_uid(taken) if after is None else after) + 1
    while _id_problem(uid) or uid in taken or uid in avoid:
        uid += 1
    return uid


def plan_import(
    cluster: Cluster,
    record: Mapping[str, int],
    rows: Iterable[FormRow],
    source: str = "form",
    record_where: str = RECORD_FILE,
) -> ImportPlan:
    """The new ``ailab_users`` and uid record for ``rows`` (all of them good rows of :func:`parse_form`)."""
    existing = cluster.users
    problems = record_problems(existing, record, record_where)
    new_record = dict(record)
    for user in existing.values():
        new_record.setdefault(user.name, user.uid)  # issued before the record existed
    users = dict(existing)
    in_use = {u.uid: u.name for u in existing.values()} | {u.gid: u.name for u in existing.values()}
    admin_gid = cluster.accounts.admin_gid
    issued = set(new_record.values()) | set(in_use)  # grows with each new uid (one set, not one per row)
    highest = highest_uid(issued)
    known = ", ".join(sorted(cluster.projects)) or "none defined"
    changes = []
    for row in rows:
        where = f"{source} row {row.row}"
        if row.project not in cluster.projects:
            problems.append(
                Problem(
                    where,
                    "project",
                    f"unknown project or course {row.project!r}",
                    f"use one of: {known} (or add the course to ailab_projects first)",
                )
            )
            continue
        old = existing.get(row.username)
        if old is not None:
            updated = dataclasses.replace(
                old,
                full_name=row.full_name,
                email=row.email,
                project=row.project,
                # An empty cell never drops an approved extension (the yearly deletion would take the data).
                extension_until=row.extension_until or old.extension_until,
            )
            fields = tuple(
                f.name for f in dataclasses.fields(User) if getattr(old, f.name) != getattr(updated, f.name)
            )
            users[old.name] = updated
            changes.append(Change(row.row, old.name, old.uid, "update" if fields else "unchanged", fields))
            continue
        uid = new_record.get(row.username)
        kind = "return"
        if uid is None:
            uid = highest = next_uid(issued, avoid={admin_gid}, after=highest)
            kind = "add"
        elif uid in in_use or uid == admin_gid:
            holder = in_use.get(uid, f"the admin group {cluster.accounts.admin_group}")
            problems.append(
                Problem(
                    where,
                    "username",
                    f"uid clash: {row.username} had uid {uid} (uid record), which {holder} now has as uid or "
                    "gid",
                    f"give {holder} another uid (their entry in ailab_users), then import again; {uid} "
                    f"stays {row.username}'s",
                )
            )
            continue
        new_record[row.username] = uid
        in_use[uid] = row.username
        issued.add(uid)
        users[row.username] = User(
            name=row.username,
            uid=uid,
            gid=uid,
            full_name=row.full_name,
            email=row.email,
            project=row.project,
            extension_until=row.extension_until,
        )
        changes.append(Change(row.row, row.username, uid, kind))
    return ImportPlan(tuple(users.values()), new_record, tuple(changes), tuple(problems))


USER_FIELD_COLUMN = {"name": "username", "uid": "username", "gid": "username"}


def check_plan(cluster: Cluster, plan: ImportPlan, source: str = "form") -> list[Problem]:
    """The model's checks on the cluster the plan makes; a problem of an imported user names their row."""
    from ailab.validate import validate

    before = {str(p) for p in validate(cluster)}
    after = validate(dataclasses.replace(cluster, users={u.name: u for u in plan.users}))
    rows = {c.name: c.row for c in plan.changes if c.kind != "unchanged"}
    out = []
    for problem in after:
        if str(problem) in before:
            continue
        name = problem.where.removeprefix("user ")
        if problem.where.startswith("user ") and name in rows:
            field = problem.field.split("[", 1)[0]
            out.append(
                Problem(
                    f"{source} row {rows[name]}",
                    USER_FIELD_COLUMN.get(field, field),
                    problem.message,
                    problem.fix,
                )
            )
        else:
            out.append(problem)
    return out


# Rendering -------------------------------------------------------------------------------------------

_PLAIN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@+ -]*$")
_YAML_WORDS = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML scalar that reads back as the same value: strings plain when that is safe,
    else double-quoted; dates quoted (as the inventories write them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f'"{value.isoformat()}"'
    text = str(value)
    if _PLAIN_RE.match(text) and text == text.strip() and text.lower() not in _YAML_WORDS:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f\u0085\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


USER_KEYS = ("name", "uid", "gid", "full_name", "email", "project", "quota_gb", "extension_until", "admin")
EDITABLE = ("full_name", "email", "project", "extension_until")


def user_entry(user: User, dash: int = 2, key: int = 4) -> str:
    """One ``ailab_users`` entry, a line per field (``name`` on the dash's line)."""
    lines = []
    for name in USER_KEYS:
        value = getattr(user, name)
        if value is None or (name == "admin" and not value):
            continue
        lines.append(f"{name}: {yaml_scalar(value)}")
    if user.ssh_keys:
        lines.append("ssh_keys:")
        lines += [f"  - {yaml_scalar(k)}" for k in user.ssh_keys]
    first, *rest = lines
    return "".join([" " * dash + "- " + first + "\n", *(" " * key + line + "\n" for line in rest)])


def _end_of(node: yaml.Node) -> int:
    """Where the last value of ``node`` ends (for a block collection, its own end mark may lie past the
    comments and blank lines that follow)."""
    while isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value and not node.flow_style:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def users_node(text: str) -> tuple[yaml.MappingNode, yaml.Node | None, yaml.Node | None]:
    """The document's top mapping, the ``ailab_users`` key node and its value (None, None: no such key)."""
    root = yaml.compose(text, Loader=_Loader)
    if root is None:
        root = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("the users file is not a mapping of variables")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == USERS_VAR:
            return root, key, value
    return root, None, None


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render_users_file(text: str, users: Sequence[User], existing: Mapping[str, User]) -> str:
    """``text`` with ``ailab_users`` holding ``users``: entries of unchanged users stay byte for byte,
    a changed user gets only the values of :data:`EDITABLE` fields that changed replaced (a missing key is
    added as a line of the entry), new users are appended after the last entry in the given order."""
    _, key_node, seq = users_node(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in the original text
    items: dict[str, yaml.MappingNode] = {}
    dash, key_col = 2, 4
    if isinstance(seq, yaml.SequenceNode):
        for item in seq.value:
            if isinstance(item, yaml.MappingNode):
                for k, v in item.value:
                    if k.value == "name" and isinstance(v, yaml.ScalarNode):
                        items[v.value] = item
        blocks = [i for i in seq.value if isinstance(i, yaml.MappingNode) and not i.flow_style and i.value]
        if blocks:
            first = blocks[0]
            key_col = first.value[0][0].start_mark.column
            dash_at = text.rfind("-", 0, first.start_mark.index)
            dash = dash_at - _line_start(text, dash_at)
    new_entries = []
    for user in users:
        old = existing.get(user.name)
        if old is None:
            new_entries.append(user_entry(user, dash, key_col))
        elif old != user:
            edits += _patch_entry(text, items[user.name], old, user, dash, key_col)
    if new_entries:
        block = "".join(new_entries)
        if isinstance(seq, yaml.SequenceNode) and seq.value and not seq.flow_style:
            at = _line_end(text, _end_of(seq))
            prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
            edits.append((at, at, prefix + block))
        elif key_node is not None and seq is not None and _is_empty(seq):
            # `ailab_users: []` or `ailab_users:` with nothing: the entries go below the key's line.
            if isinstance(seq, yaml.SequenceNode):
                edits.append((seq.start_mark.index, seq.end_mark.index, ""))
            at = _line_end(text, key_node.end_mark.index)
            edits.append((at, at, ("" if text[at - 1 : at] == "\n" else "\n") + block))
        elif key_node is None:
            tail = "" if not text or text.endswith("\n") else "\n"
            edits.append((len(text), len(text), f"{tail}{USERS_VAR}:\n{block}"))
        else:
            raise ValueError(f"{USERS_VAR} in the users file is not a list of entries")
    out = text
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out = out[:start] + replacement + out[end:]
    return out


def _is_empty(node: yaml.Node) -> bool:
    if isinstance(node, yaml.SequenceNode):
        return not node.value
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _patch_entry(
    text: str, item: yaml.MappingNode, old: User, new: User, dash: int, key_col: int
) -> list[tuple[int, int, str]]:
    changed = [f for f in dataclasses.fields(User) if getattr(old, f.name) != getattr(new, f.name)]
    if item.flow_style or any(f.name not in EDITABLE for f in changed):
        start = _line_start(text, text.rfind("-", 0, item.start_mark.index))
        return [(start, _line_end(text, _end_of(item)), user_entry(new, dash, key_col))]
    values = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
    indent = item.value[0][0].start_mark.column
    edits = []
    added = []
    for f in changed:
        rendered = yaml_scalar(getattr(new, f.name))
        node = values.get(f.name)
        if isinstance(node, yaml.ScalarNode):
            edits.append((node.start_mark.index, node.end_mark.index, rendered))
        elif node is None:
            added.append(" " * indent + f"{f.name}: {rendered}\n")
        else:
            start = _line_start(text, text.rfind("-", 0, item.start_mark.index))
            return [(start, _line_end(text, _end_of(item)), user_entry(new, dash, key_col))]
    if added:
        at = _line_end(text, _end_of(item))
        prefix = "" if text[at - 1 : at] == "\n" else "\n"
        edits.append((at, at, prefix + "".join(added)))
    return edits


RECORD_HEADER = """\
# Every uid `ailab users import` has issued or found in ailab_users, by user name (sorted by uid).  An
# entry stays when its user leaves ailab_users: role accounts keeps their files on CephFS, so the uid is
# never given to another person, and the same username coming back gets it again.  Written by
# `ailab users import`; commit it together with the users file.  Do not delete or reuse entries.
"""


def render_uid_record(record: Mapping[str, int]) -> str:
    """The uid record file: :data:`RECORD_HEADER`, then one ``name: uid`` line per entry, by uid."""
    if not record:
        return f"{RECORD_HEADER}{RECORD_VAR}: {{}}\n"
    ordered = sorted(record.items(), key=lambda item: (item[1], item[0]))
    return f"{RECORD_HEADER}{RECORD_VAR}:\n" + "".join(f"  {yaml_scalar(n)}: {uid}\n" for n, uid in ordered)


def parse_uid_record(text: str, where: str) -> tuple[dict[str, int], list[Problem]]:
    fix = f"restore {where} from version control (it maps each user name to the uid it was given)"
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        return {}, [Problem(where, "yaml", f"does not parse: {exc}".replace("\n", " "), fix)]
    raw = data.get(RECORD_VAR) if isinstance(data, dict) else None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, [Problem(where, RECORD_VAR, "must be a mapping of user name to uid", fix)]
    record, problems = {}, []
    for name, uid in raw.items():
        if not isinstance(name, str) or isinstance(uid, bool) or not isinstance(uid, int):
            problems.append(Problem(where, f"{RECORD_VAR}.{name}", f"{uid!r} is not a uid", fix))
        else:
            record[name] = uid
    return record, problems


def verify_rendered(text: str, users: Sequence[User]) -> list[Problem]:
    """The rendered users file reads back (as the model reads it) as exactly ``users``."""
    from ailab.inventory import duplicate_keys
    from ailab.parse import parse_users

    where = "users file (as rendered)"
    try:
        data = yaml.load(text, Loader=_Loader) or {}
        duplicates = duplicate_keys(text)
    except yaml.YAMLError as exc:
        return [
            Problem(where, "yaml", f"does not parse: {exc}", "report this as a bug of ailab users import")
        ]
    problems: list[Problem] = []
    parsed = parse_users(data.get(USERS_VAR), problems)
    problems += [
        Problem(where, key, f"duplicate key on line {line}", "report this as a bug")
        for key, line in duplicates
    ]
    if tuple(parsed.values()) != tuple(users):
        problems.append(
            Problem(where, USERS_VAR, "does not read back as the planned users", "report this as a bug")
        )
    return problems


# The I/O shell ---------------------------------------------------------------------------------------


def find_users_file(inventory: Path) -> Path:
    """The file of ``group_vars/all`` that defines ``ailab_users`` (exactly one must)."""
    base = inventory / "group_vars"
    candidates = [base / "all.yml", base / "all.yaml"]
    if (base / "all").is_dir():
        candidates += sorted(p for p in (base / "all").rglob("*") if p.suffix in (".yml", ".yaml"))
    found = []
    for path in candidates:
        if path.is_file() and USERS_VAR in (text := path.read_text(encoding="utf-8")):
            data = yaml.load(text, Loader=_Loader)
            if isinstance(data, dict) and USERS_VAR in data:
                found.append(path)
    if len(found) != 1:
        where = str(base / "all")
        message = "no file defines ailab_users" if not found else f"{len(found)} files define ailab_users"
        raise_problem(where, message, "keep ailab_users in one file, e.g. group_vars/all/users.yml")
    return found[0]


def raise_problem(where: str, message: str, fix: str) -> None:
    from ailab.problems import InventoryError

    raise InventoryError([Problem(where, USERS_VAR, message, fix)])


def unified_diff(old: str, new: str, path: str, existed: bool = True) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=path if existed else "/dev/null",
            tofile=path,
        )
    )


def run_import(form: Path, inventory: Path, *, dry_run: bool = False, out=None, err=None) -> int:
    """Check every row, then write the users file and the uid record (or, with ``dry_run``, print their
    diffs).  0: written or nothing to change; 1: problems (nothing written)."""
    from ailab.inventory import load_cluster
    from ailab.runtime import write_atomic

    out = out or sys.stdout
    err = err or sys.stderr
    source = form.name

    def refuse(problems: Sequence[Problem]) -> int:
        for problem in problems:
            print(problem, file=err)
        print(f"{len(problems)} problem(s) in {form}; nothing was written", file=err)
        return 1

    try:
        data = form.read_bytes()
    except OSError as exc:
        return refuse(
            [Problem(str(form), "file", f"cannot be read: {exc.strerror}", "pass the form's CSV file")]
        )
    rows, problems = parse_form(data, source)
    if problems and not rows:
        return refuse(problems)  # the file as a whole (encoding, header): no point loading the inventory
    cluster, _ = load_cluster(inventory)  # an inventory with problems stops here (InventoryError)
    users_path = find_users_file(inventory)
    record_path = users_path.parent / RECORD_FILE
    record_text = record_path.read_text(encoding="utf-8") if record_path.exists() else None
    record, record_issues = parse_uid_record(record_text or "", str(record_path))
    problems += record_issues
    plan = plan_import(cluster, record, rows, source, record_where=str(record_path))
    problems += plan.problems
    if not problems:
        problems += check_plan(cluster, plan, source)
    if problems:
        return refuse(sorted(problems, key=_problem_order))
    users_text = users_path.read_text(encoding="utf-8")
    new_users_text = render_users_file(users_text, plan.users, cluster.users)
    if new_users_text != users_text and (broken := verify_rendered(new_users_text, plan.users)):
        return refuse(broken)
    new_record_text = render_uid_record(plan.record)
    write_record = record_text is None or record != plan.record
    write_users = new_users_text != users_text
    for change in plan.changes:
        if change.kind != "unchanged":
            user = next(u for u in plan.users if u.name == change.name)
            print(f"{source} row {change.row}: {change.describe(user)}", file=out)
    added = sum(c.kind in ("add", "return") for c in plan.changes)
    updated = sum(c.kind == "update" for c in plan.changes)
    same = sum(c.kind == "unchanged" for c in plan.changes)
    summary = f"{len(plan.changes)} row(s): {added} new, {updated} updated, {same} unchanged"
    if not (write_users or write_record):
        print(f"{summary}; nothing to change in {users_path}", file=out)
        return 0
    if added:
        print(
            f"{added} new user(s) have no SSH key: they add theirs later (ssh_keys in {users_path.name}); "
            "until then they cannot log in",
            file=out,
        )
    if dry_run:
        if write_users:
            out.write(unified_diff(users_text, new_users_text, str(users_path)))
        if write_record:
            out.write(
                unified_diff(record_text or "", new_record_text, str(record_path), record_text is not None)
            )
        print(f"{summary}; dry run: nothing was written", file=out)
        return 0
    # The record first: if the users file is not written after all, the next import gives the same uids.
    mode = record_path.stat().st_mode & 0o777 if record_path.exists() else users_path.stat().st_mode & 0o777
    if write_record:
        write_atomic(record_path, new_record_text.encode(), mode)
    if write_users:
        write_atomic(users_path, new_users_text.encode(), users_path.stat().st_mode & 0o777)
    written = [str(p) for p, w in ((users_path, write_users), (record_path, write_record)) if w]
    print(f"{summary}; wrote {' and '.join(written)} (commit them together)", file=out)
    return 0


def _problem_order(problem: Problem) -> tuple[int, str, str]:
    match = re.search(r" row (\d+)$", problem.where)
    return (int(match.group(1)) if match else 0, problem.where, problem.field)


def register(sub: argparse._SubParsersAction) -> None:
    from ailab.cli import add_inventory_arg

    users = sub.add_parser("users", help="manage the inventory's users (ailab_users)")
    users_sub = users.add_subparsers(dest="users_cmd", required=True)
    imp = users_sub.add_parser(
        "import",
        help="add or update users from the application form's CSV export; checks every row first",
        description=__doc__.split("\n\n")[0],
    )
    imp.add_argument("form", type=Path, help="the form's export: CSV, UTF-8, comma or semicolon separated")
    add_inventory_arg(imp, default=None)
    imp.add_argument("--dry-run", action="store_true", help="print the diff of the files; write nothing")
    imp.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    return run_import(args.form, Path(args.inventory), dry_run=args.dry_run)
