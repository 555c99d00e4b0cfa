"""Loading an inventory with many users: values without Jinja are not templated (Ansible would return them
unchanged), values with Jinja still are, and duplicate keys are found by the fast parser too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ailab.inventory import duplicate_keys, has_template, load_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", False),
        ([{"name": "ab12cd", "uid": 200101, "ssh_keys": ["ssh-ed25519 AAAA x"]}], False),
        ({"a": [1, 2.5, None, True]}, False),
        ("{{ other }}", True),
        ([{"name": "x", "full_name": "{% if a %}A{% endif %}"}], True),
        ({"{{ key }}": 1}, True),
        ({"a": ["b", ("c", "{# comment #}")]}, True),
    ],
)
def test_has_template(value, expected):
    assert has_template(value) is expected


def test_a_template_in_the_users_is_still_rendered(tmp_path):
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "sim", inventory)
    users = inventory / "group_vars" / "all" / "users.yml"
    users.write_text(
        users.read_text().replace("full_name: Student One", "full_name: \"{{ 'Student' }} One\"")
    )
    cluster, problems = load_cluster(inventory)
    assert problems == []
    assert cluster.users["student1"].full_name == "Student One"
    assert cluster.users["student2"].full_name == "Student Two"


def test_duplicate_keys_are_found_with_their_line():
    text = "ailab_users:\n" + "".join(f"  - name: u{i}\n    uid: {i}\n" for i in range(500))
    text += "  - name: dup\n    uid: 1\n    uid: 2\n"
    assert duplicate_keys(text) == [("uid", 1004)]
