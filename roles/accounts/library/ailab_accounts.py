#!/usr/bin/python3
"""Ansible module: every inventory user's group, account and SSH keys on one node, in one task."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass, field

DOCUMENTATION = r"""
---
module: ailab_accounts
short_description: Make a node's local accounts, personal groups and SSH key files match the inventory
description:
  - One task for all users (no per-user loop): reads C(/etc/passwd), C(/etc/group), C(/etc/shadow) and the
    key directory, computes the difference to O(users) with a pure function (M(plan)) and applies it with
    C(groupadd)/C(groupmod)/C(useradd)/C(usermod) and atomic file writes. Changed only when it did something.
  - Users that this module managed before (O(state_file)) and that are no longer in O(users) are locked
    (account expired, so PAM refuses every login method, and the locked shell); their files stay.
  - Before changing anything it refuses a uid or gid that belongs to another account, naming both.
options:
  users:
    description: List of dicts with name, uid, gid, full_name, email, admin, ssh_keys (the inventory's users).
    type: list
    elements: dict
    required: true
  admin_group:
    description: Name of the admin group (supplementary group of admin users).
    type: str
    required: true
  admin_gid:
    description: Its gid.
    type: int
    required: true
  home_root:
    description: Directory holding every home (CephFS); homes are not created here.
    type: path
    required: true
  shell:
    description: Login shell of active users.
    type: path
    default: /bin/bash
  locked_shell:
    description: Shell of locked (removed) users.
    type: path
    default: /usr/sbin/nologin
  keys_dir:
    description: Root-owned directory with one authorized_keys file per user (sshd's AuthorizedKeysFile).
    type: path
    required: true
  state_file:
    description: JSON list of the user names this module manages (to find removed users).
    type: path
    required: true
  remove_unlisted:
    description:
      - Users come from a directory (SSSD): users this module managed before and no longer in O(users) are
        removed from C(/etc/passwd) and their personal group from C(/etc/group) (C(userdel) without C(-r):
        the directory gives them the same uid, so their files stay theirs), instead of locked.
    type: bool
    default: false
author: ailab-iac
"""

RETURN = r"""
commands:
  description: The commands run (in check mode, that would run).
  type: list
  elements: str
  returned: always
files:
  description: Key files written or removed, and the state file when it changed.
  type: list
  elements: str
  returned: always
locked:
  description: Users no longer in the inventory that are (now) locked.
  type: list
  elements: str
  returned: always
"""

GROUPDEL_NO_GROUP = 6  # groupdel(8): the group does not exist
LOCKED_EXPIRE = 1  # days since the epoch: expired long ago (shadow's field 8)


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    expire: int | None  # shadow's expiry day; None: never


@dataclass(frozen=True)
class Current:
    accounts: dict[str, Account]
    groups: dict[str, int]  # name -> gid
    members: dict[str, frozenset[str]]  # user -> supplementary groups
    keys: dict[str, str]  # user -> content of keys_dir/<user>
    managed: tuple[str, ...]  # from the state file


@dataclass
class Plan:
    commands: list[list[str]] = field(default_factory=list)
    write: dict[str, str] = field(default_factory=dict)  # user -> key file content
    remove: list[str] = field(default_factory=list)  # users whose key file goes
    locked: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)


class Conflict(Exception):
    pass


def gecos(user: dict) -> str:
    return f"{user.get('full_name') or ''},,,,{user.get('email') or ''}"


def key_text(user: dict) -> str:
    keys = [k for k in user.get("ssh_keys") or [] if k]
    return "\n".join(keys) + "\n" if keys else ""


def _owners(table: dict[str, int]) -> dict[int, list[str]]:
    """id -> the names that have it, sorted: built once, so checking every user is linear."""
    out: dict[int, list[str]] = {}
    for name, value in sorted(table.items()):
        out.setdefault(value, []).append(name)
    return out


def _other(owners: dict[int, list[str]], value: int, name: str) -> str | None:
    return next((other for other in owners.get(value, ()) if other != name), None)


def plan(
    current: Current,
    users: list[dict],
    *,
    admin_group: str,
    admin_gid: int,
    home_root: str,
    shell: str,
    locked_shell: str,
    remove_unlisted: bool = False,
) -> Plan:
    """The commands and file changes that turn ``current`` into the inventory's ``users``.  Raises
    :class:`Conflict` (before anything runs) when an id belongs to an account the inventory does not name."""
    out = Plan()
    wanted = {u["name"]: u for u in users}
    uid_owners = _owners({a.name: a.uid for a in current.accounts.values()})
    gid_owners = _owners(current.groups)
    problems = []
    for u in users:
        owner = _other(uid_owners, int(u["uid"]), u["name"])
        if owner is not None and owner not in wanted:
            problems.append(f"uid {u['uid']} of user {u['name']} belongs to the existing account {owner}")
        owner = _other(gid_owners, int(u["gid"]), u["name"])
        if owner is not None and owner not in wanted:
            problems.append(f"gid {u['gid']} of user {u['name']} belongs to the existing group {owner}")
    owner = _other(gid_owners, admin_gid, admin_group)
    if owner is not None:
        problems.append(f"gid {admin_gid} of the admin group {admin_group} belongs to the group {owner}")
    if problems:
        raise Conflict("; ".join(problems))

    def group(name: str, gid: int) -> None:
        if name not in current.groups:
            out.commands.append(["groupadd", "-g", str(gid), name])
        elif current.groups[name] != gid:
            out.commands.append(["groupmod", "-g", str(gid), name])

    group(admin_group, admin_gid)
    for u in users:
        group(u["name"], int(u["gid"]))
    for u in users:
        name, supplementary = u["name"], {admin_group} if u.get("admin") else set()
        home = f"{home_root.rstrip('/')}/{name}"
        have = current.accounts.get(name)
        if have is None:
            cmd = ["useradd", "-u", str(u["uid"]), "-g", name, "-c", gecos(u), "-d", home, "-M", "-s", shell]
            if supplementary:
                cmd += ["-G", ",".join(sorted(supplementary))]
            out.commands.append([*cmd, name])
        else:
            changes: list[str] = []
            for flag, now, want in (
                ("-u", have.uid, int(u["uid"])),
                ("-g", have.gid, int(u["gid"])),
                ("-c", have.gecos, gecos(u)),
                ("-d", have.home, home),
                ("-s", have.shell, shell),
            ):
                if now != want:
                    changes += [flag, str(want) if flag != "-g" else name]
            if current.members.get(name, frozenset()) != supplementary:
                changes += ["-G", ",".join(sorted(supplementary))]
            if have.expire is not None:
                changes += ["-e", ""]
            if changes:
                out.commands.append(["usermod", *changes, name])
        if current.keys.get(name) != key_text(u):
            out.write[name] = key_text(u)
    removed = sorted(set(current.managed) - set(wanted))
    if remove_unlisted:
        for name in removed:
            have = current.accounts.get(name)
            if have is not None:
                out.commands.append(["userdel", name])
            # userdel removes the personal group too (Debian's USERGROUPS_ENAB); main() lets groupdel find
            # it gone.
            if name in current.groups and (have is None or current.groups[name] == have.gid):
                out.commands.append(["groupdel", name])
            if name in current.keys:
                out.remove.append(name)
        out.state = sorted(wanted)
        return out
    for name in removed:
        have = current.accounts.get(name)
        if have is not None:
            out.locked.append(name)
            changes = []
            if have.expire != LOCKED_EXPIRE:
                changes += ["-e", str(LOCKED_EXPIRE)]
            if have.shell != locked_shell:
                changes += ["-s", locked_shell]
            if changes:
                out.commands.append(["usermod", *changes, name])
        if name in current.keys:
            out.remove.append(name)
    out.state = sorted(set(wanted) | set(removed))
    return out


# --- the node side: read the current state, apply a plan -------------------------------------------------


def read_shadow_expiry(path: str = "/etc/shadow") -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.rstrip("\n").split(":")
            if len(fields) >= 8:
                out[fields[0]] = int(fields[7]) if fields[7].strip() else None
    return out


def read_current(keys_dir: str, state_file: str) -> Current:
    expiry = read_shadow_expiry()
    accounts = {
        p.pw_name: Account(
            p.pw_name, p.pw_uid, p.pw_gid, p.pw_gecos, p.pw_dir, p.pw_shell, expiry.get(p.pw_name)
        )
        for p in pwd.getpwall()
    }
    groups = {g.gr_name: g.gr_gid for g in grp.getgrall()}
    members: dict[str, set[str]] = {}
    for g in grp.getgrall():
        for member in g.gr_mem:
            members.setdefault(member, set()).add(g.gr_name)
    keys = {}
    if os.path.isdir(keys_dir):
        for name in os.listdir(keys_dir):
            path = os.path.join(keys_dir, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as fh:
                    keys[name] = fh.read()
    managed: tuple[str, ...] = ()
    if os.path.exists(state_file):
        with open(state_file, encoding="utf-8") as fh:
            managed = tuple(json.load(fh))
    return Current(accounts, groups, {k: frozenset(v) for k, v in members.items()}, keys, managed)


def write_file(path: str, content: str, mode: int) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ailab-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.chown(tmp, 0, 0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "dict", "required": True},
            "admin_group": {"type": "str", "required": True},
            "admin_gid": {"type": "int", "required": True},
            "home_root": {"type": "path", "required": True},
            "shell": {"type": "path", "default": "/bin/bash"},
            "locked_shell": {"type": "path", "default": "/usr/sbin/nologin"},
            "keys_dir": {"type": "path", "required": True},
            "state_file": {"type": "path", "required": True},
            "remove_unlisted": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    current = read_current(p["keys_dir"], p["state_file"])
    try:
        todo = plan(
            current,
            p["users"],
            admin_group=p["admin_group"],
            admin_gid=p["admin_gid"],
            home_root=p["home_root"],
            shell=p["shell"],
            locked_shell=p["locked_shell"],
            remove_unlisted=p["remove_unlisted"],
        )
    except Conflict as exc:
        module.fail_json(
            msg=f"{exc}: nothing was changed -- fix: give the inventory user another uid/gid "
            "(ailab_users) or remove that account from the node"
        )
    state_text = json.dumps(todo.state) + "\n"
    state_changed = list(current.managed) != todo.state or not os.path.exists(p["state_file"])
    files = [os.path.join(p["keys_dir"], n) for n in (*todo.write, *todo.remove)]
    if state_changed:
        files.append(p["state_file"])
    changed = bool(todo.commands or files)
    result = {
        "changed": changed,
        "commands": [" ".join(c) for c in todo.commands],
        "files": files,
        "locked": todo.locked,
    }
    if module.check_mode or not changed:
        module.exit_json(**result)
    for cmd in todo.commands:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if cmd[0] == "groupdel" and done.returncode == GROUPDEL_NO_GROUP:
            continue
        if done.returncode != 0:
            module.fail_json(msg=f"{' '.join(cmd)} failed: {done.stderr.strip()}", **result)
    os.makedirs(p["keys_dir"], mode=0o755, exist_ok=True)
    for name, content in todo.write.items():
        write_file(os.path.join(p["keys_dir"], name), content, 0o644)
    for name in todo.remove:
        os.unlink(os.path.join(p["keys_dir"], name))
    if state_changed:
        os.makedirs(os.path.dirname(p["state_file"]), mode=0o755, exist_ok=True)
        write_file(p["state_file"], state_text, 0o600)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
