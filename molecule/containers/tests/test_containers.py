"""Role containers on the front-end: Charliecloud, no setuid helper, no root daemon, the tools."""

from __future__ import annotations

testinfra_hosts = ["fe01"]


def test_charliecloud_is_installed_without_setuid_helpers_or_root_daemons(host):
    for package in ("charliecloud", "git", "squashfs-tools"):
        assert host.package(package).is_installed, package
    for helper in ("/usr/bin/newuidmap", "/usr/bin/newgidmap"):
        f = host.file(helper)
        assert not f.exists or not f.mode & 0o4000, f"{helper} is setuid"
    for unit in ("docker.socket", "docker.service", "containerd.service"):
        assert not host.service(unit).is_running, unit
        assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "masked", unit


def test_ailab_ch_run_refuses_outside_a_gpu_job(host):
    out = host.run("su - student1 -c 'ailab-ch-run debian-bookworm-python -- true'")
    assert out.rc == 2, out
    assert "not inside a Slurm job" in out.stderr and "usage guideline 5" in out.stderr, out.stderr
