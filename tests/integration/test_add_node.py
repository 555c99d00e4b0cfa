"""Issue 7: adding a GPU node to the running cluster loses no job.

Jobs run on the existing nodes; a T4 node is added to a COPY of the simulator's inventory; ``Sim(copy).up()``
creates only its container; ``playbooks/add-nodes.yml`` (site.yml between job checks) configures it and
makes the controller and every node learn it.  The old jobs keep running (same start time, no requeue) and
complete; the new node becomes IDLE and runs a job.  Afterwards the node is removed the way an operator
would (drain, converge the original inventory so slurmctld restarts without it, `ailab sim prune`), so the
shared cluster is back as it was: the converge runs site.yml's plays of the roles the addition changed on
the other nodes (/etc/hosts, the Slurm files, Prometheus' targets), all of site.yml if the addition failed.
Marked ``lifecycle``: it runs after every other integration test.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from ailab.monitoring import PROMETHEUS_PORT
from ailab.playbook import run_playbook
from tests.integration.conftest import INVENTORY, explain, record_timing, site_plays

PLAYBOOK = "playbooks/add-nodes.yml"
pytestmark = pytest.mark.lifecycle


def free_address(sim) -> str:
    subnet = ipaddress.ip_network(sim.cluster.sim.subnet)
    used = {ipaddress.ip_address(h.address) for h in sim.cluster.hosts.values()}
    hosts = list(subnet.hosts())[1:]  # the first is the gateway
    return str(next(a for a in reversed(hosts) if a not in used))


def new_node_name(sim) -> str:
    """The next T4 name after the highest (t4-03 after t4-02; t4-53 on a worker's copy with t4-52)."""
    t4 = sim.cluster.node_classes["compute_t4"]
    numbers = [int(name.rpartition("-")[2]) for name in t4.hosts if name.rpartition("-")[2].isdigit()]
    return f"t4-{max(numbers, default=0) + 1:02d}"


def copy_with_node(tmp_path: Path, name: str, address: str) -> Path:
    inventory = tmp_path / "inventory"
    shutil.copytree(INVENTORY, inventory)
    hosts_file = inventory / "hosts.yml"
    data = yaml.safe_load(hosts_file.read_text())
    compute = data["all"]["children"]["sim"]["children"]["compute"]["children"]
    compute["compute_t4"]["hosts"][name] = {"ailab_address": address}
    hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory


def job_state(sim, node: str, job: str) -> str:
    return sim.exec(node, f"sacct -nX -P --duplicates -j {job} -o State,Start,NodeList", check=False).stdout


def wait_state(sim, node: str, job: str, want: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = job_state(sim, node, job)
        if out.startswith(want) or time.monotonic() > deadline:
            return out
        time.sleep(3)


def roles_changed_elsewhere(result, node: str) -> set[str] | None:
    """The roles whose tasks add-nodes.yml changed on the nodes other than ``node`` (what the removal must put
    back); None when the playbook did not run through, or changed something outside a role there."""
    if result is None or not result.ok:
        return None
    roles = set()
    for task, host in result.changed_tasks:
        if host == node:
            continue
        role, sep, _ = task.partition(" : ")
        if not sep:
            return None
        roles.add(role)
    return roles or None


@pytest.fixture
def added(sim, tmp_path):
    from simulator.api import Sim

    name, address = new_node_name(sim), free_address(sim)
    copy = copy_with_node(tmp_path, name, address)
    bigger = Sim(copy)
    jobs: list[str] = []
    added = {"name": name, "inventory": copy, "sim": bigger, "jobs": jobs, "result": None}
    yield added
    # Back to the shared cluster as it was: drain, converge without the node, remove its container.
    ctl = sim.cluster.controllers[0].name
    for job in jobs:  # only left if the test failed half-way
        sim.exec(ctl, f"scancel {job}", check=False)
    sim.exec(ctl, f"scontrol update NodeName={name} State=DRAIN Reason=test-cleanup", check=False)
    sim.exec(ctl, f"scancel --nodelist={name}", check=False)
    roles = roles_changed_elsewhere(added["result"], name)
    back = run_playbook(INVENTORY, str(site_plays(roles, "remove-node")) if roles else "site.yml")
    assert back.ok, f"converging the original inventory failed:\n{explain(back)}"
    record_timing("remove_node_converge_seconds", back.seconds)
    pruned = Sim(INVENTORY).prune()
    assert pruned.containers == [bigger.container(name)], pruned
    listed = sim.exec(ctl, "sinfo --noheader --Node --format=%N").stdout.split()
    assert name not in listed, listed


def test_adding_a_node_loses_no_job(sim, added):
    fe, ctl = sim.cluster.frontends[0].name, sim.cluster.controllers[0].name
    name = added["name"]
    students = sorted(u.name for u in sim.cluster.users.values() if not u.admin)[:2]
    # Each job runs until the test creates its release file (in the user's CephFS home), however long the
    # playbook takes.
    home_root = sim.cluster.ceph.home_root
    release = f".add-node-release-{int(time.time())}"
    wait = f"while [ ! -e {home_root}/$USER/{release} ]; do sleep 2; done"
    jobs = [
        sim.exec(
            fe, f"sbatch --parsable --gres=gpu:1 --time=00:45:00 --wrap '{wait}'", user=user
        ).stdout.strip()
        for user in students
    ]
    added["jobs"].extend(jobs)
    before = {job: wait_state(sim, ctl, job, "RUNNING", timeout=120) for job in jobs}
    for job, state in before.items():
        assert state.startswith("RUNNING|"), (job, state)

    up = added["sim"].up()
    assert up.created == [name], up
    assert set(up.unchanged) >= set(sim.cluster.hosts), "existing containers must be left alone"

    idle_at: list[float] = []
    stop = threading.Event()
    start = time.monotonic()

    def watch() -> None:
        while not stop.is_set():
            # One line per partition the node is in.
            out = sim.exec(ctl, f"sinfo --noheader --Node --nodes={name} --format=%T", check=False).stdout
            if set(out.split()) == {"idle"}:
                idle_at.append(time.monotonic() - start)
                return
            stop.wait(5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = run_playbook(added["inventory"], PLAYBOOK)
    added["result"] = result
    seconds = time.monotonic() - start
    watcher.join(timeout=120)
    stop.set()
    assert result.ok, explain(result)
    # A brand-new node is where "the first converge does real work" is always true (test_common).
    assert result.recap[name].changed > 0, f"converging the new node {name} changed nothing"
    assert idle_at, f"{name} never became IDLE"
    record_timing("add_node_playbook_seconds", seconds)
    record_timing("add_node_start_to_idle_seconds", idle_at[0])
    print(f"\nadd node {name}: playbook {seconds:.0f}s, playbook start -> IDLE {idle_at[0]:.0f}s")

    for job in jobs:
        now = job_state(sim, ctl, job)
        assert now.count("\n") == 1 and now.startswith("RUNNING|"), (job, now)
        assert now.split("|")[1] == before[job].split("|")[1], f"job {job} restarted: {before[job]} -> {now}"
    # Every node and the controller know the new node.
    address = added["sim"].cluster.hosts[name].address
    for host in added["sim"].cluster.hosts:
        assert added["sim"].exec(host, f"getent hosts {name}", check=False).stdout.split()[:1] == [address], (
            host
        )

    # Prometheus scrapes the new node's exporters (role metrics on it, role monitoring's prometheus.yml).
    (monitor,) = sim.cluster.monitoring_hosts
    targets = f"curl -fsS --max-time 10 http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/targets"

    def scraped() -> set[str]:
        data = json.loads(sim.exec(monitor.name, targets).stdout)["data"]["activeTargets"]
        return {t["labels"]["job"] for t in data if t["labels"]["instance"] == name and t["health"] == "up"}

    deadline = time.monotonic() + 120
    while scraped() != {"node", "ailab"} and time.monotonic() < deadline:
        time.sleep(3)
    assert scraped() == {"node", "ailab"}, f"Prometheus does not scrape {name}'s exporters"

    new_job = sim.exec(
        fe,
        f"sbatch --parsable --gres=gpu:1 --time=00:05:00 --nodelist={name} --wrap 'hostname'",
        user=students[0],
    ).stdout.strip()
    finished = wait_state(sim, ctl, new_job, "COMPLETED", timeout=180)
    assert finished.startswith("COMPLETED|") and finished.rstrip().endswith(f"|{name}"), finished
    for user in students:
        sim.exec(fe, f"touch {home_root}/{user}/{release}", user=user)
    for job in jobs:
        done = wait_state(sim, ctl, job, "COMPLETED", timeout=180)
        assert done.count("\n") == 1 and done.startswith("COMPLETED|"), (job, done)
    for user in students:
        sim.exec(fe, f"rm -f {home_root}/{user}/{release}", user=user)
