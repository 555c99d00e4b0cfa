"""One simulated cluster per test run, shared by every integration test (session fixtures).

- ``sim``: a :class:`simulator.api.Sim` whose cluster is up and converged (site.yml run twice).
- ``converge_runs``: the two :class:`ailab.playbook.PlaybookResult` of that converge (the first is None
  when ``make up`` just converged the same cluster from the same tree).
- ``session_cluster``: whether this run created the cluster (``fresh``) or reuses a running one.
- ``converge``: run site.yml (or another playbook) again, e.g. after a test changed the inventory.

Environment: ``AILAB_SIM_INVENTORY`` (default inventory/sim) picks the simulated inventory;
``AILAB_KEEP_SIM=1`` keeps the cluster after the run.  A cluster that was already fully running before the
run (e.g. after ``make up``) is kept too; one the run created is removed.

Under pytest-xdist (``make test``: ``-n 2 --dist loadfile``) every worker has a cluster of its own: the first
(``gw0``) uses that inventory, each other one a copy of it that runs beside it (:func:`worker_inventory`).
A test module runs whole on one worker, so a test that breaks and restores its cluster never meets another.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ailab.playbook import PlaybookResult, run_playbook
from tests.integration import molecule_runner

ROOT = Path(__file__).resolve().parents[2]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest-xdist
WORKER_SUBNETS = "10.215.{index}.0/24"  # the other workers' clusters (inventory/sim is on 10.213.0.0/24)
WORKER_NODE_OFFSET = 50  # their compute nodes: t4-01 becomes t4-51 on gw1 (Slurm's cgroups are per name)


def worker_index(worker: str) -> int:
    """0 for the first xdist worker (``gw0``) and without xdist, N for ``gwN``."""
    return int(worker.removeprefix("gw")) if worker.startswith("gw") and worker[2:].isdigit() else 0


def worker_inventory(source: Path, worker: str) -> Path:
    """The simulated inventory of this worker: ``source`` for the first, else a copy written to
    .cache/sim-<worker> with its own prefix (``<prefix>-wN``), subnet and compute node names
    (simulator/scale.py, write_copy_inventory)."""
    index = worker_index(worker)
    if index == 0:
        return source
    from ailab.inventory import load_cluster
    from simulator.scale import write_copy_inventory

    cluster = load_cluster(source)[0]
    dest = ROOT / ".cache" / f"sim-{worker}"
    write_copy_inventory(
        source, cluster, dest, prefix=f"{cluster.sim.prefix}-w{index}",
        subnet=WORKER_SUBNETS.format(index=index), offset=WORKER_NODE_OFFSET * index,
    )  # fmt: skip
    return dest


INVENTORY = worker_inventory(Path(os.environ.get("AILAB_SIM_INVENTORY", ROOT / "inventory" / "sim")), WORKER)
CACHE_SUFFIX = f"-{WORKER}" if worker_index(WORKER) else ""  # the .cache files each worker writes
TIMINGS = ROOT / ".cache" / f"integration-timings{CACHE_SUFFIX}.json"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
    # Tests that change the cluster's shape run last: if one fails half-way, no other test sees the damage.
    # The Molecule scenarios' results come after everything: they run in the background meanwhile.
    items.sort(key=lambda item: (is_molecule_item(item), item.get_closest_marker("lifecycle") is not None))


def is_molecule_item(item) -> bool:
    return Path(item.fspath).name == "test_molecule.py"


def pytest_collection_finish(session):
    """Start the selected Molecule scenarios in the background (tests/integration/molecule_runner.py).
    Under xdist, its controller does (tests/conftest.py), not a worker."""
    if session.config.option.collectonly or hasattr(session.config, "workerinput"):
        return
    scenarios = [item.callspec.params["scenario"] for item in session.items if is_molecule_item(item)]
    molecule_runner.start(ROOT, scenarios)


def site_yml_plays(path: Path = ROOT / "site.yml") -> list[dict]:
    """site.yml's plays in order, the playbooks it imports inlined (e.g. playbooks/preflight.yml)."""
    out = []
    for play in yaml.safe_load(path.read_text()):
        imported = play.get("ansible.builtin.import_playbook")
        out += site_yml_plays(path.parent / imported) if imported else [play]
    return out


def site_plays(roles: set[str], name: str) -> Path:
    """A playbook of site.yml's own plays: its validation plays (no roles, no facts) and every play that
    applies one of ``roles``, in site.yml's order.  Written to .cache/<name>.yml; returns its path."""
    plays = site_yml_plays()
    wanted = [
        p
        for p in plays
        if (p.get("gather_facts") is False and not p.get("roles"))
        or any(r.get("role") in roles for r in p.get("roles", []))
    ]
    missing = roles - {r["role"] for p in wanted for r in p.get("roles", [])}
    assert not missing, f"site.yml applies no role {sorted(missing)}"
    path = ROOT / ".cache" / f"{name}{CACHE_SUFFIX}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(wanted, sort_keys=False))
    return path


def roles_changed(result: PlaybookResult) -> set[str] | None:
    """The roles whose tasks or handlers ``result`` changed; None when a change came from outside a role."""
    roles = set()
    for task, _ in result.changed_tasks:
        role, sep, _ = task.partition(" : ")
        if not sep:
            return None
        roles.add(role)
    return roles


def record_timing(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[name] = round(seconds, 1)
    TIMINGS.write_text(json.dumps(data, indent=2) + "\n")


def explain(result: PlaybookResult, lines: int = 60) -> str:
    tail = "\n".join(result.output.splitlines()[-lines:])
    return f"{result.summary()} (full log: {result.log})\n{tail}"


@dataclass(frozen=True)
class SessionCluster:
    """What the run found before it brought the cluster up (see :func:`session_start`)."""

    fresh: bool  # no container of the inventory existed: this run creates (and converges) every node
    keep: bool  # the cluster stays after the run


def session_start(states: Sequence[str], keep_env: bool) -> SessionCluster:
    """``states``: the Docker state of each inventory host's container before the run (``absent`` when it
    has none).  A cluster that was fully running (e.g. after ``make up``) is reused and kept; one the run
    creates is removed at the end unless AILAB_KEEP_SIM is set.  Only a run that created every container
    may expect its first converge to change something."""
    return SessionCluster(
        fresh=all(s == "absent" for s in states),
        keep=keep_env or (bool(states) and all(s == "running" for s in states)),
    )


@pytest.fixture(scope="session")
def session_cluster() -> SessionCluster:
    from simulator.api import Sim

    return session_start([s.state for s in Sim(INVENTORY).status()], bool(os.environ.get("AILAB_KEEP_SIM")))


@pytest.fixture(scope="session")
def _sim_up(session_cluster):
    from simulator.api import Sim

    sim = Sim(INVENTORY)
    start = time.monotonic()
    sim.up()
    record_timing("sim_up_seconds", time.monotonic() - start)
    yield sim
    if session_cluster.keep:
        return
    sim.down()


@pytest.fixture(scope="session")
def converge_runs(_sim_up) -> list[PlaybookResult | None]:
    """site.yml twice: the first brings the cluster to the inventory (on a reused cluster it may have
    nothing to do), the second must change nothing.  When ``ailab converge`` (``make up``) left a stamp
    saying it converged these very containers from this very tree (simulator/stamp.py), that converge
    was the first one: it is not repeated, and the first entry is None."""
    from simulator import stamp

    if stamp.take(INVENTORY, _sim_up.converge_stamp()):
        first = None
        print(
            "  converge: the cluster was converged from this tree by `ailab converge`; checking idempotence"
        )
    else:
        first = run_playbook(INVENTORY, "site.yml")
        record_timing("converge_first_seconds", first.seconds)
        assert first.ok, f"site.yml failed on the simulator:\n{explain(first)}"
    second = run_playbook(INVENTORY, "site.yml")
    record_timing("converge_second_seconds", second.seconds)
    assert second.ok, f"second site.yml run failed:\n{explain(second)}"
    return [first, second]


@pytest.fixture(scope="session")
def sim(_sim_up, converge_runs):
    return _sim_up


@pytest.fixture(scope="session")
def converge(sim) -> Callable[..., PlaybookResult]:
    def run(playbook: str = "site.yml", *extra: str, inventory: Path = INVENTORY) -> PlaybookResult:
        return run_playbook(inventory, playbook, extra)

    return run


@pytest.fixture(scope="module")
def fe(sim) -> str:
    """The front-end's name (a module may override it, e.g. test_frontend with the Host)."""
    return sim.cluster.frontends[0].name


@pytest.fixture(scope="module")
def ctl(sim) -> str:
    return sim.cluster.controllers[0].name


@pytest.fixture(scope="module")
def cancel_leftover_jobs(sim, ctl):
    """Cancels the students' jobs a module left queued (e.g. after a failure); modules that submit jobs use
    it with ``pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")``."""
    yield
    from tests.integration.slurm_helpers import STUDENTS

    sim.exec(ctl, f"scancel -u {','.join(STUDENTS)}", check=False)
