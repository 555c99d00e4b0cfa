"""Issue 3: Slurm on the simulated cluster, used the way a student uses it from the front-end.

Every wait polls with a deadline; jobs are short and cancelled in ``finally`` blocks, and a GPU a test breaks
is restored even when the test fails.  Job output goes to /tmp on the compute node (read back there), so
these tests do not depend on the CephFS homes.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from ailab.gpus import GPU_MODELS
from ailab.hostlist import expand
from ailab.slurm import HEALTH_CHECK_INTERVAL, job_submit_messages
from tests.integration import slurm_helpers
from tests.integration.conftest import INVENTORY, explain, site_plays
from tests.integration.slurm_helpers import (
    STUDENTS,
    TERMINAL,
    job_output,
    submitted,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

JOB_SCRIPT = """#!/bin/bash
echo "host=$(hostname)"
echo "cvd=${CUDA_VISIBLE_DEVICES:-unset}"
nvidia-smi -L
"""


def submit(sim, fe: str, user: str, options: str, script: str = JOB_SCRIPT):
    return slurm_helpers.submit(sim, fe, user, options, script)


def job_info(sim, ctl: str, job: str) -> dict[str, str]:
    out = sim.exec(
        ctl, f"sacct -X -n -P -j {job} -o State,NodeList,Partition,AllocTRES,User", check=False
    ).stdout.strip()
    if not out:
        return {}
    state, nodes, partition, tres, user = out.splitlines()[0].split("|")
    return {"state": state.split()[0], "nodes": nodes, "partition": partition, "tres": tres, "user": user}


def wait_done(sim, ctl: str, job: str, timeout: float = 90) -> dict[str, str]:
    return wait_for(
        f"job {job} to finish",
        # slurmdbd fills a short job's record in steps: the partition can come a second after COMPLETED.
        lambda: (
            (info := job_info(sim, ctl, job)) and info["state"] in TERMINAL and info["partition"] and info
        ),
        timeout,
    )


def queue_state(sim, ctl: str, job: str) -> tuple[str, str]:
    out = sim.exec(ctl, f"squeue -h -j {job} -o '%T|%r'", check=False).stdout.strip()
    return tuple(out.split("|", 1)) if out else ("", "")  # type: ignore[return-value]


def node_state(sim, fe: str, node: str) -> tuple[str, str]:
    out = sim.exec(fe, f"sinfo -h -N -n {node} -o '%T|%E'").stdout.strip().splitlines()[0]
    state, reason = out.split("|", 1)
    return state, reason


def all_idle(sim, fe: str) -> bool:
    states = sim.exec(fe, "sinfo -h -N -o '%N %T'").stdout.split("\n")
    return all(line.split()[1] == "idle" for line in states if line.strip())


def test_every_node_idle_in_its_partitions(sim, fe):
    wait_for("every compute node to be idle", lambda: all_idle(sim, fe), timeout=120)
    rows = [line.split() for line in sim.exec(fe, "sinfo -h -N -o '%N %P %T'").stdout.splitlines()]
    seen: dict[str, set[str]] = {}
    for node, partition, state in rows:
        assert state == "idle", (node, partition, state)
        seen.setdefault(node, set()).add(partition.rstrip("*"))
    expected = {
        h.name: {p.name for p in sim.cluster.partitions if h.name in p.nodes} for h in sim.cluster.compute
    }
    assert seen == expected
    default = [line for line in sim.exec(fe, "sinfo -h -o '%P'").stdout.split() if line.endswith("*")]
    assert default == [next(p.name for p in sim.cluster.partitions if p.default) + "*"]
    # Slurm reads our compressed hostlists as ailab.hostlist does.
    for partition in sim.cluster.partitions:
        compressed = sim.exec(fe, f"sinfo -h -p {partition.name} -o %N").stdout.strip()
        by_slurm = sim.exec(fe, f"scontrol show hostnames {compressed}").stdout.split()
        assert sorted(by_slurm) == sorted(expand(compressed)) == list(partition.nodes)


def test_gpu_jobs_run_and_see_exactly_their_gpus(sim, fe, ctl):
    one = submitted(submit(sim, fe, "student1", "--gres=gpu:1 --time=00:05:00"))
    two = submitted(submit(sim, fe, "student2", "--gres=gpu:2 --time=00:05:00"))
    try:
        for job, count, user in ((one, 1, "student1"), (two, 2, "student2")):
            info = wait_done(sim, ctl, job)
            assert info["state"] == "COMPLETED", info
            node = sim.cluster.hosts[info["nodes"]]
            assert node.in_group("compute")
            out = job_output(sim, fe, user, job)
            assert f"host={node.name}" in out
            cvd = re.search(r"^cvd=(.*)$", out, re.M).group(1)
            assert cvd == ",".join(str(i) for i in range(count)), out
            listed = [line for line in out.splitlines() if line.startswith("GPU ")]
            assert len(listed) == count, out  # the device cgroup hides the node's other GPUs
            product = GPU_MODELS[node.hardware.gpu.model].product
            assert all(product in line for line in listed), out
            # sacct shows the GPU TRES, in total and by model.
            model = node.hardware.gpu.model
            assert f"gres/gpu={count}" in info["tres"] and f"gres/gpu:{model}={count}" in info["tres"], info
    finally:
        sim.exec(ctl, f"scancel {one} {two}", check=False)


def test_typed_request_lands_on_that_class(sim, fe, ctl):
    a40 = submitted(submit(sim, fe, "student1", "--gres=gpu:a40:1 --time=00:05:00"))
    t4 = submitted(submit(sim, fe, "student2", "-p t4 --gpus=1 --time=00:05:00"))
    try:
        info = wait_done(sim, ctl, a40)
        assert info["state"] == "COMPLETED" and sim.cluster.hosts[info["nodes"]].in_group("compute_a40"), info
        assert "gres/gpu:a40=1" in info["tres"]
        info = wait_done(sim, ctl, t4)
        assert info["state"] == "COMPLETED" and sim.cluster.hosts[info["nodes"]].in_group("compute_t4"), info
        assert info["partition"] == "t4"
    finally:
        sim.exec(ctl, f"scancel {a40} {t4}", check=False)


@pytest.mark.parametrize(
    "options",
    ["--gres=gpu:1", "--gres=gpu:t4:1", "--gpus=1", "--gpus-per-node=1", "--gpus-per-task=1 --ntasks=1"],
)
def test_every_way_of_asking_for_a_gpu_is_accepted(sim, fe, ctl, options):
    result = submit(sim, fe, "student1", f"{options} --time=00:01:00 --hold", "#!/bin/bash\ntrue\n")
    job = submitted(result)
    sim.exec(ctl, f"scancel {job}", check=False)


@pytest.mark.parametrize("options", ["", "--cpus-per-task=2", "--mem=100M --time=00:05:00", "--gres=gpu:0"])
def test_cpu_only_job_is_refused_with_the_rule(sim, fe, options):
    result = submit(sim, fe, "student1", options)
    assert result.returncode != 0, f"a CPU-only job was accepted: {result.stdout}"
    message = job_submit_messages(sim.cluster)["no_gpu"]
    assert message in result.stderr
    assert "usage guideline 5" in result.stderr and "--gres=gpu:1" in result.stderr


def test_job_over_twelve_hours_is_refused_at_submission(sim, fe):
    result = submit(sim, fe, "student1", "--gres=gpu:1 --time=13:00:00")
    assert result.returncode != 0, f"a 13-hour job was accepted: {result.stdout}"
    assert job_submit_messages(sim.cluster)["too_long"] in result.stderr
    assert "usage guideline 4" in result.stderr


def test_partition_limit_refuses_long_jobs_even_where_job_submit_lua_does_not(sim, fe):
    # root is exempt from job_submit.lua: EnforcePartLimits=ALL alone must still refuse a 13-hour job.
    result = sim.exec(fe, "sbatch --chdir=/tmp --gres=gpu:1 --time=13:00:00 --wrap true", check=False)
    assert result.returncode != 0, f"a 13-hour job was accepted: {result.stdout}"
    assert "Requested time limit is invalid" in result.stderr


def test_student_over_the_gpu_limit_is_held(sim, fe, ctl):
    limit = sim.cluster.policy.max_gpus_per_user
    sleeper = "#!/bin/bash\nsleep 300\n"
    first = submitted(submit(sim, fe, "student3", f"--gres=gpu:{limit} --time=00:10:00", sleeper))
    second = ""
    try:
        wait_for(f"job {first} to run", lambda: queue_state(sim, ctl, first)[0] == "RUNNING", timeout=60)
        second = submitted(submit(sim, fe, "student3", "--gres=gpu:1 --time=00:05:00"))
        wait_for(
            f"job {second} to be held by the QOS",
            lambda: queue_state(sim, ctl, second) == ("PENDING", "QOSMaxGRESPerUser"),
            timeout=60,
        )
        # GPUs are free elsewhere, but the job must not start while the user is at the limit.
        for _ in range(3):
            time.sleep(2)
            assert queue_state(sim, ctl, second) == ("PENDING", "QOSMaxGRESPerUser")
        assert job_info(sim, ctl, second)["state"] == "PENDING"
    finally:
        sim.exec(ctl, f"scancel {first} {second}".strip(), check=False)


def test_gpu_failure_drains_the_node_and_repair_resumes_it(sim, fe):
    node = sim.cluster.hosts["t4-02"] if "t4-02" in sim.cluster.hosts else sim.cluster.compute[-1]
    product = GPU_MODELS[node.hardware.gpu.model].product
    wait_for(f"{node.name} to be idle", lambda: node_state(sim, fe, node.name)[0] == "idle", timeout=120)
    # The interval slurmd runs the check at: the rendered HEALTH_CHECK_INTERVAL unless the inventory's
    # ailab_slurm.extra_config sets it (inventory/sim: 10 s).
    interval = int(dict(sim.cluster.slurm.extra_config).get("HealthCheckInterval", HEALTH_CHECK_INTERVAL))
    assert show_config(sim, fe)["HealthCheckInterval"] == f"{interval} sec"
    deadline = 3 * interval + 30
    sim.gpu_fail(node.name, 1)
    try:
        _state, reason = wait_for(
            f"{node.name} to be drained by the health check",
            lambda: (s := node_state(sim, fe, node.name))[0] in ("drained", "draining") and s,
            timeout=deadline,
        )
        assert reason.startswith(f"gpu-health: GPU 1 ({product}) missing"), reason
        assert f"expected {node.hardware.gpu.count}x {node.hardware.gpu.model}" in reason
    finally:
        sim.gpu_restore(node.name, 1)
    wait_for(
        f"{node.name} to be resumed once its GPU is back",
        lambda: node_state(sim, fe, node.name) == ("idle", "none"),
        timeout=deadline,
    )


def test_operator_drain_is_not_resumed_by_the_health_check(sim, fe, ctl):
    node = sim.cluster.compute[0].name
    sim.exec(ctl, f"scontrol update nodename={node} state=drain reason='maintenance by test'")
    try:
        out = sim.exec(node, "/usr/local/sbin/ailab-gpu-health").stdout  # what slurmd runs, right now
        assert "action: none" in out
        assert node_state(sim, fe, node) in (
            ("drained", "maintenance by test"),
            ("draining", "maintenance by test"),
        )
    finally:
        sim.exec(ctl, f"scontrol update nodename={node} state=resume")


def test_running_job_survives_a_slurmctld_restart(sim, fe, ctl):
    job = submitted(submit(sim, fe, "student1", "--gres=gpu:1 --time=00:05:00", "#!/bin/bash\nsleep 15\n"))
    try:
        wait_for(f"job {job} to run", lambda: queue_state(sim, ctl, job)[0] == "RUNNING", timeout=60)
        sim.exec(ctl, "systemctl restart slurmctld")
        wait_for(
            "slurmctld to answer", lambda: "UP" in sim.exec(ctl, "scontrol ping", check=False).stdout, 60
        )
        assert wait_done(sim, ctl, job)["state"] == "COMPLETED"
    finally:
        sim.exec(ctl, f"scancel {job}", check=False)


def test_daemons_where_they_belong(sim, fe, ctl):
    assert sim.exec(fe, "systemctl is-active slurmd", check=False).stdout.strip() != "active"
    assert sim.exec(fe, "dpkg-query -W -f '${Status}' slurmd", check=False).stdout.find("installed") < 0
    for unit in ("munge", "mariadb", "slurmdbd", "slurmctld"):
        assert sim.exec(ctl, f"systemctl is-active {unit}").stdout.strip() == "active", unit
    after = sim.exec(ctl, "systemctl show -p After --value slurmctld").stdout
    assert "slurmdbd.service" in after
    for node in sim.cluster.compute:
        assert sim.exec(node.name, "systemctl is-active slurmd").stdout.strip() == "active", node.name
    config = show_config(sim, fe)
    assert config["EnforcePartLimits"] == "ALL"
    assert config["TaskPlugin"] == "task/cgroup"
    assert config["JobSubmitPlugins"] == "lua"
    assert config["AccountingStorageEnforce"] == "associations,limits,qos"
    assert config["HealthCheckProgram"] == "/usr/local/sbin/ailab-gpu-health"


def show_config(sim, host: str) -> dict[str, str]:
    """`scontrol show config`: what slurmctld runs with, as key -> value."""
    return {
        key.strip(): value.strip()
        for key, _, value in (
            line.partition(" = ") for line in sim.exec(host, "scontrol show config").stdout.splitlines()
        )
        if value
    }


def slurmctld_pid(sim, ctl: str) -> str:
    return sim.exec(ctl, "systemctl show -p MainPID --value slurmctld").stdout.strip()


def test_operators_extra_config_reaches_every_node_and_slurmctld(sim, fe, ctl, converge):
    """ailab_slurm.extra_config (issue 15): the inventory's MessageTimeout is in slurm.conf on every Slurm
    host and in slurmctld; changing it is applied by `scontrol reconfigure`, without a slurmctld restart,
    and a running job is untouched.  The test puts the inventory's value back."""
    extra = dict(sim.cluster.slurm.extra_config)
    assert extra.get("MessageTimeout"), "inventory/sim sets ailab_slurm.extra_config.MessageTimeout"
    slurm_hosts = [h.name for h in (*sim.cluster.controllers, *sim.cluster.compute, *sim.cluster.frontends)]
    for host in slurm_hosts:
        lines = sim.exec(host, "cat /etc/slurm/slurm.conf").stdout.splitlines()
        for key, value in extra.items():
            assert f"{key}={value}" in lines, (host, key)
    assert show_config(sim, fe)["MessageTimeout"] == f"{extra['MessageTimeout']} sec"

    raw = yaml.safe_load((INVENTORY / "group_vars/all/cluster.yml").read_text())["ailab_slurm"]
    changed = {**raw, "extra_config": {**raw["extra_config"], "MessageTimeout": 25}}
    plays = str(site_plays({"slurm_controller", "slurm_compute", "slurm_client"}, "slurm-plays"))
    pid = slurmctld_pid(sim, ctl)
    job = submitted(submit(sim, fe, STUDENTS[0], "--gres=gpu:1 --time=10", "#!/bin/bash\nsleep 300\n"))
    try:
        wait_for(f"job {job} to run", lambda: job_info(sim, ctl, job).get("state") == "RUNNING", 60)
        result = converge(plays, "-e", json.dumps({"ailab_slurm": changed}))
        assert result.ok, explain(result)
        assert show_config(sim, fe)["MessageTimeout"] == "25 sec"
        for host in slurm_hosts:
            assert "MessageTimeout=25" in sim.exec(host, "cat /etc/slurm/slurm.conf").stdout, host
        assert slurmctld_pid(sim, ctl) == pid, "a reconfigure key restarted slurmctld"
        assert job_info(sim, ctl, job)["state"] == "RUNNING"
    finally:
        sim.exec(fe, f"scancel {job}", check=False)
        restored = converge(plays)
    assert restored.ok, explain(restored)
    assert show_config(sim, fe)["MessageTimeout"] == f"{extra['MessageTimeout']} sec"


# One munge key, private, the same as the Ansible controller's copy: role munge's scenario
# (molecule/munge/tests/).


def test_accounting_matches_the_inventory(sim, ctl):
    out = sim.exec(ctl, "sacctmgr -nP show assoc format=account,user,qos,defaultqos").stdout
    assocs = {tuple(line.split("|")[:2]): line.split("|")[2:] for line in out.splitlines()}
    for user in sim.cluster.users.values():
        assert assocs[(user.project, user.name)] == ["ailab", "ailab"], user.name
    qos = sim.exec(ctl, "sacctmgr -nP show qos ailab format=maxtrespu").stdout.strip()
    assert qos == f"gres/gpu={sim.cluster.policy.max_gpus_per_user}"
