"""The operator's escape hatch (issue 15, part 4): ailab_slurm.extra_config and extra_cgroup_config add
settings to slurm.conf and cgroup.conf through the one serializer (ailab.slurm.conf_lines); keys the model
owns, keys Slurm 22.05 does not know and values Slurm would misread are refused by the checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ailab import slurm
from ailab.parse import build_cluster
from ailab.slurm_keys import CGROUP_CONF_KEYS, SLURM_CONF_KEYS
from ailab.validate import validate
from tests.unit.test_model_validation import CLUSTER_WIDE, good, set_all
from tests.unit.test_slurm_conf import BASE, make_cluster, settings


def with_slurm(**fields: Any):
    return make_cluster(ailab_slurm={**BASE["ailab_slurm"], **fields})


def problems(**fields: Any) -> list[tuple[str, str, str]]:
    groups, hostvars = good()
    set_all(hostvars, "ailab_slurm", {**CLUSTER_WIDE["ailab_slurm"], **fields})
    cluster, found = build_cluster(groups, hostvars)
    return [(p.field, p.message, p.fix) for p in found + validate(cluster)]


# Rendering -----------------------------------------------------------------------------------------------


def test_without_extra_config_the_files_are_the_platforms():
    conf = slurm.render_slurm_conf(make_cluster())
    assert "extra_config" not in conf
    assert "Site settings" not in conf
    assert slurm.render_cgroup_conf(make_cluster()).splitlines()[1:] == [
        "ConstrainCores=yes",
        "ConstrainDevices=yes",
        "ConstrainRAMSpace=yes",
    ]


def test_a_new_key_is_added_in_the_inventorys_order_before_the_nodes():
    cluster = with_slurm(
        extra_config={"SchedulerParameters": ["bf_continue", "bf_window=60"], "MaxArraySize": 2001}
    )
    conf = slurm.render_slurm_conf(cluster)
    lines = conf.splitlines()
    site = lines.index("# Site settings (ailab_slurm.extra_config).")
    assert lines[site + 1 : site + 3] == ["SchedulerParameters=bf_continue,bf_window=60", "MaxArraySize=2001"]
    assert site < next(i for i, line in enumerate(lines) if line.startswith("NodeName="))
    assert settings(conf)["MaxArraySize"] == "2001"


def test_a_key_the_defaults_set_takes_the_operators_value_in_place():
    before = slurm.render_slurm_conf(make_cluster()).splitlines()
    after = slurm.render_slurm_conf(with_slurm(extra_config={"slurmdtimeout": 300})).splitlines()
    at = before.index("SlurmdTimeout=120")
    # Slurm reads keys case-insensitively: the operator's spelling replaces the default's line, once.
    assert after[at : at + 2] == [
        "# ailab_slurm.extra_config (the platform's default is 120)",
        "slurmdtimeout=300",
    ]
    assert not any(line.startswith("SlurmdTimeout=") for line in after)
    assert "Site settings" not in "\n".join(after)
    assert len(after) == len(before) + 1


def test_values_are_written_as_slurm_reads_them():
    cluster = with_slurm(extra_config={"UsePAM": True, "JobRequeue": False, "MessageTimeout": 20})
    conf = settings(slurm.render_slurm_conf(cluster))
    assert (conf["UsePAM"], conf["JobRequeue"], conf["MessageTimeout"]) == ("yes", "no", "20")


def test_cgroup_extra_config_reaches_cgroup_conf():
    cluster = with_slurm(extra_cgroup_config={"AllowedSwapSpace": 0, "ConstrainSwapSpace": "yes"})
    lines = slurm.render_cgroup_conf(cluster).splitlines()
    assert lines[1:4] == ["ConstrainCores=yes", "ConstrainDevices=yes", "ConstrainRAMSpace=yes"]
    assert lines[-3:] == [
        "# Site settings (ailab_slurm.extra_cgroup_config).",
        "AllowedSwapSpace=0",
        "ConstrainSwapSpace=yes",
    ]


@pytest.mark.parametrize(
    ("extra", "action"),
    [
        ({"MaxArraySize": 2001}, "reconfigure"),
        ({"SlurmdTimeout": 300}, "reconfigure"),
        ({"SchedulerType": "sched/builtin"}, "restart"),  # a plugin: reconfigure keeps the loaded one
        ({"MaxJobCount": 20000}, "restart"),  # slurm.conf(5): "a restart of slurmctld is required"
    ],
)
def test_reload_action_compares_the_operators_settings(extra, action):
    old = slurm.render_slurm_conf(make_cluster())
    new = slurm.render_slurm_conf(with_slurm(extra_config=extra))
    assert slurm.reload_action(old, new) == action
    assert slurm.reload_action(new, new) == "none"


def test_the_renderer_writes_only_keys_slurm_knows():
    """Every key the model writes is a Slurm 22.05 key and marked as the model's or a default the operator
    may override; the model's keys are the manual's spelling."""
    known = {key.lower() for key in SLURM_CONF_KEYS}
    conf = slurm.render_slurm_conf(with_slurm(config_overrides=True))
    written = set(settings(conf))
    assert {key for key in written if key.lower() not in known} == set()
    lines = {"NodeName", "PartitionName", "NodeSet", "DownNodes", "FrontendName", "Include"}
    assert {key for key in slurm.MODEL_KEYS if key not in SLURM_CONF_KEYS} == lines
    assert set(slurm.CGROUP_MODEL_KEYS) <= CGROUP_CONF_KEYS
    cgroup = settings(slurm.render_cgroup_conf(make_cluster()))
    assert set(cgroup) == set(slurm.CGROUP_MODEL_KEYS)


# The checks ----------------------------------------------------------------------------------------------


def test_known_keys_the_model_does_not_own_are_accepted():
    assert (
        problems(
            extra_config={"SchedulerParameters": ["bf_continue", "bf_window=60"], "slurmdtimeout": 300},
            extra_cgroup_config={"AllowedSwapSpace": 0},
        )
        == []
    )


# (the setting, what the check says, what the fix says)
REFUSED = [
    (
        {"extra_config": {"ClusterName": "other"}},
        "ailab_slurm.extra_config.ClusterName",
        "written from ailab_slurm.cluster_name",
        "remove ClusterName from ailab_slurm.extra_config; change ailab_slurm.cluster_name instead",
    ),
    (
        {"extra_config": {"defmempergpu": 1000}},
        "ailab_slurm.extra_config.defmempergpu",
        "DefMemPerGPU is written from ailab_slurm.def_mem_per_gpu_mb",
        "change ailab_slurm.def_mem_per_gpu_mb instead",
    ),
    (
        {"extra_config": {"NodeName": "gpu99"}},
        "ailab_slurm.extra_config.NodeName",
        "ailab_hardware of each compute_<class> group",
        "remove NodeName",
    ),
    (
        {"extra_config": {"PartitionName": "big"}},
        "ailab_slurm.extra_config.PartitionName",
        "from ailab_partitions",
        "change ailab_partitions instead",
    ),
    (
        {"extra_config": {"JobSubmitPlugins": "lua,require_timelimit"}},
        "ailab_slurm.extra_config.JobSubmitPlugins",
        "ailab_policy",
        "remove JobSubmitPlugins",
    ),
    (
        {"extra_config": {"GresTypes": "gpu,shard"}},
        "ailab_slurm.extra_config.GresTypes",
        "ailab_hardware.gpu",
        "remove GresTypes",
    ),
    (
        {"extra_config": {"SlurmdParameters": "config_overrides"}},
        "ailab_slurm.extra_config.SlurmdParameters",
        "ailab_slurm.config_overrides",
        "change ailab_slurm.config_overrides instead",
    ),
    (
        {"extra_config": {"PrologFlags": "X11"}},
        "ailab_slurm.extra_config.PrologFlags",
        "pam_slurm_adopt",
        "remove PrologFlags",
    ),
    (
        {"extra_config": {"SlurmdTimout": 300}},
        "ailab_slurm.extra_config.SlurmdTimout",
        "'SlurmdTimout' is not a key of Slurm 22.05's slurm.conf",
        "did you mean SlurmdTimeout?",
    ),
    (
        {"extra_config": {"bf_continue": True}},
        "ailab_slurm.extra_config.bf_continue",
        "is not a key of Slurm 22.05's slurm.conf",
        "use a key from slurm.conf(5)",
    ),
    (
        {"extra_config": {"MaxArraySize": 2001, "maxarraysize": 3001}},
        "ailab_slurm.extra_config.maxarraysize",
        "the same Slurm key as MaxArraySize",
        "keep one of them",
    ),
    (
        {"extra_config": {"SchedulerParameters": "bf_continue, bf_window=60"}},
        "ailab_slurm.extra_config.SchedulerParameters",
        "has a blank, '#' or a control character",
        "separate list items with commas",
    ),
    (
        {"extra_config": {"MailProg": "/usr/bin/mail # the MTA"}},
        "ailab_slurm.extra_config.MailProg",
        "has a blank, '#' or a control character",
        "drop them",
    ),
    (
        {"extra_config": {"SchedulerParameters": {"bf_continue": True}}},
        "ailab_slurm.extra_config.SchedulerParameters",
        "must be a string, a number, true/false or a list of them",
        "write it as Slurm would read it",
    ),
    (
        {"extra_config": {"MaxArraySize": ""}},
        "ailab_slurm.extra_config.MaxArraySize",
        "must be a string, a number, true/false or a list of them",
        "e.g. SlurmdTimeout: 300",
    ),
    (
        {"extra_config": ["SlurmdTimeout=300"]},
        "ailab_slurm.extra_config",
        "must be a mapping of setting names to values",
        "write extra_config as Key: value pairs, e.g. extra_config: {SlurmdTimeout: 300}",
    ),
    (
        {"extra_cgroup_config": {"ConstrainRAMSpace": "no"}},
        "ailab_slurm.extra_cgroup_config.ConstrainRAMSpace",
        "a job's CPUs, memory and GPUs hold",
        "remove ConstrainRAMSpace from ailab_slurm.extra_cgroup_config",
    ),
    (
        {"extra_cgroup_config": {"SchedulerType": "sched/builtin"}},
        "ailab_slurm.extra_cgroup_config.SchedulerType",
        "is not a key of Slurm 22.05's cgroup.conf",
        "use a key from cgroup.conf(5)",
    ),
]


@pytest.mark.parametrize(
    ("fields", "field", "message", "fix"), REFUSED, ids=[r[1].split(".", 1)[1] for r in REFUSED]
)
def test_refused_with_the_field_and_the_fix(fields, field, message, fix):
    found = problems(**fields)
    assert [f for f, _, _ in found] == [field], found
    [(_, said, hint)] = found
    assert message in said
    assert fix in hint


def test_refused_before_anything_is_rendered_or_touched():
    """site.yml's first play runs these checks on the controller; the renderers never see a bad key."""
    found = problems(extra_config={"StateSaveLocation": "/tmp/state"})
    assert found and re.search(r"Debian's paths and ports", found[0][1])
