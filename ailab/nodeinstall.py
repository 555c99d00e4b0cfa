"""Installs the node package on a node: the ``__main__`` of the archive :mod:`ailab.nodepkg` builds.

    python3 /usr/local/lib/ailab/ailab-node.zip install [--root /usr/local/lib/ailab]

Role common runs it once per version.  It unpacks the archive into ``releases/.<version>.<pid>``,
compiles every module (students' commands start from bytecode they cannot write), renames the directory
to ``releases/<version>`` and only then points the ``node`` symlink at it (a rename: a program starting
meanwhile sees the old release or the new one, never half of one).  The release before is kept, so a
program still running from it goes on; older ones are removed, and so is each ``--retire`` path (what the
roles installed before the node package).  It prints one JSON line, ``changed`` and
``version``, and changes nothing when that version is installed already.  Standard library only.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

DEFAULT_ROOT = "/usr/local/lib/ailab"


def marker(version: str) -> str:
    """Written last into a release: a release without it is a crashed install.  ``node/<marker>`` exists
    exactly when ``node`` points at this version, complete (what role common's ``creates:`` checks)."""
    return f".release-{version}"


def _current(root: Path) -> str:
    try:
        return os.readlink(root / "node")
    except OSError:
        return ""


def replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` with one rename: a reader sees the old target or the new one."""
    new = link.with_name(f".{link.name}.{os.getpid()}")
    new.unlink(missing_ok=True)
    os.symlink(target, new)
    os.replace(new, link)


def install(archive: Path, root: Path, retire: Sequence[str] = ()) -> dict[str, object]:
    os.umask(0o022)  # every user runs the launchers: directories 0755, files 0644 (bin/ 0755)
    with zipfile.ZipFile(archive) as z:
        version = z.read("VERSION").decode().strip()
        if not version or "/" in version or version.startswith("."):
            raise SystemExit(f"error: {archive} names no valid VERSION -- fix: copy the archive again")
        releases = root / "releases"
        target = releases / version
        link = f"releases/{version}"
        if _current(root) == link and (target / marker(version)).exists():
            return {"changed": False, "version": version}
        releases.mkdir(parents=True, exist_ok=True)
        if not (target / marker(version)).exists():
            tmp = releases / f".{version}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            for info in z.infolist():
                if info.filename == "__main__.py" or info.is_dir():
                    continue
                dest = tmp / info.filename
                dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                dest.write_bytes(z.read(info))
                dest.chmod(0o755 if info.filename.startswith("bin/") else 0o644)
            if not compileall.compile_dir(str(tmp / "ailab"), quiet=1, ddir=str(target / "ailab")):
                shutil.rmtree(tmp, ignore_errors=True)
                raise SystemExit(
                    f"error: the modules of {archive} do not compile -- fix: rebuild the archive"
                )
            (tmp / marker(version)).write_text(version + "\n")
            shutil.rmtree(target, ignore_errors=True)  # a crashed install's leftovers
            os.rename(tmp, target)
    previous = _current(root)
    replace_symlink(root / "node", link)
    keep = {version, previous.rpartition("/")[2]}
    for old in releases.iterdir():
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    for path in map(Path, retire):  # what the roles installed before the node package
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return {"changed": True, "version": version}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ailab-node.zip", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help="install this archive's release and make it the current one")
    inst.add_argument("--root", default=DEFAULT_ROOT)
    inst.add_argument("--archive", default=sys.argv[0], help="default: this archive")
    inst.add_argument("--retire", action="append", default=[], help="a file or directory to remove")
    args = parser.parse_args(argv)
    for path in args.retire:
        if not os.path.isabs(path) or os.path.normpath(path) in ("/", os.path.normpath(args.root)):
            parser.error(f"--retire {path!r}: not an absolute path of its own -- fix: name the old file")
    print(json.dumps(install(Path(args.archive), Path(args.root), args.retire)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
