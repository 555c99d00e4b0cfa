"""The node package as a node has it (ailab/nodepkg.py): built, installed by its own archive, and a way to
import its modules the way the launchers do (``python3 -I -S``, the release alone on ``sys.path``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ailab import nodepkg


def run_install(archive: Path, root: Path, *options: str) -> subprocess.CompletedProcess:
    """``python3 ARCHIVE install --root ROOT OPTIONS``, as role common runs it."""
    argv = [sys.executable, str(archive), "install", "--root", str(root), *options]
    return subprocess.run(argv, capture_output=True, text=True)


def install(tmp_path: Path) -> Path:
    """Build the archive of the current source and install it under ``tmp_path/root``; the release."""
    root = tmp_path / "root"
    out = run_install(nodepkg.build(tmp_path / "cache"), root)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changed"] is True
    return root / "node"


def imported_modules(release: Path, *modules: str) -> list[str]:
    """The ``ailab`` modules loaded by importing ``modules`` from ``release`` with no site-packages: what
    the node needs besides the standard library."""
    code = (
        f"import sys; sys.path.insert(0, {str(release)!r}); import {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m.startswith('ailab')))"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout)
