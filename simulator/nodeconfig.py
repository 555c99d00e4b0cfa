"""What a simulated host is told about itself: /etc/ailab-sim/node.json, read inside the container by the
GPU device unit and the nvidia-smi stand-in.  Pure functions of the model."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from typing import Any

from ailab.gpus import GPU_MODELS
from ailab.model import Cluster, Host

CONFIG_DIR = "/etc/ailab-sim"  # inside the container; the image creates it
CONFIG_PATH = f"{CONFIG_DIR}/node.json"
FAILED_DIR = "/var/lib/ailab-sim/failed"
LOAD_DIR = "/var/lib/ailab-sim/load"  # the nvidia-smi stand-in reads <minor>: "<percent> <MiB used>"
SCHEMA = 1

# The driver the simulated hosts pretend to run (what nvidia-smi prints in its header).
DRIVER_VERSION = "535.183.01"
CUDA_VERSION = "12.2"

# A fixed namespace: the same host name and index always give the same UUID, on every machine.
_UUID_NAMESPACE = uuid.UUID("5f1c3a52-6f0e-4c59-9a43-5b8a2d1e7c10")


def gpu_uuid(host: str, index: int) -> str:
    """The stable UUID of GPU ``index`` of ``host``, in nvidia-smi's ``GPU-xxxxxxxx-...`` form."""
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{host}/gpu/{index}')}"


def gpu_serial(host: str, index: int) -> str:
    """A 13-digit board serial number, stable like the UUID."""
    return str(int(uuid.uuid5(_UUID_NAMESPACE, f"{host}/serial/{index}")) % 10**13).zfill(13)


def gpu_bus_id(index: int) -> str:
    """PCI bus id of GPU ``index``: distinct buses, spaced like a typical multi-GPU board."""
    bus = (0x18 + 0x23 * index) % 0x100
    return f"00000000:{bus:02X}:00.0"


def node_config(cluster: Cluster, host: Host) -> dict[str, Any]:
    config: dict[str, Any] = {
        "schema": SCHEMA,
        "name": host.name,
        "cluster": cluster.name,
        "groups": list(host.groups),
        "address": host.address,
        "driver_version": DRIVER_VERSION,
        "cuda_version": CUDA_VERSION,
        "gpu": None,
    }
    gpu = host.hardware.gpu if host.hardware else None
    if gpu is not None:
        spec = GPU_MODELS[gpu.model]
        config["gpu"] = {
            "model": gpu.model,
            "product": spec.product,
            "architecture": spec.architecture,
            "memory_mib": gpu.memory_gb * 1024,
            "count": gpu.count,
            "devices": [
                {
                    "minor": i,
                    "path": f"/dev/nvidia{i}",
                    "uuid": gpu_uuid(host.name, i),
                    "bus_id": gpu_bus_id(i),
                    "serial": gpu_serial(host.name, i),
                }
                for i in range(gpu.count)
            ],
        }
    return config


def gpu_count(host: Host) -> int:
    return host.hardware.gpu.count if host.hardware and host.hardware.gpu else 0


def gpu_memory_mib(host: Host) -> int:
    """Memory of each of the host's GPUs, in MiB, as its nvidia-smi reports it (0: no GPUs)."""
    return host.hardware.gpu.memory_gb * 1024 if host.hardware and host.hardware.gpu else 0


def config_tar(config: dict[str, Any]) -> bytes:
    """A tar stream holding ``node.json``, for ``docker cp - CONTAINER:/etc/ailab-sim`` (the image has
    the directory)."""
    data = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("node.json")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
