"""The GPU health check's pure parts (ailab/nodetools/gpuhealth.py): the verdict from
nvidia-smi's output, reading the node's Slurm state, and drain/resume decisions."""

from __future__ import annotations

import importlib

import pytest

health = importlib.import_module("ailab.nodetools.gpuhealth")

T4x2 = {"node": "t4-01", "model": "t4", "product": "Tesla T4", "count": 2, "reason_prefix": "gpu-health:"}
ROW0 = "0, Tesla T4, 00000000:3B:00.0\n"
ROW1 = "1, Tesla T4, 00000000:5E:00.0\n"
LOST1 = "Unable to determine the device handle for GPU 00000000:5E:00.0: Unknown Error\n"


@pytest.mark.parametrize(
    ("rc", "out", "err", "healthy", "reason", "found"),
    [
        (0, ROW0 + ROW1, "", True, "", 2),
        (
            15,
            ROW0,
            LOST1,
            False,
            "gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1",
            1,
        ),
        (
            15,
            ROW1,
            "Unable to determine the device handle for GPU 00000000:3B:00.0: Unknown Error\n",
            False,
            "gpu-health: GPU 0 (Tesla T4) missing: expected 2x t4, found 1",
            1,
        ),
        (
            15,
            "",
            LOST1 + LOST1,
            False,
            "gpu-health: nvidia-smi failed (exit 15: Unable to determine the device handle for GPU "
            "00000000:5E:00.0: Unknown Error): expected 2x t4, found 0",
            0,
        ),
        (
            9,
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure\n",
            "",
            False,
            "gpu-health: nvidia-smi failed (exit 9: NVIDIA-SMI has failed because it couldn't communicate "
            "with the NVIDIA driver. Make sure): expected 2x t4, found 0",
            0,
        ),
        (
            None,
            "",
            "nvidia-smi not found",
            False,
            "gpu-health: nvidia-smi did not run (nvidia-smi not found): expected 2x t4, found 0",
            0,
        ),
        (
            0,
            "0, NVIDIA A10, 00000000:3B:00.0\n" + ROW1,
            "",
            False,
            "gpu-health: GPU 0 is NVIDIA A10, not Tesla T4: expected 2x t4, found 2",
            2,
        ),
        (
            0,
            "0, Tesla T4, 00000000:3B:00.0\n1, Tesla T4, x\n2, Tesla T4, y\n",
            "",
            True,
            "",
            3,
        ),
    ],
)
def test_verdict(rc, out, err, healthy, reason, found):
    assert health.evaluate(T4x2, rc, out, err) == health.Verdict(healthy, reason, found)


def test_several_missing_gpus_are_all_named():
    expected = {**T4x2, "count": 4}
    verdict = health.evaluate(expected, 15, ROW0, LOST1 * 3)
    assert verdict.reason == "gpu-health: GPUs 1,2,3 (Tesla T4) missing: expected 4x t4, found 1"


def test_product_name_matches_longer_real_names():
    # Real nvidia-smi prints e.g. "NVIDIA A100-SXM4-80GB"; gpus.py knows the product as "NVIDIA A100-SXM4".
    expected = {"node": "a", "model": "a100", "product": "NVIDIA A100-SXM4", "count": 1}
    assert health.evaluate(expected, 0, "0, NVIDIA A100-SXM4-80GB, 00000000:07:00.0\n", "").healthy


SCONTROL_IDLE = (
    "NodeName=t4-01 Arch=x86_64 CoresPerSocket=2 CPUAlloc=0 State=IDLE ThreadsPerCore=1 "
    "Partitions=gpu,t4 BootTime=2026-11-23T09:00:00 CurrentWatts=0 AveWatts=0"
)
SCONTROL_DRAINED = (
    "NodeName=t4-01 Arch=x86_64 State=IDLE+DRAIN ThreadsPerCore=1 CurrentWatts=0 AveWatts=0 "
    "Reason=gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1 [root@2026-11-23T09:47:01]"
)


@pytest.mark.parametrize(
    ("text", "flags", "reason"),
    [
        (SCONTROL_IDLE, {"IDLE"}, ""),
        (
            SCONTROL_DRAINED,
            {"IDLE", "DRAIN"},
            "gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1",
        ),
        (
            "NodeName=x State=MIXED+DRAIN Reason=maintenance [admin@2026-01-01T00:00:00]",
            {"MIXED", "DRAIN"},
            "maintenance",
        ),
        ("NodeName=x State=DOWN*+DRAIN Reason=Not responding", {"DOWN", "DRAIN"}, "Not responding"),
    ],
)
def test_parse_node(text, flags, reason):
    assert health.parse_node(text) == (flags, reason)


OURS = "gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1"
SICK = health.Verdict(False, OURS, 1)
WORSE = health.Verdict(False, "gpu-health: GPUs 0,1 (Tesla T4) missing: expected 2x t4, found 0", 0)
WELL = health.Verdict(True, "", 2)


@pytest.mark.parametrize(
    ("verdict", "flags", "reason", "action"),
    [
        (SICK, {"IDLE"}, "", "drain"),
        (SICK, {"MIXED"}, "", "drain"),  # running jobs continue; no new ones start
        (SICK, {"IDLE", "DRAIN"}, OURS, "none"),  # already drained with this reason
        (WORSE, {"IDLE", "DRAIN"}, OURS, "drain"),  # keep the reason current
        (SICK, {"IDLE", "DRAIN"}, "maintenance", "none"),  # an operator's drain is left alone
        (WELL, {"IDLE", "DRAIN"}, OURS, "resume"),
        (WELL, {"MIXED", "DRAIN"}, OURS, "resume"),
        (WELL, {"IDLE", "DRAIN"}, "maintenance", "none"),  # never resume someone else's drain
        (WELL, {"IDLE"}, "", "none"),
        (WELL, {"DOWN"}, "Not responding", "none"),
    ],
)
def test_decide(verdict, flags, reason, action):
    assert health.decide(verdict, flags, reason, "gpu-health:") == action


def test_run_reports_a_missing_program():
    assert health.run(["/nonexistent/nvidia-smi"]) == (None, "", "/nonexistent/nvidia-smi not found")
