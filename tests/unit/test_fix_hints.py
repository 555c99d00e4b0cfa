"""Issue 17: every fix hint says what to write instead ("fix it" says nothing).

A table of the problems whose hints were empty, each with the concrete instruction it must now give, and a
walk over a broad set of bad inventories (every field of the good one replaced by values of the wrong kind)
that refuses any hint from a list of empty phrases.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ailab.inventory import load_cluster
from ailab.opsconfig import parse_ops_config
from ailab.parse import build_cluster
from ailab.problems import InventoryError, Problem
from ailab.runtime import ToolError
from ailab.validate import validate
from tests.unit.test_model_validation import CLUSTER_WIDE, ROOT, good, set_all
from tests.unit.test_retention import config_data

EMPTY_FIXES = ("", "fix it", "fix this", "correct it", "see docs", "see the docs", "fix the entry")


def problems(groups, hostvars) -> list[Problem]:
    cluster, found = build_cluster(groups, hostvars)
    return found + validate(cluster)


def with_users(*users: dict[str, Any]) -> Callable[[dict, dict], None]:
    def change(groups, hostvars):
        base = {"name": "xy99zz", "uid": 20005, "gid": 20005, "email": "x@example.org", "project": "course"}
        set_all(hostvars, "ailab_users", [{**base, **u} for u in users])

    return change


def with_policy(**policy: Any) -> Callable[[dict, dict], None]:
    def change(groups, hostvars):
        set_all(hostvars, "ailab_policy", {**CLUSTER_WIDE["ailab_policy"], **policy})

    return change


def with_hardware(host: str, **hardware: Any) -> Callable[[dict, dict], None]:
    def change(groups, hostvars):
        hw = hostvars[host]["ailab_hardware"]
        for key, value in hardware.items():
            if value is None:
                hw.pop(key, None)
            else:
                hw[key] = value

    return change


def with_address(host: str, address: str) -> Callable[[dict, dict], None]:
    def change(groups, hostvars):
        hostvars[host]["ailab_address"] = address

    return change


# (what, change, field, fragment of the fix)
HINTS = [
    ("bad e-mail", with_users({"email": "ab12cd"}), "email", "write a full address such as name@example.org"),
    ("missing e-mail", with_users({"email": None}), "email", "e.g. email: name@example.org"),
    ("missing project", with_users({"project": None}), "project", "course or project: course"),
    ("missing user name", with_users({"name": None}), "ailab_users[0].name", 'e.g. name: "ab12cd"'),
    ("uid not a number", with_users({"uid": "x1"}), "ailab_users[0].uid", "e.g. uid: 200101"),
    (
        "ssh key not a string",
        with_users({"ssh_keys": [42]}),
        "ailab_users[0].ssh_keys[0]",
        "write the entry as a non-empty string in quotes, or remove it",
    ),
    (
        "notice day not a number",
        with_policy(maintenance_notice_days=[30, "x"]),
        "ailab_policy.maintenance_notice_days[1]",
        "whole number without quotes, e.g. 30",
    ),
    (
        "deletion on 30 February",
        with_policy(deletion={"month": 2, "day": 30}),
        "ailab_policy.deletion.day",
        "1-28 in February",
    ),
    (
        "deletion on 31 June",
        with_policy(deletion={"month": 6, "day": 31}),
        "ailab_policy.deletion.day",
        "1-30 in April, June, September and November",
    ),
    (
        "compute node without a GPU",
        with_hardware("t4-01", gpu=None),
        "ailab_hardware.gpu",
        "gpu: {model: t4, count: 6}",
    ),
    (
        "too little memory per GPU",
        with_hardware("t4-01", memory_mb=64000),
        "ailab_hardware.memory_mb",
        "def_mem_per_gpu_mb to 10666 or less",
    ),
    (
        "too few CPUs per GPU",
        with_hardware("t4-01", sockets=1, cores_per_socket=8),
        "ailab_hardware",
        "def_cpu_per_gpu to 1 or less",
    ),
    (
        "address not an IP",
        with_address("ctl", "ctl.example.org"),
        "ailab_address",
        "ailab_address: 10.70.20.11",
    ),
    (
        "GPU model missing",
        with_hardware("t4-01", gpu={"count": 6}),
        "ailab_hardware.gpu.model",
        'model: "t4"',
    ),
]


@pytest.mark.parametrize(("what", "change", "field", "fix"), HINTS, ids=[h[0] for h in HINTS])
def test_each_former_empty_hint_now_says_what_to_write(what, change, field, fix):
    groups, hostvars = good()
    change(groups, hostvars)
    found = [p for p in problems(groups, hostvars) if p.field == field]
    assert found, (what, [str(p) for p in problems(groups, hostvars)])
    assert any(fix in p.fix for p in found), [str(p) for p in found]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "sim", inv)
    (inv / "group_vars" / "all" / "partitions.yml").write_text(
        "ailab_partitions:\n  - name: gpu\n    node_groups: [compute\n    default: true\n"
    )
    with pytest.raises(InventoryError) as err:  # not Ansible's traceback
        load_cluster(inv, strict=False)
    [problem] = err.value.problems
    assert problem.where == "group_vars/all/partitions.yml:4"
    assert problem.field == "yaml"
    assert "line 4, column 12" in problem.message
    assert problem.fix == (
        "in group_vars/all/partitions.yml, line 4, column 12: correct the YAML syntax there "
        "(e.g. indentation, a missing ':' or quote)"
    )


def test_undefined_template_variable_is_a_problem_not_a_traceback(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "sim", inv)
    hosts = (
        (inv / "hosts.yml").read_text().replace("ailab_address: 10.213.0.21", 'ailab_address: "{{ nope }}"')
    )
    (inv / "hosts.yml").write_text(hosts)
    with pytest.raises(InventoryError) as err:
        load_cluster(inv, strict=False)
    [problem] = err.value.problems
    assert (problem.where, problem.field) == ("host t4-01", "ailab_address")
    assert "'nope' is undefined" in problem.message
    assert "define the variable the template uses, or write the value itself" in problem.fix


@pytest.mark.parametrize(
    ("change", "fix"),
    [
        ({"users": [{"name": "Bad Name", "uid": 20001, "email": "a@b.c"}]}, "rename the user in ailab_users"),
        ({"users": [{"name": "ab", "uid": 20001, "email": "nowhere"}]}, "such as name@example.org"),
        ({"deletion": {"month": 2, "day": 30, "notices": [{"days": 2}]}}, "pick a day that exists in every"),
        ({"deletion": {"month": 8, "day": 1, "notices": [{"days": 0}]}}, 'e.g. {"days": 14}'),
        ({"version": 7}, "re-render the file from the inventory (site.yml, role operations)"),
    ],
)
def test_ops_config_hints_say_what_to_write(tmp_path, change, fix):
    with pytest.raises(ToolError) as err:
        parse_ops_config(config_data(tmp_path, **change))
    assert fix in str(err.value)


# The walk --------------------------------------------------------------------------------------------

BAD_VALUES: tuple[Any, ...] = (None, "", "x", -1, 0, 2.5, True, [], {}, ["x"], {"x": 1}, "a:b\n")


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside ``value`` (dict keys and list indexes), containers included."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def bad_inventories() -> Iterator[tuple[str, dict, dict]]:
    groups, hostvars = good()
    full = {
        **copy.deepcopy(CLUSTER_WIDE),
        "ailab_policy": {
            "max_job_time": "12:00:00",
            "default_job_time": "01:00:00",
            "deletion": {"month": 8, "day": 1, "notices": ["2 months", "14 days"]},
            "maintenance_notice_days": [30, 1],
            "login_limits": {"cpu_quota_percent": 200, "memory_max_mb": 8192, "tasks_max": 512},
            "default_quota_gb": 100,
            "support_email": "support@example.org",
            "extension_url": "https://example.org/extend",
        },
        "ailab_ceph": {"managed": False, "monitors": ["10.0.9.1"], "home_root": "/ceph/home"},
        "ailab_users": [
            {
                **CLUSTER_WIDE["ailab_users"][0],
                "full_name": "Anna Bech",
                "quota_gb": 10,
                "ssh_keys": [
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFyFtK1au6DpCzSR17RR1nBo1BRsnWNolPOsIDoqOK93 a"
                ],
                "extension_until": "2027-08-01",
            }
        ],
    }
    for key, value in full.items():
        for path in leaves(value):
            for bad in BAD_VALUES:
                changed = copy.deepcopy(hostvars)
                set_all(changed, key, replaced(value, path, bad))
                yield f"{key}{list(path)}={bad!r}", groups, changed
    for path in leaves(hostvars["t4-01"]["ailab_hardware"]):
        for bad in BAD_VALUES:
            changed = copy.deepcopy(hostvars)
            changed["t4-01"]["ailab_hardware"] = replaced(changed["t4-01"]["ailab_hardware"], path, bad)
            yield f"ailab_hardware{list(path)}={bad!r}", groups, changed
    for bad in BAD_VALUES:
        changed = copy.deepcopy(hostvars)
        changed["ctl"]["ailab_address"] = bad
        yield f"ailab_address={bad!r}", groups, changed
    for group in ("frontend", "slurm_controller", "compute", "compute_t4"):
        changed_groups = copy.deepcopy(groups)
        changed_groups[group] = []
        yield f"empty group {group}", changed_groups, hostvars


def test_no_problem_of_a_broad_set_of_bad_inventories_has_an_empty_fix():
    seen = 0
    empty = []
    for what, groups, hostvars in bad_inventories():
        for problem in problems(groups, hostvars):
            seen += 1
            if problem.fix.strip().lower().rstrip(".") in EMPTY_FIXES:
                empty.append(f"{what}: {problem}")
    assert seen > 500
    assert empty == []


def test_no_ops_config_problem_has_an_empty_fix(tmp_path):
    base = config_data(tmp_path)
    empty = []
    for path in leaves(base):
        for bad in BAD_VALUES:
            try:
                parse_ops_config(replaced(base, path, bad))
            except ToolError as exc:
                for line in str(exc).splitlines()[1:]:
                    fix = line.partition(" -- fix: ")[2]
                    if fix.strip().lower().rstrip(".") in EMPTY_FIXES:
                        empty.append(f"{list(path)}={bad!r}: {line.strip()}")
    assert empty == []
