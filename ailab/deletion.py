"""The system side of the yearly deletion (rule 1): what :mod:`ailab.retention` decides, this module checks
and carries out on the front-end.  Standard library only (copied with it by role operations).

- **The home file system.**  :func:`check_home_root`: the home root is a CephFS mount that answers, or
  nothing is done.
- **Homes and the manifest.**  :func:`checked_home` refuses a home that is a link, not a directory or holds
  a mount point; :func:`walk` lists what the :class:`Manifest` records (fsynced before anything goes);
  :func:`remove_home` never follows links.
- **Accounts, Slurm, logins.**  :class:`Ops` and the real :class:`SystemOps`: lock, cancel jobs, end
  processes, read and delete accounts and associations, for all users of a run at once (one squeue or
  sacctmgr per 500 users, not one per user); :class:`DeniedUsers`, the list PAM reads on the operations
  host for directory users, who have no local account to lock.
- **Users removed from the inventory.**  :func:`removed_people` from role accounts' and role directory's
  state files and passwd.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from ailab.ceph import mount_unit_name
from ailab.model import USERNAME_RE
from ailab.mounts import mount_type, probe_directory, read_mount_table
from ailab.opsconfig import OpsConfig, Person
from ailab.runtime import ToolError, fsync_dir, run_command, write_atomic

# Users removed from the inventory --------------------------------------------------------------------
# Role accounts locks a user that left ailab_users and keeps their home; it lists every account it manages
# in its state file (managed-accounts.json).  Those listed there but not in ops.json are the removed users:
# the tool reads them at every run (uid, full name and e-mail from the locked account's passwd entry, which
# role accounts wrote from the inventory) and deletes their data in the next cycle like everyone's:
# notices first, manifest first, the same rules.  Gone from passwd (already deleted): not a target.

Passwd = Callable[[str], "tuple[int, str] | None"]  # name -> (uid, GECOS), None when there is no account


def removed_people(listed: Sequence[str], managed: Sequence[str], passwd: Passwd) -> list[Person]:
    """The users ``managed`` (role accounts' state) that the configuration no longer ``listed``."""
    out = []
    for name in sorted(set(managed) - set(listed)):
        if not isinstance(name, str) or not USERNAME_RE.match(name):
            continue
        entry = passwd(name)
        if entry is None or entry[0] < 1000:
            continue
        fields = entry[1].split(",")
        email = fields[4].strip() if len(fields) > 4 and "@" in fields[4] else ""
        out.append(Person(name, entry[0], email, full_name=fields[0].strip(), removed=True))
    return out


def read_managed(path: str) -> list[str]:
    """Role accounts' state file: a JSON list of user names ([] when there is none)."""
    if not path:
        return []
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(
            f"cannot read role accounts' state {path} ({exc}); nothing was done -- fix: restore it or "
            "converge (site.yml, role accounts)"
        ) from None
    if not isinstance(data, list):
        raise ToolError(f"{path} is not a JSON list of user names -- fix: converge (role accounts)")
    return [n for n in data if isinstance(n, str)]


def system_passwd(name: str) -> tuple[int, str] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gecos


# Directory users refused at once ---------------------------------------------------------------------
# A user from the directory has no local account here to lock: their entry goes with the next converge
# (role directory reads the deletion record), which may be days later.  Until then the front-end refuses
# them through PAM (role operations: pam_listfile in /etc/pam.d/sshd reads this list, next to the
# record).  stop() adds a user before anything of theirs is deleted; readmit removes them.


DENIED_FILE = "denied-users"


def denied_file(config: OpsConfig) -> Path:
    """The list PAM reads on the operations host: beside the deletion record."""
    return Path(config.retention_state).with_name(DENIED_FILE)


class DeniedUsers:
    """One user name per line, written atomically (root only)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def names(self) -> list[str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _write(self, names: Sequence[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, "".join(f"{n}\n" for n in sorted(set(names))).encode())

    def add_all(self, names: Sequence[str]) -> None:
        """Add every name in one write (the yearly deletion stops thousands at once)."""
        listed = self.names()
        if not set(names) <= set(listed):
            self._write([*listed, *names])

    def remove(self, name: str) -> None:
        names = self.names()
        if name in names:
            self._write([n for n in names if n != name])


# Homes, manifest and deletion ------------------------------------------------------------------------


class HomeError(Exception):
    """A home or mail spool that is not what the tool may delete; stops that user's deletion."""


@dataclass(frozen=True)
class Entry:
    path: str
    uid: int
    bytes: int  # data bytes of regular files (CephFS reports a directory's recursive size: not counted)
    kind: str  # file, dir, link, other


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _entry(path: str, st: os.stat_result) -> Entry:
    kind = _kind(st.st_mode)
    return Entry(path, st.st_uid, st.st_size if kind == "file" else 0, kind)


def checked_home(home_root: Path, name: str) -> Path | None:
    """``<home_root>/<name>`` if it is a real directory, None if absent; HomeError otherwise.
    ``home_root`` must already be resolved (realpath)."""
    if not USERNAME_RE.match(name):
        raise HomeError(f"{name!r} is not a valid user name; refusing to build a path from it")
    home = home_root / name
    try:
        st = os.lstat(home)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise HomeError(
            f"{home} is a symbolic link (to {os.readlink(home)}); links are never followed out of "
            f"{home_root} -- fix: inspect it and remove it by hand"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise HomeError(f"{home} is not a directory -- fix: inspect it and remove it by hand")
    return home


def checked_spool(spool_dir: Path, name: str) -> Path | None:
    spool = spool_dir / name
    try:
        st = os.lstat(spool)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise HomeError(f"mail spool {spool} is not a regular file -- fix: inspect it and remove it by hand")
    return spool


def walk(top: Path) -> Iterator[Entry]:
    """Every entry under ``top`` (itself first), never following symbolic links or crossing mounts."""
    st = os.lstat(top)
    device = st.st_dev
    yield _entry(str(top), st)
    stack = [str(top)] if stat.S_ISDIR(st.st_mode) else []
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for item in entries:
                item_st = item.stat(follow_symlinks=False)
                yield _entry(item.path, item_st)
                if stat.S_ISDIR(item_st.st_mode):
                    if item_st.st_dev != device:
                        raise HomeError(f"{item.path} is a mount point inside {top}; refusing to cross it")
                    stack.append(item.path)


def remove_home(home_root: Path, home: Path) -> None:
    """Delete one checked home.  Re-checks right before deleting: still a directory directly under the
    (resolved) home root, not a link; rmtree must be the symlink-attack-safe implementation."""
    if home.parent != home_root:
        raise HomeError(f"{home} is not directly under {home_root}")
    st = os.lstat(home)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise HomeError(f"{home} changed into something that is not a directory; not deleted")
    if not shutil.rmtree.avoids_symlink_attacks:
        raise ToolError("this platform's shutil.rmtree can follow symbolic links; refusing to delete homes")
    shutil.rmtree(home)


# The home file system ----------------------------------------------------------------------------------
# Without CephFS on the home root every home looks absent: a run would delete accounts, associations and
# mail and record the users as deleted while their data stays.  Every run that decides deletions first
# proves the home root is a CephFS mount that answers.

CEPHFS_TYPES = ("ceph", "fuse.ceph-fuse")


def home_root_problem(mount_table: str, home_root: str) -> str | None:
    """Why ``home_root`` is not a CephFS mount (what the mount table shows there), or None."""
    fstype = mount_type(mount_table, home_root)
    if fstype is None:
        return "nothing is mounted there"
    if fstype not in CEPHFS_TYPES:
        return f"the file system mounted there is {fstype}, not CephFS ({' or '.join(CEPHFS_TYPES)})"
    return None


def refuse_home_root(home_root: str, why: str) -> ToolError:
    return ToolError(
        f"home_root {home_root} is not a mounted CephFS file system that answers: {why}; nothing was done "
        f"(without it every home would look absent) -- fix: mount CephFS there (role cephfs_client: "
        f"systemctl start {mount_unit_name(home_root)}; ailab-cephfs-check repairs a hung mount), "
        "then run again"
    )


def check_home_root(
    home_root: str,
    mount_table: Callable[[], str] = read_mount_table,
    probe: Callable[[str], str | None] = probe_directory,
) -> None:
    """Raise ToolError (nothing done yet) unless ``home_root`` is a CephFS mount point that answers."""
    why = home_root_problem(mount_table(), home_root) or probe(home_root)
    if why:
        raise refuse_home_root(home_root, why)


class Manifest:
    """JSON lines, written to a temporary file and only renamed into place once complete and fsynced."""

    def __init__(self, directory: Path, name: str):
        self.directory = directory
        self.final = directory / name
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(directory / f".{name}.partial", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ToolError(
                f"cannot create the deletion manifest in {directory}: {exc.strerror}; nothing was deleted "
                "-- fix: make the manifest directory writable (and free space), then run again"
            ) from None
        self.partial = directory / f".{name}.partial"
        self.handle: IO[str] = os.fdopen(fd, "w")
        self.lines = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self.handle.write(json.dumps(record, sort_keys=True) + "\n")
        self.lines += 1

    def commit(self) -> Path:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.final)
        fsync_dir(self.directory)
        return self.final

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


class Ops(Protocol):
    """What deletion needs from the system besides files (Unix accounts, Slurm, the home mount).

    Every call takes all the users of a run at once: the yearly deletion stops and deletes thousands, and
    one squeue or sacctmgr for all of them costs what one per user would cost for a single one.  The calls
    that can fail for some users and not others return ``{name: error}`` for those."""

    def check_home_root(self, home_root: str) -> None: ...
    def removed_users(self, config: OpsConfig) -> list[Person]: ...
    def accounts(self, names: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def stop(self, users: Sequence[Person]) -> dict[str, str]: ...
    def associations(self, users: Sequence[Person]) -> dict[str, list[str]]: ...
    def delete_associations(self, users: Sequence[Person]) -> dict[str, str]: ...
    def delete_account(self, user: Person) -> None: ...


Runner = Callable[..., subprocess.CompletedProcess]

# Names or uids per command line: a single argument may not exceed 128 KiB (MAX_ARG_STRLEN).
ARGS_PER_CALL = 500


def chunks(items: Sequence[str], size: int = ARGS_PER_CALL) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def by_name(lines: str) -> dict[str, str]:
    """getent's answer for several keys: each line keyed by its first field."""
    return {line.split(":", 1)[0]: line for line in lines.splitlines() if line.strip()}


def jobs_by_uid(squeue_out: str) -> dict[int, list[str]]:
    """``squeue --format='%i %U'`` lines: the job ids of each uid."""
    jobs: dict[int, list[str]] = {}
    for line in squeue_out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            jobs.setdefault(int(fields[1]), []).append(fields[0])
    return jobs


def associations_by_user(sacctmgr_out: str) -> dict[str, list[str]]:
    """``sacctmgr --parsable2 show associations format=cluster,account,user,partition,qos`` by user."""
    found: dict[str, list[str]] = {}
    for line in sacctmgr_out.splitlines():
        fields = line.split("|")
        if len(fields) >= 3 and fields[2]:
            found.setdefault(fields[2], []).append(line)
    return found


class SystemOps:
    """The real thing on the front-end: usermod/userdel, pkill, scancel/squeue, sacctmgr."""

    def __init__(
        self,
        slurm: bool = True,
        job_wait: float = 120,
        run: Runner = subprocess.run,
        mount_table: Callable[[], str] = read_mount_table,
        probe: Callable[[str], str | None] = probe_directory,
        passwd: Passwd = system_passwd,
        directory: bool = False,
        local_passwd: str = "/etc/passwd",
        denied: DeniedUsers | None = None,
    ):
        self._passwd = passwd
        # Users from the directory have no local account to lock or delete here (role directory locks
        # and deletes their entries); local ones (the admins) still do.
        self.directory = directory
        self._local_passwd = local_passwd
        self._denied = denied
        self.slurm = slurm
        self.job_wait = job_wait
        self._run_fn = run
        self._mount_table = mount_table
        self._probe = probe

    def check_home_root(self, home_root: str) -> None:
        """The home root is a CephFS mount point and answers; ToolError (nothing done) otherwise."""
        check_home_root(home_root, self._mount_table, self._probe)

    def removed_users(self, config: OpsConfig) -> list[Person]:
        """Users role accounts manages here that ops.json no longer lists (locked, homes kept)."""
        managed = read_managed(config.accounts_state) + read_managed(config.directory_state)
        return removed_people([u.name for u in config.users], managed, self._passwd)

    def _run(self, argv: Sequence[str], ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
        return run_command(self._run_fn, argv, ok=ok, timeout=120)

    def _getent(self, database: str, names: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in chunks(names):
            found.update(by_name(self._run(["getent", database, *part], ok=(0, 2)).stdout))
        return found

    def accounts(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The passwd and group lines of those of ``names`` that resolve (one getent each for all)."""
        passwd = self._getent("passwd", names)
        group = self._getent("group", list(passwd)) if passwd else {}
        return {name: {"passwd": line, "group": group.get(name, "")} for name, line in passwd.items()}

    def _local_names(self) -> set[str] | None:
        """The names in the local passwd file; None when every account is local (no directory)."""
        if not self.directory:
            return None
        try:
            with open(self._local_passwd, encoding="utf-8") as fh:
                return {line.split(":", 1)[0] for line in fh}
        except OSError:
            return set()

    def stop(self, users: Sequence[Person]) -> dict[str, str]:
        """Lock the accounts, cancel the users' jobs and end their processes on this node."""
        errors: dict[str, str] = {}
        local = self._local_names()
        present = self._getent("passwd", [u.name for u in users])  # who has an account (no group needed)
        refused = []
        for user in users:
            if user.name not in present:
                continue
            if local is None or user.name in local:
                try:
                    self._run(["usermod", "--lock", "--expiredate", "1", user.name])
                except ToolError as exc:
                    errors[user.name] = str(exc)
            else:
                refused.append(user.name)  # a directory user: refused at login until the entry goes
        if refused and self._denied is not None:
            self._denied.add_all(refused)
        if self.slurm:
            errors.update(self._cancel_jobs([u for u in users if u.name not in errors]))
        uids = [str(u.uid) for u in users if u.name not in errors]
        for part in chunks(uids):
            self._run(["pkill", "--signal", "KILL", "--uid", ",".join(part)], ok=(0, 1))
        return errors

    def _jobs(self, uids: Sequence[str]) -> dict[int, list[str]]:
        jobs: dict[int, list[str]] = {}
        for part in chunks(uids):
            argv = ["squeue", "--noheader", "--all", f"--user={','.join(part)}", "--format=%i %U"]
            jobs.update(jobs_by_uid(self._run(argv).stdout))
        return jobs

    def _cancel_jobs(self, users: Sequence[Person]) -> dict[str, str]:
        """scancel every job of ``users``, then wait until squeue shows none: one squeue per wait for all
        of them.  The users whose jobs still run after ``job_wait`` seconds are returned with the error."""
        uids = [str(u.uid) for u in users]
        jobs = self._jobs(uids)
        cancel_error = ""
        ids = [j for js in jobs.values() for j in js]
        for part in chunks(ids):
            # A job that ended since squeue makes scancel exit 1: the wait below is what checks.
            result = self._run(["scancel", *part], ok=(0, 1))
            cancel_error = cancel_error or (result.stderr or "").strip()
        deadline = time.monotonic() + self.job_wait
        while jobs:
            if time.monotonic() > deadline:
                why = f"; scancel said: {cancel_error}" if cancel_error else ""
                return {
                    u.name: f"jobs {', '.join(jobs[u.uid])} still run {self.job_wait:.0f}s after scancel{why}"
                    for u in users
                    if u.uid in jobs
                }
            time.sleep(2)
            jobs = self._jobs([str(uid) for uid in jobs])
        return {}

    def associations(self, users: Sequence[Person]) -> dict[str, list[str]]:
        """Each user's Slurm associations, from one sacctmgr per 500 users."""
        if not self.slurm:
            return {}
        found: dict[str, list[str]] = {}
        for part in chunks([u.name for u in users]):
            argv = ["sacctmgr", "--noheader", "--parsable2", "show", "associations"]
            argv += [f"users={','.join(part)}", "format=cluster,account,user,partition,qos"]
            found.update(associations_by_user(self._run(argv).stdout))
        return found

    def delete_associations(self, users: Sequence[Person]) -> dict[str, str]:
        """Delete the users' associations (one sacctmgr for all of them); if that fails, one by one, so
        one bad user does not hold back the others.  Returns the errors by user."""
        if not self.slurm:
            return {}
        names = list(self.associations(users))
        errors: dict[str, str] = {}
        for part in chunks(names):
            try:
                self._run(["sacctmgr", "--immediate", "delete", "user", f"name={','.join(part)}"])
            except ToolError:
                for name in part:
                    try:
                        self._run(["sacctmgr", "--immediate", "delete", "user", f"name={name}"])
                    except ToolError as exc:
                        errors[name] = str(exc)
        return errors

    def delete_account(self, user: Person) -> None:
        local = self._local_names()
        if local is not None and user.name not in local:
            return  # a directory user: no local account (role directory deletes the entry)
        if not self._getent("passwd", [user.name]):
            return
        self._run(["userdel", user.name])
        # userdel removes the personal group (USERGROUPS_ENAB); a group left behind with no members goes too.
        group = self._run(["getent", "group", user.name], ok=(0, 2)).stdout.strip()
        if group and group.split(":")[-1] == "":
            self._run(["groupdel", user.name])
