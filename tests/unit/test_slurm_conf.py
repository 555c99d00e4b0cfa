"""Slurm's files rendered from the model (ailab/slurm.py): slurm.conf, gres.conf, cgroup.conf, slurmdbd.conf,
job_submit.lua, the health check's expectations, the accounting spec, and the reload decision."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ailab import render, slurm
from ailab.hostlist import expand
from ailab.inventory import load_cluster
from ailab.model import Cluster
from ailab.parse import build_cluster
from ailab.validate import validate

ROOT = Path(__file__).resolve().parents[2]

T4 = {"sockets": 2, "cores_per_socket": 16, "threads_per_core": 1, "memory_mb": 257000}
BASE: dict[str, Any] = {
    "ailab_cluster": {
        "name": "test",
        "domain": "example.org",
        "timezone": "Europe/Copenhagen",
        "admin_networks": ["10.0.0.5/32"],
    },
    "ailab_policy": {"max_job_time": "12:00:00", "default_job_time": "01:00:00", "max_gpus_per_user": 4},
    "ailab_slurm": {
        "cluster_name": "testcl",
        "def_mem_per_gpu_mb": 16000,
        "def_cpu_per_gpu": 4,
        "def_mem_per_cpu_mb": 3000,
    },
    "ailab_ceph": {"managed": False, "monitors": ["10.0.9.1"]},
    "ailab_partitions": [
        {"name": "gpu", "node_groups": ["compute"], "default": True},
        {"name": "t4", "node_groups": ["compute_t4"]},
        {"name": "a100", "node_groups": ["compute_a100"], "max_time": "06:00:00"},
    ],
    "ailab_projects": [{"name": "course-ml", "description": "Machine learning"}, {"name": "thesis"}],
    "ailab_users": [
        {"name": "ab12cd", "uid": 20001, "gid": 20001, "email": "a@example.org", "project": "course-ml"},
        {"name": "ef34gh", "uid": 20002, "gid": 20002, "email": "e@example.org", "project": "thesis"},
        {
            "name": "root2",
            "uid": 20003,
            "gid": 20003,
            "email": "r@example.org",
            "project": "thesis",
            "admin": True,
        },
    ],
}
HARDWARE = {
    "compute_t4": {**T4, "gpu": {"model": "t4", "count": 6}},
    "compute_a100": {**T4, "memory_mb": 1030000, "gpu": {"model": "a100", "count": 8, "memory_gb": 80}},
}
ADDRESSES = {
    "fe": "10.0.0.1",
    "ctl": "10.0.0.2",
    "t4-09": "10.0.1.9",
    "t4-10": "10.0.1.10",
    "t4-11": "10.0.1.11",
    "a100-01": "10.0.2.1",
}


def make_cluster(**overrides: Any) -> Cluster:
    groups = {
        "all": list(ADDRESSES),
        "frontend": ["fe"],
        "slurm_controller": ["ctl"],
        "compute": ["t4-09", "t4-10", "t4-11", "a100-01"],
        "compute_t4": ["t4-09", "t4-10", "t4-11"],
        "compute_a100": ["a100-01"],
        "ceph": [],
        "ungrouped": [],
    }
    cluster_vars = copy.deepcopy(BASE)
    cluster_vars.update(overrides)
    hostvars: dict[str, dict[str, Any]] = {}
    for name, address in ADDRESSES.items():
        hv = {**copy.deepcopy(cluster_vars), "ailab_address": address}
        for group, hardware in HARDWARE.items():
            if name in groups[group]:
                hv["ailab_hardware"] = copy.deepcopy(hardware)
        hostvars[name] = hv
    cluster, problems = build_cluster(groups, hostvars)
    problems += validate(cluster)
    assert not problems, [str(p) for p in problems]
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return make_cluster()


def settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if (
            line
            and not line.startswith("#")
            and "=" in line
            and not line.startswith(("NodeName", "Partition"))
        ):
            key, value = line.split("=", 1)
            assert key not in out, f"{key} set twice"
            out[key] = value
    return out


def fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ClusterName", "testcl"),
        ("SlurmctldHost", "ctl(10.0.0.2)"),
        ("SelectType", "select/cons_tres"),
        ("SelectTypeParameters", "CR_Core_Memory"),
        ("GresTypes", "gpu"),
        ("ProctrackType", "proctrack/cgroup"),
        ("TaskPlugin", "task/cgroup"),
        ("EnforcePartLimits", "ALL"),
        ("JobSubmitPlugins", "lua"),
        ("HealthCheckProgram", slurm.HEALTH_CHECK_PROGRAM),
        ("HealthCheckInterval", str(slurm.HEALTH_CHECK_INTERVAL)),
        ("AccountingStorageType", "accounting_storage/slurmdbd"),
        ("AccountingStorageHost", "ctl"),
        ("AccountingStorageEnforce", "associations,limits,qos"),
        ("AccountingStorageTRES", "gres/gpu,gres/gpu:a100,gres/gpu:t4"),
        ("DefMemPerGPU", "16000"),
        ("DefCpuPerGPU", "4"),
        ("DefMemPerCPU", "3000"),
        ("StateSaveLocation", "/var/lib/slurm/slurmctld"),
        ("PrologFlags", "Contain"),  # pam_slurm_adopt (role compute_login)
    ],
)
def test_slurm_conf_settings(cluster, key, value):
    assert settings(slurm.render_slurm_conf(cluster))[key] == value


def test_task_plugin_is_cgroup_alone(cluster):
    # task/affinity fails in containers and drains the nodes; it must not sneak in.
    conf = slurm.render_slurm_conf(cluster)
    assert settings(conf)["TaskPlugin"] == "task/cgroup"
    assert not [line for line in conf.splitlines() if "affinity" in line and not line.startswith("#")]


def test_config_overrides_only_when_asked(cluster):
    assert "SlurmdParameters" not in settings(slurm.render_slurm_conf(cluster))
    sim = make_cluster(ailab_slurm={**BASE["ailab_slurm"], "config_overrides": True})
    assert settings(slurm.render_slurm_conf(sim))["SlurmdParameters"] == "config_overrides"


def node_lines(text: str) -> list[dict[str, str]]:
    return [fields(line) for line in text.splitlines() if line.startswith("NodeName=")]


def test_node_lines_carry_topology_memory_and_typed_gpus(cluster):
    lines = {n["NodeName"]: n for n in node_lines(slurm.render_slurm_conf(cluster))}
    assert set(lines) == {"a100-01", "t4-[09-11]"}
    t4 = lines["t4-[09-11]"]
    assert (t4["CPUs"], t4["Sockets"], t4["CoresPerSocket"], t4["ThreadsPerCore"]) == ("32", "2", "16", "1")
    assert t4["RealMemory"] == "257000"
    assert t4["Gres"] == "gpu:t4:6"
    assert lines["a100-01"]["Gres"] == "gpu:a100:8"
    assert lines["a100-01"]["RealMemory"] == "1030000"
    assert int(t4["Weight"]) < int(lines["a100-01"]["Weight"])  # small GPUs are handed out first


def test_node_addr_pairs_with_each_name_in_expansion_order(cluster):
    # t4-09, t4-10: a name-sorted list would put t4-10 first; Slurm pairs NodeAddr entry by entry.
    for line in node_lines(slurm.render_slurm_conf(cluster)):
        names = expand(line["NodeName"])
        addresses = line["NodeAddr"].split(",")
        assert len(names) == len(addresses)
        for name, address in zip(names, addresses, strict=True):
            assert cluster.hosts[name].address == address


def test_hosts_with_other_hardware_get_their_own_line():
    c = make_cluster()
    odd = c.hosts["t4-10"]
    hw = odd.hardware
    bigger = type(hw)(**{**hw.__dict__, "memory_mb": 500000})
    hosts = {**c.hosts, "t4-10": type(odd)(**{**odd.__dict__, "hardware": bigger})}
    c2 = type(c)(**{**c.__dict__, "hosts": hosts})
    names = {n["NodeName"]: n["RealMemory"] for n in node_lines(slurm.render_slurm_conf(c2))}
    assert names == {"a100-01": "1030000", "t4-10": "500000", "t4-[09,11]": "257000"}


def partitions(text: str) -> dict[str, dict[str, str]]:
    return {
        f["PartitionName"]: f
        for f in (fields(line) for line in text.splitlines() if line.startswith("PartitionName="))
    }


def test_one_partition_per_inventory_entry_with_compressed_nodes(cluster):
    parts = partitions(slurm.render_slurm_conf(cluster))
    assert list(parts) == ["gpu", "t4", "a100"]
    assert sorted(expand(parts["gpu"]["Nodes"])) == sorted(h.name for h in cluster.compute)
    assert parts["t4"]["Nodes"] == "t4-[09-11]"
    assert [p for p, f in parts.items() if f["Default"] == "YES"] == ["gpu"]


@pytest.mark.parametrize(
    ("partition", "max_time", "default_time"),
    [("gpu", "12:00:00", "01:00:00"), ("t4", "12:00:00", "01:00:00"), ("a100", "06:00:00", "01:00:00")],
)
def test_partition_time_limits_from_partition_or_policy(cluster, partition, max_time, default_time):
    p = partitions(slurm.render_slurm_conf(cluster))[partition]
    assert (p["MaxTime"], p["DefaultTime"]) == (max_time, default_time)


def test_default_time_never_exceeds_a_shorter_partition_limit():
    c = make_cluster(
        ailab_partitions=[
            {"name": "gpu", "node_groups": ["compute"], "default": True},
            {"name": "short", "node_groups": ["compute_t4"], "max_time": "00:30:00"},
        ]
    )
    p = partitions(slurm.render_slurm_conf(c))["short"]
    assert (p["MaxTime"], p["DefaultTime"]) == ("00:30:00", "00:30:00")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        ("12:00:00", "12:00:00"),
        ("00:05:00", "00:05:00"),
        ("36:30:00", "1-12:30:00"),
        ("48:00:00", "2-00:00:00"),
    ],
)
def test_slurm_time(duration, text):
    assert slurm.slurm_time(duration) == text


@pytest.mark.parametrize(
    ("host", "line"),
    [
        ("t4-10", "NodeName=t4-10 Name=gpu Type=t4 File=/dev/nvidia[0-5]"),
        ("a100-01", "NodeName=a100-01 Name=gpu Type=a100 File=/dev/nvidia[0-7]"),
    ],
)
def test_gres_conf_per_node(cluster, host, line):
    lines = [x for x in slurm.render_gres_conf(cluster, host).splitlines() if not x.startswith("#")]
    assert lines == ["AutoDetect=off", line]


def test_gres_conf_refuses_a_host_without_gpus(cluster):
    with pytest.raises(ValueError, match="not a GPU compute node"):
        slurm.render_gres_conf(cluster, "fe")


def test_cgroup_conf_constrains_devices_memory_cores(cluster):
    assert settings(slurm.render_cgroup_conf(cluster)) == {
        "ConstrainCores": "yes",
        "ConstrainDevices": "yes",
        "ConstrainRAMSpace": "yes",
    }


def test_slurmdbd_conf_has_no_password(cluster):
    conf = settings(slurm.render_slurmdbd_conf(cluster))
    assert conf["StorageType"] == "accounting_storage/mysql"
    assert conf["StorageUser"] == "slurm"
    assert conf["DbdHost"] == "ctl"
    assert not any("pass" in key.lower() for key in conf)


def test_health_check_expectations(cluster):
    data = json.loads(slurm.render_gpu_health_json(cluster, "a100-01"))
    assert data["node"] == "a100-01"
    assert (data["model"], data["count"], data["product"]) == ("a100", 8, "NVIDIA A100-SXM4")
    assert data["devices"][-1] == "/dev/nvidia7"
    assert data["reason_prefix"] == slurm.HEALTH_REASON_PREFIX


def test_accounting_spec_from_projects_users_and_policy(cluster):
    spec = slurm.accounting_spec(cluster)
    assert spec["cluster"] == "testcl"
    assert spec["qos"] == [
        {
            "name": slurm.DEFAULT_QOS,
            "description": spec["qos"][0]["description"],
            "max_tres_per_user": "gres/gpu=4",
            "max_jobs_per_user": cluster.policy.max_jobs_per_user,
            "max_submit_jobs_per_user": cluster.policy.max_submit_jobs_per_user,
        }
    ]
    assert spec["default_qos"] == slurm.DEFAULT_QOS
    assert [a["name"] for a in spec["accounts"]] == ["course-ml", "thesis"]
    assert spec["accounts"][0]["description"] == "Machine learning"
    assert spec["accounts"][1]["description"] == "thesis"  # no description: the name
    assert {u["name"]: (u["account"], u["admin"]) for u in spec["users"]} == {
        "ab12cd": ("course-ml", False),
        "ef34gh": ("thesis", False),
        "root2": ("thesis", True),
    }


def test_job_submit_lua_quotes_the_rules_and_returns_defined_errors(cluster):
    lua = slurm.render_job_submit_lua(cluster)
    assert "AI-LAB is not intended for CPU-only processing (usage guideline 5)" in lua
    assert "--gres=gpu:1" in lua
    assert "no longer than 12 hours (usage guideline 4)" in lua
    assert "local MAX_MINUTES = 720" in lua
    assert "local GPU_REQUIRED = true" in lua
    # Only constants Slurm 22.05 exports to Lua; an undefined one (nil) would accept the job.
    returned = set(re.findall(r"return (slurm\.\w+)", lua))
    assert returned <= {"slurm.SUCCESS", "slurm.ESLURM_ACCESS_DENIED", "slurm.ESLURM_INVALID_TIME_LIMIT"}
    assert "slurm.ESLURM_ACCESS_DENIED" in returned
    for field in ("tres_per_node", "tres_per_job", "tres_per_task", "tres_per_socket"):
        assert f'"{field}"' in lua


def test_job_submit_lua_follows_the_policy():
    c = make_cluster(ailab_policy={**BASE["ailab_policy"], "gpu_required": False, "max_job_time": "06:00:00"})
    lua = slurm.render_job_submit_lua(c)
    assert "local GPU_REQUIRED = false" in lua
    assert "local MAX_MINUTES = 360" in lua
    assert "no longer than 6 hours" in lua


def test_renderers_are_registered_for_the_filter(cluster):
    for name in ("slurm.conf", "cgroup.conf", "slurmdbd.conf", "job_submit.lua", "slurm-accounting.json"):
        assert render.render(name, cluster).startswith(("#", "--", "{"))
    for name in ("gres.conf", "gpu-health.json"):
        assert "t4-10" in render.render(name, cluster, "t4-10")


@pytest.mark.parametrize("inventory", ["sim", "production"])
def test_shipped_inventories_render(inventory):
    cluster, _ = load_cluster(ROOT / "inventory" / inventory)
    conf = slurm.render_slurm_conf(cluster)
    names = set()
    for line in node_lines(conf):
        names.update(expand(line["NodeName"]))
    assert names == {h.name for h in cluster.compute}
    assert settings(conf)["ClusterName"] == cluster.slurm.cluster_name
    for host in cluster.compute:
        assert f"Type={host.hardware.gpu.model}" in slurm.render_gres_conf(cluster, host.name)


# reload_action: how slurmctld takes a new slurm.conf


def test_reload_first_install_or_same_file_is_none(cluster):
    conf = slurm.render_slurm_conf(cluster)
    assert slurm.reload_action(None, conf) == "none"
    assert slurm.reload_action("", conf) == "none"
    assert slurm.reload_action(conf, conf) == "none"


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"ailab_policy": {**BASE["ailab_policy"], "max_job_time": "10:00:00"}}, "reconfigure"),
        ({"ailab_slurm": {**BASE["ailab_slurm"], "def_mem_per_gpu_mb": 8000}}, "reconfigure"),
        (
            {
                "ailab_partitions": [
                    *BASE["ailab_partitions"],
                    {"name": "extra", "node_groups": ["compute_t4"]},
                ]
            },
            "reconfigure",
        ),
        ({"ailab_slurm": {**BASE["ailab_slurm"], "cluster_name": "other"}}, "restart"),
        ({"ailab_slurm": {**BASE["ailab_slurm"], "config_overrides": True}}, "reconfigure"),
    ],
)
def test_reload_action_by_kind_of_change(cluster, change, action):
    old = slurm.render_slurm_conf(cluster)
    new = slurm.render_slurm_conf(make_cluster(**change))
    assert slurm.reload_action(old, new) == action


def test_reload_restarts_when_nodes_are_added_or_removed(cluster):
    old = slurm.render_slurm_conf(cluster)
    fewer = old.replace("NodeName=t4-[09-11]", "NodeName=t4-[09-10]").replace(
        "NodeAddr=10.0.1.9,10.0.1.10,10.0.1.11", "NodeAddr=10.0.1.9,10.0.1.10"
    )
    assert slurm.reload_action(old, fewer) == "restart"
    assert slurm.reload_action(fewer, old) == "restart"


def test_reload_restarts_for_a_new_gpu_model(cluster):
    # A new TRES (gres/gpu:<model>) is only registered by a restarted slurmctld.
    old = slurm.render_slurm_conf(cluster)
    new = old.replace("AccountingStorageTRES=gres/gpu,", "AccountingStorageTRES=gres/gpu,gres/gpu:l4,")
    assert slurm.reload_action(old, new) == "restart"


# (what changes, old text, new text, action): edits of the rendered slurm.conf of the test cluster.
RELOAD_EDITS = [
    ("SchedulerType", "SchedulerType=sched/backfill", "SchedulerType=sched/builtin", "restart"),
    (
        "AccountingStorageEnforce",
        "AccountingStorageEnforce=associations,limits,qos",
        "AccountingStorageEnforce=associations,limits",
        "restart",
    ),
    ("SelectType", "SelectType=select/cons_tres", "SelectType=select/cons_res", "restart"),
    (
        "SelectTypeParameters",
        "SelectTypeParameters=CR_Core_Memory",
        "SelectTypeParameters=CR_Core",
        "restart",
    ),
    ("GresTypes", "GresTypes=gpu", "GresTypes=gpu,shard", "restart"),
    ("MaxJobCount added", "GresTypes=gpu\n", "GresTypes=gpu\nMaxJobCount=20000\n", "restart"),
    ("ProctrackType", "ProctrackType=proctrack/cgroup", "ProctrackType=proctrack/linuxproc", "restart"),
    ("TaskPlugin", "TaskPlugin=task/cgroup", "TaskPlugin=task/cgroup,task/affinity", "restart"),
    ("node memory", "RealMemory=257000", "RealMemory=256000", "restart"),
    ("node CPUs", "CPUs=32 Sockets=2 CoresPerSocket=16", "CPUs=16 Sockets=1 CoresPerSocket=16", "restart"),
    ("node GPUs", "Gres=gpu:t4:6", "Gres=gpu:t4:4", "restart"),
    ("node address", "NodeAddr=10.0.2.1 ", "NodeAddr=10.0.2.9 ", "restart"),
    ("node weight", "Weight=16 ", "Weight=17 ", "restart"),
    ("DefMemPerGPU", "DefMemPerGPU=16000", "DefMemPerGPU=8000", "reconfigure"),
    ("PrivateData", f"PrivateData={slurm.PRIVATE_DATA}", "PrivateData=jobs", "reconfigure"),
    ("HealthCheckInterval", "HealthCheckInterval=30", "HealthCheckInterval=60", "reconfigure"),
    ("partition time", "MaxTime=06:00:00", "MaxTime=05:00:00", "reconfigure"),
    ("JobSubmitPlugins", "JobSubmitPlugins=lua", "JobSubmitPlugins=lua,require_timelimit", "reconfigure"),
    ("a comment", "# Compute nodes", "# The compute nodes", "reconfigure"),
    (
        "key spelled in lower case",
        "SchedulerType=sched/backfill",
        "schedulertype=sched/backfill",
        "reconfigure",
    ),
    ("node line split in two, same nodes", None, None, "reconfigure"),
]


@pytest.mark.parametrize(
    ("what", "before", "after", "action"), RELOAD_EDITS, ids=[e[0] for e in RELOAD_EDITS]
)
def test_reload_action_follows_slurm_conf_5(cluster, what, before, after, action):
    old = slurm.render_slurm_conf(cluster)
    if before is None:  # NodeName=t4-[09-11] as three lines: the same nodes, the same definitions
        line = next(li for li in old.splitlines() if li.startswith("NodeName=t4-"))
        rest = line.split(" ", 2)[2]
        split = "\n".join(f"NodeName=t4-{n} NodeAddr=10.0.1.{int(n)} {rest}" for n in ("09", "10", "11"))
        new = old.replace(line, split)
    else:
        assert before in old, f"{what}: {before!r} is not in the rendered slurm.conf"
        new = old.replace(before, after, 1)
    assert slurm.reload_action(old, new) == action, what


@pytest.mark.parametrize("key", sorted(slurm.DOCUMENTED_RESTART_KEYS))
def test_every_key_slurm_conf_5_says_needs_a_restart_restarts(cluster, key):
    old = slurm.render_slurm_conf(cluster)
    assert slurm.reload_action(old, old + f"{key}=changed\n") == "restart"
    assert key in slurm.RESTART_KEYS


def test_private_data_in_slurm_conf_and_slurmdbd_conf(cluster):
    conf = settings(slurm.render_slurm_conf(cluster))
    assert conf["PrivateData"] == "jobs,usage"  # not reservations: the login message reads them as a student
    dbd = slurm.render_slurmdbd_conf(cluster)
    assert "PrivateData=accounts,jobs,usage,users\n" in dbd
    assert "reservations" not in dbd.split("PrivateData=")[1].splitlines()[0]


def test_the_roles_layout_is_the_renderers_constants():
    from ailab.filters import ailab_layout

    layout = ailab_layout("slurm")
    assert layout["conf_dir"] == slurm.CONF_DIR and layout["slurmdbd_port"] == slurm.SLURMDBD_PORT
    assert layout["accounting_db"] == slurm.ACCOUNTING_DB and layout["user"] == slurm.SLURM_USER
    assert layout["health_check_config"] == f"{slurm.CONF_DIR}/gpu-health.json"
    with pytest.raises(ValueError, match="unknown component 'munge' -- fix: use 'slurm'"):
        ailab_layout("munge")


def test_the_node_tools_slurm_conf_names_are_installed_where_it_says():
    """One source for the paths: the roles install the health check and jobstats at the layout's paths,
    which slurm.conf names; the health check reads the file the layout says it is rendered to."""
    from ailab.filters import ailab_layout

    layout = ailab_layout("slurm")
    node = ailab_layout("node")
    conf = slurm.render_slurm_conf(load_cluster(ROOT / "inventory" / "sim")[0])
    assert f"HealthCheckProgram={layout['health_check_program']}\n" in conf
    assert f"EpilogSlurmctld={layout['jobstats_epilog']}\n" in conf
    assert layout["jobstats_tool"] == slurm.JOBSTATS_TOOL == node["commands"]["jobstats"]  # role common
    tasks = {
        role: (ROOT / "roles" / role / "tasks" / "main.yml").read_text()
        for role in ("slurm_compute", "slurm_controller")
    }
    assert 'dest: "{{ slurm_compute_layout.health_check_program }}"' in tasks["slurm_compute"]
    assert "src: \"{{ slurm_compute_node.commands['ailab-gpu-health'] }}\"" in tasks["slurm_compute"]
    assert 'dest: "{{ slurm_controller_layout.jobstats_epilog }}"' in tasks["slurm_controller"]
    script = (ROOT / "ailab" / "nodetools" / "gpuhealth.py").read_text()
    assert f'CONFIG = "{layout["health_check_config"]}"\n' in script  # a node tool: stdlib, no import
