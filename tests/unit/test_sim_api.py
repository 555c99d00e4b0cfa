"""The Sim API's checks happen before Docker is touched; its calls are the ones the plan says.  A fake
Docker records every command instead of running it."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from simulator.api import ExecError, Sim
from simulator.docker import Docker
from simulator.errors import SimError
from simulator.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


class FakeDocker(Docker):
    """Answers ``docker`` commands from a table of running containers; records every call."""

    def __init__(self, running: dict[str, dict] | None = None):
        super().__init__("docker")
        self.calls: list[list[str]] = []
        self.containers = running or {}
        self.volumes: dict[str, str] = {}  # volume name -> host label
        self.exec_result = subprocess.CompletedProcess([], 0, "", "")

    def ensure_available(self) -> str:
        return "fake"

    def _run(self, args, *, check=True, input=None, timeout=120.0, capture=True):
        args = list(args)
        self.calls.append(args)
        out, code = "", 0
        if args[:2] == ["container", "inspect"]:
            out = json.dumps([self.containers[n] for n in args[2:] if n in self.containers])
        elif args[:1] == ["exec"]:
            if "getent" in args:
                user = args[-1]
                out = f"{user}:x:200001:200001::/home/{user}:/bin/bash\n"
            elif args[-1] == "is-system-running":
                out = "running\n"
            else:
                return subprocess.CompletedProcess(args, self.exec_result.returncode, *self._exec_output())
        elif args[:1] == ["ps"] and args[-1] == "{{.Names}}":
            out = "".join(f"{n}\n" for n in self.containers)
        elif args[:1] == ["ps"]:
            out = ""
        elif args[:2] == ["volume", "ls"]:
            out = "".join(f"{v}\n" for v in self.volumes)
        elif args[:2] == ["volume", "inspect"]:
            out = json.dumps([{"Name": v, "Labels": {"ailab.sim.host": self.volumes[v]}} for v in args[2:]])
        return subprocess.CompletedProcess(args, code, out, "")

    def _exec_output(self):
        return self.exec_result.stdout, self.exec_result.stderr


def container(name: str, host: str, state: str = "running", prefix: str = "ailab", network="ailab-sim"):
    return {
        "Name": f"/{name}",
        "State": {"Status": state},
        "Config": {"Labels": {"ailab.sim.prefix": prefix, "ailab.sim.host": host}, "Image": "img"},
        "NetworkSettings": {"Networks": {network: {}} if network else {}},
    }


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(ROOT / "inventory" / "sim")[0]


def make_sim(cluster, running=None) -> tuple[Sim, FakeDocker]:
    docker = FakeDocker(running)
    return Sim("inventory/sim", docker=docker, progress=Progress(io.StringIO()), cluster=cluster), docker


def all_running(cluster):
    return {f"ailab-{h}": container(f"ailab-{h}", h) for h in cluster.hosts}


def test_unknown_node_fails_before_docker(cluster):
    sim, docker = make_sim(cluster)
    for call in (sim.stop, sim.start, sim.disconnect, sim.reconnect, sim.container):
        with pytest.raises(SimError) as err:
            call("nope")
        assert "unknown node 'nope'" in str(err.value) and "fe01" in err.value.fix
    with pytest.raises(SimError):
        sim.exec("nope", "true")
    assert docker.calls == []


def test_gpu_index_is_checked_before_docker(cluster):
    sim, docker = make_sim(cluster, all_running(cluster))
    with pytest.raises(SimError, match="out of range"):
        sim.gpu_fail("t4-01", 2)
    with pytest.raises(SimError, match="has no GPUs"):
        sim.gpu_fail("fe01", 0)
    with pytest.raises(SimError, match="out of range"):
        sim.gpu_restore("t4-01", -1)
    assert docker.calls == []
    sim.gpu_fail("t4-01", 1)
    assert docker.calls[-1][:2] == ["exec", "ailab-t4-01"]
    assert "/var/lib/ailab-sim/failed/1" in docker.calls[-1][-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("t4-01", 2, 50), "out of range"),
        (("fe01", 0, 50), "has no GPUs"),
        (("nope", 0, 50), "unknown node"),
        (("t4-01", 0, 101), "from 0 to 100, not 101"),
        (("t4-01", 0, -1), "from 0 to 100, not -1"),
        (("t4-01", 0, 50.5), "whole percentage"),
        (("t4-01", 0, 50, 16385), "from 0 to 16384"),
        (("t4-01", 0, 50, -1), "from 0 to 16384"),
        (("a40-01", 0, 50, 49153), "from 0 to 49152"),
    ],
)
def test_gpu_load_is_checked_before_docker(cluster, args, message):
    sim, docker = make_sim(cluster, all_running(cluster))
    with pytest.raises(SimError, match=message) as err:
        sim.gpu_load(*args)
    assert err.value.exit_code == 2 and err.value.fix
    assert docker.calls == []


def test_gpu_load_writes_and_clears_the_load_file(cluster):
    sim, docker = make_sim(cluster, all_running(cluster))
    sim.gpu_load("t4-01", 1, 85, memory_mib=2048)
    call = docker.calls[-1]
    assert call[:4] == ["exec", "ailab-t4-01", "sh", "-c"]
    assert "printf '%s %s\\n' 85 2048 > /var/lib/ailab-sim/load/1.tmp" in call[-1]
    assert call[-1].endswith("mv /var/lib/ailab-sim/load/1.tmp /var/lib/ailab-sim/load/1")
    sim.gpu_load("t4-01", 1, 0, memory_mib=16384)
    assert "printf '%s %s\\n' 0 16384" in docker.calls[-1][-1]
    sim.gpu_load("t4-01", 1, 0)
    assert docker.calls[-1] == ["exec", "ailab-t4-01", "rm", "-f", "/var/lib/ailab-sim/load/1"]


def test_gpu_fail_needs_a_running_container(cluster):
    running = all_running(cluster)
    running["ailab-t4-01"]["State"]["Status"] = "exited"
    sim, _ = make_sim(cluster, running)
    with pytest.raises(SimError) as err:
        sim.gpu_fail("t4-01", 0)
    assert "exited" in str(err.value) and err.value.fix == "ailab sim start t4-01"


def test_no_docker_engine_is_a_clear_error(cluster):
    sim = Sim("inventory/sim", docker=Docker("no-such-docker-binary"), cluster=cluster)
    with pytest.raises(SimError) as err:
        sim.up()
    assert "not installed" in str(err.value) and "ensure-docker.sh" in err.value.fix


def test_exec_str_runs_via_login_bash_and_checks(cluster):
    sim, docker = make_sim(cluster, all_running(cluster))
    docker.exec_result = subprocess.CompletedProcess([], 0, "hi\n", "")
    result = sim.exec("fe01", "echo hi")
    assert result.stdout == "hi\n"
    assert docker.calls[-1] == ["exec", "ailab-fe01", "bash", "-lc", "echo hi"]
    sim.exec("fe01", ["id", "-u"], input="x")
    assert docker.calls[-1] == ["exec", "-i", "ailab-fe01", "id", "-u"]
    docker.exec_result = subprocess.CompletedProcess([], 3, "", "boom\n")
    with pytest.raises(ExecError) as err:
        sim.exec("fe01", "false")
    assert err.value.returncode == 3 and "boom" in str(err.value)
    assert isinstance(err.value, subprocess.CalledProcessError)
    assert sim.exec("fe01", "false", check=False).returncode == 3


def test_exec_as_user_starts_in_their_home(cluster):
    """By uid:gid from NSS: Docker's -u NAME reads only /etc/passwd, where no directory user is."""
    sim, docker = make_sim(cluster, all_running(cluster))
    sim.exec("fe01", "pwd", user="student1")
    last = docker.calls[-1]
    assert last[last.index("-u") + 1] == "200001:200001"
    assert last[last.index("-w") + 1] == "/home/student1"
    assert "HOME=/home/student1" in last


def test_status_marks_missing_containers_absent(cluster):
    running = all_running(cluster)
    del running["ailab-stor01"]
    running["ailab-ctl01"]["NetworkSettings"]["Networks"] = {}
    sim, _ = make_sim(cluster, running)
    by_name = {s.name: s for s in sim.status()}
    assert set(by_name) == set(cluster.hosts)
    assert by_name["stor01"].state == "absent"
    assert by_name["fe01"].state == "running" and by_name["fe01"].connected
    assert not by_name["ctl01"].connected
    assert by_name["t4-01"].gpus == 2 and by_name["t4-01"].gpu_model == "t4"
    assert by_name["fe01"].as_dict()["node"] == "fe01"


def test_a_foreign_container_with_our_name_is_never_touched(cluster):
    running = all_running(cluster)
    running["ailab-fe01"] = container("ailab-fe01", "fe01", prefix="someone-else")
    sim, docker = make_sim(cluster, running)
    with pytest.raises(SimError, match="not created by the simulator"):
        sim.up()
    assert not [c for c in docker.calls if c[0] in ("create", "start", "rm", "network")]
    with pytest.raises(SimError, match="not created by the simulator"):
        sim.stop("fe01")


def test_reconnect_only_when_disconnected(cluster):
    running = all_running(cluster)
    sim, docker = make_sim(cluster, running)
    assert sim.reconnect("ctl01") is False
    assert sim.disconnect("ctl01") is True
    assert docker.calls[-1] == ["network", "disconnect", "ailab-sim", "ailab-ctl01"]
    running["ailab-ctl01"]["NetworkSettings"]["Networks"] = {}
    assert sim.reconnect("ctl01") is True
    assert docker.calls[-1][:2] == ["network", "connect"]


def test_prune_removes_only_containers_of_hosts_gone_from_the_inventory(cluster, tmp_path, monkeypatch):
    running = all_running(cluster)
    running["ailab-t4-09"] = container("ailab-t4-09", "t4-09")
    sim, docker = make_sim(cluster, running)
    docker.volumes = {"ailab-t4-09-scratch": "t4-09", "ailab-stor01-ceph": "stor01"}
    cleaned: list[list[str]] = []
    monkeypatch.setattr("simulator.cgroups.remove_leftovers", lambda names: cleaned.append(names) or Report())
    result = sim.prune()
    assert result.containers == ["ailab-t4-09"]
    assert ["rm", "--force", "--volumes", "ailab-t4-09"] in docker.calls
    assert result.volumes == ["ailab-t4-09-scratch"]
    assert ["volume", "rm", "ailab-stor01-ceph"] not in docker.calls
    assert cleaned == [["t4-09"]]


def test_prune_with_nothing_extra_touches_nothing(cluster):
    sim, docker = make_sim(cluster, all_running(cluster))
    assert sim.prune().containers == []
    assert not [c for c in docker.calls if c[:1] == ["rm"] or c[:2] == ["volume", "rm"]]


class Report:
    def __init__(self):
        self.removed: list = []
        self.busy: list = []


def test_destroy_loses_the_hosts_own_disk_and_keeps_the_backup_server(cluster, monkeypatch):
    sim, docker = make_sim(cluster, all_running(cluster))
    docker.volumes = {"ailab-backup": "", "ailab-stor01-ceph": "stor01"}
    cleaned: list[list[str]] = []
    monkeypatch.setattr("simulator.cgroups.remove_leftovers", lambda names: cleaned.append(names) or Report())
    result = sim.destroy("ctl01")
    assert result.containers == ["ailab-ctl01"]
    assert ["rm", "--force", "--volumes", "ailab-ctl01"] in docker.calls
    assert not [c for c in docker.calls if c[:2] == ["volume", "rm"]]  # the backup volume stays
    assert cleaned == [["ctl01"]]


@pytest.mark.parametrize(
    ("node", "needle"), [("stor01", "loses every home"), ("nope", "not in the inventory")]
)
def test_destroy_refuses_the_storage_host_and_unknown_names(cluster, node, needle):
    sim, docker = make_sim(cluster, all_running(cluster))
    with pytest.raises(SimError, match=needle):
        sim.destroy(node)
    assert not [c for c in docker.calls if c[:1] == ["rm"]]
