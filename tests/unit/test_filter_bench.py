"""The harness that times the model filters as Ansible's workers run them (ailab/filter_bench.py)."""

from __future__ import annotations

import re
from pathlib import Path

from ailab import filter_bench

ROOT = Path(__file__).resolve().parents[2]


def test_every_render_of_the_playbooks_is_timed():
    used = set()
    for path in [ROOT / "site.yml", *ROOT.glob("roles/*/tasks/*.yml")]:
        used |= set(re.findall(r"ailab_render\(groups, '([^']+)'", path.read_text()))
    timed = {
        args[0]
        for _, _, calls in filter_bench.CALL_SITES
        for name, args, _ in calls
        if name == "ailab_render"
    }
    assert used and used - {"item"} <= timed
    assert {"slurm.conf", "gres.conf", "cgroup.conf"} <= timed  # the loop of role slurm_compute


def test_the_harness_runs_each_call_site_in_a_forked_worker(tmp_path):
    state = filter_bench.load_play_state(filter_bench.scratch_inventory(2, tmp_path / "inv"))
    assert len(state.groups["compute"]) == 2
    assert state.hostvars[state.groups["compute"][0]]["ansible_distribution"] == "Debian"  # the facts
    rows = filter_bench.run(state, filter_bench.load_filters(), sample=1)
    assert [r["call site"] for r in rows] == [label for label, _, _ in filter_bench.CALL_SITES]
    assert all(r["ms per worker"] > 0 for r in rows)
    assert {r["call site"]: r["hosts"] for r in rows}["common: motd"] == len(state.groups["all"])
    assert "total" in filter_bench.table(rows)
