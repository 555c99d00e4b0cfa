"""up raises the shared inotify limits many systemd containers need, and never lowers them."""

from __future__ import annotations

import io

from simulator import hostcheck
from simulator.progress import Progress


def fake_proc(tmp_path, instances: int, watches: int):
    (tmp_path / "fs" / "inotify").mkdir(parents=True)
    (tmp_path / "fs" / "inotify" / "max_user_instances").write_text(f"{instances}\n")
    (tmp_path / "fs" / "inotify" / "max_user_watches").write_text(f"{watches}\n")
    return tmp_path


def test_too_low_only_lists_what_is_below():
    assert hostcheck.too_low(
        {"fs.inotify.max_user_instances": 128, "fs.inotify.max_user_watches": 10**7}
    ) == {"fs.inotify.max_user_instances": 8192}
    assert hostcheck.too_low({}) == {}


def test_raises_low_limits(tmp_path):
    root = fake_proc(tmp_path, 128, 8192)
    out = io.StringIO()
    assert hostcheck.ensure_limits(Progress(out), root) == []
    assert (root / "fs/inotify/max_user_instances").read_text() == "8192\n"
    assert (root / "fs/inotify/max_user_watches").read_text() == "524288\n"
    assert "raised fs.inotify.max_user_instances from 128 to 8192" in out.getvalue()


def test_never_lowers(tmp_path):
    root = fake_proc(tmp_path, 100000, 10**7)
    hostcheck.ensure_limits(Progress(io.StringIO()), root)
    assert (root / "fs/inotify/max_user_instances").read_text() == "100000\n"


def test_unwritable_gives_the_fix(tmp_path, monkeypatch):
    root = fake_proc(tmp_path, 128, 10**7)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hostcheck.Path, "write_text", refuse)
    warnings = hostcheck.ensure_limits(Progress(io.StringIO()), root)
    assert len(warnings) == 1
    assert "sudo sysctl -w fs.inotify.max_user_instances=8192" in warnings[0]
