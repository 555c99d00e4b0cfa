"""`make bench`: measure the simulated cluster so every change can be compared against these numbers.

Measures (seconds, MiB): cold `make up` (simulator images removed first: image build + containers + first
converge + demo job), warm `ailab sim up` + converge (containers recreated from cached images), the second
site.yml run (nothing to change), and RAM per node container read from the memory cgroup
(/sys/fs/cgroup/memory/docker/<id>/memory.usage_in_bytes, and RSS from memory.stat).  Prints a table and
JSON (also written to bench-results.json).

The users run (``--users 2000``; ``--only-users`` runs only it, without Docker) times the commands an
operator runs on a full year of students, against issue 11's limits: ``ailab inventory check`` of a scratch
copy of the inventory with N users (one SSH key each), ``ailab users import`` of an N-row form into a copy
with the inventory's own users, and the same import again (nothing to change).  On the simulated cluster
(not with --only-users) it also converges N more users into it, then again with nothing to change, each
against the no-op of the inventory as it is (:func:`users_converge_run`), and times the yearly deletion of
those N students with 1 MB in each home (:func:`deletion_run`).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from ailab.playbook import ROOT, run_playbook

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")


@dataclass
class BenchResult:
    seconds: dict[str, float] = field(default_factory=dict)
    ram_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    # --only-monitoring (ailab.monitoring_bench): scrape durations, the metrics stack's RAM and CPU.
    monitoring: dict[str, dict] = field(default_factory=dict)


def memory_of(container_id: str, root: Path = CGROUP_MEMORY) -> dict[str, float]:
    """usage (page cache included) and rss of one container, in MiB, from its memory cgroup (v1)."""
    base = root / container_id
    usage = int((base / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
    rss = int(stat.get("total_rss", stat.get("rss", 0)))
    return {"usage": round(usage / 2**20, 1), "rss": round(rss / 2**20, 1)}


def render_table(result: BenchResult) -> str:
    rows = [("measurement", "value")]
    rows += [(name, f"{value:.1f} s") for name, value in result.seconds.items()]
    for node, mem in sorted(result.ram_mib.items()):
        rows.append((f"RAM {node}", f"{mem['usage']:.0f} MiB (rss {mem['rss']:.0f} MiB)"))
    if result.ram_mib:
        total = sum(m["usage"] for m in result.ram_mib.values())
        rows.append(("RAM all nodes", f"{total:.0f} MiB"))
    for what, row in result.monitoring.get("idle_resources", {}).items():
        rows.append(
            (
                f"metrics stack: {what} ({row['processes']:.0f} processes)",
                f"RSS {row['rss_mib']:.0f} MiB, PSS {row['pss_mib']:.0f} MiB, "
                f"CPU {row['cpu_percent']:.2f} % of a core",
            )
        )
    for unit, row in result.monitoring.get("timer_units", {}).items():
        rows.append(
            (
                f"every minute: {unit}",
                f"{row['cpu_seconds_per_run']:.2f} s CPU a run, {row['cpu_percent']:.2f} % of a core",
            )
        )
    for target, seconds in result.monitoring.get("scrape_seconds", {}).items():
        rows.append((f"scrape {target}", f"{seconds * 1000:.0f} ms"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.insert(1, "-" * (width + 20))
    return "\n".join(lines)


def timed(result: BenchResult, name: str, action: Callable[[], object]) -> object:
    print(f"==> {name}", flush=True)
    start = time.monotonic()
    value = action()
    result.seconds[name] = round(time.monotonic() - start, 1)
    print(f"    {name}: {result.seconds[name]:.1f}s", flush=True)
    return value


def converge_ok(inventory: Path) -> None:
    outcome = run_playbook(inventory, "site.yml")
    if not outcome.ok:
        raise SystemExit(f"bench: site.yml failed: {outcome.summary()} (log {outcome.log})")


def remove_sim_images(label: str) -> list[str]:
    ids = subprocess.run(
        ["docker", "images", "-q", "--filter", f"label={label}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True, check=False)
    return ids


SCALE_PREFIX = "ailab-scale"
SCALE_SUBNET = "10.214.0.0/24"
LIVE_OR_DONE = ("COMPLETED", "PENDING", "RUNNING", "COMPLETING")


def container_memory(name: str) -> dict[str, float]:
    container_id = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    return memory_of(container_id)


def spread(values: list[float]) -> dict[str, float]:
    """min / median / max of ``values`` (MiB), rounded."""
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 1),
        "median": round(ordered[len(ordered) // 2], 1),
        "max": round(ordered[-1], 1),
    }


def gpu_job_on_every_node(sim, timeout: float = 900) -> float:
    """One ``--gres=gpu:1`` job pinned to each compute node, submitted on the front-end by the students in
    turn; returns the seconds until all of them COMPLETED (raises if one did not)."""
    fe = sim.cluster.frontends[0].name
    students = sorted(u.name for u in sim.cluster.users.values() if not u.admin)
    start = time.monotonic()
    jobs = {}
    for i, node in enumerate(sim.cluster.compute):
        user = students[i % len(students)]
        submit = (
            f"sbatch --parsable --gres=gpu:1 --time=00:05:00 --nodelist={node.name} --wrap 'nvidia-smi -L'"
        )
        jobs[node.name] = sim.exec(fe, submit, user=user).stdout.strip()
    ids = ",".join(jobs.values())
    while True:
        out = sim.exec(fe, f"sacct -nX -P -j {ids} -o JobID,State", check=False).stdout.split()
        states = dict(line.split("|", 1) for line in out if "|" in line)
        if len(states) == len(jobs) and all(v == "COMPLETED" for v in states.values()):
            return time.monotonic() - start
        failed = {
            k: v for k, v in states.items() if v not in ("COMPLETED", "PENDING", "RUNNING", "COMPLETING")
        }
        if failed or time.monotonic() - start > timeout:
            raise SystemExit(f"bench: GPU jobs did not all complete: {failed or states}")
        time.sleep(3)


def up_and_converge(sim, inventory: Path) -> None:
    sim.up()
    converge_ok(inventory)


def scale_run(source: Path, sizes: list[int], result: BenchResult, subnet: str = SCALE_SUBNET) -> None:
    """For each N: a scratch inventory of N GPU nodes from ``source``; up + first converge, a no-op
    converge, one GPU job on every node, RAM per compute container; then the scale cluster is removed."""
    import tempfile

    from ailab.inventory import load_cluster
    from simulator.api import Sim
    from simulator.scale import plan_nodes, write_scale_inventory

    cluster, _ = load_cluster(source)
    for n in sizes:  # every size is checked before the first one starts
        plan_nodes(cluster, n, subnet)
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"ailab-scale-{n}-") as tmp:
            inventory = Path(tmp) / "inventory"
            write_scale_inventory(source, cluster, n, inventory, prefix=SCALE_PREFIX, subnet=subnet)
            sim = Sim(inventory)
            sim.down()
            try:
                timed(result, f"scale {n}: up + first converge", partial(up_and_converge, sim, inventory))
                timed(result, f"scale {n}: no-op converge", partial(converge_ok, inventory))
                seconds = gpu_job_on_every_node(sim)
                result.seconds[f"scale {n}: one GPU job on every node"] = round(seconds, 1)
                time.sleep(5)
                compute = [container_memory(sim.container(h.name)) for h in sim.cluster.compute]
                result.ram_mib[f"scale {n}: compute container (median)"] = {
                    "usage": spread([m["usage"] for m in compute])["median"],
                    "rss": spread([m["rss"] for m in compute])["median"],
                }
                usage, rss = spread([m["usage"] for m in compute]), spread([m["rss"] for m in compute])
                result.notes.append(f"scale {n}: RAM per compute container usage {usage} MiB, rss {rss} MiB")
            finally:
                sim.down()


EMULATE_PREFIX = "ailab-bench-emu"
EMULATE_PROJECT = "cs-ml-2026"  # a project of inventory/production


def emulation_load_script(jobs: int, models: list[str]) -> str:
    """Bash, as root in an emulation: the students of the accounting (not root) submit ``jobs`` tasks in
    all, two job arrays each, of mixed sizes (1, 2 or 4 GPUs, or 1 GPU of a named model), each a 2 s job."""
    sizes = ["--gres=gpu:1", "--gres=gpu:2", "--gres=gpu:4"] + [f"--gres=gpu:{m}:1" for m in models]
    lines = [
        "set -euo pipefail",
        "sdiag --reset >/dev/null",
        "users=($(sacctmgr -nP show assoc format=user | grep -v -x -e '' -e root | sort -u))",
        "n=${#users[@]}",
        f"sizes=({' '.join(sizes)})",
        'for i in "${!users[@]}"; do',
        f"  share=$(( {jobs} / n + (i < {jobs} % n ? 1 : 0) ))",
        "  for k in 0 1; do",
        "    count=$(( k == 0 ? share / 2 : share - share / 2 ))",
        '    [ "$count" -gt 0 ] || continue',
        "    opt=${sizes[$(( (i * 2 + k) % ${#sizes[@]} ))]}",
        # A busy slurmctld can time out a submission (sbatch retries only "temporarily unable"): try again.
        "    for try in 1 2 3 4 5; do",
        "      runuser -u ${users[$i]} -- sbatch --parsable -a 0-$((count - 1)) -o /dev/null --time=5 $opt "
        "--wrap 'sleep 2' >/dev/null && break",
        '      [ "$try" -lt 5 ] || exit 1; sleep 5',
        "    done",
        "  done",
        "done",
    ]
    return "\n".join(lines) + "\n"


def sdiag_counts(text: str) -> dict[str, int]:
    """The job counters of ``sdiag``: submitted, started, completed, failed, ..."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key.startswith("Jobs ") and value.strip().isdigit():
            out[key.removeprefix("Jobs ")] = int(value)
    return out


def _pending(emu) -> int | None:
    """Pending jobs (array tasks counted) in an emulation, or None when squeue failed."""
    out = emu.run(["bash", "-c", "set -o pipefail; squeue -h -r -t PD | wc -l"], capture=True)
    return int(out.stdout) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def _sdiag(emu, tries: int = 30) -> dict[str, int]:
    """sdiag's job counters, asked until slurmctld answers."""
    for _ in range(tries):
        counts = sdiag_counts(emu.run(["sdiag"], capture=True).stdout)
        if counts:
            return counts
        time.sleep(2)
    return {}


def _process_rss(emu, command: str) -> list[float]:
    """RSS (MiB) of every process named ``command`` in an emulation."""
    out = emu.run(["ps", "-o", "rss=", "-C", command], capture=True).stdout
    return [int(x) / 1024 for x in out.split()]


def emulate_run(sizes: list[int], result: BenchResult, users: int = 200, jobs: int = 10_000) -> None:
    """For each N: ``ailab sim emulate`` of a production-like inventory with N GPU nodes in ten classes;
    start time, RAM per emulated node (slurmd RSS), slurmctld RSS, then ``jobs`` queued jobs of mixed
    sizes from ``users`` students and how fast slurmctld starts them (``sdiag``)."""
    import tempfile

    from ailab.inventory import load_cluster
    from simulator.emulate import Emulation
    from simulator.scale import emulation_hosts, write_emulation_inventory

    for n in sizes:
        emulation_hosts(n)  # every size is checked before the first one starts
    production = ROOT / "inventory" / "production"
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"ailab-emulate-{n}-") as tmp:
            inventory = Path(tmp) / "inventory"
            write_emulation_inventory(
                production, n, inventory, bench_users(users, EMULATE_PROJECT), EMULATE_PROJECT
            )
            cluster, _ = load_cluster(inventory)
            emu = Emulation(cluster, str(inventory), prefix=EMULATE_PREFIX)
            emu.down()
            try:
                up = emu.up(timeout=1800, log=lambda text: print(text, file=sys.stderr))
                result.seconds[f"emulate {n}: start, every node idle"] = round(up.seconds, 1)

                rss = partial(_process_rss, emu)
                slurmd = rss("slurmd")
                result.ram_mib[f"emulate {n}: per emulated node (slurmd)"] = {
                    "usage": round(container_memory(emu.name)["usage"] / n, 1),
                    "rss": round(sum(slurmd) / max(len(slurmd), 1), 1),
                }
                result.ram_mib[f"emulate {n}: slurmctld idle"] = {
                    "usage": 0.0,
                    "rss": round(sum(rss("slurmctld")), 1),
                }
                models = sorted(
                    {h.hardware.gpu.model for h in cluster.compute if h.hardware and h.hardware.gpu}
                )
                began = time.monotonic()
                submit = emu.docker.run(
                    ["exec", "-i", emu.name, "bash", "-s"],
                    check=False,
                    input=emulation_load_script(jobs, models),
                    timeout=3600,
                )
                submitted = time.monotonic() - began
                if submit.returncode != 0:  # the limit of this machine: report it, go on with the next size
                    said = (submit.stderr or submit.stdout).strip().splitlines()[-1:]
                    result.notes.append(f"emulate {n}: submitting failed after {submitted:.0f} s: {said}")
                    continue
                while _pending(emu) != 0:  # None: squeue did not answer (slurmctld busy): ask again
                    time.sleep(2)
                seconds = time.monotonic() - began
                counts = _sdiag(emu)
                started = counts.get("started", 0)
                result.seconds[f"emulate {n}: {jobs} jobs submitted"] = round(submitted, 1)
                result.seconds[f"emulate {n}: {jobs} jobs all started"] = round(seconds, 1)
                result.ram_mib[f"emulate {n}: slurmctld after {jobs} jobs"] = {
                    "usage": 0.0,
                    "rss": round(sum(rss("slurmctld")), 1),
                }
                result.notes.append(
                    f"emulate {n}: {started} jobs started in {seconds:.0f} s = "
                    f"{started / seconds:.1f} jobs/s "
                    f"(sdiag {counts}); {users} students, at most "
                    f"{cluster.policy.max_jobs_per_user} running each; submit stderr: "
                    f"{submit.stderr.strip().splitlines()[-1:] or 'none'}"
                )
            finally:
                emu.down()


USERS_LIMITS = {"inventory check": 5.0, "users import": 10.0}  # seconds, issue 11


def bench_users(n: int, project: str, first_uid: int = 300001) -> list[dict]:
    """``n`` distinct ailab_users entries, each with one well-formed ed25519 public key."""
    import base64
    import hashlib
    import struct

    out = []
    for i in range(n):
        key_type = b"ssh-ed25519"
        point = hashlib.sha256(f"bench-{i}".encode()).digest()
        blob = struct.pack(">I", len(key_type)) + key_type + struct.pack(">I", len(point)) + point
        key = f"ssh-ed25519 {base64.b64encode(blob).decode()} bu{i:05d}@bench"
        uid = first_uid + i
        out.append(
            {
                "name": f"bu{i:05d}",
                "uid": uid,
                "gid": uid,
                "full_name": f"Bench User {i}",
                "email": f"bu{i:05d}@student.example.org",
                "project": project,
                "ssh_keys": [key],
            }
        )
    return out


def copy_with_users(source: Path, dest: Path, n: int) -> str:
    """A copy of the inventory ``source`` at ``dest`` with :func:`bench_users` ``n`` more users; the project
    they are in."""
    import shutil

    import yaml

    from ailab.onboarding import find_users_file

    shutil.copytree(source, dest)
    users_path = find_users_file(dest)
    data = yaml.safe_load(users_path.read_text())
    project = data["ailab_projects"][0]["name"] if data.get("ailab_projects") else "course-ml"
    data["ailab_users"] = [*(data.get("ailab_users") or []), *bench_users(n, project)]
    users_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return project


def bench_form(n: int, project: str) -> str:
    """An ``n``-row form export as a form tool writes it: an ID and time columns besides the ones read."""
    lines = ["ID,Start time,Completion time,Username,Full name,Email,Project,Supervisor"]
    lines += [
        f"{i + 1},2026-09-01 10:00,2026-09-01 10:05,fu{i:05d},Form User {i},fu{i:05d}@student.example.org,"
        f"{project},Prof. Bench"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def users_run(source: Path, n: int, result: BenchResult) -> None:
    """Time ``ailab inventory check`` with ``n`` users and ``ailab users import`` of an ``n``-row form, each
    as the command an operator runs (a new Python process), on scratch copies of ``source``."""
    import os
    import shutil
    import tempfile

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
    }

    def ailab(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "ailab.cli", *args], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise SystemExit(f"bench: ailab {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        print(f"    {done.stdout.strip().splitlines()[-1]}", flush=True)

    with tempfile.TemporaryDirectory(prefix=f"ailab-users-{n}-") as tmp:
        checked = Path(tmp) / "check"
        project = copy_with_users(source, checked, n)
        check = f"users {n}: inventory check"
        timed(result, check, partial(ailab, "inventory", "check", "-i", str(checked)))

        target = Path(tmp) / "import"
        shutil.copytree(source, target)
        form = Path(tmp) / "form.csv"
        form.write_text(bench_form(n, project))
        imported = f"users {n}: users import of {n} rows"
        timed(result, imported, partial(ailab, "users", "import", str(form), "-i", str(target)))
        again = f"users {n}: users import again (no change)"
        timed(result, again, partial(ailab, "users", "import", str(form), "-i", str(target)))
    for name, limit in ((check, USERS_LIMITS["inventory check"]), (imported, USERS_LIMITS["users import"])):
        verdict = "within" if result.seconds[name] <= limit else "OVER"
        result.notes.append(
            f"{name}: {result.seconds[name]:.1f} s, {verdict} the {limit:.0f} s limit (issue 11)"
        )


USERS_CONVERGE_LIMITS = {"added": 120.0, "no-op": 30.0}  # seconds over the inventory's own no-op, issue 11
DELETION_LIMIT = 300.0  # seconds for the yearly deletion of 2,000 students, issue 11
OPS_CONFIG = "/etc/ailab/ops.json"


def scratch_ops_config(deployed: dict, directory: str, cluster: str, names: set[str] | None = None) -> dict:
    """The front-end's deployed ops.json as a run outside the timers uses it (this bench, the integration
    tests): its own state files and manifests in ``directory``, its own ``cluster`` name (every mail
    subject starts with it), and only the users in ``names`` (all when None).  Role accounts' and role
    directory's state files point into ``directory`` too, where they are absent: with the real ones every
    user the copy does not list would look removed from the inventory and become a deletion target."""
    data = dict(deployed)
    data["cluster"] = cluster
    if names is not None:
        data["users"] = [u for u in deployed["users"] if u["name"] in names]
    for key, file in (
        ("retention_state", "retention.json"),
        ("maintenance_state", "maintenance.json"),
        ("accounts_state", "managed-accounts.json"),
    ):
        data[key] = f"{directory}/{file}"
    if data.get("directory_state"):
        data["directory_state"] = f"{directory}/directory-users.json"
    data["manifest_dir"] = f"{directory}/manifests"
    return data


def deletion_run(inventory: Path, names: list[str], result: BenchResult) -> None:
    """On the simulated cluster converged with ``names`` as students: 1 MB into each of their homes, the
    last notice on 30 July, then the 1 August deletion timed, run on the front-end as the timer runs it,
    with a configuration of the deployed one that lists only them (its own record and manifest)."""
    import shlex

    from simulator.api import Sim

    sim = Sim(inventory)
    fe = sim.cluster.frontends[0].name
    home_root = sim.cluster.ceph.home_root
    directory = "/root/ailab-bench-deletion"
    deployed = json.loads(sim.exec(fe, f"cat {OPS_CONFIG}").stdout)
    config = json.dumps(scratch_ops_config(deployed, directory, "bench", set(names)), indent=2)
    sim.exec(fe, f"rm -rf {directory} && mkdir -p {directory} && cat > {directory}/ops.json", input=config)
    fill = (
        f"cd {shlex.quote(home_root)} && for u in {' '.join(names)}; do "
        'head -c 1048576 /dev/urandom > "$u/bench.bin" && chown --reference="$u" "$u/bench.bin" || exit 1; '
        "done"
    )
    timed(result, f"deletion {len(names)}: 1 MB into each home", lambda: sim.exec(fe, fill))
    tool = f"/usr/local/sbin/ailab-retention --config {directory}/ops.json"
    timed(
        result,
        f"deletion {len(names)}: notices of 30 July",
        lambda: sim.exec(fe, f"{tool} --now 2026-07-30 run"),
    )
    name = f"deletion {len(names)}: yearly deletion of 1 August (1 MB homes)"
    out = timed(result, name, lambda: sim.exec(fe, f"{tool} --now 2026-08-01 run")).stdout
    deleted = out.count("\ndeleted ") + out.startswith("deleted ")
    left = sim.exec(
        fe, f"cd {shlex.quote(home_root)} && ls -d {' '.join(names)} 2>/dev/null | wc -l", check=False
    )
    sim.exec(fe, f"rm -rf {directory}", check=False)
    verdict = "within" if result.seconds[name] <= DELETION_LIMIT else "OVER"
    result.notes.append(
        f"{name}: {deleted} deleted, {left.stdout.strip()} homes left, manifest first; {verdict} the "
        f"{DELETION_LIMIT:.0f} s limit (issue 11)"
    )


def users_converge_run(source: Path, n: int, result: BenchResult) -> None:
    """On the running, converged simulated cluster of ``source``: site.yml with nothing to change, then with
    ``n`` more users (a scratch copy of the inventory: directory entries, homes with quotas, Slurm
    associations), then again with nothing to change; the yearly deletion of the ``n`` (their homes and
    associations go); then ``source`` again (their directory entries go)."""
    import tempfile

    base = f"users {n}: no-op site.yml with the inventory's own users"
    timed(result, base, partial(converge_ok, source))
    with tempfile.TemporaryDirectory(prefix=f"ailab-users-converge-{n}-") as tmp:
        bigger = Path(tmp) / source.name
        copy_with_users(source, bigger, n)
        added = f"users {n}: site.yml adding {n} users"
        timed(result, added, partial(converge_ok, bigger))
        noop = f"users {n}: no-op site.yml with {n} more users"
        timed(result, noop, partial(converge_ok, bigger))
        deletion_run(bigger, [u["name"] for u in bench_users(n, "")], result)
    timed(result, f"users {n}: site.yml back to the inventory's own users", partial(converge_ok, source))
    for name, limit in ((added, USERS_CONVERGE_LIMITS["added"]), (noop, USERS_CONVERGE_LIMITS["no-op"])):
        extra = result.seconds[name] - result.seconds[base]
        verdict = "within" if extra <= limit else "OVER"
        result.notes.append(
            f"{name}: +{extra:.1f} s over the no-op, {verdict} the +{limit:.0f} s limit (issue 11)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventory/sim")
    parser.add_argument("--skip-cold", action="store_true", help="keep cached images (no cold build)")
    parser.add_argument("--json", default=str(ROOT / "bench-results.json"))
    parser.add_argument("--force", action="store_true", help="remove an existing simulated cluster first")
    parser.add_argument(
        "--scale",
        default="8,32,64",
        help="GPU node counts of the scale run, comma-separated (empty: no scale run)",
    )
    parser.add_argument("--only-scale", action="store_true", help="only the scale run (leaves the cluster)")
    parser.add_argument(
        "--emulate",
        default="100,300,1000",
        help="GPU node counts of the scheduler emulation run (ailab sim emulate; empty: none)",
    )
    parser.add_argument(
        "--only-emulate", action="store_true", help="only the emulation run (no simulated cluster)"
    )
    parser.add_argument(
        "--users",
        default="2000",
        help="users of the users run (inventory check, users import; empty: no users run)",
    )
    parser.add_argument(
        "--only-users", action="store_true", help="only the users run (no Docker, no simulated cluster)"
    )
    parser.add_argument(
        "--only-monitoring",
        action="store_true",
        help="only the metrics stack's cost on the running, converged cluster (ailab.monitoring_bench)",
    )
    parser.add_argument(
        "--only-filters",
        type=int,
        metavar="N",
        help="only the model filters' controller cost at N GPU nodes (no simulator: ailab.filter_bench)",
    )
    args = parser.parse_args(argv)
    if args.only_filters is not None:
        from ailab import filter_bench

        return filter_bench.main(["--nodes", str(args.only_filters)])

    def counts(option: str, text: str, example: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            parser.error(f"{option} {text!r}: write {example}")

    sizes = counts("--scale", args.scale, "node counts like 8,32,64")
    user_counts = counts("--users", args.users, "a user count like 2000")
    emulate_sizes = counts("--emulate", args.emulate, "node counts like 100,300,1000")
    if args.only_emulate:
        result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})
        emulate_run(emulate_sizes, result)
        return report(result, Path(args.json))
    if any(n < 1 for n in user_counts):
        parser.error(f"--users {args.users!r}: counts must be 1 or more")
    if args.only_users:
        result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})
        for n in user_counts:
            users_run(Path(args.inventory), n, result)
        return report(result, Path(args.json))

    from simulator.api import Sim
    from simulator.plan import LABEL_IMAGE

    if args.only_monitoring:
        from ailab import monitoring_bench

        result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})
        monitoring_bench.run(Sim(Path(args.inventory)), result)
        return report(result, Path(args.json))

    if args.only_scale:
        result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})
        scale_run(Path(args.inventory), sizes, result)
        return report(result, Path(args.json))
    inventory = Path(args.inventory)
    sim = Sim(inventory)
    result = BenchResult(machine={"cpus": str(_cpus()), "kernel": platform.release()})

    running = [s.name for s in sim.status() if s.state != "absent"]
    if running and not args.force:
        print(
            f"bench: the simulated cluster of {inventory} exists ({', '.join(running)}); the bench removes "
            "and rebuilds it. Run `make down` first, or pass --force (make bench BENCH_ARGS=--force).",
            file=sys.stderr,
        )
        return 2
    sim.down()
    if not args.skip_cold:
        removed = remove_sim_images(LABEL_IMAGE)
        result.notes.append(f"cold: removed {len(removed)} cached simulator image(s)")

        def cold_up() -> None:
            sim.up()
            converge_ok(inventory)
            from ailab.demo import run_demo

            if run_demo(str(inventory)) != 0:
                raise SystemExit("bench: the demo job failed")

        timed(result, "cold make up (build + up + converge + demo job)", cold_up)
        sim.down()
    timed(result, "warm sim up (cached images)", sim.up)
    timed(result, "warm first converge", lambda: converge_ok(inventory))
    timed(result, "second site.yml run (no changes)", lambda: converge_ok(inventory))
    time.sleep(5)  # let services settle before reading memory
    for status in sim.status():
        result.ram_mib[status.name] = container_memory(status.container)
    for n in user_counts:
        users_converge_run(inventory, n, result)
    if sizes:
        sim.down()
        scale_run(inventory, sizes, result)
    for n in user_counts:
        users_run(inventory, n, result)
    if emulate_sizes:
        emulate_run(emulate_sizes, result)
    return report(result, Path(args.json))


def report(result: BenchResult, path: Path) -> int:
    print(render_table(result))
    for note in result.notes:
        print(f"note: {note}")
    text = json.dumps(asdict(result), indent=2)
    print(text)
    path.write_text(text + "\n")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
