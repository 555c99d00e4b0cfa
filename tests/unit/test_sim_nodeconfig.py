"""What each container is told about its GPUs: stable UUIDs, bus ids, the node.json tar."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from ailab.gpus import GPU_MODELS
from ailab.inventory import load_cluster
from simulator.nodeconfig import config_tar, gpu_bus_id, gpu_uuid, node_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(ROOT / "inventory" / "sim")[0]


def test_uuids_are_stable_distinct_and_shaped_like_nvidias():
    assert gpu_uuid("t4-01", 0) == gpu_uuid("t4-01", 0)
    seen = {gpu_uuid(h, i) for h in ("t4-01", "t4-02", "a40-01") for i in range(8)}
    assert len(seen) == 24
    assert all(
        re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u) for u in seen
    )


def test_bus_ids_distinct():
    ids = [gpu_bus_id(i) for i in range(8)]
    assert len(set(ids)) == 8
    assert all(re.fullmatch(r"00000000:[0-9A-F]{2}:00\.0", b) for b in ids)


def test_gpu_node_config_follows_the_inventory(cluster):
    host = cluster.hosts["a40-01"]
    config = node_config(cluster, host)
    gpu = host.hardware.gpu
    assert config["name"] == "a40-01"
    assert config["gpu"]["product"] == GPU_MODELS[gpu.model].product
    assert config["gpu"]["count"] == gpu.count == len(config["gpu"]["devices"])
    assert config["gpu"]["memory_mib"] == gpu.memory_gb * 1024
    assert [d["path"] for d in config["gpu"]["devices"]] == [f"/dev/nvidia{i}" for i in range(gpu.count)]
    assert config["gpu"]["devices"][1]["uuid"] == gpu_uuid("a40-01", 1)


def test_host_without_gpu_has_none(cluster):
    assert node_config(cluster, cluster.frontends[0])["gpu"] is None


def test_config_tar_holds_node_json(cluster):
    config = node_config(cluster, cluster.hosts["t4-01"])
    with tarfile.open(fileobj=io.BytesIO(config_tar(config))) as tar:
        assert tar.getnames() == ["node.json"]
        member = tar.getmember("node.json")
        assert member.mode == 0o644
        assert json.load(tar.extractfile(member)) == config
