"""One simulated cluster per test run, shared by every integration test (session fixtures).

- ``sim``: a :class:`simulator.api.Sim` whose cluster is up and converged (site.yml run twice).
- ``converge_runs``: the two :class:`ailab.playbook.PlaybookResult` of that converge.
- ``converge``: run site.yml (or another playbook) again, e.g. after a test changed the inventory.

Environment: ``AILAB_SIM_INVENTORY`` (default inventory/sim) picks the simulated inventory;
``AILAB_KEEP_SIM=1`` keeps the cluster after the run.  A cluster that was already fully running before the
run (e.g. after ``make up``) is kept too; one the run created is removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ailab.playbook import PlaybookResult, run_playbook

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = Path(os.environ.get("AILAB_SIM_INVENTORY", ROOT / "inventory" / "sim"))
TIMINGS = ROOT / ".cache" / "integration-timings.json"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
    # Tests that change the cluster's shape run last: if one fails half-way, no other test sees the damage.
    items.sort(key=lambda item: item.get_closest_marker("lifecycle") is not None)


def site_plays(roles: set[str], name: str) -> Path:
    """A playbook of site.yml's own plays: its validation plays (no roles, no facts) and every play that
    applies one of ``roles``, in site.yml's order.  Written to .cache/<name>.yml; returns its path."""
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    wanted = [
        p
        for p in plays
        if (p.get("gather_facts") is False and not p.get("roles"))
        or any(r.get("role") in roles for r in p.get("roles", []))
    ]
    missing = roles - {r["role"] for p in wanted for r in p.get("roles", [])}
    assert not missing, f"site.yml applies no role {sorted(missing)}"
    path = ROOT / ".cache" / f"{name}.yml"
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


@pytest.fixture(scope="session")
def _sim_up():
    from simulator.api import Sim

    sim = Sim(INVENTORY)
    already_running = all(s.state == "running" for s in sim.status())
    start = time.monotonic()
    sim.up()
    record_timing("sim_up_seconds", time.monotonic() - start)
    yield sim
    if os.environ.get("AILAB_KEEP_SIM") or already_running:
        return
    sim.down()


@pytest.fixture(scope="session")
def converge_runs(_sim_up) -> list[PlaybookResult]:
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
