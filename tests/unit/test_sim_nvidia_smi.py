"""The nvidia-smi stand-in (simulator/image/nvidia_smi.py, run inside the containers)."""

from __future__ import annotations

import datetime as dt
import errno
import importlib.util
import sys
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from simulator.nodeconfig import node_config

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 3, 2, 9, 30, 5, 123000)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"ailab_sim_{name}", ROOT / "simulator" / "image" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


smi = _load("nvidia_smi")
gpu_devices = _load("gpu_devices")


@pytest.fixture(scope="module")
def config():
    cluster = load_cluster(ROOT / "inventory" / "sim")[0]
    return node_config(cluster, cluster.hosts["t4-01"])


def everything(_path: str) -> bool:
    return True


def run(argv, config, accessible=everything, failed=frozenset(), loads=None):
    return smi.run(argv, config, accessible, set(failed), NOW, loads)


def test_list(config):
    status, out, err = run(["-L"], config)
    uuids = [d["uuid"] for d in config["gpu"]["devices"]]
    assert status == 0 and err == ""
    assert out == f"GPU 0: Tesla T4 (UUID: {uuids[0]})\nGPU 1: Tesla T4 (UUID: {uuids[1]})\n"


def test_query_csv_with_and_without_units_and_header(config):
    query = "--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu"
    status, out, _ = run([query, "--format=csv"], config)
    lines = out.splitlines()
    assert status == 0
    assert lines[0] == "index, name, uuid, memory.total [MiB], memory.used [MiB], utilization.gpu [%]"
    assert lines[1] == f"0, Tesla T4, {config['gpu']['devices'][0]['uuid']}, 16384 MiB, 0 MiB, 0 %"
    _, out, _ = run(["--query-gpu", "index,memory.total", "--format", "csv,noheader,nounits"], config)
    assert out == "0, 16384\n1, 16384\n"


def test_cgroup_denied_device_is_invisible_and_indices_renumber(config):
    # EPERM for /dev/nvidia0 (Slurm gave the job only GPU 1): like NVML, the job sees one GPU, index 0.
    def only_second(path: str) -> bool:
        return path == "/dev/nvidia1"

    _, out, _ = run(["--query-gpu=index,uuid", "--format=csv,noheader"], config, only_second)
    assert out == f"0, {config['gpu']['devices'][1]['uuid']}\n"


def test_no_accessible_gpu(config):
    status, out, _ = run(["-L"], config, lambda p: False)
    assert (status, out) == (6, "No devices were found\n")


def test_failed_gpu_is_missing_and_reported(config):
    status, out, err = run(["-L"], config, failed={1})
    bus = config["gpu"]["devices"][1]["bus_id"]
    assert status == 15
    assert out.count("\n") == 1 and "GPU 0:" in out
    assert err == f"Unable to determine the device handle for GPU {bus}: Unknown Error\n"


def test_failed_gpu_outside_the_job_is_not_reported(config):
    status, _, err = run(["-L"], config, lambda p: p == "/dev/nvidia0", failed={1})
    assert (status, err) == (0, "")


def test_table_lists_visible_healthy_gpus(config):
    status, out, _ = run([], config)
    assert status == 0
    assert out.startswith("Mon Mar 02 09:30:05 2026\n")
    assert "Tesla T4" in out and out.count("Tesla T4") == 2
    assert "16384MiB" in out and config["driver_version"] in out
    widths = {len(line) for line in out.splitlines()[1:] if line.startswith(("|", "+"))}
    assert widths == {89}


def test_host_without_gpus_has_no_driver(config):
    status, out, _ = run(["-L"], {**config, "gpu": None})
    assert status == 9 and "couldn't communicate with the NVIDIA driver" in out
    assert run(["-L"], None)[0] == 9


def test_bad_arguments(config):
    assert run(["--query-gpu=index"], config)[0] == 2  # --format is required
    status, out, _ = run(["--query-gpu=index,bogus", "--format=csv"], config)
    assert status == 2 and 'Field "bogus" is not a valid field to query.' in out
    assert run(["--frobnicate"], config)[0] == 2
    assert run(["--query-gpu=index", "--format=json"], config)[0] == 2


def test_select_by_id(config):
    uuid = config["gpu"]["devices"][1]["uuid"]
    _, out, _ = run(["-i", uuid, "-L"], config)
    assert out == f"GPU 1: Tesla T4 (UUID: {uuid})\n"
    _, out, _ = run(["--id=0", "--query-gpu=index", "--format=csv,noheader"], config)
    assert out == "0\n"


@pytest.mark.parametrize(
    ("code", "visible"),
    [
        (errno.ENXIO, True),
        (errno.ENODEV, True),
        (errno.EPERM, False),
        (errno.EACCES, False),
        (errno.ENOENT, False),
    ],
)
def test_open_errors_decide_visibility(monkeypatch, code, visible):
    def fake_open(path, flags):
        raise OSError(code, "simulated")

    monkeypatch.setattr(smi.os, "open", fake_open)
    assert smi.can_open("/dev/nvidia0") is visible


def test_read_failed(tmp_path):
    (tmp_path / "1").touch()
    (tmp_path / "junk").touch()
    assert smi.read_failed(str(tmp_path)) == {1}
    assert smi.read_failed(str(tmp_path / "missing")) == set()


def test_device_nodes_for_gpu_and_plain_hosts(config):
    nodes = gpu_devices.device_nodes(config, "/dev")
    assert nodes == [("/dev/nvidia0", 0), ("/dev/nvidia1", 1), ("/dev/nvidiactl", 255)]
    assert gpu_devices.device_nodes({**config, "gpu": None}) == []


@pytest.mark.parametrize(
    ("text", "load"),
    [
        ("85 2048\n", (85, 2048)),
        ("100 16384", (100, 16384)),
        ("0 512", (0, 512)),
        ("40", (40, 0)),
        ("  7\t9  \n", (7, 9)),
        ("", (0, 0)),
        ("101 0", (0, 0)),  # out of range: no load
        ("50 16385", (0, 0)),  # more than the GPU has
        ("-5 0", (0, 0)),
        ("85.5 2048", (0, 0)),
        ("85 2048 1", (0, 0)),
        ("eighty", (0, 0)),
        ("\u00b2 1", (0, 0)),  # str.isdigit() accepts superscripts, int() does not
    ],
)
def test_parse_load(text, load):
    assert smi.parse_load(text, 16384) == smi.Load(*load)


def test_load_is_reported_in_the_query(config):
    query = "--query-gpu=index,utilization.gpu,utilization.memory,memory.used,memory.free,memory.total"
    status, out, _ = run([query, "--format=csv"], config, loads={1: "85 2048\n", 0: "garbage"})
    assert status == 0
    assert out.splitlines()[1:] == ["0, 0 %, 0 %, 0 MiB, 16384 MiB, 16384 MiB",
                                    "1, 85 %, 85 %, 2048 MiB, 14336 MiB, 16384 MiB"]  # fmt: skip


def test_load_follows_the_device_not_the_index(config):
    # A job given only GPU 1 sees it as index 0, with GPU 1's load.
    def only_second(path: str) -> bool:
        return path == "/dev/nvidia1"

    _, out, _ = run(
        ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
        config,
        only_second,
        loads={1: "30 100"},
    )
    assert out == "0, 30, 100\n"


def test_load_is_reported_in_the_table(config):
    status, out, _ = run([], config, loads={0: "100 16384", 1: "7 1"})
    assert status == 0
    lines = out.splitlines()
    assert [line[42:] for line in lines if "MiB /" in line] == [
        "|  16384MiB / 16384MiB |    100%      Default |",
        "|      1MiB / 16384MiB |      7%      Default |",
    ]
    assert {len(line) for line in lines[1:] if line.startswith(("|", "+"))} == {89}


def test_read_loads(tmp_path):
    (tmp_path / "0").write_text("85 2048\n")
    (tmp_path / "1").mkdir()  # unreadable as a file: left out
    (tmp_path / "junk").write_text("1 1")
    assert smi.read_loads(str(tmp_path)) == {0: "85 2048\n"}
    assert smi.read_loads(str(tmp_path / "missing")) == {}
