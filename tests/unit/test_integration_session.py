"""How the integration tests' session treats a cluster it finds (issue 17: `make up` then `make test`)."""

from __future__ import annotations

import pytest

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
