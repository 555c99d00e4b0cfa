"""`ailab sim emulate` (simulator/emulate.py): the emulation's files are the real renderers' with the listed
differences only; accounting is the role's plan; the start script starts what it must in order."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from ailab import slurm
from ailab.inventory import load_cluster
from simulator import emulate
from simulator.errors import SimError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prod():
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    return cluster


def settings(text: str) -> dict[str, str]:
    return {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if line and not line.startswith(("#", "NodeName=", "PartitionName="))
    }


def test_only_the_listed_settings_differ_from_the_real_slurm_conf(prod):
    real = settings(slurm.render_slurm_conf(prod))
    emulated = settings(emulate.emulated_slurm_conf(prod))
    changed = {k for k in real.keys() | emulated.keys() if real.get(k) != emulated.get(k)}
    assert changed == set(emulate.DIFFERENCES)  # production does not set SlurmdParameters; it is added
    for key, (value, _why) in emulate.DIFFERENCES.items():
        if value is None:
            assert key not in emulated, key
        else:
            assert emulated[key] == value.format(controller=slurm.controller(prod).name), key
    assert emulated["SlurmctldHost"] == "ai-ctl01(127.0.0.1)"


def test_partitions_are_the_real_ones_and_each_node_has_its_own_line_and_port(prod):
    real = slurm.render_slurm_conf(prod).splitlines()
    emulated = emulate.emulated_slurm_conf(prod).splitlines()
    assert [li for li in emulated if li.startswith("PartitionName=")] == [
        li for li in real if li.startswith("PartitionName=")
    ]
    nodes = [dict(f.split("=", 1) for f in li.split()) for li in emulated if li.startswith("NodeName=")]
    assert sorted(n["NodeName"] for n in nodes) == sorted(h.name for h in prod.compute)
    assert {n["NodeAddr"] for n in nodes} == {"127.0.0.1"}
    ports = [int(n["Port"]) for n in nodes]
    assert len(set(ports)) == len(ports) and min(ports) == emulate.FIRST_PORT
    assert slurm.SLURMCTLD_PORT not in ports and slurm.SLURMDBD_PORT not in ports
    hosts = {h.name: h for h in prod.compute}
    for node in nodes:
        hw = hosts[node["NodeName"]].hardware
        assert (int(node["CPUs"]), int(node["RealMemory"])) == (hw.cpus, hw.memory_mb)
        assert node["Gres"] == f"gpu:{hw.gpu.model}:{hw.gpu.count}"
    # Keys the real file does not have (SlurmdParameters: production trusts its hardware) come before
    # the nodes, where slurm.conf's settings are.
    first_node = next(i for i, li in enumerate(emulated) if li.startswith("NodeName="))
    assert emulated.index("SlurmdParameters=config_overrides") < first_node


def test_the_readme_lists_every_difference():
    readme = (ROOT / "simulator" / "README.md").read_text()
    section = readme[readme.index("## Emulating an inventory's scheduler") :]
    for key in [*emulate.DIFFERENCES, *emulate.NODE_DIFFERENCES]:
        assert f"`{key}" in section, key


def test_the_other_files_are_the_renderers(prod):
    files = {path: (owner, mode, text) for path, owner, mode, text in emulate.files(prod)}
    assert files["/etc/slurm/gres.conf"][2] == slurm.render_gres_conf(prod)
    assert files["/etc/slurm/job_submit.lua"][2] == slurm.render_job_submit_lua(prod)
    assert files["/etc/slurm/slurmdbd.conf"] == ("slurm", "0600", slurm.render_slurmdbd_conf(prod))


EMPTY = {"clusters": "", "qos": "", "accounts": "", "assocs": "", "users": ""}


def test_accounting_is_the_roles_plan_for_what_slurmdbd_holds(prod):
    fresh = emulate.accounting_commands(prod, EMPTY)
    assert fresh[0] == ["sacctmgr", "-i", "add", "cluster", prod.slurm.cluster_name]
    # slurmctld registered the cluster when it started: the plan does not add it again.
    registered = emulate.accounting_commands(prod, {**EMPTY, "clusters": f"{prod.slurm.cluster_name}\n"})
    assert registered == fresh[1:]
    users = {c[4] for c in registered if c[2:4] == ["add", "user"]}
    assert users == set(prod.users)
    assert any(c[2:5] == ["add", "qos", slurm.DEFAULT_QOS] for c in registered)
    assert set(emulate.accounting_queries()) == set(EMPTY)


def test_start_script_writes_the_files_and_starts_daemons_in_order(prod):
    script = emulate.start_script(prod)
    assert script.startswith("set -euo pipefail\n")
    for data in re.findall(r"^echo (\S+) \| base64 -d > (\S+);", script, re.MULTILINE):
        text = base64.b64decode(data[0]).decode()
        assert text == next(t for p, _, _, t in emulate.files(prod) if p == data[1])
    order = [
        script.index(word)
        for word in ("munged", "mariadbd", "useradd", "/usr/sbin/slurmdbd\n", "/usr/sbin/slurmctld\n")
    ]
    assert order == sorted(order)
    for user in prod.users.values():
        assert f"-u {user.uid} -g {user.gid} -m -d {prod.ceph.home_root}/{user.name}" in script


def test_nodes_script_runs_the_accounting_then_one_slurmd_per_node(prod):
    commands = [["sacctmgr", "-i", "add", "qos", "ailab"]]
    script = emulate.nodes_script(prod, commands)
    lines = script.splitlines()
    assert lines[1] == "sacctmgr -i add qos ailab >/dev/null"
    assert lines[2] == "scontrol reconfigure"
    [start] = [li for li in lines if "exec /usr/sbin/slurmd" in li]
    started = start.split("printf '%s\\n' ", 1)[1].split(" | ")[0].split()
    assert sorted(started) == sorted(h.name for h in prod.compute)
    assert "unshare -u sh -c 'hostname NODE && exec /usr/sbin/slurmd'" in start
    most = max(h.hardware.gpu.count for h in prod.compute)
    assert f"mknod -m 0666 /dev/nvidia{most - 1} c 195 {most - 1}" in script
    assert f"/dev/nvidia{most} " not in script


def test_node_states_are_read_once_per_node():
    text = "t4-01 idle\nt4-01 idle\na40-01 mix\n"
    assert emulate.parse_node_states(text) == {"t4-01": "idle", "a40-01": "mix"}


def test_an_inventory_without_compute_nodes_is_refused(prod):
    from dataclasses import replace

    bare = replace(prod, hosts={n: h for n, h in prod.hosts.items() if not h.in_group("compute")})
    with pytest.raises(SimError, match="no compute nodes"):
        emulate.Emulation(bare, "inventory/x", docker=object())  # type: ignore[arg-type]


def test_an_unknown_user_is_refused_before_docker_runs(prod):
    class NoDocker:
        binary = "docker"

        def run(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("docker was called")

    emulation = emulate.Emulation(prod, "inventory/production", docker=NoDocker())  # type: ignore[arg-type]
    with pytest.raises(SimError, match="'nobody' is not a user of inventory/production") as err:
        emulation.run(["sinfo"], user="nobody")
    assert "ab12cd" in err.value.fix
    with pytest.raises(SimError, match="no command given"):
        emulation.run([], user=None)


# The scale run of `make bench` (issue 15, part 2) ---------------------------------------------------------


def test_emulation_inventories_have_ten_classes_that_pass_the_checks(tmp_path):
    from ailab.bench import bench_users
    from simulator.scale import EMULATION_CLASSES, emulation_hosts, write_emulation_inventory

    nodes = write_emulation_inventory(
        ROOT / "inventory" / "production", 25, tmp_path / "inv", bench_users(12, "cs-ml-2026"), "cs-ml-2026"
    )
    assert nodes == emulation_hosts(25)
    cluster, problems = load_cluster(tmp_path / "inv")
    assert problems == []
    assert len(cluster.compute) == 25 and len(cluster.node_classes) == len(EMULATION_CLASSES) == 10
    assert len(cluster.users) == 12 and cluster.slurm.cluster_name == "emu25"
    assert cluster.partitions[0].name == "gpu" and len(cluster.partitions) == 11
    by_class = {}
    for host in cluster.compute:
        by_class.setdefault(host.node_class, []).append(host.name)
    assert sorted(len(v) for v in by_class.values()) == [2] * 5 + [3] * 5
    # The production policy's per-GPU caps fit every class (the checks above would refuse it otherwise).
    emulated = emulate.emulated_slurm_conf(cluster)
    assert emulated.count("\nNodeName=") == 25


def test_emulation_sizes_are_checked():
    from simulator.scale import emulation_hosts

    with pytest.raises(SimError, match="at least 1 compute node"):
        emulation_hosts(0)
    with pytest.raises(SimError, match="do not fit"):
        emulation_hosts(70_000)
    names = [n.name for n in emulation_hosts(1000)]
    assert len(set(names)) == 1000 and names[:2] == ["t4-n0001", "l4-n0001"]


def test_the_load_mixes_sizes_and_sdiag_counts_are_read():
    from ailab.bench import emulation_load_script, sdiag_counts

    script = emulation_load_script(10_000, ["a100", "t4"])
    assert "sizes=(--gres=gpu:1 --gres=gpu:2 --gres=gpu:4 --gres=gpu:a100:1 --gres=gpu:t4:1)" in script
    assert "share=$(( 10000 / n + (i < 10000 % n ? 1 : 0) ))" in script
    assert "grep -v -x -e '' -e root" in script  # root's association submits nothing
    text = "Server thread count:  3\n\tJobs submitted: 10000\n\tJobs started:   9990\n\tJobs failed:    0\n"
    assert sdiag_counts(text) == {"submitted": 10000, "started": 9990, "failed": 0}
