"""Issue 15: every role's Molecule scenario passes (``molecule test -s <role>``: create its few containers
beside the shared cluster, converge site.yml with the role's tags, converge again with nothing changed,
the testinfra checks, destroy).  The scenarios do not use the shared cluster; they run in this suite so CI
counts them with everything else, in the background while the other tests run (molecule_runner.py)."""

from __future__ import annotations

import pytest

from simulator.scenario import scenario_names
from tests.integration import molecule_runner
from tests.integration.conftest import ROOT, record_timing

SCENARIOS = scenario_names(ROOT / "molecule")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario_passes(scenario):
    runner = molecule_runner.current()
    run = runner.result(scenario) if runner else molecule_runner.run_scenario(ROOT, scenario)
    record_timing(f"molecule_{scenario}_seconds", run.seconds)
    if run.returncode != 0:
        pytest.fail(f"molecule test -s {scenario} exited {run.returncode} (log: {run.log}):\n{run.tail()}")
