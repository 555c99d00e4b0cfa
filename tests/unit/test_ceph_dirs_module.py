"""The user_dirs role's cephfs_dirs module, against an in-memory file system (no Ceph needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.unit.test_model_validation import ROOT

MODULE = ROOT / "roles" / "user_dirs" / "library" / "cephfs_dirs.py"
spec = importlib.util.spec_from_file_location("cephfs_dirs", MODULE)
cephfs_dirs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cephfs_dirs)

GIB = 2**30


class FakeFS:
    """Directories with mode/uid/gid/quota, and a log of every change, like libcephfs would see them."""

    def __init__(self):
        self.dirs = {"/": [0o755, 0, 0, 0]}
        self.calls = []

    def stat(self, path):
        if path not in self.dirs:
            raise cephfs_dirs.NotFound(path)
        mode, uid, gid, _ = self.dirs[path]
        return mode, uid, gid

    def mkdir(self, path, mode):
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in self.dirs:
            raise OSError(2, "No such file or directory", path)
        self.calls.append(("mkdir", path))
        self.dirs[path] = [mode & ~0o022, 0, 0, 0]  # the umask applies

    def chmod(self, path, mode):
        self.calls.append(("chmod", path, mode))
        self.dirs[path][0] = mode

    def chown(self, path, uid, gid):
        self.calls.append(("chown", path, uid, gid))
        self.dirs[path][1:3] = [uid, gid]

    def get_quota(self, path):
        return self.dirs[path][3]

    def set_quota(self, path, value):
        self.calls.append(("quota", path, value))
        self.dirs[path][3] = value

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        names = [p[len(prefix) :] for p in self.dirs if p.startswith(prefix)]
        return sorted(n for n in names if "/" not in n)


WANTED = [
    {"path": "/home", "uid": 0, "gid": 0, "mode": "0755"},
    {"path": "/datasets", "uid": 0, "gid": 0, "mode": "0755"},
    {"path": "/home/s1", "uid": 200001, "gid": 200001, "mode": "0700", "quota_bytes": GIB},
    {"path": "/home/s2", "uid": 200002, "gid": 200002, "mode": "0700", "quota_bytes": 2 * GIB},
]


def test_first_run_creates_every_directory_with_owner_mode_and_quota():
    fs = FakeFS()
    result = cephfs_dirs.converge(fs, WANTED)
    assert result["created"] == ["/home", "/datasets", "/home/s1", "/home/s2"]
    assert fs.dirs["/home/s1"] == [0o700, 200001, 200001, GIB]
    assert fs.dirs["/home/s2"] == [0o700, 200002, 200002, 2 * GIB]
    assert fs.dirs["/home"] == [0o755, 0, 0, 0]
    assert fs.dirs["/datasets"][0] == 0o755  # chmod after mkdir: not left to the umask


def test_second_run_changes_nothing():
    fs = FakeFS()
    cephfs_dirs.converge(fs, WANTED)
    fs.calls.clear()
    result = cephfs_dirs.converge(fs, WANTED)
    assert (result["created"], result["fixed"], result["quota_set"]) == ([], [], [])
    assert fs.calls == []


def test_a_changed_quota_is_set_and_nothing_else():
    fs = FakeFS()
    cephfs_dirs.converge(fs, WANTED)
    fs.calls.clear()
    wanted = [*WANTED[:2], {**WANTED[2], "quota_bytes": 5 * GIB}, WANTED[3]]
    result = cephfs_dirs.converge(fs, wanted)
    assert result["quota_set"] == [{"path": "/home/s1", "bytes": 5 * GIB}]
    assert fs.calls == [("quota", "/home/s1", 5 * GIB)]


def test_home_opened_by_its_owner_is_closed_again_top_level_only():
    fs = FakeFS()
    cephfs_dirs.converge(fs, WANTED)
    fs.dirs["/home/s1"][0] = 0o755
    fs.dirs["/home/s1/results"] = [0o755, 200001, 200001, 0]  # the student's own data: never touched
    fs.calls.clear()
    result = cephfs_dirs.converge(fs, WANTED)
    assert result["fixed"] == [{"path": "/home/s1", "was": "200001:200001 0755", "now": "200001:200001 0700"}]
    assert fs.calls == [("chmod", "/home/s1", 0o700)]
    assert fs.dirs["/home/s1/results"] == [0o755, 200001, 200001, 0]


def test_without_enforce_owner_existing_homes_keep_owner_and_mode():
    fs = FakeFS()
    cephfs_dirs.converge(fs, WANTED)
    fs.dirs["/home/s1"][0] = 0o750
    result = cephfs_dirs.converge(fs, WANTED, enforce_owner=False)
    assert result["fixed"] == []
    assert fs.dirs["/home/s1"][0] == 0o750


def test_check_mode_reports_without_changing():
    fs = FakeFS()
    result = cephfs_dirs.converge(fs, WANTED, check_mode=True)
    assert len(result["created"]) == 4
    assert fs.calls == [] and set(fs.dirs) == {"/"}


def test_removed_users_keep_their_home_and_are_reported():
    fs = FakeFS()
    cephfs_dirs.converge(fs, WANTED)
    fs.calls.clear()
    result = cephfs_dirs.converge(fs, WANTED[:3], report_unlisted_in=["/home"])
    assert result["unlisted"] == ["/home/s2"]
    assert "/home/s2" in fs.dirs and fs.calls == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "home/x", "uid": 1, "gid": 1}, "not an absolute path"),
        ({"path": "/home/../etc", "uid": 1, "gid": 1}, "not an absolute path"),
        ({"path": "/home/x", "uid": "s1", "gid": 1}, "uid 's1' is not a numeric id"),
        ({"path": "/home/x", "uid": 1, "gid": 1, "mode": "rwx"}, "not an octal string"),
        ({"path": "/home/x", "uid": 1, "gid": 1, "quota_bytes": -5}, "not a byte count"),
    ],
)
def test_bad_entries_are_refused_before_anything_changes(entry, message):
    fs = FakeFS()
    with pytest.raises(ValueError, match=message):
        cephfs_dirs.converge(fs, [WANTED[0], entry])
    assert fs.calls == []


def test_the_module_fails_cleanly_without_python3_cephfs(tmp_path):
    """Run as Ansible runs it: JSON args in, JSON out; a host without the library gets a clear message."""
    args = {"ANSIBLE_MODULE_ARGS": {"client": "ailab-admin", "dirs": WANTED, "conf": "/nonexistent.conf"}}
    env_path = tmp_path / "args.json"
    env_path.write_text(json.dumps(args))
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name == 'cephfs': raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        f"sys.argv = ['cephfs_dirs', {str(env_path)!r}]\n"
        f"exec(compile(open({str(MODULE)!r}).read(), 'cephfs_dirs', 'exec'), {{'__name__': '__main__'}})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    result = json.loads(out.stdout)
    assert result["failed"] is True
    assert "python3-cephfs is not installed" in result["msg"]
