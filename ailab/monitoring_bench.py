"""`make bench BENCH_ARGS=--only-monitoring`: what the metrics cost on the running simulated cluster.

Issue 13's numbers: the scrape duration of every target (Prometheus' own ``scrape_duration_seconds``,
averaged over the last minutes), the memory and CPU of Prometheus, Alertmanager and every exporter on every
node while idle (RSS and PSS from /proc, CPU from utime+stime over a window), and the time from stopping a
compute node to the NodeDown mail in the operators' mailbox (root's on the front-end in the simulator).
The oneshot units that timers start every minute (the students' status page on the front-ends,
ailab-idle-gpus on the monitoring host) have no resident process: their cost is the CPU time of one run of
the unit's own command, as its own user (the children's rusage; systemd's accounting of a stopped unit is
not kept by Debian 12's systemd), spread over the minute, and no idle memory.

The cluster must be up and converged (`make up`); a stopped node is started again.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass

from ailab.frontend import STATUS_PAGE_UNIT
from ailab.monitoring import PROMETHEUS_PORT

# Processes of the metrics stack, by the name in /proc/PID/comm (python3 runs ailab-exporter).
STACK = {
    "prometheus": "prometheus",
    "prometheus-aler": "alertmanager",  # comm is cut to 15 characters
    "prometheus-node": "node-exporter",
}
EXPORTER_MARK = "ailab-exporter"
# Oneshot units started by a timer, with how often they run (seconds).
TIMER_UNITS = {f"{STATUS_PAGE_UNIT}.service": 60, "ailab-idle-gpus.service": 60}
CLK_TCK = 100

# Prints "comm|cmdline|rss_kib|pss_kib|utime+stime ticks" for every process (run inside a node).
SAMPLE_SCRIPT = r"""
for d in /proc/[0-9]*; do
  comm=$(cat $d/comm 2>/dev/null) || continue
  cmd=$(tr '\0' ' ' < $d/cmdline 2>/dev/null | cut -c1-200)
  rss=$(awk '/^VmRSS:/ {print $2}' $d/status 2>/dev/null)
  pss=$(awk '/^Pss:/ {print $2}' $d/smaps_rollup 2>/dev/null)
  ticks=$(awk '{print $14 + $15}' $d/stat 2>/dev/null)
  echo "$comm|$cmd|${rss:-0}|${pss:-0}|${ticks:-0}|${d#/proc/}"
done
"""


@dataclass(frozen=True)
class Proc:
    pid: int
    what: str  # prometheus, alertmanager, node-exporter, ailab-exporter
    rss_kib: int
    pss_kib: int
    ticks: int


def classify(comm: str, cmdline: str) -> str | None:
    if comm in STACK:
        return STACK[comm]
    if comm.startswith("python3") and EXPORTER_MARK in cmdline:
        return "ailab-exporter"
    return None


def parse_sample(text: str) -> list[Proc]:
    """The metrics stack's processes from :data:`SAMPLE_SCRIPT`'s output."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        comm, cmdline, rss, pss, ticks, pid = parts
        what = classify(comm, cmdline)
        if what is None or not (rss.isdigit() and pss.isdigit() and ticks.isdigit() and pid.isdigit()):
            continue
        out.append(Proc(int(pid), what, int(rss), int(pss), int(ticks)))
    return out


def cpu_percent(
    before: list[Proc], after: list[Proc], seconds: float, tck: int = CLK_TCK
) -> dict[int, float]:
    """Per pid present in both samples: CPU used between them, in % of one core."""
    start = {p.pid: p.ticks for p in before}
    return {p.pid: 100.0 * (p.ticks - start[p.pid]) / tck / seconds for p in after if p.pid in start}


def summarise(
    samples: dict[str, tuple[list[Proc], list[Proc]]], seconds: float
) -> dict[str, dict[str, float]]:
    """Per process kind (over every node) and in total: count, RSS MiB, PSS MiB, CPU % of a core."""
    out: dict[str, dict[str, float]] = {}
    for before, after in samples.values():
        cpu = cpu_percent(before, after, seconds)
        for p in after:
            for key in (p.what, "total"):
                row = out.setdefault(
                    key, {"processes": 0, "rss_mib": 0.0, "pss_mib": 0.0, "cpu_percent": 0.0}
                )
                row["processes"] += 1
                row["rss_mib"] += p.rss_kib / 1024
                row["pss_mib"] += p.pss_kib / 1024
                row["cpu_percent"] += cpu.get(p.pid, 0.0)
    return {k: {n: round(v, 2) for n, v in row.items()} for k, row in sorted(out.items())}


def prometheus_query(sim, expr: str) -> list[dict]:
    """An instant query, asked on the monitoring host (Prometheus listens on its loopback)."""
    (host,) = sim.cluster.monitoring_hosts
    command = (
        f"curl -fsS --max-time 10 -G --data-urlencode query={shlex.quote(expr)} "
        f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query"
    )
    return json.loads(sim.exec(host.name, command, timeout=30).stdout)["data"]["result"]


def scrape_durations(sim, window: str = "5m") -> dict[str, float]:
    """Average scrape duration (s) of every target over ``window``: ``job/instance`` -> seconds."""
    rows = prometheus_query(sim, f"avg_over_time(scrape_duration_seconds[{window}])")
    return {
        f"{r['metric']['job']}/{r['metric']['instance']}": round(float(r["value"][1]), 4)
        for r in sorted(rows, key=lambda r: (r["metric"]["job"], r["metric"]["instance"]))
    }


def sample_all(sim) -> dict[str, list[Proc]]:
    return {
        name: parse_sample(sim.exec(name, SAMPLE_SCRIPT, timeout=60).stdout)
        for name in sorted(sim.cluster.hosts)
    }


def resources(sim, seconds: float = 60.0) -> dict[str, dict[str, float]]:
    before = sample_all(sim)
    start = time.monotonic()
    time.sleep(seconds)
    after = sample_all(sim)
    elapsed = time.monotonic() - start
    return summarise({n: (before[n], after[n]) for n in before}, elapsed)


# Runs UNIT's ExecStart once as its User and prints the CPU seconds it used, or nothing when the unit is
# not enabled on this host (run inside a node with the unit's name as $1).
UNIT_CPU_SCRIPT = r"""
systemctl is-enabled --quiet "${1%.service}.timer" 2>/dev/null || exit 0
python3 - "$1" <<'PY'
import re, resource, subprocess, sys
def show(prop):
    return subprocess.run(["systemctl", "show", "-p", prop, "--value", sys.argv[1]],
                          capture_output=True, text=True).stdout.strip()
argv = re.search(r"argv\[\]=([^;]*) ;", show("ExecStart")).group(1).split()
user = show("User")
subprocess.run((["runuser", "-u", user, "--"] if user else []) + argv, capture_output=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)
PY
"""


def timer_units(sim) -> dict[str, dict[str, float]]:
    """``host/unit`` -> CPU seconds of one run, and that spread over its interval (% of a core)."""
    out = {}
    for name in sorted(sim.cluster.hosts):
        for unit, interval in TIMER_UNITS.items():
            shown = sim.exec(
                name, ["bash", "-c", UNIT_CPU_SCRIPT, "unit-cpu", unit], timeout=120
            ).stdout.strip()
            if shown:
                seconds = float(shown)
                out[f"{name}/{unit}"] = {
                    "cpu_seconds_per_run": round(seconds, 3),
                    "cpu_percent": round(100 * seconds / interval, 2),
                }
    return out


def run(sim, result, window: float = 60.0) -> None:
    """Fill ``result`` (an ailab.bench.BenchResult): scrape durations, the stack's RAM and CPU, and the
    time from a node stop to its alert mail."""
    result.monitoring["scrape_seconds"] = scrape_durations(sim)
    result.monitoring["idle_resources"] = resources(sim, window)
    result.monitoring["timer_units"] = timer_units(sim)
    mailbox = sim.exec(
        sim.cluster.operations_host, "cat /var/mail/root 2>/dev/null || true", timeout=60
    ).stdout
    node = quiet_node(sorted(h.name for h in sim.cluster.compute), mailbox)
    result.seconds[f"monitoring: {node} stopped -> NodeDown mail"] = node_stop_to_mail(sim, node)


def quiet_node(nodes: list[str], mailbox: str) -> str:
    """A compute node with no NodeDown mail yet, else the first.  Alertmanager mails a fault once: a node
    that goes down again before its resolution was mailed (group_interval) is not mailed again."""
    mailed = set()
    for line in mailbox.splitlines():
        words = (
            line.split("NodeDown", 1)[1].split() if line.startswith("Subject:") and "NodeDown" in line else []
        )
        if words:
            mailed.add(words[0])
    return next((n for n in nodes if n not in mailed), nodes[0])


def node_stop_to_mail(sim, node: str, timeout: float = 600) -> float:
    """Seconds from ``docker stop`` of ``node`` to a NodeDown mail naming it in root's mailbox on the
    operations front-end; the node is started again afterwards."""
    fe = sim.cluster.operations_host

    def mailbox() -> str:
        return sim.exec(fe, "cat /var/mail/root 2>/dev/null || true", timeout=60).stdout

    before = len(mailbox())
    start = time.monotonic()
    sim.stop(node)
    try:
        while time.monotonic() - start < timeout:
            new = mailbox()[before:]
            if "NodeDown" in new and node in new:
                return round(time.monotonic() - start, 1)
            time.sleep(2)
        raise SystemExit(f"bench: no NodeDown mail for {node} within {timeout:.0f}s")
    finally:
        sim.start(node, timeout=420)
