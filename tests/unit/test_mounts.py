"""ailab.mounts: which mount a path is on, from real mountinfo and /proc/mounts lines."""

import pytest

from ailab import mounts

MOUNTINFO = """\
22 1 0:21 / / rw,relatime master:2 - overlay overlay rw
23 22 0:22 / /proc rw - proc proc rw
24 22 0:23 / /srv/backup rw,relatime - ext4 /dev/sdb1 rw
25 24 0:24 / /srv/backup/ailab\\040old rw,relatime - nfs4 nas:/old rw
26 22 0:25 / /srvx rw - tmpfs tmpfs rw
"""
PROC_MOUNTS = "overlay / overlay rw 0 0\n/dev/sdb1 /srv/backup ext4 rw 0 0\n"


@pytest.mark.parametrize(
    ("path", "mount"),
    [
        ("/srv/backup/ailab", "/srv/backup"),
        ("/srv/backup", "/srv/backup"),
        ("/srv/backup/ailab old/fe01", "/srv/backup/ailab old"),  # \040 is a space
        ("/srvx/a", "/srvx"),
        ("/srv/backupx", "/"),  # a prefix of the name is not a parent directory
        ("/var/lib", "/"),
    ],
)
def test_the_longest_containing_mount_point_wins(path, mount):
    assert mounts.containing_mount(MOUNTINFO, path) == mount


def test_proc_mounts_lines_are_read_as_well():
    assert mounts.containing_mount(PROC_MOUNTS, "/srv/backup/x") == "/srv/backup"
    assert mounts.mount_type(PROC_MOUNTS, "/srv/backup") == "ext4"
    assert mounts.mount_points(MOUNTINFO)[-2] == "/srv/backup/ailab old"
