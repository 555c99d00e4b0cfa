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
def test_molecule_scenario_passes(scenario, request):
    runner = molecule_runner.current()
    workerinput = getattr(request.config, "workerinput", None)
    if runner:
        run = runner.result(scenario)
    elif workerinput is not None and molecule_runner.background_enabled():  # xdist: the controller runs it
        timeout = molecule_runner.waiting_timeout(len(SCENARIOS))
        run = molecule_runner.wait_result(ROOT, scenario, workerinput["testrunuid"], timeout)
    else:
        run = molecule_runner.run_scenario(ROOT, scenario)
    record_timing(f"molecule_{scenario}_seconds", run.seconds)
    if run.returncode != 0:
        pytest.fail(f"molecule test -s {scenario} exited {run.returncode} (log: {run.log}):\n{run.tail()}")
