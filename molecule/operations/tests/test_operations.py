"""Role operations: the yearly deletion and the maintenance notices' tools and timers."""

from __future__ import annotations

testinfra_hosts = ["fe01"]


def test_the_tools_are_installed_and_accept_their_configuration(host):
    for tool in ("ailab-retention", "ailab-maintenance"):
        assert host.file(f"/usr/local/sbin/{tool}").mode & 0o111, tool
        assert host.run(f"/usr/local/sbin/{tool} --help").rc == 0, tool


def test_the_daily_timers_are_enabled_here(host):
    timers = host.check_output("systemctl list-unit-files 'ailab-*.timer' --no-legend --plain")
    enabled = [line.split()[0] for line in timers.splitlines() if line.split()[1] == "enabled"]
    assert any("retention" in t for t in enabled), timers
    assert any("maintenance" in t for t in enabled), timers
