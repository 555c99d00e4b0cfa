"""The two images every simulated host runs, built without any registry and tagged by a hash of what
went into them, so an unchanged tree builds nothing.

* base (``ailab-sim/base:<hash>``): ``mmdebstrap --variant=minbase`` of Debian with systemd and what
  Ansible needs, from the host's own apt sources, piped into ``docker import``;
* node (``ailab-sim/node:<hash>``): ``docker build`` of simulator/image/Dockerfile on top: the nvidia-smi
  stand-in, the GPU device unit, masked time-sync/update/telemetry units, and every package the roles
  install (packages-roles.txt, kept equal to the roles' own lists by :func:`role_packages` and a unit
  test) installed with their services disabled, so a converge finds them and starts only what its roles
  start.  The roles still install them on a bare Debian 12.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.docker import Docker
from simulator.errors import SimError
from simulator.plan import LABEL_IMAGE
from simulator.progress import Progress

IMAGE_DIR = Path(__file__).resolve().parent / "image"
SUITE = "bookworm"
VARIANT = "minbase"
BASE_REPO = "ailab-sim/base"
NODE_REPO = "ailab-sim/node"
HASH_LEN = 12


def read_package_list(text: str) -> tuple[str, ...]:
    """Package names from a list file: one per line, ``#`` comments and blank lines ignored."""
    names = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return tuple(names)


ROLES_DIR = Path(__file__).resolve().parent.parent / "roles"
_VAR_RE = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}$")
# Quoted names inside a list literal of an expression (``['ceph-common'] + (['x'] if c == 'y' ...)``): an
# item is followed by ``,`` or ``]``, a value compared in a condition is not.
_LITERAL_RE = re.compile(r"'([a-z0-9][a-z0-9.+-]+)'(?=\s*[,\]])")
# Packages a role installs only on real hardware (the simulator's fake GPUs need no driver).
HARDWARE_ONLY_VARS = ("slurm_compute_nvidia_packages",)


def _tasks(node: Any) -> Iterator[dict[str, Any]]:
    """Every task of a task file, blocks opened."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            if key in node:
                yield from _tasks(node[key])


def role_packages(roles_dir: Path = ROLES_DIR) -> dict[str, set[str]]:
    """Role -> the Debian packages its package tasks (``ailab_packages``, ``ansible.builtin.apt`` with
    ``state`` present) install, from the role's own task files
    and defaults: literal names, ``{{ var }}`` lists from defaults, and quoted names in an expression."""
    out: dict[str, set[str]] = {}
    for role in sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir()):
        defaults_file = role / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        names: set[str] = set()
        for tasks_file in sorted((role / "tasks").glob("*.yml")):
            for task in _tasks(yaml.safe_load(tasks_file.read_text())):
                apt = task.get("ansible.builtin.apt") or task.get("ailab_packages")
                key = "names" if "ailab_packages" in task else "name"
                if not isinstance(apt, dict) or apt.get("state", "present") == "absent" or key not in apt:
                    continue
                value = apt[key]
                for item in value if isinstance(value, list) else [value]:
                    match = _VAR_RE.match(str(item).strip())
                    if match and match[1] in HARDWARE_ONLY_VARS:
                        continue
                    if match and isinstance(defaults.get(match[1]), list):
                        names.update(str(n) for n in defaults[match[1]])
                    elif "{{" in str(item):
                        names.update(_LITERAL_RE.findall(str(item)))
                    else:
                        names.add(str(item))
        if names:
            out[role.name] = names
    return out


def apt_source_files(root: Path = Path("/")) -> list[Path]:
    """The host's enabled apt source files that serve ``SUITE`` (what mmdebstrap is given, so the base
    image uses the same mirror as the host).  Empty: mmdebstrap falls back to its own default."""
    etc = root / "etc" / "apt"
    candidates = [etc / "sources.list"]
    parts = etc / "sources.list.d"
    if parts.is_dir():
        candidates += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    out = []
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        if any(SUITE in line and not line.lstrip().startswith("#") for line in text.splitlines()):
            out.append(path)
    return out


def mmdebstrap_args(packages: Sequence[str], sources: Sequence[Path]) -> list[str]:
    """The mmdebstrap command writing the base root file system as a tar stream to stdout."""
    return [
        "mmdebstrap",
        f"--variant={VARIANT}",
        "--include=" + ",".join(packages),
        "--dpkgopt=force-unsafe-io",
        '--aptopt=Acquire::Retries "3"',
        SUITE,
        "-",
        *(str(s) for s in sources),
    ]


def import_args(tag: str) -> list[str]:
    return [
        "docker", "import",
        "--change", f"LABEL {LABEL_IMAGE}=base",
        "--change", 'CMD ["/sbin/init"]',
        "-", tag,
    ]  # fmt: skip


def digest(parts: Sequence[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()[:HASH_LEN]


def context_files(directory: Path) -> list[tuple[str, bytes]]:
    """(relative path, content) of every file of the build context, sorted; caches left out."""
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
            files.append((rel, path.read_bytes()))
    return files


@dataclass(frozen=True)
class ImagePlan:
    base_tag: str
    node_tag: str
    base_packages: tuple[str, ...]
    sources: tuple[Path, ...]
    context: Path = IMAGE_DIR  # the docker build context (simulator/image)


def image_plan(directory: Path = IMAGE_DIR, root: Path = Path("/")) -> ImagePlan:
    packages = read_package_list((directory / "packages-base.txt").read_text())
    sources = tuple(apt_source_files(root))
    base_inputs = [("mmdebstrap", "\0".join(mmdebstrap_args(packages, ())).encode())]
    base_inputs += [(f"source:{s.name}", s.read_bytes()) for s in sources]
    base_tag = f"{BASE_REPO}:{digest(base_inputs)}"
    node_tag = f"{NODE_REPO}:{digest([('base', base_tag.encode()), *context_files(directory)])}"
    return ImagePlan(base_tag, node_tag, packages, sources, directory)


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ailab-sim"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One image build at a time on this machine (two clusters brought up together share images)."""
    path = cache_dir() / "build.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_images(docker: Docker, progress: Progress, plan: ImagePlan | None = None) -> str:
    """Build what is missing; return the node image tag."""
    plan = plan or image_plan()
    docker.ensure_available()
    if docker.image_exists(plan.node_tag):
        progress.say(f"==> image {plan.node_tag} is up to date")
        return plan.node_tag
    with build_lock():
        if not docker.image_exists(plan.base_tag):
            if not _which("mmdebstrap"):
                raise SimError(
                    "mmdebstrap is not installed (it builds the base image)",
                    "sudo apt-get install mmdebstrap",
                )
            log = cache_dir() / "logs" / "base.log"
            with progress.step(f"build base image {plan.base_tag} (mmdebstrap {SUITE}, log: {log})"):
                progress.run_logged(
                    [mmdebstrap_args(plan.base_packages, plan.sources), import_args(plan.base_tag)], log
                )
        if not docker.image_exists(plan.node_tag):
            log = cache_dir() / "logs" / "node.log"
            with progress.step(f"build node image {plan.node_tag} (docker build, log: {log})"):
                progress.run_logged(
                    [
                        [
                            "docker", "build",
                            "--build-arg", f"BASE={plan.base_tag}",
                            "--label", f"{LABEL_IMAGE}=node",
                            "-t", plan.node_tag,
                            str(plan.context),
                        ]
                    ],
                    log,
                    # The legacy builder: buildx is not part of Debian's docker.io.
                    env={**os.environ, "DOCKER_BUILDKIT": "0"},
                )  # fmt: skip
    return plan.node_tag


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None
