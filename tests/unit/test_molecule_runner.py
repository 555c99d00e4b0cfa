"""The background queue of Molecule scenarios (tests/integration/molecule_runner.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration import molecule_runner
from tests.integration.molecule_runner import Runner, ScenarioRun


def test_scenarios_run_one_at_a_time_in_order_and_each_result_reaches_its_test(tmp_path):
    order, running, overlap = [], [], []

    def run(root, scenario, started):
        running.append(scenario)
        overlap.append(len(running))
        order.append(scenario)
        running.remove(scenario)
        return ScenarioRun(scenario, 0 if scenario != "b" else 2, 1.0, tmp_path / f"{scenario}.log")

    runner = Runner(tmp_path, ["a", "b", "c", "a"], run=run).start()
    assert runner.result("c").returncode == 0
    assert runner.result("b").returncode == 2
    assert order == ["a", "b", "c"]
    assert max(overlap) == 1
    with pytest.raises(KeyError, match="not queued"):
        runner.result("d")


def test_an_error_in_one_scenario_is_raised_in_its_test_and_the_next_still_runs(tmp_path):
    def run(root, scenario, started):
        if scenario == "bad":
            raise FileNotFoundError("molecule")
        return ScenarioRun(scenario, 0, 0.1, tmp_path / "x.log")

    runner = Runner(tmp_path, ["bad", "good"], run=run).start()
    with pytest.raises(FileNotFoundError):
        runner.result("bad")
    assert runner.result("good").returncode == 0


def test_stopping_ends_the_running_scenario_and_skips_the_rest(tmp_path, monkeypatch):
    destroyed = []
    real_run = subprocess.run

    def fake_run(args, **kw):
        if args[:2] == ["molecule", "destroy"]:
            return destroyed.append(args)
        return real_run(args, **kw)

    monkeypatch.setattr(molecule_runner.subprocess, "run", fake_run)
    began = threading.Event()

    def run(root, scenario, started):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        started(proc)
        began.set()
        return ScenarioRun(scenario, proc.wait(), 0.0, Path(tmp_path / "x.log"))

    runner = Runner(tmp_path, ["slow", "never"], run=run).start()
    assert began.wait(10)
    runner.stop()
    assert runner.result("slow").returncode != 0
    assert destroyed == [["molecule", "destroy", "-s", "slow"]]
    with pytest.raises(RuntimeError, match="never not run"):
        runner.result("never")


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("yes", True), ("0", False), ("off", False)]
)
def test_the_background_switch(value, enabled):
    assert (
        molecule_runner.background_enabled({} if value is None else {"AILAB_MOLECULE_BACKGROUND": value})
        is enabled
    )


def test_a_bad_background_switch_names_the_variable_and_the_fix():
    with pytest.raises(ValueError, match="AILAB_MOLECULE_BACKGROUND='maybe' -- fix: set it to 1"):
        molecule_runner.background_enabled({"AILAB_MOLECULE_BACKGROUND": "maybe"})


def test_under_xdist_each_result_reaches_a_test_in_another_process_through_its_file(tmp_path):
    def run(root, scenario, started):
        if scenario == "bad":
            raise FileNotFoundError("molecule")
        return ScenarioRun(scenario, 3, 1.5, tmp_path / f"{scenario}.log")

    runner = Runner(tmp_path, ["a", "bad"], run=run, run_id="run2").start()
    runner.result("a")
    got = molecule_runner.wait_result(tmp_path, "a", "run2", timeout=5, poll=0.01)
    assert got == ScenarioRun("a", 3, 1.5, tmp_path / "a.log")
    with pytest.raises(RuntimeError, match="scenario bad failed to run: FileNotFoundError"):
        molecule_runner.wait_result(tmp_path, "bad", "run2", timeout=5, poll=0.01)


def test_a_result_of_an_earlier_run_is_not_taken(tmp_path):
    molecule_runner.write_result(tmp_path, "run1", "a", ScenarioRun("a", 0, 1.0, tmp_path / "a.log"))
    with pytest.raises(TimeoutError, match="scenario a: no result of run run2"):
        molecule_runner.wait_result(tmp_path, "a", "run2", timeout=0.05, poll=0.01)
    molecule_runner.write_result(tmp_path, "run2", "a", None, "scenario a not run: the session ended first")
    with pytest.raises(RuntimeError, match="session ended first"):
        molecule_runner.wait_result(tmp_path, "a", "run2", timeout=1, poll=0.01)


def test_the_scenarios_are_read_from_the_collected_test_ids():
    ids = [
        "tests/unit/test_x.py::test_y[a]",
        "tests/integration/test_molecule.py::test_molecule_scenario_passes[common]",
        "tests/integration/test_slurm.py::test_z",
        "tests/integration/test_molecule.py::test_molecule_scenario_passes[slurm_compute]",
    ]
    assert molecule_runner.scenarios_of(ids) == ["common", "slurm_compute"]
    assert molecule_runner.waiting_timeout(2) > 2 * molecule_runner.SCENARIO_TIMEOUT
