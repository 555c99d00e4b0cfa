"""Role common: what every node gets first (moved here from the whole-cluster suite)."""

from __future__ import annotations

from ailab.render import render_hosts

testinfra_hosts = ["fe01", "mol-t4-01"]


def test_host_name_and_every_node_in_etc_hosts(host, cluster):
    name = host.check_output("hostname")
    assert name in testinfra_hosts
    assert render_hosts(cluster) in host.file("/etc/hosts").content_string
    # Names resolve across the scenario's network: each host reaches the other by name.
    other = next(n for n in testinfra_hosts if n != name)
    assert host.check_output(f"getent hosts {other}").split()[0] == cluster.hosts[other].address


def test_time_zone_and_base_packages(host, cluster):
    assert host.file("/etc/localtime").linked_to == f"/usr/share/zoneinfo/{cluster.timezone}"
    assert host.file("/etc/timezone").content_string.strip() == cluster.timezone
    for package in ("rsync", "tzdata", "sudo", "python3-apt"):
        assert host.package(package).is_installed, package


def test_no_network_time_sync_in_the_simulator(host):
    assert not host.service("chrony").is_running
    assert not host.service("systemd-timesyncd").is_running


def test_motd_names_the_node_role(host, cluster):
    name = host.check_output("hostname")
    motd = host.file("/etc/motd").content_string
    node = cluster.hosts[name]
    if name.startswith("mol-"):
        gpu = node.hardware.gpu
        assert f"GPU compute node ({gpu.count}x {gpu.model.upper()}" in motd
    else:
        assert name in motd or "front-end" in motd.lower(), motd
