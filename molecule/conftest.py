"""Fixtures of the roles' testinfra checks (molecule/<role>/tests/), run by Molecule's verify step.

Each test module names the hosts it checks in ``testinfra_hosts`` (the scenario's platforms); testinfra
reaches them over SSH with the scenario's ssh_config (root, the simulator's key, pinned host keys).
``cluster`` is the typed model of the scenario's inventory, so a check compares with what the model says.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ailab.inventory import load_cluster
from ailab.model import Cluster


def scenario_dir() -> Path:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral:
        pytest.exit("run these checks with `molecule verify -s <role>` (molecule/README.md)", returncode=4)
    return Path(ephemeral) / "ailab"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    model, _ = load_cluster(scenario_dir() / "inventory")
    return model
