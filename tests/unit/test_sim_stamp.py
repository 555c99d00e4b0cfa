"""simulator/stamp.py: when `make test` may take `make up`'s converge as its first one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simulator import stamp


def test_only_files_that_can_change_a_converge_count():
    files = ["site.yml", "roles/common/tasks/main.yml", "ailab/model.py", "inventory/sim/hosts.yml",
             "tests/unit/test_x.py", "docs/cluster-sim.md", "molecule/common/molecule.yml", "README.md",
             "roles/common/README.md", ".ci/run", "simulator/plan.py"]  # fmt: skip
    assert stamp.converge_inputs(files) == [
        "ailab/model.py", "inventory/sim/hosts.yml", "roles/common/tasks/main.yml", "simulator/plan.py",
        "site.yml",
    ]  # fmt: skip


@pytest.fixture
def repo(tmp_path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text("- name: x\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test(): pass\n")
    (tmp_path / ".gitignore").write_text("scratch/\n")
    return tmp_path


def test_the_digest_follows_roles_and_untracked_inputs_but_not_tests_or_ignored_files(repo):
    before = stamp.tree_digest(repo)
    (repo / "tests" / "test_a.py").write_text("def test(): assert 1\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "out.log").write_text("noise")
    assert stamp.tree_digest(repo) == before
    (repo / "roles" / "r" / "tasks" / "main.yml").write_text("- name: y\n")
    changed = stamp.tree_digest(repo)
    assert changed != before
    (repo / "roles" / "r" / "defaults").mkdir()
    (repo / "roles" / "r" / "defaults" / "main.yml").write_text("a: 1\n")  # new, not yet added to git
    assert stamp.tree_digest(repo) != changed


def test_identity_is_id_and_start_of_running_containers_only():
    infos = {
        "ailab-fe01": {"Id": "abc", "State": {"Status": "running", "StartedAt": "2026-12-07T04:00:00Z"}},
        "ailab-t4-01": {"Id": "def", "State": {"Status": "exited", "StartedAt": "2026-12-07T04:00:00Z"}},
    }
    assert stamp.container_identity(infos) == {"ailab-fe01": "abc@2026-12-07T04:00:00Z"}


def test_a_stamp_is_taken_once_and_only_when_everything_matches(tmp_path):
    inv = tmp_path / "inventory" / "sim"
    now = stamp.stamp("d1", {"ailab-fe01": "abc@t0"})
    assert not stamp.take(inv, now, root=tmp_path)  # none left
    stamp.write(inv, now, root=tmp_path)
    assert stamp.take(inv, now, root=tmp_path)
    assert not stamp.take(inv, now, root=tmp_path)  # used up
    for other in (stamp.stamp("d2", {"ailab-fe01": "abc@t0"}), stamp.stamp("d1", {"ailab-fe01": "abc@t1"})):
        stamp.write(inv, now, root=tmp_path)
        assert not stamp.take(inv, other, root=tmp_path)
        assert not stamp.stamp_path(inv, tmp_path).exists()


def test_a_cluster_not_fully_running_never_matches(tmp_path):
    inv = tmp_path / "inv"
    empty = stamp.stamp("d1", {})
    stamp.write(inv, empty, root=tmp_path)
    assert not stamp.take(inv, empty, root=tmp_path)


def test_clear_removes_the_stamp(tmp_path):
    inv = tmp_path / "inv"
    stamp.write(inv, stamp.stamp("d", {"c": "i@t"}), root=tmp_path)
    stamp.clear(inv, root=tmp_path)
    stamp.clear(inv, root=tmp_path)  # nothing left: no error
    assert not stamp.stamp_path(inv, tmp_path).exists()
