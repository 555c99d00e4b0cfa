"""down removes the host cgroups Slurm left for this inventory's nodes only, bottom-up."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from simulator import cgroups


def make(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).mkdir(parents=True, exist_ok=True)


def test_only_this_inventorys_nodes_are_removed(tmp_path):
    make(
        tmp_path,
        "memory/slurm_t4-01/uid_0/job_1/step_batch",
        "devices/slurm_t4-01/uid_0",
        "memory/slurm_other-01/uid_0",
        "memory/docker/abc",
    )
    report = cgroups.remove_leftovers(["t4-01", "fe01"], tmp_path)
    assert not (tmp_path / "memory" / "slurm_t4-01").exists()
    assert not (tmp_path / "devices" / "slurm_t4-01").exists()
    assert (tmp_path / "memory" / "slurm_other-01" / "uid_0").is_dir()
    assert (tmp_path / "memory" / "docker" / "abc").is_dir()
    assert report.busy == []
    assert len(report.removed) == 6


def test_bottom_up_order(tmp_path):
    make(tmp_path, "slurm_n/a/b", "slurm_n/c")
    order = cgroups.bottom_up(tmp_path / "slurm_n")
    assert order.index(tmp_path / "slurm_n" / "a" / "b") < order.index(tmp_path / "slurm_n" / "a")
    assert order[-1] == tmp_path / "slurm_n"


def test_busy_cgroup_is_kept_and_reported(tmp_path, monkeypatch):
    make(tmp_path, "cpu/slurm_n/job_1")
    real_rmdir = os.rmdir

    def rmdir(path):
        if str(path).endswith("job_1"):
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(cgroups.os, "rmdir", rmdir)
    report = cgroups.remove_leftovers(["n"], tmp_path)
    assert report.removed == []
    assert report.busy == [tmp_path / "cpu" / "slurm_n" / "job_1", tmp_path / "cpu" / "slurm_n"]


def test_co_mounted_controllers_are_visited_once(tmp_path):
    make(tmp_path, "cpu,cpuacct/slurm_n")
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    assert cgroups.leftover_roots(tmp_path, ["n"]) == [tmp_path / "cpu,cpuacct" / "slurm_n"]
    assert cgroups.leftover_roots(tmp_path / "missing", ["n"]) == []
