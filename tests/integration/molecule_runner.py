"""The Molecule scenarios run in the background, one after another, while the rest of the suite runs.

A scenario spends most of its minute waiting on its own containers (systemd boots, Ansible round trips), and
so do the integration tests on the shared cluster (alerts, Slurm, timers).  Running the two side by side
overlaps those waits instead of adding them up.  The scenarios never touch the shared cluster: their
containers carry their own prefix, network and Slurm node names (molecule/README.md).

:func:`start` launches the queue as soon as collection has finished (``pytest_collection_finish`` in
conftest.py); each ``test_molecule_scenario_passes[<role>]`` item, sorted to the end of the run, waits for
its scenario's result and fails with the log's tail like before.  ``AILAB_MOLECULE_BACKGROUND=0`` turns
this off: each test then runs its scenario itself, when pytest reaches it.

With pytest-xdist (``make test`` runs two workers, each with a simulated cluster of its own), the queue runs
in xdist's controller process instead, started once the first worker has collected
(``pytest_xdist_node_collection_finished`` in tests/conftest.py).  The scenario's tests then run in the
workers and read each result from ``.cache/molecule/<scenario>.result.json``, written when the scenario ends
and tagged with the run's id (:func:`write_result`, :func:`wait_result`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

SCENARIO_TIMEOUT = 1200  # seconds for one `molecule test -s <role>`


@dataclass(frozen=True)
class ScenarioRun:
    """What one ``molecule test -s <scenario>`` did."""

    scenario: str
    returncode: int
    seconds: float
    log: Path

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def result_path(root: Path, scenario: str) -> Path:
    return root / ".cache" / "molecule" / f"{scenario}.result.json"


def write_result(root: Path, run_id: str, scenario: str, run: ScenarioRun | None, error: str = "") -> None:
    """What ``scenario`` did in run ``run_id`` (or why it did not run), for a test in another process."""
    from ailab.runtime import write_atomic

    path = result_path(root, scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"run": run_id, "scenario": scenario, "error": error}
    if run is not None:
        data |= {"returncode": run.returncode, "seconds": run.seconds, "log": str(run.log)}
    write_atomic(
        path, (json.dumps(data) + "\n").encode(), mode=0o644
    )  # a waiting test never reads half a file


def wait_result(root: Path, scenario: str, run_id: str, timeout: float, poll: float = 2.0) -> ScenarioRun:
    """The result :func:`write_result` leaves for ``scenario`` in run ``run_id``; a result of an earlier run
    is not it.  Raises RuntimeError when the scenario did not run, TimeoutError after ``timeout`` s."""
    path = result_path(root, scenario)
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("run") == run_id:
            if data["error"]:
                raise RuntimeError(data["error"])
            return ScenarioRun(scenario, data["returncode"], data["seconds"], Path(data["log"]))
        if time.monotonic() > deadline:
            raise TimeoutError(f"scenario {scenario}: no result of run {run_id} after {timeout:.0f} s")
        time.sleep(poll)


def background_enabled(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("AILAB_MOLECULE_BACKGROUND", "1").strip().lower()
    if value in {"1", "yes", "true", "on", ""}:
        return True
    if value in {"0", "no", "false", "off"}:
        return False
    raise ValueError(f"AILAB_MOLECULE_BACKGROUND={value!r} -- fix: set it to 1 (background, default) or 0")


def molecule_env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)  # the scenarios set it themselves (.config/molecule/config.yml)
    return env


def run_scenario(
    root: Path, scenario: str, started: Callable[[subprocess.Popen], None] = lambda proc: None
) -> ScenarioRun:
    """``molecule test -s scenario`` in ``root``, its output in .cache/molecule/<scenario>.log."""
    log = root / ".cache" / "molecule" / f"{scenario}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["molecule", "test", "-s", scenario], cwd=root, env=molecule_env(), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started(proc)
        try:
            returncode = proc.wait(timeout=SCENARIO_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out.write(f"\n[test harness] killed after {SCENARIO_TIMEOUT} s\n")
            returncode = -9
    return ScenarioRun(scenario, returncode, time.monotonic() - start, log)


class Runner:
    """Runs ``scenarios`` one at a time in a daemon thread; :meth:`result` waits for one of them."""

    def __init__(
        self,
        root: Path,
        scenarios: Sequence[str],
        run: Callable[..., ScenarioRun] = run_scenario,
        run_id: str | None = None,
    ):
        self.root = root
        self.run_id = run_id  # set: every result is also written for tests in other processes
        self.scenarios = list(dict.fromkeys(scenarios))
        self._run = run
        self._futures: dict[str, Future[ScenarioRun]] = {s: Future() for s in self.scenarios}
        self._stopping = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._current: str | None = None
        self._thread = threading.Thread(target=self._work, name="molecule-scenarios", daemon=True)

    def start(self) -> Runner:
        self._thread.start()
        return self

    def _work(self) -> None:
        for scenario in self.scenarios:
            future = self._futures[scenario]
            if self._stopping.is_set():
                self._publish(scenario, None, f"scenario {scenario} not run: the session ended first")
                future.set_exception(RuntimeError(f"scenario {scenario} not run: the session ended first"))
                continue
            self._current = scenario
            try:
                run = self._run(self.root, scenario, self._started)
                self._publish(scenario, run)
                future.set_result(run)
            except BaseException as exc:  # handed to the waiting test, which reports it
                self._publish(scenario, None, f"scenario {scenario} failed to run: {exc!r}")
                future.set_exception(exc)
            finally:
                self._proc, self._current = None, None

    def _publish(self, scenario: str, run: ScenarioRun | None, error: str = "") -> None:
        if self.run_id is not None:
            write_result(self.root, self.run_id, scenario, run, error)

    def _started(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def result(self, scenario: str) -> ScenarioRun:
        if scenario not in self._futures:
            raise KeyError(f"scenario {scenario} was not queued (queued: {', '.join(self.scenarios)})")
        return self._futures[scenario].result()

    def stop(self) -> None:
        """At the session's end: run nothing more; a scenario still running is stopped and destroyed."""
        self._stopping.set()
        proc, scenario = self._proc, self._current
        if proc is not None and proc.poll() is None and scenario is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            subprocess.run(
                ["molecule", "destroy", "-s", scenario], cwd=self.root, env=molecule_env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False,
            )  # fmt: skip
        self._thread.join(timeout=60)


_RUNNER: Runner | None = None


def start(root: Path, scenarios: Sequence[str], run_id: str | None = None) -> Runner | None:
    """Start the background queue for ``scenarios`` (none: nothing starts).  Returns the runner.
    ``run_id``: the xdist run's id, under which each result is written for the workers' tests."""
    global _RUNNER
    if scenarios and background_enabled() and _RUNNER is None:
        _RUNNER = Runner(root, scenarios, run_id=run_id).start()
    return _RUNNER


def scenarios_of(nodeids: Sequence[str]) -> list[str]:
    """The Molecule scenarios among collected test ids (``...test_molecule.py::...[<scenario>]``)."""
    return [
        nodeid.rpartition("[")[2].rstrip("]")
        for nodeid in nodeids
        if nodeid.split("::", 1)[0].endswith("test_molecule.py") and nodeid.endswith("]")
    ]


def waiting_timeout(count: int) -> float:
    """How long a worker's test may wait for a result: the whole queue, each scenario at its timeout."""
    return SCENARIO_TIMEOUT * max(count, 1) + 600


def current() -> Runner | None:
    return _RUNNER


def stop() -> None:
    global _RUNNER
    if _RUNNER is not None:
        _RUNNER.stop()
        _RUNNER = None
