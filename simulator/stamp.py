"""A record that ``ailab converge`` brought a simulated cluster to exactly this tree.

``make up`` converges the cluster and ``make test`` then needs a converge that changes nothing.  Running
site.yml once more before that check would repeat ``make up``'s own work, so a successful full converge
(site.yml, no extra ansible-playbook options) leaves a stamp: a digest of every file that can change what a
converge does (everything but tests, docs and Molecule scenarios) and the identity of each container (its
Docker id and start time: a recreated or restarted node has lost its /run and is converged again).

The integration tests' session (tests/integration/conftest.py) takes the stamp, once: when it matches, its
first converge is the idempotence check itself.  Any other converge through ``ailab converge`` removes the
stamp, so a partial run (``--tags``, ``--limit``, another playbook, a failure) never vouches for the cluster.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Paths (relative to the project root) that cannot change what site.yml does to a node.
NOT_CONVERGE_INPUTS = ("tests/", "docs/", "molecule/", ".ci/", ".cache/")


def converge_inputs(files: Iterable[str]) -> list[str]:
    """The files of ``files`` (project-relative) that can change a converge, sorted."""
    return sorted(f for f in files if not f.startswith(NOT_CONVERGE_INPUTS) and not f.endswith(".md"))


def tree_digest(root: Path = ROOT) -> str:
    """sha256 over the path and content of every converge input git tracks or would track."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, check=True,
        capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    digest = hashlib.sha256()
    for rel in converge_inputs(f for f in listed if f):
        path = root / rel
        if path.is_file():  # deleted but still in the index: its absence is what counts
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def container_identity(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``docker inspect`` output by container name -> ``id@started`` of each running container."""
    return {
        name: f"{info['Id']}@{info['State']['StartedAt']}"
        for name, info in sorted(infos.items())
        if info.get("State", {}).get("Status") == "running"
    }


def stamp_path(inventory: Path, root: Path = ROOT) -> Path:
    key = hashlib.sha256(str(Path(inventory).resolve()).encode()).hexdigest()[:16]
    return root / ".cache" / "converged" / f"{key}.json"


def stamp(digest: str, containers: Mapping[str, str]) -> dict[str, Any]:
    return {"tree": digest, "containers": dict(sorted(containers.items()))}


def write(inventory: Path, record: Mapping[str, Any], root: Path = ROOT) -> None:
    path = stamp_path(inventory, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def clear(inventory: Path, root: Path = ROOT) -> None:
    stamp_path(inventory, root).unlink(missing_ok=True)


def take(inventory: Path, current: Mapping[str, Any], root: Path = ROOT) -> bool:
    """Whether the stamp left for ``inventory`` equals ``current``; the stamp is removed either way."""
    path = stamp_path(inventory, root)
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    finally:
        path.unlink(missing_ok=True)
    return bool(current.get("containers")) and recorded == dict(current)
