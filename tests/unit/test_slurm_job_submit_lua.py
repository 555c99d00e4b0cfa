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

# The values job_submit/lua of Slurm 22.05 exports (slurm_errno.h / slurm.h).
HARNESS = r"""
slurm = {
  SUCCESS = 0, ERROR = -1, FAILURE = -1,
  ESLURM_ACCESS_DENIED = 2002, ESLURM_INVALID_TIME_LIMIT = 2051,
  NO_VAL = 4294967294, INFINITE = 4294967295,
  log_user = function(fmt, ...) USER_MSG = string.format(fmt, ...) end,
  log_info = function(...) end,
}
local chunk = assert(loadfile(arg[1]))
assert(chunk() == slurm.SUCCESS, "the script must load cleanly")
local results = {}
for line in io.lines(arg[2]) do
  local uid, fields = string.match(line, "^(%d+)\t(.*)$")
  local job = { time_limit = slurm.NO_VAL }
  for key, value in string.gmatch(fields, "([%w_]+)=([^;]*);") do
    if key == "time_limit" then job[key] = tonumber(value) else job[key] = value end
  end
  USER_MSG = ""
  local rc = slurm_job_submit(job, {}, tonumber(uid))
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


def run_lua(tmp_path, lua_text: str, cases) -> list[tuple[int, str]]:
    script = tmp_path / "job_submit.lua"
    script.write_text(lua_text)
    (tmp_path / "harness.lua").write_text(HARNESS)
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text(
        "".join(
            f"{uid}\t" + "".join(f"{k}={v};" for k, v in fields.items()) + "\n" for _, uid, fields, _ in cases
        )
    )
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
    # A policy text with quotes and backslashes must not break the script.
    lua = slurm.render_job_submit_lua(make_cluster()).replace(
        json.dumps(slurm.job_submit_messages(make_cluster())["no_gpu"]), json.dumps('say "hi" \\ there')
    )
    assert run_lua(tmp_path, lua, [("cpu", 200001, {}, 2002)]) == [(2002, 'say "hi" \\ there')]
