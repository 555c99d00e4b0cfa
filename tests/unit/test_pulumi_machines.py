"""GPU model -> cloud machine: machine types, accelerators and the hardware the inventory then declares."""

from __future__ import annotations

import pytest

from ailab.model import Gpu
from ailab_cloud.machines import (
    GCP_OFFERS,
    NoMapping,
    flavor_gpu_count,
    gcp_hardware,
    gcp_machine,
    gcp_offer,
    hardware,
    openstack_hardware,
    usable_memory_mb,
)

# Small Slurm defaults, so the smallest machine of each GPU count is picked.
SMALL = {"min_vcpus": 1, "min_memory_mb": 1}


@pytest.mark.parametrize(
    ("model", "memory_gb", "count", "machine_type", "accelerator"),
    [
        ("t4", 16, 1, "n1-standard-1", "nvidia-tesla-t4"),
        ("t4", 16, 4, "n1-standard-1", "nvidia-tesla-t4"),
        ("v100", 16, 8, "n1-standard-1", "nvidia-tesla-v100"),
        ("v100", 32, 2, "n1-standard-1", "nvidia-tesla-v100"),  # GCP only sells the 16 GB V100
        ("l4", 24, 1, "g2-standard-4", "nvidia-l4"),
        ("l4", 24, 2, "g2-standard-24", "nvidia-l4"),
        ("l4", 24, 4, "g2-standard-48", "nvidia-l4"),
        ("l4", 24, 8, "g2-standard-96", "nvidia-l4"),
        ("a100", 40, 1, "a2-highgpu-1g", "nvidia-tesla-a100"),
        ("a100", 40, 8, "a2-highgpu-8g", "nvidia-tesla-a100"),
        ("a100", 40, 16, "a2-megagpu-16g", "nvidia-tesla-a100"),
        ("a100", 80, 1, "a2-ultragpu-1g", "nvidia-a100-80gb"),
        ("a100", 80, 8, "a2-ultragpu-8g", "nvidia-a100-80gb"),
        ("h100", 80, 8, "a3-highgpu-8g", "nvidia-h100-80gb"),
    ],
)
def test_gpu_model_maps_to_machine_and_accelerator(model, memory_gb, count, machine_type, accelerator):
    machine = gcp_machine(Gpu(model, count, memory_gb), count, **SMALL)
    assert machine.machine_type == machine_type
    assert machine.accelerator == accelerator
    assert machine.accelerator_count == count


@pytest.mark.parametrize(
    ("gpu", "min_vcpus", "min_memory_mb", "machine_type"),
    [
        # production's Slurm defaults (4 CPUs, 32000 MB per GPU) on N1: the smallest N1 type that fits
        (Gpu("t4", 4, 16), 16, 128000, "n1-highmem-32"),
        (Gpu("t4", 1, 16), 4, 32000, "n1-highmem-8"),
        (Gpu("v100", 8, 32), 32, 256000, "n1-highmem-64"),
        # G2 with one L4 comes in five sizes: the first with 32000 MB usable is g2-standard-12
        (Gpu("l4", 1, 24), 4, 32000, "g2-standard-12"),
        (Gpu("l4", 8, 24), 32, 256000, "g2-standard-96"),
    ],
)
def test_machine_size_follows_gpu_count_and_slurm_defaults(gpu, min_vcpus, min_memory_mb, machine_type):
    machine = gcp_machine(gpu, gpu.count, min_vcpus=min_vcpus, min_memory_mb=min_memory_mb)
    assert machine.machine_type == machine_type
    assert machine.vcpus >= min_vcpus
    assert machine.usable_memory_mb >= min_memory_mb


@pytest.mark.parametrize("model", ["a10", "a40", "l40s"])
def test_models_gcp_does_not_sell_have_no_mapping(model):
    with pytest.raises(NoMapping) as exc:
        gcp_machine(Gpu(model, 1, 24), 1, **SMALL)
    assert exc.value.subject == "model"
    assert model in exc.value.message
    assert "t4" in exc.value.fix  # lists what GCP offers


@pytest.mark.parametrize(
    ("model", "memory", "count", "offered"), [("t4", 16, 6, "1, 2, 4"), ("l4", 24, 3, "1, 2, 4, 8")]
)
def test_gpu_counts_a_machine_cannot_carry(model, memory, count, offered):
    with pytest.raises(NoMapping) as exc:
        gcp_machine(Gpu(model, count, memory), count, **SMALL)
    assert exc.value.subject == "count"
    assert offered in exc.value.fix


def test_a100_memory_size_picks_the_series_and_unknown_sizes_fail():
    assert gcp_offer("a100", 40).series == "A2 Standard"
    assert gcp_offer("a100", 80).series == "A2 Ultra"
    with pytest.raises(NoMapping) as exc:
        gcp_offer("a100", 20)
    assert exc.value.subject == "memory"


def test_slurm_defaults_no_machine_can_meet():
    with pytest.raises(NoMapping) as exc:
        gcp_machine(Gpu("t4", 1, 16), 1, min_vcpus=4, min_memory_mb=400_000)
    assert exc.value.subject == "size"
    assert "def_mem_per_gpu_mb" in exc.value.fix


def test_every_n1_shape_respects_the_per_gpu_ceilings():
    t4 = next(o for o in GCP_OFFERS if o.model == "t4")
    assert max(s.vcpus for s in t4.shapes[1]) == 32  # 48 allowed; N1 has 32 or 64
    assert max(s.memory_gib for s in t4.shapes[4]) == 624
    v100 = next(o for o in GCP_OFFERS if o.model == "v100")
    assert max(s.vcpus for s in v100.shapes[1]) == 8  # 12 allowed
    assert all(s.memory_gib <= 78 for s in v100.shapes[1])


def test_gcp_hardware_describes_the_vm():
    machine = gcp_machine(Gpu("l4", 8, 24), 8, **SMALL)
    hw = gcp_hardware(machine)
    assert hw == {
        "cpu_model": "GCP g2-standard-96",
        "sockets": 1,
        "cores_per_socket": 48,
        "threads_per_core": 2,
        "memory_mb": usable_memory_mb(384 * 1024),
        "gpu": {"model": "l4", "count": 8, "memory_gb": 24},
    }
    assert hw["memory_mb"] < 384 * 1024


@pytest.mark.parametrize(
    ("specs", "count"),
    [
        (None, None),
        ({}, None),
        ({"pci_passthrough:alias": "t4:4"}, 4),
        ({"pci_passthrough:alias": "a100-a:4, a100-b:4"}, 8),
        ({"pci_passthrough:alias": "garbled"}, None),
        ({"resources:VGPU": "1"}, 1),
        ({"hw:cpu_policy": "dedicated"}, None),
    ],
)
def test_flavor_gpu_count_from_extra_specs(specs, count):
    assert flavor_gpu_count(specs) == count


def test_openstack_hardware_trusts_the_flavor():
    hw = openstack_hardware("g1.t4", 32, 262144, Gpu("t4", 6, 16), {"pci_passthrough:alias": "t4:4"})
    assert hw["gpu"] == {"model": "t4", "count": 4, "memory_gb": 16}
    assert (hw["sockets"], hw["cores_per_socket"], hw["threads_per_core"]) == (1, 32, 1)
    assert hw["memory_mb"] == usable_memory_mb(262144)
    # no GPU in the extra specs: the configured count stays
    assert openstack_hardware("g1.t4", 32, 262144, Gpu("t4", 6, 16), {})["gpu"]["count"] == 6


def test_odd_vcpu_counts_are_single_threaded():
    hw = hardware(vcpus=3, memory_mb=1000, cpu_model="x", gpu=Gpu("t4", 1, 16), threads_per_core=2)
    assert (hw["cores_per_socket"], hw["threads_per_core"]) == (3, 1)
