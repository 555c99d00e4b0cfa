"""The GPU models the platform knows: what `gpu.model` in the inventory may name.

Names are the short lowercase forms Slurm uses as GRES types (``Gres=gpu:t4:6``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    name: str
    product: str  # what nvidia-smi prints as the product name
    memory_gb: tuple[int, ...]  # the memory sizes this model ships with; the first is the default
    architecture: str

    @property
    def default_memory_gb(self) -> int:
        return self.memory_gb[0]


GPU_MODELS: dict[str, GpuSpec] = {
    spec.name: spec
    for spec in (
        GpuSpec("t4", "Tesla T4", (16,), "Turing"),
        GpuSpec("l4", "NVIDIA L4", (24,), "Ada Lovelace"),
        GpuSpec("a10", "NVIDIA A10", (24,), "Ampere"),
        GpuSpec("a40", "NVIDIA A40", (48,), "Ampere"),
        GpuSpec("l40s", "NVIDIA L40S", (48,), "Ada Lovelace"),
        GpuSpec("a100", "NVIDIA A100-SXM4", (40, 80), "Ampere"),
        GpuSpec("v100", "Tesla V100-SXM3", (32, 16), "Volta"),
        GpuSpec("h100", "NVIDIA H100 80GB HBM3", (80,), "Hopper"),
    )
}


def known_models() -> str:
    return ", ".join(sorted(GPU_MODELS))
