"""The node package (ailab/nodepkg.py, ailab/nodeinstall.py): what goes onto the nodes, as one
standard-library package, built the same from the same source, installed by itself; and every role calls
its launchers."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ailab import nodeinstall, nodepkg
from tests.unit import node_package

ROOT = Path(__file__).resolve().parents[2]
# Modules only the controller runs: none of them may reach a node.
CONTROLLER_ONLY = {
    "ailab.validate",
    "ailab.parse",
    "ailab.inventory",
    "ailab.filters",
    "ailab.ansible_bridge",
    "ailab.slurm",
}


def test_the_package_is_the_commands_modules_and_what_they_import():
    mods = nodepkg.modules()
    assert {c.module for c in nodepkg.COMMANDS} <= set(mods)
    assert {"ailab", "ailab.nodetools", "ailab.model", "ailab.runtime", "ailab.reservations"} <= set(mods)
    assert not CONTROLLER_ONLY & set(mods)
    assert "ailab.operations" not in mods  # the controller side of the operations tools (Ansible)


def _imports(path: Path) -> set[str]:
    """Every top-level module name a file imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", nodepkg.modules())
def test_every_module_in_it_needs_only_the_standard_library(module):
    allowed = set(sys.stdlib_module_names) | {"ailab", "__future__"}
    if module == "ailab.nodetools.exporter":
        allowed.add("prometheus_client")  # Debian's python3-prometheus-client (role metrics installs it)
    assert _imports(nodepkg._module_file(module)) - allowed == set()


def test_every_command_runs_a_main():
    for c in nodepkg.COMMANDS:
        tree = ast.parse(nodepkg._module_file(c.module).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), c.module


def test_the_same_source_makes_the_same_bytes_and_a_change_a_new_version(tmp_path):
    files = nodepkg.contents()
    assert nodepkg.archive_bytes(files) == nodepkg.archive_bytes(dict(files))
    changed = {**files, "ailab/model.py": files["ailab/model.py"] + b"# changed\n"}
    assert nodepkg.version(changed) != nodepkg.version(files)
    first, second = nodepkg.build(tmp_path / "a"), nodepkg.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert nodepkg.archive_version(first) == nodepkg.version(files)
    with zipfile.ZipFile(first) as z:
        assert z.read("VERSION").decode().strip() == nodepkg.version(files)
        assert {i.date_time for i in z.infolist()} == {nodepkg.ZIP_TIME}
        modes = {i.filename: i.external_attr >> 16 & 0o777 for i in z.infolist()}
    assert modes["bin/jobstats"] == 0o755 and modes["ailab/model.py"] == 0o644


def test_it_installs_itself_once_per_version_and_keeps_the_release_before(tmp_path):
    root = tmp_path / "root"

    def install(archive: Path) -> dict:
        out = node_package.run_install(archive, root)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    files = nodepkg.contents()
    versions = []
    for n in range(3):
        variant = {**files, "ailab/model.py": files["ailab/model.py"] + f"# {n}\n".encode()}
        archive = tmp_path / f"v{n}.zip"
        archive.write_bytes(nodepkg.archive_bytes(variant))
        versions.append(nodepkg.version(variant))
        assert install(archive) == {"changed": True, "version": versions[-1]}
        assert install(archive) == {"changed": False, "version": versions[-1]}
        current = root / "node"
        assert os.readlink(current) == f"releases/{versions[-1]}"
        assert (current / nodeinstall.marker(versions[-1])).exists()  # what role common's creates: checks
    assert sorted(p.name for p in (root / "releases").iterdir()) == sorted(versions[1:])
    assert list((root / "node" / "ailab").glob("__pycache__/model.*.pyc"))  # compiled
    assert not (root / "node" / "__main__.py").exists()
    # back to an older version: the link moves although that release was kept
    assert install(tmp_path / "v1.zip")["changed"] is True
    assert os.readlink(root / "node") == f"releases/{versions[1]}"


def test_a_crashed_install_is_redone(tmp_path):
    archive = nodepkg.build(tmp_path / "cache")
    version = nodepkg.archive_version(archive)
    half = tmp_path / "root" / "releases" / version
    (half / "ailab").mkdir(parents=True)  # a release without its marker: the install died
    result = nodeinstall.install(archive, tmp_path / "root")
    assert result == {"changed": True, "version": version}
    assert (half / "ailab" / "model.py").exists() and (half / nodeinstall.marker(version)).exists()


def test_every_launcher_runs_from_the_release_alone(tmp_path):
    release = node_package.install(tmp_path)
    for c in nodepkg.COMMANDS:
        launcher = release / "bin" / c.name
        assert launcher.read_text().startswith(f"#!/usr/bin/python3 {c.python_flags}\n")
        if c.name == "ailab-exporter":
            continue  # it needs Debian's prometheus_client: the integration tests run it on the nodes
        # the launcher's own flags, the interpreter that runs these tests, a link elsewhere (as the roles
        # make /usr/local/sbin/ailab-gpu-health)
        link = tmp_path / c.name
        link.symlink_to(launcher)
        out = subprocess.run(
            [sys.executable, *c.python_flags.split(), str(link), "--help"], capture_output=True, text=True
        )
        assert out.returncode in (0, 2), (c.name, out.stderr)  # ailab-containers: usage, exit 2
        assert "Traceback" not in out.stderr, (c.name, out.stderr)
        assert out.stdout or out.stderr


def test_the_roles_call_only_commands_the_package_has():
    known = {c.name for c in nodepkg.COMMANDS}
    used = set()
    for path in ROOT.glob("roles/*/**/*"):
        if path.is_file() and path.suffix in (".yml", ".j2"):
            used.update(re.findall(r"_node\.commands(?:\['([\w-]+)'\]|\.(\w+))", path.read_text()))
    names = {a or b for a, b in used}
    assert names and names <= known
    assert not list(ROOT.glob("roles/*/files/*.py")), "node programs belong in the node package"


def test_an_unknown_command_names_the_known_ones():
    with pytest.raises(KeyError, match="ailab-motd"):
        nodepkg.command_path("motd")


def test_what_the_roles_installed_before_is_removed_with_the_first_release(tmp_path):
    old_dir, old_file = tmp_path / "ailab-ops", tmp_path / "motd.py"
    (old_dir / "ailab").mkdir(parents=True)
    old_file.write_text("old\n")
    archive = nodepkg.build(tmp_path / "cache")

    def run(*retire: str) -> subprocess.CompletedProcess:
        return node_package.run_install(archive, tmp_path / "root", *(f"--retire={p}" for p in retire))

    bad = run("relative/path")
    assert bad.returncode == 2 and "--retire 'relative/path': not an absolute path" in bad.stderr
    assert run("/").returncode == 2 and not (tmp_path / "root").exists()  # refused before anything
    assert run(str(old_dir), str(old_file)).returncode == 0
    assert not old_dir.exists() and not old_file.exists()
    old_file.write_text("put back\n")
    assert json.loads(run(str(old_file)).stdout)["changed"] is False
    assert old_file.exists()  # nothing is removed when nothing is installed


def test_an_unchanged_source_is_not_read_again_and_a_change_builds_anew(tmp_path, monkeypatch):
    first = nodepkg.build(tmp_path)
    monkeypatch.setattr(nodepkg, "contents", lambda: pytest.fail("the unchanged source was read again"))
    assert nodepkg.build(tmp_path) == first
    monkeypatch.setattr(nodepkg, "source_stamp", lambda: "another-source")
    monkeypatch.setattr(nodepkg, "contents", lambda: {"ailab/x.py": b"changed\n"})
    second = nodepkg.build(tmp_path)
    assert second != first and first.exists()  # an older archive stays for a run that may still use it
