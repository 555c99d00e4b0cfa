"""Which cloud machine carries a node class: GPU model -> machine type and accelerator, per cloud.

Pure data and functions.  GCP offers each GPU in one machine series: T4 and V100 are attached to N1 VMs
(1/2/4 or 1/2/4/8 per VM, each count with its own vCPU and memory ceiling), L4 comes built into G2, A100
into A2 (A2 Standard for 40 GB, A2 Ultra for 80 GB) and H100 into A3.  Inside a series the smallest
machine is picked that gives every GPU Slurm's default share of CPUs and memory, so the generated
inventory passes ``ailab inventory check``.  OpenStack machines are the operator's flavors; only the
GPU count a flavor passes through can be read from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ailab.model import Gpu

# What the guest sees of a VM's nominal memory (the kernel and firmware keep some): the memory_mb the
# generated inventory declares, so slurmd never reports less RealMemory than slurm.conf expects.
USABLE_MEMORY_FRACTION = 0.94


class NoMapping(Exception):
    """A node class cannot be built on this cloud.  ``fix`` says what to change."""

    def __init__(self, message: str, fix: str, subject: str):
        self.message = message
        self.fix = fix
        self.subject = subject  # what is wrong: "model", "memory", "count" or "size"
        super().__init__(f"{message} -- fix: {fix}")


@dataclass(frozen=True)
class Shape:
    """A predefined GCP machine type."""

    machine_type: str
    vcpus: int
    memory_gib: float
    gpus: int = 0  # GPUs built into the machine type (accelerator-optimized series); 0 for N1

    @property
    def usable_memory_mb(self) -> int:
        return usable_memory_mb(self.memory_gib * 1024)


@dataclass(frozen=True)
class GcpGpuOffer:
    """How GCP sells one GPU model (and memory size)."""

    model: str  # ailab.gpus key
    memory_gb: int
    accelerator: str  # guestAccelerators type
    series: str
    # GPUs per VM -> the machine types allowed with that many GPUs
    shapes: Mapping[int, tuple[Shape, ...]]


@dataclass(frozen=True)
class GcpMachine:
    machine_type: str
    vcpus: int
    memory_gib: float
    accelerator: str
    accelerator_count: int
    series: str
    gpu_model: str
    gpu_memory_gb: int

    @property
    def usable_memory_mb(self) -> int:
        return usable_memory_mb(self.memory_gib * 1024)


def usable_memory_mb(nominal_mb: float) -> int:
    return int(nominal_mb * USABLE_MEMORY_FRACTION)


def _n1_shapes() -> tuple[Shape, ...]:
    standard = [Shape(f"n1-standard-{n}", n, n * 3.75) for n in (1, 2, 4, 8, 16, 32, 64, 96)]
    highmem = [Shape(f"n1-highmem-{n}", n, n * 6.5) for n in (2, 4, 8, 16, 32, 64, 96)]
    return tuple(standard + highmem)


N1_SHAPES = _n1_shapes()


def _n1_with_limits(limits: Mapping[int, tuple[int, float]]) -> dict[int, tuple[Shape, ...]]:
    """N1 machine types allowed per attached GPU count: at most (vCPUs, GiB) for that count."""
    return {
        count: tuple(s for s in N1_SHAPES if s.vcpus <= max_vcpus and s.memory_gib <= max_gib)
        for count, (max_vcpus, max_gib) in limits.items()
    }


def _fixed(*shapes: Shape) -> dict[int, tuple[Shape, ...]]:
    by_count: dict[int, list[Shape]] = {}
    for shape in shapes:
        by_count.setdefault(shape.gpus, []).append(shape)
    return {count: tuple(found) for count, found in sorted(by_count.items())}


GCP_OFFERS: tuple[GcpGpuOffer, ...] = (
    GcpGpuOffer(
        "t4",
        16,
        "nvidia-tesla-t4",
        "N1",
        _n1_with_limits({1: (48, 312), 2: (48, 312), 4: (96, 624)}),
    ),
    GcpGpuOffer(
        "v100",
        16,
        "nvidia-tesla-v100",
        "N1",
        _n1_with_limits({1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)}),
    ),
    GcpGpuOffer(
        "l4",
        24,
        "nvidia-l4",
        "G2",
        _fixed(
            Shape("g2-standard-4", 4, 16, 1),
            Shape("g2-standard-8", 8, 32, 1),
            Shape("g2-standard-12", 12, 48, 1),
            Shape("g2-standard-16", 16, 64, 1),
            Shape("g2-standard-32", 32, 128, 1),
            Shape("g2-standard-24", 24, 96, 2),
            Shape("g2-standard-48", 48, 192, 4),
            Shape("g2-standard-96", 96, 384, 8),
        ),
    ),
    GcpGpuOffer(
        "a100",
        40,
        "nvidia-tesla-a100",
        "A2 Standard",
        _fixed(
            Shape("a2-highgpu-1g", 12, 85, 1),
            Shape("a2-highgpu-2g", 24, 170, 2),
            Shape("a2-highgpu-4g", 48, 340, 4),
            Shape("a2-highgpu-8g", 96, 680, 8),
            Shape("a2-megagpu-16g", 96, 1360, 16),
        ),
    ),
    GcpGpuOffer(
        "a100",
        80,
        "nvidia-a100-80gb",
        "A2 Ultra",
        _fixed(
            Shape("a2-ultragpu-1g", 12, 170, 1),
            Shape("a2-ultragpu-2g", 24, 340, 2),
            Shape("a2-ultragpu-4g", 48, 680, 4),
            Shape("a2-ultragpu-8g", 96, 1360, 8),
        ),
    ),
    GcpGpuOffer("h100", 80, "nvidia-h100-80gb", "A3", _fixed(Shape("a3-highgpu-8g", 208, 1872, 8))),
)


def gcp_offer(model: str, memory_gb: int) -> GcpGpuOffer:
    """The GCP offer for a GPU model: the one with the inventory's memory size if GCP sells it, else the
    model's only offer (GCP's V100 is the 16 GB card: a 32 GB V100 class becomes a 16 GB one)."""
    offers = [o for o in GCP_OFFERS if o.model == model]
    if not offers:
        known = ", ".join(sorted({o.model for o in GCP_OFFERS}))
        raise NoMapping(
            f"GCP has no machine with the GPU model {model!r}",
            f"deploy this class on OpenStack, or use a model GCP offers: {known}",
            "model",
        )
    for offer in offers:
        if offer.memory_gb == memory_gb:
            return offer
    if len(offers) == 1:
        return offers[0]
    sizes = ", ".join(str(o.memory_gb) for o in offers)
    raise NoMapping(
        f"GCP sells the {model} with {sizes} GB, not {memory_gb} GB",
        f"set gpu.memory_gb to one of {sizes} in the node class's group_vars",
        "memory",
    )


def gcp_machine(gpu: Gpu, count: int, *, min_vcpus: int, min_memory_mb: int) -> GcpMachine:
    """The smallest GCP machine with ``count`` GPUs of ``gpu``'s model that has at least ``min_vcpus``
    vCPUs and ``min_memory_mb`` usable memory.  Raises :class:`NoMapping`."""
    offer = gcp_offer(gpu.model, gpu.memory_gb)
    shapes = offer.shapes.get(count)
    if not shapes:
        counts = ", ".join(str(c) for c in offer.shapes)
        raise NoMapping(
            f"GCP's {offer.series} machines carry {counts} {gpu.model} GPU(s), not {count}",
            f"pick a GPU count per node from {counts}",
            "count",
        )
    fitting = [s for s in shapes if s.vcpus >= min_vcpus and s.usable_memory_mb >= min_memory_mb]
    if not fitting:
        biggest = max(shapes, key=lambda s: (s.usable_memory_mb, s.vcpus))
        raise NoMapping(
            f"no {offer.series} machine with {count} {gpu.model} GPU(s) has {min_vcpus} vCPUs and "
            f"{min_memory_mb} MB for Slurm's per-GPU defaults (the largest, {biggest.machine_type}, has "
            f"{biggest.vcpus} vCPUs and {biggest.usable_memory_mb} MB usable)",
            "lower ailab_slurm.def_mem_per_gpu_mb / def_cpu_per_gpu, or use fewer GPUs per node",
            "size",
        )
    shape = min(fitting, key=lambda s: (s.vcpus, s.memory_gib))
    return GcpMachine(
        machine_type=shape.machine_type,
        vcpus=shape.vcpus,
        memory_gib=shape.memory_gib,
        accelerator=offer.accelerator,
        accelerator_count=count,
        series=offer.series,
        gpu_model=gpu.model,
        gpu_memory_gb=offer.memory_gb,
    )


def hardware(
    *, vcpus: int, memory_mb: int, cpu_model: str, gpu: Gpu, threads_per_core: int = 1
) -> dict[str, Any]:
    """``ailab_hardware`` for a cloud machine: one socket of vcpus / threads_per_core cores.  GCP shows
    its guests two hyper-threads per core; an OpenStack guest sees single-threaded vCPUs by default."""
    threads = threads_per_core if vcpus % threads_per_core == 0 else 1
    return {
        "cpu_model": cpu_model,
        "sockets": 1,
        "cores_per_socket": vcpus // threads,
        "threads_per_core": threads,
        "memory_mb": memory_mb,
        "gpu": {"model": gpu.model, "count": gpu.count, "memory_gb": gpu.memory_gb},
    }


def gcp_hardware(machine: GcpMachine) -> dict[str, Any]:
    return hardware(
        vcpus=machine.vcpus,
        memory_mb=machine.usable_memory_mb,
        cpu_model=f"GCP {machine.machine_type}",
        gpu=Gpu(model=machine.gpu_model, count=machine.accelerator_count, memory_gb=machine.gpu_memory_gb),
        threads_per_core=2,
    )


_ALIAS_RE = re.compile(r"^\s*([^:,\s]+)\s*:\s*(\d+)\s*$")


def flavor_gpu_count(extra_specs: Mapping[str, Any] | None) -> int | None:
    """GPUs an OpenStack flavor passes through, from its extra specs: PCI passthrough aliases
    (``pci_passthrough:alias = "t4:4"`` or ``"a:2,b:2"``) or vGPUs (``resources:VGPU = 1``).
    None when the flavor does not say."""
    if not extra_specs:
        return None
    alias = extra_specs.get("pci_passthrough:alias")
    if isinstance(alias, str) and alias.strip():
        total = 0
        for part in alias.split(","):
            match = _ALIAS_RE.match(part)
            if not match:
                return None
            total += int(match.group(2))
        return total
    vgpu = extra_specs.get("resources:VGPU")
    if vgpu is not None and str(vgpu).strip().isdigit():
        return int(str(vgpu).strip())
    return None


def openstack_hardware(flavor: str, vcpus: int, ram_mb: int, gpu: Gpu, extra_specs: Mapping[str, Any] | None):
    """``ailab_hardware`` for a node class on an OpenStack flavor, from what the flavor really gives."""
    count = flavor_gpu_count(extra_specs)
    if count is not None and count > 0:
        gpu = Gpu(model=gpu.model, count=count, memory_gb=gpu.memory_gb)
    return hardware(vcpus=vcpus, memory_mb=usable_memory_mb(ram_mb), cpu_model=f"OpenStack {flavor}", gpu=gpu)
