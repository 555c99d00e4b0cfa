"""The exact docker arguments each host becomes: pure functions of the model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from simulator import plan
from simulator.errors import SimError

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ailab-sim/node:0123456789ab"


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(ROOT / "inventory" / "sim")[0]


def pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_gpu_node_gets_device_rule_address_and_labels(cluster):
    host = cluster.hosts["t4-01"]
    args = plan.create_args(cluster, host, IMAGE)
    assert args[0] == "create"
    assert pairs(args, "--name") == ["ailab-t4-01"]
    assert pairs(args, "--hostname") == ["t4-01"]
    assert pairs(args, "--ip") == [host.address]
    assert pairs(args, "--network") == [cluster.sim.network]
    assert pairs(args, "--device-cgroup-rule") == ["c 195:* rwm"]
    assert set(pairs(args, "--label")) >= {"ailab.sim.prefix=ailab", "ailab.sim.host=t4-01"}
    assert pairs(args, "--network-alias") == ["t4-01", f"t4-01.{cluster.domain}"]
    assert args[-2:] == [IMAGE, "/sbin/init"]


def test_systemd_flags_exactly_and_never_privileged(cluster):
    for host in cluster.hosts.values():
        args = plan.create_args(cluster, host, IMAGE)
        assert "--privileged" not in args
        # Compute nodes also CAP_SYS_PTRACE: slurmstepd reads the job's /proc/PID/io (job accounting); the
        # directory host: slapd's init script finds slapd through /proc/PID/exe.
        ptrace = ["SYS_PTRACE"] if host.in_group("compute") or host.in_group("directory") else []
        assert sorted(pairs(args, "--cap-add")) == ["MKNOD", "NET_ADMIN", "SYS_ADMIN", "SYS_NICE", *ptrace]
        assert pairs(args, "--security-opt") == ["seccomp=unconfined", "apparmor=unconfined"]
        assert "--cgroupns=host" in args
        assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in pairs(args, "-v")
        assert pairs(args, "--tmpfs") == ["/run", "/run/lock"]
        assert pairs(args, "--device") == ["/dev/fuse"]
        assert pairs(args, "--stop-signal") == ["SIGRTMIN+3"]


def test_only_gpu_hosts_get_the_nvidia_rule(cluster):
    for host in cluster.hosts.values():
        rules = pairs(plan.create_args(cluster, host, IMAGE), "--device-cgroup-rule")
        assert bool(rules) == bool(host.hardware and host.hardware.gpu), host.name


def test_storage_host_keeps_ceph_data_in_a_named_volume(cluster):
    stor = cluster.ceph_hosts[0]
    args = plan.create_args(cluster, stor, IMAGE)
    assert f"ailab-{stor.name}-ceph:/var/lib/ceph" in pairs(args, "-v")
    assert plan.volume_create_args(cluster, stor, f"ailab-{stor.name}-ceph")[-1] == f"ailab-{stor.name}-ceph"
    fe = cluster.frontends[0]
    assert not any(v.endswith(":/var/lib/ceph") for v in pairs(plan.create_args(cluster, fe, IMAGE), "-v"))


def test_prefix_changes_every_name(cluster):
    other = dataclasses.replace(
        cluster, sim=dataclasses.replace(cluster.sim, prefix="ci", network="ci-sim", subnet="10.214.0.0/24")
    )
    args = plan.create_args(other, other.hosts["fe01"], IMAGE)
    assert pairs(args, "--name") == ["ci-fe01"]
    assert "ailab.sim.prefix=ci" in pairs(args, "--label")
    assert pairs(args, "--network") == ["ci-sim"]
    assert plan.prefix_filter(other.sim) == "label=ailab.sim.prefix=ci"
    net = plan.network_create_args(other)
    assert net[-1] == "ci-sim" and pairs(net, "--subnet") == ["10.214.0.0/24"]


def test_reconnect_restores_address_and_names(cluster):
    host = cluster.hosts["ctl01"]
    args = plan.connect_args(cluster, host)
    assert args[:2] == ["network", "connect"]
    assert pairs(args, "--ip") == [host.address]
    assert pairs(args, "--alias") == ["ctl01", f"ctl01.{cluster.domain}"]
    assert args[-2:] == [cluster.sim.network, "ailab-ctl01"]


def test_inventory_without_sim_settings_is_refused(cluster):
    with pytest.raises(SimError) as err:
        plan.sim_settings(dataclasses.replace(cluster, sim=None))
    assert "ailab_sim" in str(err.value) and err.value.exit_code == 2


def test_the_hosts_that_back_up_share_one_backup_volume_no_host_owns(cluster):
    dest = cluster.backup.destination
    with_backup = {
        h.name
        for h in cluster.hosts.values()
        if f"ailab-backup:{dest}" in pairs(plan.create_args(cluster, h, IMAGE), "-v")
    }
    assert with_backup == {"ctl01", cluster.operations_host}
    create = plan.volume_create_args(cluster, cluster.controllers[0], "ailab-backup")
    assert "ailab.sim.host=ctl01" not in create and "ailab.sim.prefix=ailab" in create
    no_backup = dataclasses.replace(cluster, backup=dataclasses.replace(cluster.backup, destination=""))
    assert not plan.volumes(no_backup, cluster.controllers[0])
