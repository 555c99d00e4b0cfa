"""jobstats: how much of what a Slurm job asked for it used -- CPU, memory, GPUs -- with plain hints.

    jobstats JOBID                      one job, running or finished: requested vs used, efficiency, hints
    jobstats --recent [--jobs N] [--days D]
                                        one line per finished job of yours (the login hook); silent if none
    jobstats epilog --prometheus URL --scrape-interval S
                                        run by slurmctld (EpilogSlurmctld, as SlurmUser) when a job ends:
                                        stores the job's GPU figures from Prometheus in its AdminComment

Where the figures come from:

* CPU and memory of a finished job: sacct (TotalCPU against Elapsed x AllocCPUS; the largest MaxRSS of its
  steps against the memory allocated, AllocTRES mem); of a running job: sstat of its steps so far.
* GPUs of a finished job: the AdminComment the epilog wrote (``js1:`` + per GPU ``node/index:average
  utilisation %:peak memory MiB:samples``), from ailab-exporter's ailab_job_gpu_* series; of a running job:
  nvidia-smi run inside the job (``srun --jobid=X --overlap``), so it sees exactly the job's GPUs, now.

Exit status: 0 report printed (``--recent``: also when there is nothing to show, or Slurm did not answer:
a login must never fail); 1 Slurm could not be asked (sacct failed or timed out); 2 bad usage (a job id
that is not a number); 3 no such job among yours (it does not exist, is older than the accounting keeps,
or is another user's: Slurm shows students their own jobs only). ``epilog`` always exits 0.

Standard library only (the node package, ailab/nodepkg.py; on the front-end and the controller).  Every
parser and formatter is a pure function of a command's text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import re
import subprocess
import sys
import syslog
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

RULE = 'seed rule 6, "allocate only what you use"'
# Below these a resource counts as over-allocated (a hint is printed).
CPU_LOW_PERCENT = 50.0
MEMORY_LOW_PERCENT = 50.0
MEMORY_HINT_MIN_UNUSED = 1 << 30  # and only when at least 1 GiB went unused
GPU_LOW_PERCENT = 30.0
SUMMARY_PREFIX = "js1:"  # version 1 of the AdminComment summary (sacctmgr stores it in lower case)
NO_ID = 2
NOT_FOUND = 3
SLURM_FAILED = 1

# sacct's fields, JobName last: it is the one free-text field and may contain the separator.
SACCT_FIELDS = (
    "JobID",
    "User",
    "Account",
    "Partition",
    "State",
    "ExitCode",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "AllocCPUS",
    "TotalCPU",
    "ReqMem",
    "AllocTRES",
    "MaxRSS",
    "NodeList",
    "AdminComment",
    "JobName",
)
SSTAT_FIELDS = ("JobID", "TRESUsageInTot", "MaxRSS")
SMI_QUERY = "index,uuid,utilization.gpu,memory.used,memory.total"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
FINISHED = (
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "CANCELLED",
    "NODE_FAIL",
    "PREEMPTED",
    "DEADLINE",
)


# --- parsing -----------------------------------------------------------------------------------------------


def parse_duration(text: str) -> float | None:
    """Seconds of a Slurm duration: ``[D-][HH:]MM:SS[.mmm]`` (TotalCPU, Elapsed) or plain seconds."""
    text = text.strip()
    if not text or text in ("INVALID", "UNLIMITED", "Partition_Limit"):
        return None
    days = 0
    if "-" in text:
        head, text = text.split("-", 1)
        if not head.isdigit():
            return None
        days = int(head)
    parts = text.split(":")
    if len(parts) > 3:
        return None
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return days * 86400 + seconds


def parse_size(text: str, default_unit: str = "") -> int | None:
    """Bytes of a Slurm size (``123456K``, ``8000M``, ``16G``, ``0``); no suffix: ``default_unit``."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGTP]?)[nc]?", text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * UNITS[match.group(2) or default_unit])


def parse_tres(text: str) -> dict[str, str]:
    """``cpu=2,mem=8000M,gres/gpu=1`` as a dict."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class GpuFigure:
    """One GPU of a job: its node, Slurm's index on that node, average (finished) or current (running)
    utilisation in percent, peak (or current) memory used in MiB, and how many samples the figure has."""

    node: str
    index: int
    utilization: float
    memory_mib: float
    samples: int = 1
    memory_total_mib: float | None = None


def format_summary(gpus: Sequence[GpuFigure]) -> str:
    """The AdminComment the epilog stores: ``js1:node/index:util:mem_mib:samples,...`` (``js1:`` alone: the
    job's GPUs were never sampled).  Lower case: sacctmgr lowers it anyway."""
    body = ",".join(
        f"{g.node}/{g.index}:{g.utilization:.1f}:{g.memory_mib:.0f}:{g.samples}"
        for g in sorted(gpus, key=lambda g: (g.node, g.index))
    )
    return (SUMMARY_PREFIX + body).lower()


def parse_summary(text: str) -> list[GpuFigure] | None:
    """The GPUs of an AdminComment written by :func:`format_summary`; None if it holds no summary."""
    text = text.strip().lower()
    if not text.startswith(SUMMARY_PREFIX):
        return None
    out = []
    for item in filter(None, text[len(SUMMARY_PREFIX) :].split(",")):
        match = re.fullmatch(r"([^/:,\s]+)/([0-9]+):([0-9.]+):([0-9.]+):([0-9]+)", item)
        if not match:
            return None
        node, index, util, mem, samples = match.groups()
        out.append(GpuFigure(node, int(index), float(util), float(mem), int(samples)))
    return out


@dataclass(frozen=True)
class Step:
    jobid: str
    max_rss: int | None  # bytes
    total_cpu: float | None  # seconds

    @property
    def extern(self) -> bool:
        return self.jobid.endswith(".extern")


@dataclass(frozen=True)
class Job:
    """One job as sacct reports it, with its steps."""

    jobid: str
    name: str
    user: str
    account: str
    partition: str
    state: str
    exit_code: str
    start: str
    end: str
    elapsed: int  # seconds
    time_limit: int | None  # seconds
    cpus: int
    total_cpu: float | None  # seconds, the job's own line (sum of its steps once it ended)
    mem_requested: int | None  # bytes allocated (AllocTRES mem), else ReqMem
    gpus_allocated: int
    nodes: str
    admin_comment: str
    steps: tuple[Step, ...] = field(default=())

    @property
    def running(self) -> bool:
        return self.state in ("RUNNING", "COMPLETING", "SUSPENDED")

    @property
    def started(self) -> bool:
        return self.start not in ("", "None", "Unknown")

    @property
    def max_rss(self) -> int | None:
        """The largest MaxRSS of the job's steps; None when no step that runs the job's work (the batch
        script, srun steps: not ``extern``, which only holds a placeholder and adopted SSH sessions) has one
        -- Slurm recorded no memory figure then, and the extern step's few KiB would mislead.  A MaxRSS of 0
        is no figure either: slurmstepd samples every JobAcctGatherFrequency seconds, and a step that ended
        before its first sample is stored as 0 (no running process has an RSS of 0)."""
        if not any(s.max_rss for s in self.steps if not s.extern):
            return None
        return max(s.max_rss for s in self.steps if s.max_rss is not None)

    @property
    def cpu_time(self) -> float | None:
        """CPU seconds: the job line's TotalCPU (the sum of its steps once they ended), or, for a running job
        (``total_cpu`` None), the sum of its steps' so far; None when no working step has a figure."""
        if self.total_cpu is not None:
            return self.total_cpu
        values = [s.total_cpu for s in self.steps if s.total_cpu is not None]
        if not any(s.total_cpu is not None for s in self.steps if not s.extern):
            return None
        return sum(values)


def _int(text: str, default: int = 0) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else default


def parse_sacct(text: str) -> list[Job]:
    """Jobs from ``sacct -P -n -o <SACCT_FIELDS>``: a job's line, then its steps (``ID.batch``, ``ID.0``,
    ...); an array task or a heterogeneous component is a job of its own (``12_3``, ``12+1``)."""
    jobs: dict[str, dict] = {}
    steps: dict[str, list[Step]] = {}
    order: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split("|", len(SACCT_FIELDS) - 1)
        if len(values) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, values, strict=True))
        jobid, dot, _step = row["JobID"].partition(".")
        if dot:
            steps.setdefault(jobid, []).append(
                Step(row["JobID"], parse_size(row["MaxRSS"], "K"), parse_duration(row["TotalCPU"]))
            )
            continue
        jobs[jobid] = row
        order.append(jobid)
    out = []
    for jobid in order:
        row = jobs[jobid]
        tres = parse_tres(row["AllocTRES"])
        mem = parse_size(tres["mem"], "M") if "mem" in tres else parse_size(row["ReqMem"], "M")
        limit = row["TimelimitRaw"].strip()
        out.append(
            Job(
                jobid=jobid,
                name=row["JobName"],
                user=row["User"],
                account=row["Account"],
                partition=row["Partition"],
                state=row["State"].split()[0] if row["State"].strip() else "UNKNOWN",
                exit_code=row["ExitCode"],
                start=row["Start"],
                end=row["End"],
                elapsed=_int(row["ElapsedRaw"]),
                time_limit=int(limit) * 60 if limit.isdigit() else None,
                cpus=_int(row["AllocCPUS"]),
                total_cpu=parse_duration(row["TotalCPU"]),
                mem_requested=mem,
                gpus_allocated=_int(tres.get("gres/gpu", "0")),
                nodes=row["NodeList"],
                admin_comment=row["AdminComment"],
                steps=tuple(steps.get(jobid, ())),
            )
        )
    return out


def parse_sstat(text: str) -> list[Step]:
    """Steps of a running job from ``sstat -a -P -n -o JobID,TRESUsageInTot,MaxRSS``: CPU time so far
    (TRESUsageInTot cpu=) and the largest task's memory (MaxRSS)."""
    out = []
    for line in text.splitlines():
        values = line.split("|")
        if len(values) < len(SSTAT_FIELDS) or not values[0].strip():
            continue
        tres = parse_tres(values[1])
        out.append(Step(values[0].strip(), parse_size(values[2], "K"), parse_duration(tres.get("cpu", ""))))
    return out


def parse_gpu_indexes(text: str) -> dict[str, list[int]]:
    """Slurm's GPU indexes per node from ``scontrol -d -o show job X``
    (``Nodes=n1 ... GRES=gpu:t4:2(IDX:0-1)``; several nodes: one Nodes= group each)."""
    out: dict[str, list[int]] = {}
    for match in re.finditer(r"(?:^|\s)Nodes=(\S+) .*?GRES=\S*?\(IDX:([0-9,\-]+)\)", text):
        indexes = []
        for part in match.group(2).split(","):
            low, _, high = part.partition("-")
            if low.isdigit():
                indexes += range(int(low), int(high or low) + 1)
        for node in expand_nodes(match.group(1)):
            out[node] = indexes
    return out


def expand_nodes(text: str) -> list[str]:
    """A Slurm host list (``hj-t4-[01-02],a40-01``) as names."""
    out = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        match = re.fullmatch(r"(.*)\[([^\]]*)\](.*)", item)
        if not match:
            out.append(item)
            continue
        head, ranges, tail = match.groups()
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for number in range(int(low), int(high or low) + 1):
                out.append(f"{head}{number:0{len(low)}d}{tail}")
    return out


def parse_smi(text: str, indexes: Mapping[str, Sequence[int]]) -> list[GpuFigure]:
    """GPUs of a running job from nvidia-smi run inside it on each node, each line prefixed ``node, ``
    (``--query-gpu=SMI_QUERY --format=csv,noheader,nounits``).  nvidia-smi numbers the job's GPUs from 0;
    they are Slurm's indexes ``indexes[node]`` in order."""
    out = []
    for line in text.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != 6 or not values[1].isdigit():
            continue
        node, local, _uuid, util, used, total = values
        try:
            utilization, memory, memory_total = float(util), float(used), float(total)
        except ValueError:
            continue
        own = indexes.get(node, ())
        index = own[int(local)] if int(local) < len(own) else int(local)
        out.append(GpuFigure(node, index, utilization, memory, 1, memory_total))
    return sorted(out, key=lambda g: (g.node, g.index))


def prometheus_vector(reply: str) -> dict[tuple[str, str], float]:
    """``{(node, gpu): value}`` of an instant query's JSON reply; {} if it is not a success."""
    try:
        data = json.loads(reply)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("status") != "success":
        return {}
    out = {}
    for item in data.get("data", {}).get("result", []):
        labels = item.get("metric", {})
        try:
            out[(labels["node"], labels["gpu"])] = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out


def gpu_figures(
    utilization: Mapping[tuple[str, str], float],
    memory: Mapping[tuple[str, str], float],
    samples: Mapping[tuple[str, str], float],
) -> list[GpuFigure]:
    """A job's GPUs from the three queries of the epilog (average utilisation, peak memory in bytes, sample
    count), keyed by (node, gpu)."""
    out = []
    for node, gpu in sorted(utilization):
        if not gpu.isdigit() or math.isnan(utilization[(node, gpu)]):
            continue
        out.append(
            GpuFigure(
                node,
                int(gpu),
                utilization[(node, gpu)],
                memory.get((node, gpu), 0.0) / (1 << 20),
                int(samples.get((node, gpu), 0)),
            )
        )
    return out


# --- formatting --------------------------------------------------------------------------------------------


def human_bytes(value: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def hms(seconds: float) -> str:
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def percent(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return 100.0 * part / whole


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} %"


@dataclass(frozen=True)
class Efficiency:
    """The figures of one job the report and the login line show."""

    cpu: float | None  # percent of AllocCPUS x Elapsed
    memory: float | None  # percent of the memory allocated
    gpu: float | None  # average over the job's GPUs
    gpus: tuple[GpuFigure, ...] | None  # None: no GPU figures (not recorded)


def efficiency(job: Job, gpus: Sequence[GpuFigure] | None) -> Efficiency:
    cpu = percent(job.cpu_time, job.elapsed * job.cpus)
    memory = percent(job.max_rss, job.mem_requested)
    gpu = sum(g.utilization for g in gpus) / len(gpus) if gpus else None
    return Efficiency(cpu, memory, gpu, None if gpus is None else tuple(gpus))


def suggest_memory(peak: int) -> str:
    """A --mem value with headroom: 1.5 x the peak, rounded up to whole GiB."""
    return f"{max(1, math.ceil(peak * 1.5 / (1 << 30)))}G"


def hints(job: Job, eff: Efficiency) -> list[str]:
    """One plain sentence per over-allocated resource."""
    out = []
    if eff.cpu is not None and eff.cpu < CPU_LOW_PERCENT and job.cpus > 1:
        busy = (job.cpu_time or 0) / max(job.elapsed, 1)
        out.append(
            f"CPU: the job kept {eff.cpu:.0f} % of its {job.cpus} cores busy ({busy:.1f} on average); "
            f"ask for fewer (about {max(1, math.ceil(busy))}: -c or --cpus-per-gpu), free the rest."
        )
    if (
        eff.memory is not None
        and eff.memory < MEMORY_LOW_PERCENT
        and job.mem_requested
        and job.max_rss is not None
        and job.mem_requested - job.max_rss >= MEMORY_HINT_MIN_UNUSED
    ):
        out.append(
            f"Memory: the peak was {human_bytes(job.max_rss)}, {eff.memory:.0f} % of the "
            f"{human_bytes(job.mem_requested)} allocated; ask for less "
            f"(e.g. --mem={suggest_memory(job.max_rss)})."
        )
    if eff.gpus:
        idle = [g for g in eff.gpus if g.utilization < GPU_LOW_PERCENT]
        if idle:
            names = ", ".join(f"{g.node} GPU {g.index} ({g.utilization:.0f} %)" for g in idle)
            when = "is busy less than" if job.running else "averaged less than"
            if len(idle) > 1:
                when = "are busy less than" if job.running else "averaged less than"
            fewer = (
                "use fewer GPUs (e.g. --gres=gpu:1)" if len(eff.gpus) > 1 else "check that your code uses it"
            )
            out.append(f"GPU: {names} {when} {GPU_LOW_PERCENT:.0f} % use; {fewer}, or give it back sooner.")
    return out


REQ_W, USED_W = 14, 44  # the report's column widths


def report(job: Job, gpus: Sequence[GpuFigure] | None, gpu_note: str = "") -> str:
    """The seff-like report of one job."""
    eff = efficiency(job, gpus)
    when = "so far" if job.running else ""
    lines = [
        f"Job {job.jobid} ({job.name}) of {job.user}, account {job.account}, partition {job.partition}",
        f"  State: {job.state}"
        + ("" if job.running else f", {exit_text(job.exit_code)}")
        + (f", on {job.nodes}" if job.nodes and job.nodes != "None assigned" else ""),
    ]
    if not job.started:
        lines += ["  The job has not started: there is nothing to measure yet."]
        return "\n".join(lines) + "\n"
    limit = (
        f" of {hms(job.time_limit)} asked for ({pct(percent(job.elapsed, job.time_limit))})"
        if job.time_limit
        else ""
    )
    lines.append(f"  Run time: {hms(job.elapsed)}{' ' + when if when else ''}{limit}")
    lines.append("")
    lines.append(f"  {'':8}{'requested':<{REQ_W}}{'used':<{USED_W}}efficiency")
    cpu_used = "not recorded by Slurm"
    if job.cpu_time is not None:
        cpu_used = f"{hms(job.cpu_time)} CPU time of {hms(job.elapsed * job.cpus)}"
    cores = f"{job.cpus} core{'s' if job.cpus != 1 else ''}"
    lines.append(f"  {'CPU':8}{cores:<{REQ_W}}{cpu_used:<{USED_W}}{pct(eff.cpu)}")
    mem_req = human_bytes(job.mem_requested) if job.mem_requested else "n/a"
    mem_used = f"{human_bytes(job.max_rss)} peak" if job.max_rss is not None else "peak not recorded by Slurm"
    lines.append(f"  {'Memory':8}{mem_req:<{REQ_W}}{mem_used:<{USED_W}}{pct(eff.memory)}")
    gpu_req = f"{job.gpus_allocated} GPU{'s' if job.gpus_allocated != 1 else ''}"
    if eff.gpus:
        for i, g in enumerate(eff.gpus):
            kind = "now" if job.running else "average"
            mem = f"{human_bytes(g.memory_mib * (1 << 20))} {'used' if job.running else 'peak'}"
            used = f"{g.node} GPU {g.index}: {g.utilization:.0f} % {kind}, {mem}"
            lines.append(
                f"  {'GPU' if i == 0 else '':8}{gpu_req if i == 0 else '':<{REQ_W}}{used:<{USED_W}}"
                f"{pct(g.utilization)}"
            )
    else:
        lines.append(f"  {'GPU':8}{gpu_req:<{REQ_W}}{gpu_note or 'n/a'}")
    advice = hints(job, eff)
    if advice:
        lines += ["", f"Hints ({RULE}):"] + [f"  * {h}" for h in advice]
    elif eff.cpu is not None and eff.memory is not None and (eff.gpus or not job.gpus_allocated):
        lines += ["", "No over-allocation found: thank you for sizing the job well."]
    return "\n".join(lines) + "\n"


def gpu_note(job: Job, gpus: Sequence[GpuFigure] | None) -> str:
    """Why a job shows no GPU figures, in a few words."""
    if job.running:
        return "not available now (nvidia-smi in the job did not answer)"
    if gpus is not None:
        return "not sampled: the job ended before the monitoring's first look"
    return "not recorded when the job ended"


def exit_text(code: str) -> str:
    """``0:0`` -> ``exit code 0``; ``0:9`` -> ``killed by signal 9``."""
    status, _, signal = code.partition(":")
    if signal.strip() not in ("", "0"):
        return f"killed by signal {signal.strip()}"
    return f"exit code {status.strip() or '?'}"


def recent_lines(jobs: Sequence[Job], count: int) -> list[str]:
    """The login lines: the last ``count`` finished jobs that ran, newest first."""
    done = [j for j in jobs if j.state in FINISHED and j.started and j.elapsed > 0]
    done.sort(key=lambda j: (j.end, _int(j.jobid.split("_")[0].split("+")[0])), reverse=True)
    if not done:
        return []
    out = ["Your last jobs (details: jobstats JOBID; rule 6: allocate only what you use):"]
    for job in done[:count]:
        gpus = parse_summary(job.admin_comment)
        eff = efficiency(job, gpus)
        name = job.name if len(job.name) <= 16 else job.name[:15] + "~"
        out.append(
            f"  {job.jobid:>8} {name:<16} {job.state:<13} CPU {pct(eff.cpu):>5}  mem {pct(eff.memory):>5}  "
            f"GPU {pct(eff.gpu):>5}"
        )
    return out


# --- running the commands ----------------------------------------------------------------------------------

Runner = Callable[[Sequence[str], float], "tuple[int, str, str]"]


def run_command(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        return 127, "", str(exc)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} did not answer within {timeout:.0f} s"
    return done.returncode, done.stdout, done.stderr


def sacct_argv(*selection: str) -> list[str]:
    return ["sacct", "-P", "-n", "-o", ",".join(SACCT_FIELDS), *selection]


class SlurmError(Exception):
    pass


def running_gpus(job: Job, run: Runner, timeout: float) -> list[GpuFigure] | None:
    """The job's GPUs now: nvidia-smi inside the job, one task per node (``srun --overlap``)."""
    nodes = expand_nodes(job.nodes)
    status, detail, _ = run(["scontrol", "-d", "-o", "show", "job", job.jobid], timeout)
    indexes = parse_gpu_indexes(detail) if status == 0 else {}
    script = (
        f'nvidia-smi --query-gpu={SMI_QUERY} --format=csv,noheader,nounits | sed "s/^/$SLURMD_NODENAME, /"'
    )
    argv = ["srun", f"--jobid={job.jobid}", "--overlap", f"--nodes={len(nodes)}", f"--ntasks={len(nodes)}",
            "--ntasks-per-node=1", "--quiet", "/bin/sh", "-c", script]  # fmt: skip
    status, out, _ = run(argv, timeout)
    if status != 0:
        return None
    return parse_smi(out, indexes)


def job_report(jobid: str, run: Runner, timeout: float) -> tuple[int, str]:
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", jobid):
        return (
            NO_ID,
            f"jobstats: {jobid!r} is not a job id -- give the number sbatch printed, e.g. jobstats 1234\n",
        )
    status, out, err = run(sacct_argv("-j", jobid), timeout)
    if status != 0:
        return SLURM_FAILED, f"jobstats: sacct failed: {(err or out).strip()} -- try again in a minute\n"
    jobs = [j for j in parse_sacct(out) if j.jobid == jobid]
    if not jobs:
        return NOT_FOUND, (
            f"jobstats: job {jobid} is not among your jobs: it does not exist, is older than the accounting "
            "keeps, or belongs to another user (Slurm shows you only your own jobs).\n"
        )
    job = jobs[-1]
    gpus: list[GpuFigure] | None
    if job.running:
        status, out, _ = run(["sstat", "-a", "-P", "-n", "-o", ",".join(SSTAT_FIELDS), "-j", jobid], timeout)
        steps = parse_sstat(out) if status == 0 else []
        job = Job(**{**job.__dict__, "steps": tuple(steps) or job.steps, "total_cpu": None})
        gpus = running_gpus(job, run, timeout) if job.gpus_allocated else []
    else:
        gpus = parse_summary(job.admin_comment)
    return 0, report(job, gpus, gpu_note(job, gpus))


def recent(user: str, count: int, days: int, run: Runner, timeout: float) -> str:
    status, out, _ = run(
        sacct_argv("-u", user, "-S", f"now-{days}days", "-E", "now", "-s", ",".join(FINISHED)), timeout
    )
    if status != 0:
        return ""
    lines = recent_lines(parse_sacct(out), count)
    return "\n".join(lines) + "\n" if lines else ""


# --- the epilog --------------------------------------------------------------------------------------------


def epilog_queries(jobid: str, window_s: int) -> dict[str, str]:
    """The PromQL of the three figures over the job's run (its series exist only while it runs)."""
    sel = f'{{jobid="{jobid}"}}[{window_s}s]'
    return {
        "utilization": f"avg_over_time(ailab_job_gpu_utilization_percent{sel})",
        "memory": f"max_over_time(ailab_job_gpu_memory_used_bytes{sel})",
        "samples": f"count_over_time(ailab_job_gpu_utilization_percent{sel})",
    }


def http_get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:  # Prometheus on loopback
        return reply.read().decode()


def parse_start(text: str) -> float | None:
    """The epoch seconds of StartTime in ``scontrol -o show job X`` (Slurm 22.05 gives EpilogSlurmctld no
    start time in its environment); None if the job never started."""
    match = re.search(r"\bStartTime=([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})", text)
    if not match:
        return None
    return time.mktime(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))


def epilog(
    env: Mapping[str, str],
    prometheus: str,
    scrape_interval: int,
    run: Runner,
    get: Callable[[str, float], str],
    now: float,
    timeout: float = 2.0,
) -> tuple[str, str]:
    """What the epilog does for the job in ``env``: (the summary stored or "", a line for the log).

    The job is still in slurmctld's memory (COMPLETING) but finished: ``scontrol update AdminComment`` is
    refused then ("Job has already finished"), so the summary goes straight into the accounting record with
    ``sacctmgr modify job`` (SlurmUser may), which stores it in lower case."""
    jobid = env.get("SLURM_JOB_ID", "")
    if not jobid.isdigit():
        return "", "no SLURM_JOB_ID: not run by slurmctld"
    status, detail, _ = run(["scontrol", "-o", "show", "job", jobid], timeout)
    started = parse_start(detail) if status == 0 else None
    if started is None:
        return "", f"job {jobid}: never started (or unknown to slurmctld), nothing to store"
    window = max(int(now - started), 1) + 2 * scrape_interval
    values = {}
    for name, expr in epilog_queries(jobid, window).items():
        query = urllib.parse.urlencode({"query": expr, "time": f"{now:.3f}"})
        try:
            values[name] = prometheus_vector(get(f"{prometheus.rstrip('/')}/api/v1/query?{query}", timeout))
        except (OSError, ValueError) as exc:
            return "", f"job {jobid}: Prometheus did not answer ({exc}); no GPU figures stored"
    summary = format_summary(gpu_figures(values["utilization"], values["memory"], values["samples"]))
    argv = ["sacctmgr", "-i", "modify", "job", "where", f"jobid={jobid}", "set", f"AdminComment={summary}"]
    status, out, err = run(argv, 5.0)
    if status != 0 or "Modified jobs" not in out:
        return "", f"job {jobid}: sacctmgr did not store {summary}: {(err or out).strip()}"
    return summary, f"job {jobid}: stored {summary}"


# --- main --------------------------------------------------------------------------------------------------


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def main(argv: Sequence[str] | None = None, run: Runner = run_command) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["epilog"]:
        parser = argparse.ArgumentParser(prog="jobstats epilog")
        parser.add_argument("epilog")
        parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
        parser.add_argument("--scrape-interval", type=int, default=30)
        opts = parser.parse_args(args)
        started = time.monotonic()
        try:
            _summary, message = epilog(
                os.environ, opts.prometheus, opts.scrape_interval, run, http_get, time.time()
            )
        except Exception as exc:  # the epilog never fails a job
            message = f"failed: {exc!r}"
        syslog.openlog("ailab-jobstats-epilog")
        syslog.syslog(f"{message} ({time.monotonic() - started:.2f} s)")
        return 0
    parser = argparse.ArgumentParser(
        prog="jobstats",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("jobid", nargs="?", help="the job id sbatch printed")
    parser.add_argument("--recent", action="store_true", help="one line per recently finished job of yours")
    parser.add_argument("--jobs", type=int, default=3, help="with --recent: how many (default 3)")
    parser.add_argument("--days", type=int, default=7, help="with --recent: how far back (default 7)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds for each Slurm command")
    opts = parser.parse_args(args)
    if opts.recent:
        sys.stdout.write(recent(_user(), opts.jobs, opts.days, run, opts.timeout))
        return 0
    if not opts.jobid:
        parser.print_usage(sys.stderr)
        print("jobstats: give a job id, e.g. jobstats 1234 (or --recent)", file=sys.stderr)
        return NO_ID
    status, text = job_report(opts.jobid, run, opts.timeout)
    (sys.stdout if status == 0 else sys.stderr).write(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
