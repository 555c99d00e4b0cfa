"""Role backup: the destination and the daily timer (moved here from the whole-cluster suite)."""

from __future__ import annotations

testinfra_hosts = ["ctl01", "fe01"]


def test_the_destination_is_a_mount_of_its_own_and_usable(host, cluster):
    out = host.check_output("ailab-backup check")
    assert out.startswith(f"{cluster.backup.destination}: usable"), out
    assert host.mount_point(cluster.backup.destination).exists


def test_the_daily_timer_is_enabled(host):
    timer = host.check_output("systemctl show -P UnitFileState ailab-backup.timer")
    assert timer == "enabled"
    assert host.file("/etc/ailab/backup.json").mode == 0o600
