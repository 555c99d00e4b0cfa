"""The generated job_submit.lua, run by a Lua 5.1 interpreter (Slurm 22.05's) against a stand-in of the
`slurm` table job_submit/lua provides, with the job fields each sbatch option sets in 22.05.

Needs `lua5.1` (Debian package lua5.1); without it these tests are skipped, and the same rules are still
exercised by tests/integration/test_slurm.py through a real slurmctld.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ailab import slurm
from tests.unit.test_slurm_conf import BASE, make_cluster

LUA = shutil.which("lua5.1")
pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.1 is not installed (apt-get install lua5.1)")

# The values job_submit/lua of Slurm 22.05 exports (slurm_errno.h / slurm.h), and how it fills job_desc: a
# field the request does not set is nil (strings, min_mem_per_*), NO_VAL16 or NO_VAL (numbers).
HARNESS = r"""
slurm = {
  SUCCESS = 0, ERROR = -1, FAILURE = -1,
  ESLURM_ACCESS_DENIED = 2002, ESLURM_INVALID_NODE_COUNT = 2006, ESLURM_INVALID_TIME_LIMIT = 2051,
  NO_VAL = 4294967294, NO_VAL16 = 65534, INFINITE = 4294967295,
  JOB_SHARED_NONE = 0, JOB_SHARED_OK = 1, JOB_SHARED_USER = 2, JOB_SHARED_MCS = 3,
  log_user = function(fmt, ...) USER_MSG = string.format(fmt, ...) end,
  log_info = function(...) end,
}
local NUM16 = { cpus_per_task = true, pn_min_cpus = true, ntasks_per_node = true, sockets_per_node = true,
                shared = true }
local NUM32 = { min_nodes = true, max_nodes = true, min_cpus = true, num_tasks = true, time_limit = true }
local NUMBER = { min_mem_per_node = true, min_mem_per_cpu = true, job_id = true }
local function fields(text, defaults)
  local job = {}
  if defaults then
    for k, _ in pairs(NUM16) do job[k] = slurm.NO_VAL16 end
    for k, _ in pairs(NUM32) do job[k] = slurm.NO_VAL end
  end
  for key, value in string.gmatch(text, "([%w_]+)=([^;]*);") do
    if NUM16[key] or NUM32[key] or NUMBER[key] then job[key] = tonumber(value) else job[key] = value end
  end
  return job
end
local chunk = assert(loadfile(arg[1]))
assert(chunk() == slurm.SUCCESS, "the script must load cleanly")
local results = {}
for line in io.lines(arg[2]) do
  local kind, uid, desc, rec = string.match(line, "^(%a+)\t(%d+)\t([^\t]*)\t(.*)$")
  USER_MSG = ""
  local rc
  if kind == "submit" then
    rc = slurm_job_submit(fields(desc, true), {}, tonumber(uid))
  else
    rc = slurm_job_modify(fields(desc, true), fields(rec, false), {}, tonumber(uid))
  end
  table.insert(results, tostring(rc) .. "\t" .. USER_MSG)
end
print(table.concat(results, "\n"))
"""

CASES = [
    # (description, uid, job fields as 22.05 fills them, expected rc)
    ("no GPU at all", 200001, {}, 2002),
    ("--gres=gpu:1", 200001, {"tres_per_node": "gres:gpu:1"}, 0),
    ("--gres=gpu:a40:1", 200001, {"tres_per_node": "gres:gpu:a40:1"}, 0),
    ("--gres=gpu (count 1)", 200001, {"tres_per_node": "gres:gpu"}, 0),
    ("--gres=gpu:t4 (type, count 1)", 200001, {"tres_per_node": "gres:gpu:t4"}, 0),
    ("--gres=gpu:0", 200001, {"tres_per_node": "gres:gpu:0"}, 2002),
    ("--gres=shard:1 only", 200001, {"tres_per_node": "gres:shard:1"}, 2002),
    ("--gres=shard:1,gpu:2", 200001, {"tres_per_node": "gres:shard:1,gres:gpu:2"}, 0),
    ("--gpus=2", 200001, {"tres_per_job": "gres:gpu:2"}, 0),
    ("--gpus=t4:1", 200001, {"tres_per_job": "gres:gpu:t4:1"}, 0),
    ("--gpus-per-node=1", 200001, {"tres_per_node": "gres:gpu:1"}, 0),
    ("--gpus-per-task=1", 200001, {"tres_per_task": "gres:gpu:1"}, 0),
    ("--gpus-per-task, slash form", 200001, {"tres_per_task": "gres/gpu=1"}, 0),
    ("--gpus-per-socket=1", 200001, {"tres_per_socket": "gres:gpu:1"}, 0),
    ("--cpus-per-task only (tres_per_task cpu)", 200001, {"tres_per_task": "cpu:4"}, 2002),
    ("root is exempt", 0, {}, 0),
    ("--time=12:00:00", 200001, {"tres_per_node": "gres:gpu:1", "time_limit": 720}, 0),
    ("--time=13:00:00", 200001, {"tres_per_node": "gres:gpu:1", "time_limit": 780}, 2051),
    ("--time=UNLIMITED", 200001, {"tres_per_node": "gres:gpu:1", "time_limit": 4294967295}, 2051),
    ("root may run long", 0, {"time_limit": 780}, 0),
]


def _fields(fields: dict) -> str:
    return "".join(f"{k}={v};" for k, v in fields.items())


def run_lua(tmp_path, lua_text: str, cases, kind: str = "submit") -> list[tuple[int, str]]:
    """Run ``slurm_job_submit`` (or ``slurm_job_modify`` with ``kind="modify"``) once per case.  A submit case
    is (what, uid, job fields, expected rc); a modify case (what, uid, update fields, job record fields,
    expected rc)."""
    script = tmp_path / "job_submit.lua"
    script.write_text(lua_text)
    (tmp_path / "harness.lua").write_text(HARNESS)
    jobs = tmp_path / "jobs.tsv"
    lines = []
    for case in cases:
        uid, desc = case[1], case[2]
        rec = case[3] if kind == "modify" else {}
        lines.append(f"{kind}\t{uid}\t{_fields(desc)}\t{_fields(rec)}\n")
    jobs.write_text("".join(lines))
    done = subprocess.run(
        [LUA, str(tmp_path / "harness.lua"), str(script), str(jobs)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [(int(line.split("\t")[0]), line.split("\t", 1)[1]) for line in done.stdout.splitlines()]


def test_gpu_and_time_rules(tmp_path):
    results = run_lua(tmp_path, slurm.render_job_submit_lua(make_cluster()), CASES)
    messages = slurm.job_submit_messages(make_cluster())
    for (what, _, _, expected), (rc, message) in zip(CASES, results, strict=True):
        assert rc == expected, f"{what}: rc {rc}, expected {expected}"
        if rc == 2002:
            assert message == messages["no_gpu"], what
        elif rc == 2051:
            assert message == messages["too_long"], what
        else:
            assert message == "", what


def test_gpu_rule_off_accepts_cpu_jobs(tmp_path):
    cluster = make_cluster(ailab_policy={**BASE["ailab_policy"], "gpu_required": False})
    results = run_lua(tmp_path, slurm.render_job_submit_lua(cluster), [("cpu", 200001, {}, 0)])
    assert results == [(0, "")]


def test_messages_are_valid_lua_strings(tmp_path):
    # A policy text with quotes, backslashes or a % (log_user formats its first argument) must not break it.
    text = 'say "hi" \\ there, 100% sure'
    lua = slurm.render_job_submit_lua(make_cluster()).replace(
        json.dumps(slurm.job_submit_messages(make_cluster())["no_gpu"]), json.dumps(text)
    )
    assert run_lua(tmp_path, lua, [("cpu", 200001, {}, 2002)]) == [(2002, text)]


# Rule 6 with the test cluster's policy defaults (4 CPUs and 32000 MB per GPU, 2 nodes per job).  The job
# fields are what sbatch 22.05 sends for the options in the description (slurm_opt_create_job_desc).
GPU = {"tres_per_node": "gres:gpu:1", "min_cpus": 1}
SIZE_CASES = [
    ("-c4 --gres=gpu:1", 200001, {**GPU, "cpus_per_task": 4, "min_cpus": 4}, 0, ""),
    ("-c5 --gres=gpu:1", 200001, {**GPU, "cpus_per_task": 5, "min_cpus": 5}, 2002, "too_many_cpus"),
    ("-c8 --gres=gpu:2", 200001, {"tres_per_node": "gres:gpu:2", "cpus_per_task": 8, "min_cpus": 8}, 0, ""),
    ("-n5 --gres=gpu:1", 200001, {**GPU, "num_tasks": 5, "min_cpus": 5}, 2002, "too_many_cpus"),
    (
        "--cpus-per-gpu=5 --gpus=1",
        200001,
        {"tres_per_job": "gres:gpu:1", "cpus_per_tres": "gres:gpu:5"},
        2002,
        "too_many_cpus",
    ),
    (
        "--cpus-per-gpu=4 --gpus=2",
        200001,
        {"tres_per_job": "gres:gpu:2", "cpus_per_tres": "gres:gpu:4"},
        0,
        "",
    ),
    (
        "--gpus-per-task=1 -n2 -c4",
        200001,
        {"tres_per_task": "gres:gpu:1", "num_tasks": 2, "cpus_per_task": 4, "min_cpus": 8},
        0,
        "",
    ),
    ("--exclusive --gres=gpu:1", 200001, {**GPU, "shared": 0}, 2002, "exclusive"),
    ("--exclusive=user --gres=gpu:1", 200001, {**GPU, "shared": 2}, 2002, "exclusive"),
    ("--exclusive=mcs --gres=gpu:1", 200001, {**GPU, "shared": 3}, 2002, "exclusive"),
    ("--oversubscribe --gres=gpu:1", 200001, {**GPU, "shared": 1}, 0, ""),
    ("--mem=0 --gres=gpu:1", 200001, {**GPU, "min_mem_per_node": 0}, 2002, "all_memory"),
    ("--mem-per-cpu=0 --gres=gpu:1", 200001, {**GPU, "min_mem_per_cpu": 0}, 2002, "all_memory"),
    ("--mem=32000 --gres=gpu:1", 200001, {**GPU, "min_mem_per_node": 32000}, 0, ""),
    ("--mem=32001 --gres=gpu:1", 200001, {**GPU, "min_mem_per_node": 32001}, 2002, "too_much_memory"),
    ("--mem=64000 --gres=gpu:2", 200001, {"tres_per_node": "gres:gpu:2", "min_mem_per_node": 64000}, 0, ""),
    (
        "--mem=64001 --gres=gpu:2",
        200001,
        {"tres_per_node": "gres:gpu:2", "min_mem_per_node": 64001},
        2002,
        "too_much_memory",
    ),
    (
        "--mem-per-gpu=32001M --gpus=1",
        200001,
        {"tres_per_job": "gres:gpu:1", "mem_per_tres": "gres:gpu:32001"},
        2002,
        "too_much_memory",
    ),
    (
        "--mem-per-gpu=31G --gpus=1",
        200001,
        {"tres_per_job": "gres:gpu:1", "mem_per_tres": "gres:gpu:31G"},
        0,
        "",
    ),
    (
        "--mem-per-gpu=32G --gpus=1",
        200001,
        {"tres_per_job": "gres:gpu:1", "mem_per_tres": "gres:gpu:32G"},
        2002,
        "too_much_memory",
    ),
    (
        "--mem-per-cpu=8000 -c4 --gres=gpu:1",
        200001,
        {**GPU, "cpus_per_task": 4, "min_cpus": 4, "min_mem_per_cpu": 8000},
        0,
        "",
    ),
    (
        "--mem-per-cpu=8001 -c4 --gres=gpu:1",
        200001,
        {**GPU, "cpus_per_task": 4, "min_cpus": 4, "min_mem_per_cpu": 8001},
        2002,
        "too_much_memory",
    ),
    ("-N2 --gres=gpu:1", 200001, {**GPU, "min_nodes": 2}, 0, ""),
    ("-N2 --mem=32000 --gres=gpu:1", 200001, {**GPU, "min_nodes": 2, "min_mem_per_node": 32000}, 0, ""),
    (
        "-N2 --gpus=2 --mem=32000",
        200001,
        {"tres_per_job": "gres:gpu:2", "min_nodes": 2, "min_mem_per_node": 32000},
        0,
        "",
    ),
    (
        "-N2 --gpus=2 --mem=32001",
        200001,
        {"tres_per_job": "gres:gpu:2", "min_nodes": 2, "min_mem_per_node": 32001},
        2002,
        "too_much_memory",
    ),
    ("-N3 --gres=gpu:1", 200001, {**GPU, "min_nodes": 3}, 2006, "too_many_nodes"),
    ("-N1-3 --gres=gpu:1", 200001, {**GPU, "min_nodes": 1, "max_nodes": 3}, 2006, "too_many_nodes"),
    (
        "-N2 -c32 --mem=0 --gres=gpu:1",
        200001,
        {**GPU, "min_nodes": 2, "cpus_per_task": 32, "min_cpus": 64, "min_mem_per_node": 0},
        2002,
        "all_memory",
    ),
    (
        "-N2 -c32 --gres=gpu:1",
        200001,
        {**GPU, "min_nodes": 2, "cpus_per_task": 32, "min_cpus": 64},
        2002,
        "too_many_cpus",
    ),
    ("CPU-only and --exclusive: the GPU rule speaks first", 200001, {"shared": 0}, 2002, "no_gpu"),
    ("root may take a whole node", 0, {**GPU, "shared": 0, "min_mem_per_node": 0}, 0, ""),
]


@pytest.mark.parametrize("case", SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
def test_rule_6_caps_at_submission(tmp_path, case):
    cluster = make_cluster()
    what, uid, fields, expected, reason = case
    [(rc, message)] = run_lua(tmp_path, slurm.render_job_submit_lua(cluster), [(what, uid, fields, expected)])
    assert rc == expected, f"{what}: rc {rc}, expected {expected} ({message})"
    assert message == (slurm.job_submit_messages(cluster)[reason] if reason else "")


def test_rule_6_messages_name_the_rule_and_the_fix():
    messages = slurm.job_submit_messages(make_cluster())
    for key in ("exclusive", "all_memory", "too_many_nodes", "too_many_cpus", "too_much_memory"):
        assert "usage guideline 6" in messages[key], key
    assert "--exclusive" in messages["exclusive"] and "--mem=0" in messages["all_memory"]
    assert "--nodes=2" in messages["too_many_nodes"]
    assert "--cpus-per-gpu=4" in messages["too_many_cpus"]
    assert "--mem-per-gpu=32000M" in messages["too_much_memory"]


def test_caps_follow_the_policy(tmp_path):
    policy = {
        **BASE["ailab_policy"],
        "max_cpus_per_gpu": 2,
        "max_mem_per_gpu_mb": 20000,
        "max_nodes_per_job": 1,
    }
    cluster = make_cluster(ailab_policy=policy, ailab_slurm={**BASE["ailab_slurm"], "def_cpu_per_gpu": 2})
    cases = [
        ("-c2", 200001, {**GPU, "cpus_per_task": 2, "min_cpus": 2}, 0),
        ("-c3", 200001, {**GPU, "cpus_per_task": 3, "min_cpus": 3}, 2002),
        ("--mem=20001", 200001, {**GPU, "min_mem_per_node": 20001}, 2002),
        ("-N2", 200001, {**GPU, "min_nodes": 2}, 2006),
    ]
    results = run_lua(tmp_path, slurm.render_job_submit_lua(cluster), cases)
    assert [rc for rc, _ in results] == [c[3] for c in cases]


# Updates (scontrol update as the job's owner): the job record of a held `sbatch --gres=gpu:1` job, and the
# fields 22.05's scontrol sends (TresPerNode= sends "", Gres= sends "gres:", NumNodes=3 min and max 3).
REC = {"job_id": 42, "tres_per_node": "gres:gpu:1", "min_nodes": 1, "min_cpus": 1}
REC_GPUS_JOB = {"job_id": 43, "tres_per_job": "gres:gpu:1", "min_nodes": 1, "min_cpus": 1}
INVALID_GRES = slurm.ESLURM_INVALID_GRES
MODIFY_CASES = [
    ("TresPerNode= clears the only GPU request", 200001, {"tres_per_node": ""}, REC, INVALID_GRES),
    ("Gres= (scontrol sends 'gres:')", 200001, {"tres_per_node": "gres:"}, REC, INVALID_GRES),
    ("TresPerNode=gres:gpu:0", 200001, {"tres_per_node": "gres:gpu:0"}, REC, INVALID_GRES),
    ("TresPerNode=gres:shard:1", 200001, {"tres_per_node": "gres:shard:1"}, REC, INVALID_GRES),
    ("TresPerJob= on a --gpus job", 200001, {"tres_per_job": ""}, REC_GPUS_JOB, INVALID_GRES),
    ("TresPerJob= on a --gres job keeps its GPU", 200001, {"tres_per_job": ""}, REC, 0),
    (
        "TresPerTask= on a --gpus-per-task job",
        200001,
        {"tres_per_task": ""},
        {"job_id": 44, "tres_per_task": "gres:gpu:1", "min_cpus": 1},
        INVALID_GRES,
    ),
    (
        "TresPerNode= with --gpus still set",
        200001,
        {"tres_per_node": ""},
        {**REC, "tres_per_job": "gres:gpu:1"},
        0,
    ),
    ("TresPerNode=gres:gpu:2", 200001, {"tres_per_node": "gres:gpu:2"}, REC, 0),
    ("TimeLimit=13:00:00", 200001, {"time_limit": 780}, REC, 2051),
    ("TimeLimit=01:00:00", 200001, {"time_limit": 60}, REC, 0),
    ("NumNodes=3", 200001, {"min_nodes": 3, "max_nodes": 3}, REC, 2006),
    ("NumNodes=2", 200001, {"min_nodes": 2, "max_nodes": 2}, REC, 0),
    ("MinMemoryNode=0", 200001, {"min_mem_per_node": 0}, REC, 2002),
    ("MinMemoryNode=32001", 200001, {"min_mem_per_node": 32001}, REC, 2002),
    (
        "MinMemoryNode=16000 replaces a per-CPU memory",
        200001,
        {"min_mem_per_node": 16000},
        {**REC, "min_mem_per_cpu": 64000},
        0,
    ),
    ("OverSubscribe=no (whole node)", 200001, {"shared": 0}, REC, 2002),
    ("MinCPUsNode=5", 200001, {"pn_min_cpus": 5}, REC, 2002),
    ("CPUsPerTask=5", 200001, {"cpus_per_task": 5}, REC, 2002),
    (
        "fewer GPUs, same CPUs",
        200001,
        {"tres_per_node": "gres:gpu:1"},
        {**REC, "tres_per_node": "gres:gpu:2", "min_cpus": 8},
        2002,
    ),
    ("a time update does not re-judge the size", 200001, {"time_limit": 60}, {**REC, "min_cpus": 64}, 0),
    ("root may clear GPUs", 0, {"tres_per_node": ""}, REC, 0),
]


def test_updates_keep_the_rules(tmp_path):
    results = run_lua(tmp_path, slurm.render_job_submit_lua(make_cluster()), MODIFY_CASES, kind="modify")
    for (what, *_, expected), (rc, message) in zip(MODIFY_CASES, results, strict=True):
        assert rc == expected, f"{what}: rc {rc}, expected {expected}"
        # 22.05 drops log_user() in job_modify (and logs an error for it): the script must not call it.
        assert message == "", what


def test_gpu_rule_off_lets_updates_drop_gpus(tmp_path):
    cluster = make_cluster(ailab_policy={**BASE["ailab_policy"], "gpu_required": False})
    case = [("TresPerNode=", 200001, {"tres_per_node": ""}, REC, 0)]
    assert run_lua(tmp_path, slurm.render_job_submit_lua(cluster), case, kind="modify") == [(0, "")]


LUACHECK = shutil.which("luacheck")


@pytest.mark.skipif(LUACHECK is None, reason="luacheck is not installed (apt-get install lua-check)")
@pytest.mark.parametrize("inventory", ["inventory/sim", "inventory/production"])
def test_the_rendered_script_passes_luacheck(tmp_path, inventory):
    from ailab.inventory import load_cluster
    from tests.conftest import ROOT

    cluster, _ = load_cluster(ROOT / inventory)
    script = tmp_path / "job_submit.lua"
    script.write_text(slurm.render_job_submit_lua(cluster))
    # The project's .luacheckrc; the refusal messages are one long line each, as students see them.
    result = subprocess.run(
        [LUACHECK, "--no-color", "--config", str(ROOT / ".luacheckrc"), "--no-max-line-length", str(script)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            "local X = 1\n-- ailab:config:begin\n-- ailab:config:end\n",
            "first line must be the '-- ailab:header'",
        ),
        ("-- ailab:header\nlocal X = 1\n", "needs exactly one '-- ailab:config:begin' line before one"),
        (
            "-- ailab:header\n-- ailab:config:end\n-- ailab:config:begin\n",
            "needs exactly one '-- ailab:config:begin'",
        ),
    ],
)
def test_a_broken_template_is_refused_naming_the_marker(template, problem):
    with pytest.raises(ValueError, match=problem):
        slurm.fill_lua_template(template, "-- header", ["local X = 2"])


def test_the_template_is_filled_between_its_markers():
    template = "-- ailab:header\n-- text\n-- ailab:config:begin\nlocal X = 1\n-- ailab:config:end\nreturn X\n"
    assert (
        slurm.fill_lua_template(template, "-- H", ["local X = 2"]) == "-- H\n-- text\nlocal X = 2\nreturn X\n"
    )
