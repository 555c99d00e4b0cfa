"""How the integration tests' session treats a cluster it finds (issue 17: `make up` then `make test`)."""

from __future__ import annotations

import pytest

from tests.integration import conftest
from tests.integration.conftest import session_start


@pytest.mark.parametrize(
    ("states", "keep_env", "fresh", "keep"),
    [
        (["absent"] * 6, False, True, False),  # `make test` on a fresh machine: create, converge, remove
        (["running"] * 6, False, False, True),  # after `make up`: reuse it and keep it
        (["running"] * 5 + ["absent"], False, False, False),  # a node added: not fresh, not complete
        (["exited", "running"], False, False, False),  # stopped nodes are started, not fresh
        (["absent"] * 6, True, True, True),  # AILAB_KEEP_SIM=1 keeps what the run created
        ([], False, True, False),
    ],
)
def test_session_start(states, keep_env, fresh, keep):
    got = session_start(states, keep_env)
    assert (got.fresh, got.keep) == (fresh, keep)


@pytest.mark.parametrize(("worker", "index"), [("", 0), ("gw0", 0), ("gw1", 1), ("gw12", 12), ("master", 0)])
def test_the_xdist_worker_index(worker, index):
    assert conftest.worker_index(worker) == index


def test_the_first_worker_uses_the_inventory_and_the_others_a_copy_beside_it(tmp_path, monkeypatch):
    source = conftest.ROOT / "inventory" / "sim"
    assert conftest.worker_inventory(source, "gw0") == source
    monkeypatch.setattr(conftest, "ROOT", tmp_path)
    copy = conftest.worker_inventory(source, "gw2")
    assert copy == tmp_path / ".cache" / "sim-gw2"
    text = (copy / "group_vars" / "all" / "cluster.yml").read_text()
    assert "prefix: ailab-w2" in text and "subnet: 10.215.2.0/24" in text
    assert "t4-101:" in (copy / "hosts.yml").read_text()


def test_two_runs_in_the_same_second_get_their_own_log(tmp_path):
    from ailab.playbook import new_log

    first, second = new_log(tmp_path / "logs", "site-1"), new_log(tmp_path / "logs", "site-1")
    assert (first.name, second.name) == ("site-1.log", "site-1-2.log") and first.exists()
