"""Issue 14: a lost controller is rebuilt from its backup without losing a job or the accounting history.

A student's job runs; ``ailab-backup run`` (what the daily timer starts) backs up the controller and the
operations host to the shared backup volume (the site's backup server); the controller's container is
removed with its disk (``Sim.destroy``), created again empty (``Sim.up``) and ``site.yml`` rebuilds it.
Its converge restores slurmctld's state and the accounting database before the daemons first start: the job
is still RUNNING with its id, the job history is in sacct, the next job id follows the old ones and a second
converge keeps what is there.  The operations host's state is restored from its backup the same way (its
directory moved aside and back).  Marked ``lifecycle``: it runs after every other integration test.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import explain, record_timing
from tests.integration.slurm_helpers import submit, submitted, wait_for

pytestmark = [pytest.mark.lifecycle, pytest.mark.usefixtures("cancel_leftover_jobs")]
OPS_STATE = "/var/lib/ailab"
SAVE_MAX_WAIT = 5  # seconds


def squeue_state(sim, ctl: str, job: str) -> str:
    return sim.exec(ctl, f"squeue -h -j {job} -o %T", check=False).stdout.strip()


def test_the_backup_destination_is_a_mount_of_its_own(sim, ctl, fe):
    dest = sim.cluster.backup.destination
    for node in (ctl, fe):
        out = sim.exec(node, "ailab-backup check").stdout
        assert out.startswith(f"{dest}: usable"), out
        # The timer is enabled and runs at the inventory's time.
        timer = sim.exec(node, "systemctl show -P UnitFileState ailab-backup.timer").stdout.strip()
        assert timer == "enabled"
    compute = sim.cluster.compute[0].name
    assert sim.exec(compute, "test -e /etc/ailab/backup.json", check=False).returncode == 1


def test_a_rebuilt_controller_gets_its_jobs_and_accounting_back(sim, ctl, fe, converge):
    # Both at once (the T4 nodes have room for both): one finishes, the other runs through the rebuild.
    done = submitted(submit(sim, fe, "student1", "-p t4 --gres=gpu:1 -t 5", "#!/bin/bash\ntrue\n"))
    running = submitted(submit(sim, fe, "student2", "-p t4 --gres=gpu:1 -t 20", "#!/bin/bash\nsleep 1200\n"))
    try:
        wait_for(f"job {done} to complete", lambda: squeue_state(sim, ctl, done) == "", timeout=120)
        rebuild_and_check(sim, ctl, fe, converge, done, running)
    finally:
        # What a failure can leave behind: the job, and its record in slurmdbd as RUNNING if the rebuilt
        # slurmctld never knew it (a "runaway" job, which would keep sacctmgr from deleting student2).
        sim.exec(ctl, f"scancel {running}", check=False)
        sim.exec(ctl, "sacctmgr -i show runawayjobs", check=False)


def rebuild_and_check(sim, ctl: str, fe: str, converge, done: str, running: str) -> None:
    wait_for(f"job {running} to run", lambda: squeue_state(sim, ctl, running) == "RUNNING", timeout=120)
    # slurmctld saves its state at most SAVE_MAX_WAIT (5 s, src/slurmctld/state_save.c) after a change: a
    # backup taken sooner holds the job as it was before it started (or not at all).  The daily backup
    # always lags what happened since; the test waits so the job it checks is in the copy.
    time.sleep(SAVE_MAX_WAIT + 1)

    out = sim.exec(ctl, "ailab-backup run").stdout
    assert "wrote " in out and "accounting, slurmctld" in out, out
    listed = sim.exec(ctl, "ailab-backup list").stdout.splitlines()
    assert listed and listed[-1].startswith(f"{sim.cluster.backup.destination}/{ctl}/{ctl}-")

    sim.destroy(ctl)
    sim.up()
    assert sim.exec(ctl, "test -e /var/lib/slurm/slurmctld/job_state", check=False).returncode == 1
    result = converge()
    record_timing("controller_rebuild_converge_seconds", result.seconds)
    assert result.ok, f"the converge did not rebuild {ctl}:\n{explain(result)}"
    restored = {task for task, host in result.changed_tasks if host == ctl and "Restore" in task}
    assert restored, f"nothing was restored on {ctl}: {result.changed_tasks}"

    assert squeue_state(sim, ctl, running) == "RUNNING"
    history = sim.exec(ctl, f"sacct -X -n -P -j {done},{running} -o JobID,User,State").stdout.split()
    assert history == [f"{done}|student1|COMPLETED", f"{running}|student2|RUNNING"]
    after = submitted(submit(sim, fe, "student1", "-p t4 --gres=gpu:1 -t 5", "#!/bin/bash\ntrue\n"))
    assert int(after) > int(running)

    # The rebuilt controller's second converge keeps what is there: site.yml on it alone (the other nodes'
    # second run is the session's own, test_common).
    again = converge("site.yml", "--limit", ctl)
    assert again.ok and ctl in again.recap, explain(again)
    assert not [t for t, h in again.changed_tasks if h == ctl], explain(again)
    sim.exec(ctl, f"scancel {after}", check=False)


def test_the_operations_state_comes_back_on_a_rebuilt_operations_host(sim, fe):
    ops = sim.cluster.operations_host
    listing = f"cd {OPS_STATE} && find . -type f -print0 | sort -z | xargs -0r sha256sum"
    sim.exec(
        ops, f"mkdir -p {OPS_STATE} && echo '{json.dumps({'test': 'ops'})}' > {OPS_STATE}/backup-test.json"
    )
    before = sim.exec(ops, listing).stdout
    assert sim.exec(ops, "ailab-backup run").returncode == 0
    aside = f"{OPS_STATE}.test-aside"
    sim.exec(ops, f"mv {OPS_STATE} {aside} && mkdir -m 0755 {OPS_STATE}")
    try:
        out = sim.exec(ops, "ailab-backup restore --if-empty").stdout
        assert f"operations: restored {OPS_STATE}" in out, out
        assert sim.exec(ops, listing).stdout == before
        # A second restore leaves the state that is there alone.
        assert "left alone" in sim.exec(ops, "ailab-backup restore --if-empty").stdout
    finally:
        sim.exec(ops, f"rm -rf {OPS_STATE} && mv {aside} {OPS_STATE} && rm -f {OPS_STATE}/backup-test.json")
