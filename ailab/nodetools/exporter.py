"""ailab-exporter: Prometheus metrics of a node's GPUs, of the jobs using them, and of the Slurm cluster.

    ailab-exporter --listen ADDR:PORT --collect gpu,slurm [--node NAME] [--slurmdbd HOST:PORT]
                   [--timeout SECONDS]
    ailab-exporter --once --collect gpu        # print the metrics once and exit (1 if a collector failed)

Installed as /usr/local/sbin/ailab-exporter and run by systemd as root.  Every scrape of /metrics runs the
commands afresh (each with --timeout, default 5 s); a command that fails is logged with its stderr and
makes ``ailab_exporter_collector_success{collector}`` 0, the exporter keeps serving.

Collector ``gpu`` (compute nodes), labels node = --node (default: the short host name)::

    ailab_gpu_smi_ok{node}                                    1: nvidia-smi exited 0 (e.g. 0 when a GPU fell
                                                              off the bus: exit 15; the GPUs it still lists
                                                              are reported)
    ailab_gpu_utilization_percent{node,gpu,uuid,model}        gpu: nvidia-smi's index; model: its name
    ailab_gpu_memory_used_bytes{node,gpu,uuid,model}
    ailab_gpu_memory_total_bytes{node,gpu,uuid,model}
    ailab_job_gpu_utilization_percent{jobid,user,node,gpu}    each GPU of each job running on the node
    ailab_job_gpu_memory_used_bytes{jobid,user,node,gpu}      (gpu: Slurm's IDX = the nvidia-smi index)

from ``nvidia-smi --query-gpu=...``, ``squeue -w NODE -t RUNNING`` and ``scontrol -d -o show job ID``.

Collector ``slurm`` (the controller), from ``scontrol -d -o show node``, ``squeue`` and ``scontrol ping``::

    ailab_slurm_node_state{node,state}     1; state as sinfo names it, lower case: idle, mixed, allocated,
                                           completing, down, drained, draining, fail, failing, future, ...
    ailab_slurm_node_flag{node,flag}       1 per state flag, lower case: drain, not_responding, maintenance,
                                           reserved, completing, powered_down, reboot_requested, ...
    ailab_slurm_node_drained{node,reason}  1 for drained and draining nodes; reason without [user@time]
    ailab_slurm_gpus_total{gpu_type}       GPUs of every node
    ailab_slurm_gpus_allocated{gpu_type}   GPUs allocated to jobs
    ailab_slurm_gpus_idle{gpu_type}        total - allocated, on nodes that can start jobs (not down,
                                           drained, draining, failing or not responding)
    ailab_slurm_jobs{partition,state,reason}   pending and running jobs (state lower case)
    ailab_slurm_daemon_up{daemon}          slurmctld: `scontrol ping` says UP; slurmdbd: a TCP connection to
                                           --slurmdbd HOST:PORT succeeds (only with --slurmdbd)

Always: ``ailab_exporter_collector_success{collector}`` and
``ailab_exporter_collector_duration_seconds{collector}``.

Standard library and prometheus_client only (Debian bookworm's python3-prometheus-client 0.16): part of
the node package (ailab/nodepkg.py).  Every parser is a pure function of a command's text.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("ailab-exporter")

MIB = 1024 * 1024
DEFAULT_TIMEOUT = 5.0
COLLECTORS = ("gpu", "slurm")
SMI_FIELDS = "index,uuid,name,utilization.gpu,memory.used,memory.total"

# run(argv) -> (exit status, stdout, stderr); the exporter's only way to run a command (tests inject one).
Runner = Callable[[Sequence[str]], tuple[int, str, str]]
# connect(host, port, timeout) -> True if a TCP connection could be made.
Connector = Callable[[str, int, float], bool]


class UsageError(ValueError):
    pass


# Parsers: text in, data out ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuReading:
    """One row of ``nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total``;
    None: the value was not a number (``[N/A]``, ``[Not Supported]``)."""

    index: int
    uuid: str
    model: str
    utilization_percent: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def parse_smi(text: str) -> list[GpuReading]:
    """The GPU rows of ``--format=csv,noheader,nounits`` output; other lines (errors nvidia-smi prints
    about a GPU it lost, "No devices were found") are skipped."""
    readings = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if (
            len(parts) < 6
            or not (parts[0].isascii() and parts[0].isdigit())
            or not parts[1].startswith(("GPU-", "MIG-"))
        ):
            continue
        name = ", ".join(parts[2:-3])  # a name with a comma in it is still one name
        used, total = _number(parts[-2]), _number(parts[-1])
        readings.append(GpuReading(int(parts[0]), parts[1], name, _number(parts[-3]), used, total))
    return readings


def parse_running_jobs(text: str) -> list[tuple[str, str]]:
    """(job id, user) from ``squeue -h -o '%A|%u'``."""
    jobs = []
    for line in text.splitlines():
        jobid, sep, user = line.strip().partition("|")
        if sep and jobid:
            jobs.append((jobid, user))
    return jobs


_KEY = re.compile(r"(?<!\S)([A-Za-z_][\w:/]*)=")


def parse_fields(line: str) -> list[tuple[str, str]]:
    """``Key=value`` pairs of one line of ``scontrol -o show ...``, in order (a key may repeat, e.g. the
    per-node ``Nodes=`` of a job); a value runs to the next `` Key=`` so it may hold spaces
    (``OS=Linux 6.1 #1 SMP``, ``Reason=GPU 1 lost [root@...]``)."""
    matches = list(_KEY.finditer(line))
    return [
        (m.group(1), line[m.end() : matches[i + 1].start() if i + 1 < len(matches) else len(line)].strip())
        for i, m in enumerate(matches)
    ]


def expand_ranges(text: str) -> list[int]:
    """``0-1,3`` -> [0, 1, 3] (Slurm's IDX lists); anything else (``N/A``) -> []."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            return []
        out.extend(range(int(low), int(high) + 1) if dash else [int(low)])
    return out


def _split_top(text: str) -> list[str]:
    """Split at the commas outside brackets: ``a[1-2],b`` -> ["a[1-2]", "b"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def expand_hostlist(text: str) -> list[str]:
    """Slurm's host list ``t4-[01-02,05],a40-01`` -> the names (zero padding kept)."""
    names: list[str] = []
    for part in _split_top(text.strip()):
        match = re.search(r"\[([^\]]*)\]", part)
        if not match:
            names.append(part)
            continue
        head, tail = part[: match.start()], part[match.end() :]
        for item in match.group(1).split(","):
            low, dash, high = item.partition("-")
            if not low.isdigit() or (dash and not high.isdigit()):
                continue
            width = len(low)
            for number in range(int(low), int(high if dash else low) + 1):
                names.extend(expand_hostlist(f"{head}{number:0{width}d}{tail}"))
    return names


_GPU_IDX = re.compile(r"gpu[^(,]*\(IDX:([^)]*)\)")


def parse_job_gpus(text: str, node: str) -> list[int]:
    """The GPU indexes (Slurm's IDX) a job has on ``node``, from ``scontrol -d -o show job ID``, whose
    per-node detail reads ``Nodes=t4-01 CPU_IDs=0-1 Mem=1000 GRES=gpu:t4:2(IDX:0-1)``."""
    gpus: list[int] = []
    nodes: list[str] = []
    for key, value in parse_fields(text):
        if key == "Nodes":
            nodes = expand_hostlist(value)
        elif key == "GRES" and node in nodes:
            for idx in _GPU_IDX.findall(value):
                gpus.extend(i for i in expand_ranges(idx) if i not in gpus)
    return sorted(gpus)


def job_user(text: str) -> str:
    """The user name from ``UserId=student1(200001)`` of ``scontrol show job``; "" if there is none."""
    for key, value in parse_fields(text):
        if key == "UserId":
            return value.split("(", 1)[0]
    return ""


@dataclass(frozen=True)
class SlurmNode:
    """One node of ``scontrol -d -o show node``."""

    name: str
    state: str  # normalised as sinfo names it: idle, mixed, allocated, drained, draining, down, ...
    flags: tuple[str, ...]  # lower case: drain, not_responding, maintenance, ...
    reason: str  # without the [user@time] suffix
    gpus: Mapping[str, int]  # gpu type -> count (Gres=)
    gpus_used: Mapping[str, int]  # gpu type -> allocated (GresUsed=)

    @property
    def drained(self) -> bool:
        return "drain" in self.flags

    @property
    def schedulable(self) -> bool:
        """Can a new job start here?"""
        return (
            self.state in ("idle", "mixed", "allocated", "completing") and "not_responding" not in self.flags
        )


_STATE_SUFFIXES = {"*": "not_responding", "~": "powered_down", "#": "powering_up", "%": "powering_down",
                   "$": "maintenance", "@": "reboot_requested", "^": "reboot_issued", "!": "power_down",
                   "-": "planned"}  # fmt: skip


def node_state(text: str) -> tuple[str, tuple[str, ...]]:
    """(state, flags) from scontrol's ``State=`` (``IDLE+DRAIN``, ``DOWN*+DRAIN``, ``MIXED+COMPLETING``):
    the state named the way sinfo's long form names it (DRAIN on a node with jobs is draining, otherwise
    drained; FAIL is failing or fail), the flags lower case (a ``*`` after the base state is
    not_responding)."""
    words = [w for w in text.strip().split("+") if w]
    if not words:
        return "unknown", ()
    base_word = words[0]
    flags: list[str] = []
    while base_word and not base_word[-1].isalnum():
        flags.append(_STATE_SUFFIXES.get(base_word[-1], "unknown_suffix"))
        base_word = base_word[:-1]
    flags += [w.strip("*~#%$@^!-").lower() for w in words[1:]]
    flags = list(dict.fromkeys(f for f in flags if f))
    base = base_word.lower() or "unknown"
    busy = base in ("allocated", "mixed") or "completing" in flags
    if "drain" in flags:
        state = "draining" if busy else "drained"
    elif "fail" in flags:
        state = "failing" if busy else "fail"
    elif base in ("idle", "unknown") and "completing" in flags:
        state = "completing"
    else:
        state = base
    return state, tuple(flags)


_GPU_GRES = re.compile(r"(?:^|,)gpu(?::([^:(),]+))?:(\d+)")


def parse_gres(text: str) -> dict[str, int]:
    """GPU counts by type from ``Gres=gpu:t4:2`` / ``GresUsed=gpu:t4:1(IDX:0)`` (an untyped ``gpu:2``
    counts as type "untyped"; other GRES are left out)."""
    counts: dict[str, int] = {}
    for gpu_type, count in _GPU_GRES.findall(text):
        key = gpu_type or "untyped"
        counts[key] = counts.get(key, 0) + int(count)
    return counts


_REASON_STAMP = re.compile(r"\s*\[[^\]]*@[^\]]*\]\s*$")


def parse_nodes(text: str) -> list[SlurmNode]:
    """The nodes of ``scontrol -d -o show node`` (one per line)."""
    nodes = []
    for line in text.splitlines():
        fields = dict(parse_fields(line))
        if not fields.get("NodeName"):
            continue
        state, flags = node_state(fields.get("State", ""))
        reason = _REASON_STAMP.sub("", fields.get("Reason", ""))
        nodes.append(
            SlurmNode(
                name=fields["NodeName"],
                state=state,
                flags=flags,
                reason="" if reason == "(null)" else reason,
                gpus=parse_gres(fields.get("Gres", "")),
                gpus_used=parse_gres(fields.get("GresUsed", "")),
            )
        )
    return nodes


@dataclass(frozen=True)
class GpuCount:
    total: int
    allocated: int
    idle: int


def gpu_counts(nodes: Iterable[SlurmNode]) -> dict[str, GpuCount]:
    """Per GPU type: every node's GPUs, those allocated, and the free ones of nodes that can start jobs."""
    total: dict[str, int] = {}
    allocated: dict[str, int] = {}
    idle: dict[str, int] = {}
    for node in nodes:
        for gpu_type, count in node.gpus.items():
            used = min(node.gpus_used.get(gpu_type, 0), count)
            total[gpu_type] = total.get(gpu_type, 0) + count
            allocated[gpu_type] = allocated.get(gpu_type, 0) + used
            idle[gpu_type] = idle.get(gpu_type, 0) + (count - used if node.schedulable else 0)
    return {t: GpuCount(total[t], allocated[t], idle[t]) for t in sorted(total)}


def parse_job_counts(text: str) -> dict[tuple[str, str, str], int]:
    """(partition, state, reason) -> number of jobs, from ``squeue -h -o '%P|%T|%r'`` (state lower case)."""
    counts: dict[tuple[str, str, str], int] = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        key = (parts[0], parts[1].lower(), parts[2])
        counts[key] = counts.get(key, 0) + 1
    return counts


_PING_UP = re.compile(r"^Slurmctld\([^)]*\) at \S+ is UP\b", re.MULTILINE)


def parse_ping(text: str) -> bool:
    """True if ``scontrol ping`` says a slurmctld (primary or backup) is UP."""
    return bool(_PING_UP.search(text))


def parse_address(text: str, default_host: str | None = None) -> tuple[str, int]:
    """``HOST:PORT`` / ``[IPV6]:PORT`` (``:PORT``: ``default_host``, if there is one) -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        raise UsageError(f"{text!r} is not HOST:PORT: write e.g. 10.0.0.21:9110, 0.0.0.0:9110 or [::]:9110")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{text!r}: put an IPv6 address in brackets, e.g. [{host}]:{port}")
    if not host:
        if default_host is None:
            raise UsageError(f"{text!r} has no host: write HOST:PORT, e.g. 10.0.0.11:6819")
        host = default_host
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


# Collectors ---------------------------------------------------------------------------------------------


class Commands:
    """Runs a collector's commands; remembers (and logs) every failure."""

    def __init__(self, collector: str, run: Runner):
        self.collector = collector
        self.run = run
        self.ok = True

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        """(exit status, stdout); a non-zero status is logged with the command's stderr."""
        status, out, err = self.run(argv)
        if status != 0:
            self.fail(f"`{shlex.join(argv)}` exited {status}: {err.strip()[-500:] or '(no stderr)'}")
        return status, out

    def fail(self, message: str) -> None:
        self.ok = False
        log.warning("%s: %s", self.collector, message)


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class GpuCollector:
    """The node's GPUs (nvidia-smi) and the GPUs of the jobs running on it (squeue, scontrol)."""

    name = "gpu"

    def __init__(self, node: str, run: Runner):
        self.node = node
        self.run = run

    def scrape(self) -> tuple[list[GaugeMetricFamily], bool]:
        cmd = Commands(self.name, self.run)
        labels = ["node", "gpu", "uuid", "model"]
        smi_ok = _gauge(
            "ailab_gpu_smi_ok", "1 if nvidia-smi exited 0 (0: a GPU or the driver fails)", ["node"]
        )
        util = _gauge("ailab_gpu_utilization_percent", "GPU utilisation (nvidia-smi utilization.gpu)", labels)
        used = _gauge("ailab_gpu_memory_used_bytes", "GPU memory used (nvidia-smi memory.used)", labels)
        total = _gauge("ailab_gpu_memory_total_bytes", "GPU memory (nvidia-smi memory.total)", labels)
        job_labels = ["jobid", "user", "node", "gpu"]
        job_util = _gauge(
            "ailab_job_gpu_utilization_percent", "Utilisation of a GPU allocated to a running job", job_labels
        )
        job_used = _gauge(
            "ailab_job_gpu_memory_used_bytes", "Memory used on a GPU allocated to a running job", job_labels
        )
        status, out = cmd(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"])
        smi_ok.add_metric([self.node], 1 if status == 0 else 0)
        readings = {r.index: r for r in parse_smi(out)}
        for r in readings.values():
            values = [self.node, str(r.index), r.uuid, r.model]
            if r.utilization_percent is not None:
                util.add_metric(values, r.utilization_percent)
            if r.memory_used_mib is not None:
                used.add_metric(values, r.memory_used_mib * MIB)
            if r.memory_total_mib is not None:
                total.add_metric(values, r.memory_total_mib * MIB)
        status, out = cmd(["squeue", "-h", "-w", self.node, "-t", "RUNNING", "-o", "%A|%u"])
        for jobid, user in parse_running_jobs(out) if status == 0 else []:
            status, detail = cmd(["scontrol", "-d", "-o", "show", "job", jobid])
            if status != 0:
                continue
            for index in parse_job_gpus(detail, self.node):
                r = readings.get(index)
                if r is None:
                    continue
                values = [jobid, user or job_user(detail), self.node, str(index)]
                if r.utilization_percent is not None:
                    job_util.add_metric(values, r.utilization_percent)
                if r.memory_used_mib is not None:
                    job_used.add_metric(values, r.memory_used_mib * MIB)
        return [smi_ok, util, used, total, job_util, job_used], cmd.ok


def tcp_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class SlurmCollector:
    """The cluster as slurmctld sees it: node states, GPUs, jobs; and whether slurmctld/slurmdbd answer."""

    name = "slurm"

    def __init__(
        self,
        run: Runner,
        slurmdbd: tuple[str, int] | None = None,
        connect: Connector = tcp_connect,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.run = run
        self.slurmdbd = slurmdbd
        self.connect = connect
        self.timeout = timeout

    def scrape(self) -> tuple[list[GaugeMetricFamily], bool]:
        cmd = Commands(self.name, self.run)
        state = _gauge(
            "ailab_slurm_node_state", "1 for the node's state (as sinfo names it)", ["node", "state"]
        )
        flag = _gauge("ailab_slurm_node_flag", "1 for each flag of the node's state", ["node", "flag"])
        drained = _gauge(
            "ailab_slurm_node_drained",
            "1 if the node is drained or draining, with the reason",
            ["node", "reason"],
        )
        gpus_total = _gauge("ailab_slurm_gpus_total", "GPUs of every node", ["gpu_type"])
        gpus_alloc = _gauge("ailab_slurm_gpus_allocated", "GPUs allocated to jobs", ["gpu_type"])
        gpus_idle = _gauge(
            "ailab_slurm_gpus_idle", "Unallocated GPUs of nodes that can start jobs", ["gpu_type"]
        )
        jobs = _gauge("ailab_slurm_jobs", "Pending and running jobs", ["partition", "state", "reason"])
        up = _gauge("ailab_slurm_daemon_up", "1 if the Slurm daemon answers", ["daemon"])

        status, out = cmd(["scontrol", "-d", "-o", "show", "node"])
        nodes = parse_nodes(out) if status == 0 else []
        if status == 0 and not nodes:
            cmd.fail("`scontrol -d -o show node` listed no node")
        for node in nodes:
            state.add_metric([node.name, node.state], 1)
            for name in node.flags:
                flag.add_metric([node.name, name], 1)
            if node.drained:
                drained.add_metric([node.name, node.reason], 1)
        for gpu_type, count in gpu_counts(nodes).items():
            gpus_total.add_metric([gpu_type], count.total)
            gpus_alloc.add_metric([gpu_type], count.allocated)
            gpus_idle.add_metric([gpu_type], count.idle)

        status, out = cmd(["squeue", "-h", "-a", "-t", "PENDING,RUNNING", "-o", "%P|%T|%r"])
        if status == 0:
            for (partition, job_state, reason), count in sorted(parse_job_counts(out).items()):
                jobs.add_metric([partition, job_state, reason], count)

        _, out = cmd(["scontrol", "ping"])
        up.add_metric(["slurmctld"], 1 if parse_ping(out) else 0)
        if self.slurmdbd is not None:
            host, port = self.slurmdbd
            reachable = self.connect(host, port, self.timeout)
            if not reachable:
                log.warning("%s: no TCP connection to slurmdbd at %s:%d", self.name, host, port)
            up.add_metric(["slurmdbd"], 1 if reachable else 0)
        return [state, flag, drained, gpus_total, gpus_alloc, gpus_idle, jobs, up], cmd.ok


class Exporter:
    """The one collector the registry holds: runs every collector at each scrape and adds
    ``ailab_exporter_collector_success`` / ``_duration_seconds``.  A collector that raises is logged and
    counted as failed; the scrape still answers."""

    def __init__(self, collectors: Sequence[GpuCollector | SlurmCollector], clock=time.monotonic):
        self.collectors = list(collectors)
        self.clock = clock
        self.last_ok: dict[str, bool] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        success = _gauge(
            "ailab_exporter_collector_success", "1 if every command of the collector worked", ["collector"]
        )
        duration = _gauge(
            "ailab_exporter_collector_duration_seconds", "Time the collector took", ["collector"]
        )
        for collector in self.collectors:
            start = self.clock()
            try:
                families, ok = collector.scrape()
            except Exception:  # a bug must not take the exporter down: log it, report the collector failed
                log.exception("%s: collector failed", collector.name)
                families, ok = [], False
            yield from families
            self.last_ok[collector.name] = ok
            success.add_metric([collector.name], 1 if ok else 0)
            duration.add_metric([collector.name], max(0.0, self.clock() - start))
        yield success
        yield duration


def subprocess_runner(timeout: float) -> Runner:
    """The real runner: the command's (exit status, stdout, stderr); 127 if it is missing, 124 on timeout."""

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        try:
            result = subprocess.run(
                list(argv), capture_output=True, text=True, errors="replace", timeout=timeout, check=False
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        except subprocess.TimeoutExpired:
            return 124, "", f"no answer within {timeout:g} s (--timeout)"
        except OSError as exc:
            return 126, "", str(exc)
        return result.returncode, result.stdout, result.stderr

    return run


def build_registry(collectors: Sequence[GpuCollector | SlurmCollector]) -> tuple[CollectorRegistry, Exporter]:
    registry = CollectorRegistry(auto_describe=False)  # no describe(): nothing runs at registration
    exporter = Exporter(collectors)
    registry.register(exporter)
    return registry, exporter


def parse_allow(text: str) -> frozenset[str]:
    """``--allow``: the addresses that may scrape (the monitoring host's), comma-separated."""
    out = set()
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            out.add(str(ipaddress.ip_address(item)))
        except ValueError:
            raise UsageError(
                f"{item!r} is not an IP address: list the scrapers' addresses, e.g. --allow 10.0.0.5"
            ) from None
    if not out:
        raise UsageError(f"no address in {text!r}: list the scrapers' addresses, e.g. --allow 10.0.0.5")
    return frozenset(out)


def may_scrape(remote: str, allow: frozenset[str] | None) -> bool:
    """Whether a client at ``remote`` gets the metrics: anyone without --allow; else the listed
    addresses and this host's loopback (an operator's ``curl`` on the node)."""
    if allow is None:
        return True
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return address.is_loopback or str(address) in allow


def guarded_app(registry: CollectorRegistry, allow: frozenset[str] | None) -> Callable[..., Any]:
    """The WSGI app serving /metrics, refusing (403) clients :func:`may_scrape` rejects -- the job
    metrics name users and their jobs, which Slurm shows students only for their own (PrivateData)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not may_scrape(environ.get("REMOTE_ADDR", ""), allow):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"ailab-exporter: only the hosts of --allow may scrape\n"]
        return metrics(environ, start_response)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(host: str, port: int, app: Callable[..., Any]) -> WSGIServer:
    """Serve ``app`` on ``host:port`` in a daemon thread (as prometheus_client's start_http_server)."""
    server_class = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def parse_collect(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in COLLECTORS]
    if unknown or not names:
        what = f"unknown collector {', '.join(unknown)}" if unknown else f"no collector in {text!r}"
        raise UsageError(f"{what}: choose from {', '.join(COLLECTORS)}, e.g. --collect gpu,slurm")
    return names


def _arg(func: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return func(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _timeout(text: str) -> float:
    value = _number(text)
    if value is None or not 0 < value <= 300:
        raise UsageError(f"{text!r}: give the seconds a command may take, from 0 to 300 (e.g. 5)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ailab-exporter",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--listen", type=_arg(lambda t: parse_address(t, "0.0.0.0")), metavar="ADDR:PORT",
        help="where to serve /metrics, e.g. 10.0.0.21:9110 or [::]:9110 (not with --once)",
    )  # fmt: skip
    parser.add_argument(
        "--collect", type=_arg(parse_collect), required=True, metavar="gpu,slurm",
        help="collectors: gpu (a compute node's GPUs and jobs), slurm (the controller's view of the cluster)",
    )  # fmt: skip
    parser.add_argument("--node", help="this node's Slurm name (default: the short host name)")
    parser.add_argument(
        "--allow", type=_arg(parse_allow), metavar="ADDR[,ADDR]",
        help="only these addresses (and loopback) may scrape, e.g. the monitoring host's (default: anyone)",
    )  # fmt: skip
    parser.add_argument(
        "--slurmdbd", type=_arg(parse_address), metavar="HOST:PORT",
        help="slurmdbd to check with a TCP connection (collector slurm only), e.g. 10.0.0.11:6819",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=_arg(_timeout), default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"seconds each command may take (default {DEFAULT_TIMEOUT:g})",
    )  # fmt: skip
    parser.add_argument(
        "--once", action="store_true", help="print the metrics once and exit (1 if a collector failed)"
    )
    return parser


def make_collectors(args: argparse.Namespace, run: Runner) -> list[GpuCollector | SlurmCollector]:
    node = args.node or socket.gethostname().split(".")[0]
    collectors: list[GpuCollector | SlurmCollector] = []
    for name in args.collect:
        if name == "gpu":
            collectors.append(GpuCollector(node, run))
        else:
            collectors.append(SlurmCollector(run, args.slurmdbd, timeout=args.timeout))
    return collectors


def main(argv: Sequence[str] | None = None, run: Runner | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.once and args.listen is None:
        parser.error("give --listen ADDR:PORT to serve /metrics (or --once to print them)")
    logging.basicConfig(level=logging.INFO, format="ailab-exporter: %(levelname)s: %(message)s")
    registry, exporter = build_registry(make_collectors(args, run or subprocess_runner(args.timeout)))
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0 if all(exporter.last_ok.values()) else 1
    host, port = args.listen
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        serve(host, port, guarded_app(registry, args.allow))
    except OSError as exc:
        print(
            f"ailab-exporter: error: cannot listen on {where}: {exc}\n"
            "  fix: give --listen an address of this host and a free port (`ss -ltnp` shows what listens)",
            file=sys.stderr,
        )
        return 1
    log.info("serving /metrics on %s (collectors: %s)", where, ",".join(args.collect))
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()  # the server runs in its own thread; systemd stops us with SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
