"""The project's filters: one plugin file serves all of them (plugins/filter/ailab.py -> ailab/filters.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ailab import ansible_bridge
from plugins.filter.ailab import FilterModule
from tests.unit.test_model_validation import good

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


def test_ailab_model_hands_out_one_part_with_the_model_defaults():
    """Roles read a part of the model (ailab_model(groups, 'ceph')): the model's defaults apply, so no role
    writes `ailab_ceph.managed | default(false)` again."""
    groups, hostvars = good()
    for hv in hostvars.values():
        hv["ailab_ceph"] = {"home_root": "/ceph/home", "monitors": ["10.0.0.9"]}
    model = FilterModule().filters()["ailab_model"]
    try:
        ceph = model(hostvars, groups, "ceph")
        assert (ceph["managed"], ceph["client"], ceph["fs_name"], ceph["datasets_path"]) == (
            False,
            "fuse",
            "cephfs",
            None,
        )
        assert (ceph["fs_home_dir"], ceph["fs_datasets_dir"]) == ("/home", "/datasets")
        assert model(hostvars, groups, "directory")["enabled"] is False
        assert model(hostvars, groups, "timezone") == model(hostvars, groups)["timezone"]
        assert [u["name"] for u in model(hostvars, groups, "users").values()] == [
            u["name"] for u in hostvars["fe"]["ailab_users"]
        ]
        with pytest.raises(AnsibleFilterError, match="no part 'cephs' -- fix: use one of"):
            model(hostvars, groups, "cephs")
    finally:
        ansible_bridge.forget()
