import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    """Under xdist, hand out the test files in the order collection left them (tests/integration/conftest.py:
    the lifecycle tests after the others, Molecule's last), not largest first: a worker that took the
    Molecule file early would wait there for the whole queue while the other ran every integration test."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist's controller: start the Molecule queue once, for the scenarios the workers collected; their
    tests wait for its results (tests/integration/molecule_runner.py)."""
    from tests.integration import molecule_runner

    molecule_runner.start(ROOT, molecule_runner.scenarios_of(ids), run_id=node.workerinput["testrunuid"])


def pytest_sessionfinish(session):
    if not _xdist_worker(session.config):
        from tests.integration import molecule_runner

        molecule_runner.stop()
