"""Issue 15: every role's Molecule scenario passes (``molecule test -s <role>``: create its few containers
beside the shared cluster, converge site.yml with the role's tags, converge again with nothing changed,
the testinfra checks, destroy).  The scenarios do not use the shared cluster; they run in this suite so CI
counts them with everything else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.scenario import scenario_names
from tests.integration.conftest import ROOT, record_timing

SCENARIOS = scenario_names(ROOT / "molecule")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario_passes(scenario):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)  # the scenarios set it themselves (.config/molecule/config.yml)
    log = ROOT / ".cache" / "molecule" / f"{scenario}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["molecule", "test", "-s", scenario], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            timeout=1200, check=False,
        )  # fmt: skip
    record_timing(f"molecule_{scenario}_seconds", time.monotonic() - start)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
        pytest.fail(f"molecule test -s {scenario} exited {result.returncode} (full log: {log}):\n{tail}")
