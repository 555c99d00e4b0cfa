"""The node package: every program ailab-iac runs on a node, as one standard-library-only Python package.

What goes to the nodes is decided here, from the source, and nowhere else:

- :data:`COMMANDS` lists the node's programs (``ailab-retention``, ``jobstats``, ``ailab-gpu-health``, ...),
  each the ``main()`` of one module;
- the package is the closure of those modules' module-level ``ailab`` imports (:func:`modules`), so a
  program shares the controller's code (the model, the reservation parser, the deletion calendar) by
  importing it, never by a copy;
- each program gets a launcher, ``bin/<command>``, that puts the package on ``sys.path`` and calls
  ``main()`` with ``python3 -I -S`` (no environment, no site-packages: nothing a student can inject).  The
  exporter alone runs without ``-S``: it uses Debian's python3-prometheus-client.

:func:`build` zips the package deterministically (fixed times and modes, sorted names): the same source
makes the same bytes, so a converge that changed nothing copies nothing.  The archive installs itself
(:mod:`ailab.nodeinstall` is its ``__main__``).  Role common copies it to every host and runs it once per
version (``lookup('ailab_node_package')`` builds it in the controller; ``'node' | ailab_layout`` names the
paths); the other roles link or call ``bin/<command>``.

On a node::

    /usr/local/lib/ailab/ailab-node.zip            the archive role common copied
    /usr/local/lib/ailab/releases/<version>/       ailab/..., bin/<command>, VERSION; compiled
    /usr/local/lib/ailab/node -> releases/<version>
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ailab.nodeinstall import replace_symlink
from ailab.runtime import write_atomic

PACKAGE_DIR = Path(__file__).resolve().parent  # ailab/
ROOT = "/usr/local/lib/ailab"  # on every node
ARCHIVE = f"{ROOT}/ailab-node.zip"
CURRENT = f"{ROOT}/node"  # a symlink to releases/<version>
BIN = f"{CURRENT}/bin"
RELEASES = f"{ROOT}/releases"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: the same bytes from the same source


@dataclass(frozen=True)
class Command:
    """One program on the nodes: ``name`` runs ``module``'s ``main()``."""

    name: str
    module: str
    python_flags: str = "-IS"  # -I: no environment variables, no user site; -S: no site-packages

    @property
    def path(self) -> str:
        return f"{BIN}/{self.name}"


COMMANDS = (
    Command("ailab-retention", "ailab.retention"),  # rule 1, role operations
    Command("ailab-maintenance", "ailab.maintenance"),  # rule 8, role operations
    Command("ailab-backup", "ailab.backup"),  # role backup
    Command("ailab-motd", "ailab.nodetools.motd"),  # the login message, role frontend
    Command("ailab-status-page", "ailab.nodetools.statuspage"),  # role frontend
    Command("jobstats", "ailab.nodetools.jobstats"),  # students on the front-end; slurmctld's epilog
    Command("ailab-containers", "ailab.nodetools.containers"),  # ailab-ch-run/-build, role containers
    Command("ailab-exporter", "ailab.nodetools.exporter", "-I"),  # role metrics: Debian's prometheus_client
    Command("ailab-idle-gpus", "ailab.nodetools.idlegpus"),  # rule 6 for running jobs, role monitoring
    Command("ailab-cephfs-check", "ailab.nodetools.cephfscheck"),  # the mount watchdog, role cephfs_client
    Command("ailab-gpu-health", "ailab.nodetools.gpuhealth"),  # slurm.conf HealthCheckProgram
)
# What the roles installed before the node package (copies of its modules): removed when a release is
# installed.  The commands in /usr/local/sbin stay; the roles turn them into links to the launchers.
RETIRED = (
    "/usr/local/lib/ailab-ops",  # role operations' copy of the ailab modules
    "/usr/local/lib/ailab-backup",  # role backup's
    "/usr/local/lib/ailab/motd.py",  # role frontend's scripts
    "/usr/local/lib/ailab/statuspage.py",
    "/usr/local/lib/ailab/jobstats.py",  # and role slurm_controller's
    "/usr/local/lib/ailab/containers.py",  # role containers'
    "/usr/local/lib/ailab/__pycache__",
)
# Long-running programs: role common restarts them when a new version is installed (the others start anew
# at every run).
SERVICES = ("ailab-exporter.service",)


def command(name: str) -> Command:
    for c in COMMANDS:
        if c.name == name:
            return c
    raise KeyError(f"{name!r} is not a node command -- fix: use one of {', '.join(c.name for c in COMMANDS)}")


def command_path(name: str) -> str:
    """Where ``name``'s launcher is on every node, e.g. /usr/local/lib/ailab/node/bin/jobstats."""
    return command(name).path


def layout() -> dict[str, str]:
    """The node package's paths, for the roles (``'node' | ailab_layout``): root, archive, current, bin,
    releases, retired."""
    return {
        "root": ROOT,
        "archive": ARCHIVE,
        "current": CURRENT,
        "bin": BIN,
        "releases": RELEASES,
        "retired": list(RETIRED),
    }


# What the package holds ----------------------------------------------------------------------------------


def _module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    parts = module.split(".")
    if parts[0] != "ailab":
        raise ValueError(f"{module} is not in the ailab package")
    base = package_dir.joinpath(*parts[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_imports(source: str, module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The ``ailab`` modules ``source`` imports when it is loaded: module-level imports only (a function's
    own import runs only on the controller; ``if TYPE_CHECKING:`` never runs)."""
    found: set[str] = set()
    package = module if module.endswith("__init__") else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")

    def visit(body: Iterable[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == "ailab")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                if base.split(".")[0] != "ailab":
                    continue
                found.add(base)
                for alias in node.names:  # ``from ailab import model`` imports a module
                    candidate = f"{base}.{alias.name}"
                    if _module_file(candidate, package_dir).exists():
                        found.add(candidate)
            elif isinstance(node, ast.If) and not _is_type_checking(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(source).body)
    return found


def modules(commands: Iterable[Command] = COMMANDS, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every module the commands load, with their packages' ``__init__``, sorted."""
    todo = [c.module for c in commands]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages it lives in
        todo += sorted(module_imports(_module_file(module, package_dir).read_text(), module, package_dir))
    return sorted(seen)


def launcher(c: Command) -> str:
    return (
        f"#!/usr/bin/python3 {c.python_flags}\n"
        f"# {c.name}: {c.module}.main() from the ailab node package (ailab/nodepkg.py, role common).\n"
        "import os\n"
        "import sys\n"
        "\n"
        "sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))\n"
        f"from {c.module} import main  # noqa: E402\n"
        "\n"
        "sys.exit(main())\n"
    )


def contents(commands: Iterable[Command] = COMMANDS, package_dir: Path = PACKAGE_DIR) -> dict[str, bytes]:
    """The archive's files by name (without VERSION): ``__main__.py``, ``ailab/...``, ``bin/<command>``."""
    commands = tuple(commands)
    files = {"__main__.py": (package_dir / "nodeinstall.py").read_bytes()}
    for module in modules(commands, package_dir):
        path = _module_file(module, package_dir)
        files[path.relative_to(package_dir.parent).as_posix()] = path.read_bytes()
    for c in commands:
        files[f"bin/{c.name}"] = launcher(c).encode()
    return files


def version(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def archive_bytes(files: Mapping[str, bytes]) -> bytes:
    """The zip of ``files`` plus VERSION: sorted, fixed time, 0755 for bin/, 0644 otherwise."""
    files = {**files, "VERSION": (version(files) + "\n").encode()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            mode = 0o755 if name.startswith("bin/") else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix: the modes above count
            archive.writestr(info, files[name])
    return out.getvalue()


def archive_version(path: Path) -> str:
    """The version of an archive :func:`build` wrote (its name says it)."""
    return path.name.removeprefix("ailab-node-").removesuffix(".zip")


def source_stamp(package_dir: Path = PACKAGE_DIR) -> str:
    """A cheap fingerprint of the source the archive is made of (every ``.py`` under the package: name,
    size, modification time): an index entry names the archive built from exactly this source, so a run
    with nothing changed stats a few dozen files instead of parsing them (the roles ask once per host)."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        info = path.stat()
        digest.update(f"{path.relative_to(package_dir)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def build(cache_dir: Path | None = None) -> Path:
    """The archive of the current source in ``cache_dir`` (built once per version; concurrent runs write
    their own temporary file and rename it)."""
    cache_dir = cache_dir or Path(tempfile.gettempdir()) / f"ailab-node-{os.getuid()}"
    index = cache_dir / f"source-{source_stamp()}"
    with contextlib.suppress(OSError):
        known = cache_dir / os.readlink(index)
        if known.exists():
            return known
    files = contents()
    path = cache_dir / f"ailab-node-{version(files)}.zip"
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        write_atomic(path, archive_bytes(files), mode=0o644)
        _prune(cache_dir)
    replace_symlink(index, path.name)
    return path


PRUNE_AFTER_S = 7 * 86400  # archives of older sources; another checkout's converge may still use a newer one


def _prune(cache_dir: Path) -> None:
    now = time.time()
    for entry in cache_dir.iterdir():
        with contextlib.suppress(OSError):
            if now - entry.lstat().st_mtime > PRUNE_AFTER_S:
                entry.unlink()
