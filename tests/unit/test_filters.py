"""The project's filters: one plugin file serves all of them (plugins/filter/ailab.py -> ailab/filters.py)."""

from __future__ import annotations

import re
from pathlib import Path

from plugins.filter.ailab import FilterModule

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILTER = re.compile(r"\|\s*((?:ailab|slurm)_[a-z_]+)\s*(?:\(|\}|\)|$)", re.MULTILINE)


def playbook_files():
    yield ROOT / "site.yml"
    yield from ROOT.glob("playbooks/*.yml")
    yield from ROOT.glob("roles/*/tasks/*.yml")
    yield from ROOT.glob("roles/*/handlers/*.yml")
    yield from ROOT.glob("roles/*/templates/*.j2")


def test_one_filter_plugin_file_and_no_role_local_ones():
    assert [p.name for p in (ROOT / "plugins" / "filter").glob("*.py")] == ["ailab.py"]
    assert list(ROOT.glob("roles/*/filter_plugins/*.py")) == []


def test_every_filter_the_playbooks_use_is_served_by_the_plugin():
    used = {name for path in playbook_files() for name in PROJECT_FILTER.findall(path.read_text())}
    assert {"ailab_render", "ailab_home_dirs", "ailab_ops_config", "slurm_reload_action"} <= used
    assert used - set(FilterModule().filters()) == set()
