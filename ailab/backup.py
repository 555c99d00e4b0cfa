"""The daily backup of what a rebuilt host cannot get back from the inventory, and its restore.

Runs as ``ailab-backup`` (role ``backup``: a daily systemd timer) on the Slurm controller and on the
operations host, reading /etc/ailab/backup.json (rendered from the inventory by :func:`config_data`).
Standard library only, besides :mod:`ailab.mounts` and :mod:`ailab.notices`, which are copied with it.

What is backed up (the *components* of a host):

- ``slurmctld`` (controllers): the StateSaveLocation: queued and running jobs, node states, reservations,
  the next job id.  slurmctld writes each state file anew and renames it, so a copy of a running one is a
  set of whole files, as of its last save (it saves at most 5 s after a change).
- ``accounting`` (controllers): the accounting database (``mysqldump --single-transaction``): associations,
  QOS, usage and the history of every job.
- ``operations`` (the operations host): /var/lib/ailab: the record of deletions (who stays deleted), the
  notices sent, the deletion manifests and role accounts' list of managed accounts.

The rules this tool implements (each is unit-tested):

- **Only to a separate file system.**  ``ailab_backup.destination`` must be on a file system mounted apart
  from this host's root (/proc/self/mountinfo) and answer a stat and listing within 20 s; otherwise nothing
  is written and the exit code is 2.  A backup on the disk it protects is lost with the host.
- **Whole archives only.**  One ``<destination>/<host>/<host>-<UTC time>.tar.gz`` per run, written as a
  hidden partial file, fsynced, then renamed: a listed backup is complete.  Its ``manifest.json`` names the
  host, the time and the components.
- **Keep the newest ``keep``** of this host; only files named like its backups are ever removed.
- **Restore never loses what is there.**  What a restore replaces is moved aside first (a directory to
  ``<path>.before-restore-<time>``, a database with tables to a dump in /var/lib/ailab-backup); the
  daemons of a component are stopped for it and started again if they ran.
- **Restore on rebuild.**  ``restore --if-empty`` (what site.yml runs) restores only the components that
  are empty on this host (no slurmctld state files, an accounting database without tables, no operations
  state), from the newest backup of this host; a component not installed yet is left for the role that
  installs it.  A host that was never backed up, or whose state is there, is left alone.
- **Archives are checked before anything is touched**: members must be regular files or directories inside
  their component (no absolute paths, ``..`` or links).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ailab.mounts import containing_mount, probe_directory, read_mount_table
from ailab.runtime import ToolError, atomic_file, fsync_dir, read_json_config

if TYPE_CHECKING:  # the node-side copy does not need the model: config_data runs on the controller
    from ailab.model import Cluster

FORMAT = 1
SLURMCTLD = "slurmctld"
ACCOUNTING = "accounting"
OPERATIONS = "operations"
COMPONENTS = (SLURMCTLD, ACCOUNTING, OPERATIONS)
# The files whose presence means slurmctld has state (it writes them at its first save).
SLURMCTLD_STATE_FILES = ("job_state", "node_state", "resv_state")
ACCOUNTING_DUMP = "accounting.sql"
MANIFEST = "manifest.json"
ASIDE_DIR = "/var/lib/ailab-backup"  # where a restore keeps the database it replaced
# The daemons that use each component: stopped for its restore, started again if they ran.
SERVICES = {SLURMCTLD: ("slurmctld",), ACCOUNTING: ("slurmdbd",), OPERATIONS: ()}
NAME_RE = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)-(?P<stamp>\d{8}T\d{6}Z)\.tar\.gz$")
STAMP = "%Y%m%dT%H%M%SZ"
REFUSED = ToolError.exit_code  # exit code: destination not usable (or another fix needed), nothing done


# Configuration ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Component:
    kind: str  # slurmctld, accounting or operations
    path: str = ""  # slurmctld, operations: the directory
    owner: str = "root"  # slurmctld, operations: who owns the restored files
    database: str = ""  # accounting


@dataclasses.dataclass(frozen=True)
class BackupConfig:
    host: str
    destination: str
    keep: int
    components: tuple[Component, ...]

    @property
    def host_dir(self) -> Path:
        return Path(self.destination) / self.host


def components_of(
    cluster: Cluster,
    host: str,
    *,
    state_save_location: str,
    accounting_db: str,
    slurm_user: str,
    operations_state_dir: str,
) -> tuple[Component, ...]:
    """What ``host`` keeps that only a backup can give back."""
    out: list[Component] = []
    if host in {h.name for h in cluster.controllers}:
        out.append(Component(SLURMCTLD, path=state_save_location, owner=slurm_user))
        out.append(Component(ACCOUNTING, database=accounting_db))
    if host == cluster.operations_host:
        out.append(Component(OPERATIONS, path=operations_state_dir, owner="root"))
    return tuple(out)


def config_data(cluster: Cluster, host: str, operations_state_dir: str) -> dict[str, Any]:
    """/etc/ailab/backup.json of ``host`` (role backup)."""
    from ailab.slurm import ACCOUNTING_DB, SLURM_USER, STATE_SAVE_LOCATION

    comps = components_of(
        cluster,
        host,
        state_save_location=STATE_SAVE_LOCATION,
        accounting_db=ACCOUNTING_DB,
        slurm_user=SLURM_USER,
        operations_state_dir=operations_state_dir,
    )
    return {
        "format": FORMAT,
        "host": host,
        "destination": cluster.backup.destination,
        "keep": cluster.backup.keep,
        "on_calendar": cluster.backup.on_calendar,
        "components": [{k: v for k, v in dataclasses.asdict(c).items() if v} for c in comps],
    }


def parse_config(data: Any, source: str = "config") -> BackupConfig:
    def bad(field: str, why: str) -> ToolError:
        return ToolError(
            f"{source}: {field} {why} -- fix: converge again (role backup writes it from ailab_backup)"
        )

    if not isinstance(data, Mapping):
        raise bad("", "is not a JSON object")
    host, dest, keep = data.get("host"), data.get("destination"), data.get("keep")
    if not isinstance(host, str) or not NAME_RE.match(f"{host}-20000101T000000Z.tar.gz"):
        raise bad("host", f"is not a host name: {host!r}")
    if not isinstance(dest, str) or not dest.startswith("/") or os.path.normpath(dest) != dest:
        raise bad("destination", f"is not a normalized absolute path: {dest!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise bad("keep", f"is not a whole number >= 1: {keep!r}")
    comps = []
    for i, raw in enumerate(data.get("components") or ()):
        if not isinstance(raw, Mapping) or raw.get("kind") not in COMPONENTS:
            raise bad(f"components[{i}]", f"is not one of {', '.join(COMPONENTS)}: {raw!r}")
        comp = Component(**{k: str(v) for k, v in raw.items() if k in ("kind", "path", "owner", "database")})
        if comp.kind == ACCOUNTING and not comp.database:
            raise bad(f"components[{i}].database", "is missing")
        if comp.kind != ACCOUNTING and not comp.path.startswith("/"):
            raise bad(f"components[{i}].path", f"is not an absolute path: {comp.path!r}")
        comps.append(comp)
    return BackupConfig(host=host, destination=dest, keep=keep, components=tuple(comps))


def load_config(path: str | os.PathLike[str]) -> BackupConfig:
    return parse_config(read_json_config(path, "converge this host (role backup)"), str(path))


# Destination -----------------------------------------------------------------------------------------


def destination_problem(mount_table: str, destination: str) -> str | None:
    """Why ``destination`` is no place for a backup of this host (judged from the mount table), or None."""
    if containing_mount(mount_table, destination) == "/":
        return (
            "it is on this host's root file system (nothing is mounted at it or above it), and a backup "
            "there is lost with the host"
        )
    return None


def check_destination(
    destination: str,
    mount_table: Callable[[], str] = read_mount_table,
    probe: Callable[[str], str | None] = probe_directory,
) -> None:
    """Raise ToolError (exit 2, nothing written) unless ``destination`` is on its own mounted file system
    that answers; creates ``destination`` itself if the mount is above it."""
    table = mount_table()
    why = destination_problem(table, destination)
    if why is None:
        why = probe(containing_mount(table, destination))
    if why is None:
        try:
            os.makedirs(destination, mode=0o700, exist_ok=True)
        except OSError as exc:
            why = f"cannot create it: {exc.strerror}"
    if why:
        raise ToolError(
            f"backup destination {destination} cannot be used: {why}; nothing was written -- fix: mount the "
            "site's backup file system there or above it (an NFS share, a systemd mount unit), or set "
            "ailab_backup.destination to where it is mounted and converge again"
        )  # a ToolError exits 2 (REFUSED)


# Names and pruning -----------------------------------------------------------------------------------


def archive_name(host: str, now: dt.datetime) -> str:
    return f"{host}-{now.astimezone(dt.UTC).strftime(STAMP)}.tar.gz"


def backups_of(host: str, names: Iterable[str]) -> list[str]:
    """The names among ``names`` that are backups of ``host``, oldest first (partial files are not)."""
    found = []
    for name in names:
        m = NAME_RE.match(name)
        if m and m.group("host") == host:
            found.append((m.group("stamp"), name))
    return [name for _, name in sorted(found)]


def to_prune(host: str, names: Iterable[str], keep: int) -> list[str]:
    """The backups of ``host`` beyond the newest ``keep``, oldest first."""
    ours = backups_of(host, names)
    return ours[: max(0, len(ours) - keep)]


# Archives --------------------------------------------------------------------------------------------


def check_members(members: Sequence[tarfile.TarInfo], components: Iterable[str]) -> None:
    """Refuse an archive with a member that could land outside its component or is not a plain file or
    directory (links, devices), before anything is extracted."""
    allowed = set(components)
    for m in members:
        parts = PurePosixPath(m.name).parts
        if m.name.startswith("/") or ".." in parts or not parts:
            raise ToolError(f"archive member {m.name!r} has an unsafe path; nothing was restored")
        if not (m.isfile() or m.isdir()):
            raise ToolError(
                f"archive member {m.name!r} is not a regular file or directory; nothing was restored"
            )
        top = parts[0]
        if top in (MANIFEST, ACCOUNTING_DUMP) and m.isfile() and len(parts) == 1:
            continue
        if top not in allowed:
            raise ToolError(f"archive member {m.name!r} belongs to no component; nothing was restored")


def read_manifest(tar: tarfile.TarFile, source: str) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        handle = tar.extractfile(member)
        data = json.loads(handle.read().decode("utf-8")) if handle else None
    except (KeyError, ValueError) as exc:
        raise ToolError(
            f"{source} has no readable {MANIFEST} ({exc}); it is not a backup of this tool"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ToolError(f"{source}: {MANIFEST} is not format {FORMAT}; nothing was restored")
    return data


def dir_has_files(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any(p.is_file() for p in path.rglob("*"))


def is_empty(comp: Component, runner: Runner) -> tuple[bool, str]:
    """(whether ``comp`` is empty on this host, why not / what is missing to restore it)."""
    if comp.kind == SLURMCTLD:
        if not runner.user_exists(comp.owner):
            return False, f"not installed yet (no user {comp.owner}; role slurm_controller restores it)"
        path = Path(comp.path)
        present = [f for f in SLURMCTLD_STATE_FILES if (path / f).exists()]
        return (not present), f"has state ({', '.join(present)})"
    if comp.kind == ACCOUNTING:
        tables = runner.table_count(comp.database)
        if tables is None:
            return False, "MariaDB is not installed or not running yet (role slurm_controller restores it)"
        return tables == 0, f"database {comp.database} has {tables} tables"
    return (not dir_has_files(Path(comp.path))), f"{comp.path} has files"


# The system: what the tool runs (an object, so tests can run it against directories) -------------------


class Runner:
    """Commands and lookups on this host."""

    def run(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, text=True, capture_output=True, check=False, **kw)
        except FileNotFoundError as exc:
            raise ToolError(f"{argv[0]} is not installed -- fix: converge this host") from exc

    def user_exists(self, name: str) -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True

    def ids(self, name: str) -> tuple[int, int]:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid

    def table_count(self, database: str) -> int | None:
        query = f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{database}'"
        try:
            result = subprocess.run(
                ["mysql", "-N", "-B", "-e", query], text=True, capture_output=True, check=False, timeout=60
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            return None
        return int(result.stdout.strip())

    def dump(self, database: str, out: Path) -> None:
        with open(out, "w", encoding="utf-8") as handle:
            result = subprocess.run(
                ["mysqldump", "--single-transaction", "--routines", "--add-drop-database", "--databases",
                 database],
                stdout=handle, stderr=subprocess.PIPE, text=True, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise ToolError(
                f"mysqldump {database} failed: {result.stderr.strip()} -- fix: systemctl status mariadb"
            )

    def load(self, dump: Path) -> None:
        with open(dump, encoding="utf-8") as handle:
            result = subprocess.run(["mysql"], stdin=handle, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ToolError(f"loading {dump.name} into MariaDB failed: {result.stderr.strip()}")

    def active(self, service: str) -> bool:
        return self.run(["systemctl", "is-active", "--quiet", service]).returncode == 0

    def systemctl(self, action: str, service: str) -> None:
        result = self.run(["systemctl", action, service])
        if result.returncode != 0:
            raise ToolError(
                f"systemctl {action} {service} failed: {result.stderr.strip()} -- fix: "
                f"journalctl -u {service}"
            )


# Taking a backup -------------------------------------------------------------------------------------


def _add_tree(tar: tarfile.TarFile, root: Path, arcname: str) -> int:
    """Add the regular files and directories under ``root`` (links and sockets are not state)."""
    count = 0
    tar.add(root, arcname=arcname, recursive=False)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            tar.add(path, arcname=str(PurePosixPath(arcname) / rel / name), recursive=False)
            count += path.is_file()
    return count


def take(config: BackupConfig, now: dt.datetime, runner: Runner) -> tuple[Path, dict[str, Any]]:
    """Write one backup of this host; return its path and manifest."""
    config.host_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = archive_name(config.host, now)
    final = config.host_dir / name
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "host": config.host,
        "created": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "components": {},
    }
    # Innermost first: the tar stream is closed, then the archive is fsynced and renamed into place.
    with (
        tempfile.TemporaryDirectory(prefix="ailab-backup.") as work,
        atomic_file(final) as raw,
        tarfile.open(fileobj=raw, mode="w:gz") as tar,
    ):
        for comp in config.components:
            if comp.kind == ACCOUNTING:
                dump = Path(work) / ACCOUNTING_DUMP
                runner.dump(comp.database, dump)
                tar.add(dump, arcname=ACCOUNTING_DUMP)
                manifest["components"][comp.kind] = {
                    "database": comp.database, "bytes": dump.stat().st_size,
                }  # fmt: skip
            else:
                root = Path(comp.path)
                if not root.is_dir():
                    raise ToolError(f"{comp.kind}: {comp.path} does not exist -- fix: converge this host")
                files = _add_tree(tar, root, comp.kind)
                manifest["components"][comp.kind] = {"path": comp.path, "files": files}
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
        tar.addfile(info, io.BytesIO(data))
    return final, manifest


def prune(config: BackupConfig) -> list[str]:
    gone = to_prune(config.host, os.listdir(config.host_dir), config.keep)
    for name in gone:
        (config.host_dir / name).unlink()
    if gone:
        fsync_dir(config.host_dir)
    return gone


# Restoring -------------------------------------------------------------------------------------------


def newest(config: BackupConfig) -> Path | None:
    if not config.host_dir.is_dir():
        return None
    ours = backups_of(config.host, os.listdir(config.host_dir))
    return config.host_dir / ours[-1] if ours else None


def _restore_tree(tar: tarfile.TarFile, comp: Component, stamp: str, runner: Runner) -> str:
    target = Path(comp.path)
    moved = ""
    if target.exists() and any(target.iterdir()):
        aside = target.with_name(f"{target.name}.before-restore-{stamp}")
        os.rename(target, aside)
        moved = f" (what was there is in {aside})"
    elif target.exists():
        target.rmdir()
    uid, gid = runner.ids(comp.owner)
    staging = target.with_name(f".{target.name}.restoring-{stamp}")
    staging.mkdir(mode=0o700)
    prefix = f"{comp.kind}/"
    for member in tar.getmembers():
        if member.name != comp.kind and not member.name.startswith(prefix):
            continue
        rel = member.name[len(prefix) :] if member.name != comp.kind else ""
        dest = staging / rel if rel else staging
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            handle = tar.extractfile(member)
            with open(dest, "wb") as out:
                shutil.copyfileobj(handle, out)  # type: ignore[arg-type]
        os.chmod(dest, member.mode & 0o7777)
        os.utime(dest, (member.mtime, member.mtime))
        os.chown(dest, uid, gid)
    os.rename(staging, target)
    fsync_dir(target.parent)
    return f"{comp.kind}: restored {comp.path}{moved}"


def _restore_accounting(tar: tarfile.TarFile, comp: Component, stamp: str, runner: Runner) -> str:
    moved = ""
    tables = runner.table_count(comp.database)
    if tables is None:
        raise ToolError(f"{comp.kind}: MariaDB does not answer -- fix: systemctl start mariadb")
    with tempfile.TemporaryDirectory(prefix="ailab-restore.") as work:
        if tables:
            Path(ASIDE_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
            aside = Path(ASIDE_DIR) / f"{comp.database}.before-restore-{stamp}.sql"
            runner.dump(comp.database, aside)
            moved = f" (what was there is in {aside})"
        dump = Path(work) / ACCOUNTING_DUMP
        handle = tar.extractfile(tar.getmember(ACCOUNTING_DUMP))
        with open(dump, "wb") as out:
            shutil.copyfileobj(handle, out)  # type: ignore[arg-type]
        runner.load(dump)
    return f"{comp.kind}: restored database {comp.database}{moved}"


def restore(
    config: BackupConfig,
    archive: Path,
    now: dt.datetime,
    runner: Runner,
    *,
    if_empty: bool = False,
    only: Sequence[str] = (),
) -> list[str]:
    """Restore the components of ``archive``; returns what was done and left, one line each."""
    stamp = now.astimezone(dt.UTC).strftime(STAMP)
    lines: list[str] = []
    with tarfile.open(archive, "r:gz") as tar:
        manifest = read_manifest(tar, str(archive))
        in_archive = set(manifest.get("components") or {})
        check_members(tar.getmembers(), in_archive)
        todo = []
        for comp in config.components:
            if only and comp.kind not in only:
                continue
            if comp.kind not in in_archive:
                lines.append(f"{comp.kind}: not in {archive.name}")
                continue
            if if_empty:
                empty, why = is_empty(comp, runner)
                if not empty:
                    lines.append(f"{comp.kind}: left alone, {why}")
                    continue
            todo.append(comp)
        for comp in todo:
            stopped = [s for s in SERVICES[comp.kind] if runner.active(s)]
            for service in stopped:
                runner.systemctl("stop", service)
            try:
                if comp.kind == ACCOUNTING:
                    lines.append(_restore_accounting(tar, comp, stamp, runner))
                else:
                    lines.append(_restore_tree(tar, comp, stamp, runner))
            finally:
                for service in reversed(stopped):
                    runner.systemctl("start", service)
    return lines


# Command line ----------------------------------------------------------------------------------------


def _now(text: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(text) if text else dt.datetime.now(dt.UTC)


def cmd_run(config: BackupConfig, args: argparse.Namespace, runner: Runner) -> int:
    check_destination(config.destination)
    path, manifest = take(config, _now(args.now), runner)
    gone = prune(config)
    parts = ", ".join(sorted(manifest["components"]))
    print(f"wrote {path} ({path.stat().st_size} bytes: {parts or 'nothing'})")
    for name in gone:
        print(f"removed {name} (keep: {config.keep})")
    return 0


def cmd_list(config: BackupConfig, args: argparse.Namespace, runner: Runner) -> int:
    check_destination(config.destination)
    names = backups_of(config.host, os.listdir(config.host_dir)) if config.host_dir.is_dir() else []
    for name in names:
        print(f"{config.host_dir / name}\t{(config.host_dir / name).stat().st_size}")
    if not names:
        print(f"no backups of {config.host} in {config.host_dir}")
    return 0


def cmd_check(config: BackupConfig, args: argparse.Namespace, runner: Runner) -> int:
    check_destination(config.destination)
    print(f"{config.destination}: usable ({', '.join(c.kind for c in config.components) or 'no components'})")
    return 0


def cmd_restore(config: BackupConfig, args: argparse.Namespace, runner: Runner) -> int:
    check_destination(config.destination)
    archive = Path(args.archive) if args.archive else newest(config)
    if archive is None:
        print(f"no backups of {config.host} in {config.host_dir}: nothing to restore")
        return 0
    if not archive.is_file():
        raise ToolError(f"{archive} is not a file -- fix: pick one of `ailab-backup list`")
    if not args.if_empty and not args.yes:
        raise ToolError(
            f"restoring {archive.name} replaces this host's {', '.join(c.kind for c in config.components)} "
            "(what is there is moved aside) -- fix: add --yes, or --if-empty to restore only what is empty"
        )
    print(f"restoring from {archive}")
    for line in restore(config, archive, _now(args.now), runner, if_empty=args.if_empty, only=args.only):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ailab-backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="/etc/ailab/backup.json")
    parser.add_argument("--now", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="take a backup of this host now and keep the newest ailab_backup.keep")
    sub.add_parser("list", help="this host's backups, oldest first")
    sub.add_parser("check", help="check that the destination is a mounted file system that answers")
    restore_p = sub.add_parser("restore", help="restore this host's state from a backup (newest by default)")
    restore_p.add_argument("archive", nargs="?", help="a backup file (default: the newest of this host)")
    restore_p.add_argument("--if-empty", action="store_true", help="only components that are empty here")
    restore_p.add_argument("--only", nargs="+", choices=COMPONENTS, default=(), help="only these components")
    restore_p.add_argument("--yes", action="store_true", help="replace what is there (it is moved aside)")
    return parser


COMMANDS = {"run": cmd_run, "list": cmd_list, "check": cmd_check, "restore": cmd_restore}


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](config, args, runner or Runner())
    except ToolError as exc:
        print(f"ailab-backup: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"ailab-backup: {exc} -- nothing more was done", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
