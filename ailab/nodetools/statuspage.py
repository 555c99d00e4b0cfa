"""The students' status page: free GPUs, the queue, nodes out of service, maintenance, the next deletion.

Run every minute by a systemd timer on the front-end; writes one static HTML page that nginx serves.

    ailab-status-page --exporter http://CONTROLLER:9110/metrics --config /etc/ailab/policy.json
                      --out /run/ailab-status/index.html [--now YYYY-MM-DDTHH:MM] [--reservations FILE|-]
                      [--timeout 5]

Installed by role frontend (ailab_monitoring.status_page) and run as an unprivileged system user: the
exporter's Slurm figures name no user, and Slurm shows every user the reservations.

Part of the node package (:mod:`ailab.nodepkg`): the deletion date, the reservations and how they are
read are the login message's (:func:`ailab.model.next_deletion`, :mod:`ailab.reservations`,
:func:`ailab.nodetools.motd.read_reservations`).

From the controller's ailab-exporter (fetched with --timeout): ``ailab_slurm_gpus_total``,
``_gpus_allocated`` and ``_gpus_idle{gpu_type}``, ``ailab_slurm_jobs{partition,state,reason}``,
``ailab_slurm_node_state{node,state}``, ``ailab_slurm_node_drained{node,reason}`` and
``ailab_exporter_collector_success{collector="slurm"}``.  From policy.json: ``cluster``,
``policy.deletion.month``/``day``, ``policy.support_email``, ``policy.extension_url`` and, optional,
``partitions``: ``[{"name": "gpu", "gpu_types": ["a40", "t4"]}, ...]`` -- the partitions students submit
to, in inventory order, shown even without jobs (without the key: the partitions that have jobs).
Maintenance windows are Slurm's MAINT reservations (``scontrol -o show reservation``, with --timeout; or
the --reservations text).

The page is replaced atomically.  Exit status: 0 page current; 1 page written but stale (the exporter
could not be fetched or parsed, its slurm collector failed, or scontrol failed: the page says so);
2 bad arguments (nothing written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ailab.model import next_deletion
from ailab.nodetools import motd
from ailab.reservations import Window, parse_reservations

DEFAULT_TIMEOUT = 5.0
OUT_OF_SERVICE_STATES = ("down", "drained", "draining", "fail", "failing")

# fetch(url, timeout) -> the exposition text; raises OSError/ValueError/HTTPException (tests inject one).
Fetcher = Callable[[str, float], str]
# query(timeout) -> `scontrol -o show reservation` output; raises OSError (tests inject one).
Query = Callable[[float], str]


class UsageError(Exception):
    """A bad argument: main prints it on one line and exits 2."""


class ExpositionError(ValueError):
    """The text is not in the Prometheus text exposition format."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(text: str, lineno: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while text[pos:].strip():
        match = _LABEL.match(text, pos)
        if not match:
            raise ExpositionError(f"line {lineno}: bad label set {{{text}}}")
        labels[match[1]] = _ESCAPE.sub(lambda m: _UNESCAPED.get(m[1], m[0]), match[2])
        pos = match.end()
    return labels


def parse_exposition(text: str) -> list[Sample]:
    """Samples of Prometheus' text format 0.0.4: ``name{label="v",...} value [timestamp]`` lines (label
    values with ``\\"``, ``\\\\``, ``\\n``; values may be NaN, +Inf, -Inf); comment lines are skipped."""
    samples = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise ExpositionError(f"line {lineno}: not a sample: {line[:80]!r}")
        try:
            value = float(match["value"])
        except ValueError:
            raise ExpositionError(f"line {lineno}: bad value {match['value']!r}") from None
        samples.append(Sample(match["name"], _labels(match["labels"] or "", lineno), value))
    return samples


@dataclass(frozen=True)
class GpuRow:
    gpu_type: str
    free: int  # idle GPUs of nodes that can start jobs
    in_use: int
    unavailable: int  # GPUs of drained/down nodes
    total: int


@dataclass(frozen=True)
class QueueRow:
    partition: str
    gpu_types: tuple[str, ...]
    running: int
    pending: int


@dataclass(frozen=True)
class NodeRow:
    node: str
    state: str
    reason: str


@dataclass(frozen=True)
class StatusData:
    cluster: str
    now: dt.datetime
    deletion: dt.date
    windows: tuple[Window, ...] = ()  # upcoming maintenance windows, by start
    gpus: tuple[GpuRow, ...] = ()
    queue: tuple[QueueRow, ...] = ()
    out_of_service: tuple[NodeRow, ...] = ()
    stale: str = ""  # why the GPU, queue and node figures are unavailable ("" when they are current)
    windows_error: str = ""  # why Slurm's maintenance reservations could not be read ("": windows is right)
    support_email: str = ""
    extension_url: str = ""


def _count(value: float) -> int:
    return int(value) if math.isfinite(value) else 0


def _sums(samples: Iterable[Sample], name: str, *keys: str) -> dict[tuple[str, ...], int]:
    sums: dict[tuple[str, ...], int] = {}
    for s in samples:
        if s.name == name:
            key = tuple(s.labels.get(k, "") for k in keys)
            sums[key] = sums.get(key, 0) + _count(s.value)
    return sums


def stale_reason(samples: Sequence[Sample]) -> str:
    """Why the exporter's Slurm figures cannot be trusted, or "" if its slurm collector succeeded."""
    success = [
        s.value
        for s in samples
        if s.name == "ailab_exporter_collector_success" and s.labels.get("collector") == "slurm"
    ]
    if not success:
        return "the exporter reports no slurm collector"
    if success[-1] != 1:
        return "the exporter could not query Slurm (its slurm collector failed)"
    return ""


def gpu_rows(samples: Sequence[Sample], extra_types: Iterable[str] = ()) -> tuple[GpuRow, ...]:
    total = _sums(samples, "ailab_slurm_gpus_total", "gpu_type")
    allocated = _sums(samples, "ailab_slurm_gpus_allocated", "gpu_type")
    idle = _sums(samples, "ailab_slurm_gpus_idle", "gpu_type")
    types = sorted({k[0] for k in (*total, *allocated, *idle)} | set(extra_types))
    rows = []
    for t in types:
        n, used, free = total.get((t,), 0), allocated.get((t,), 0), idle.get((t,), 0)
        rows.append(GpuRow(t, free, used, max(0, n - used - free), n))
    return tuple(rows)


def queue_rows(samples: Sequence[Sample], partitions: Sequence[Mapping]) -> tuple[QueueRow, ...]:
    """Running and pending jobs of the configured partitions (in their order) and of any other partition
    that has jobs (after them, by name)."""
    jobs = _sums(samples, "ailab_slurm_jobs", "partition", "state")
    known = {p["name"]: tuple(p.get("gpu_types", ())) for p in partitions}
    names = list(known) + sorted({k[0] for k in jobs} - set(known))
    return tuple(
        QueueRow(n, known.get(n, ()), jobs.get((n, "running"), 0), jobs.get((n, "pending"), 0)) for n in names
    )


def out_of_service(samples: Sequence[Sample]) -> tuple[NodeRow, ...]:
    """Nodes that are drained, draining, down, failing or not responding, by name, with the drain reason
    (the nodes whose GPUs the page counts as unavailable)."""
    states = {s.labels.get("node", ""): s.labels.get("state", "") for s in samples
              if s.name == "ailab_slurm_node_state" and s.value == 1}  # fmt: skip
    reasons = {s.labels.get("node", ""): s.labels.get("reason", "") for s in samples
               if s.name == "ailab_slurm_node_drained" and s.value == 1}  # fmt: skip
    silent = {s.labels.get("node", "") for s in samples
              if s.name == "ailab_slurm_node_flag" and s.labels.get("flag") == "not_responding"
              and s.value == 1}  # fmt: skip
    nodes = {n for n, state in states.items() if state in OUT_OF_SERVICE_STATES} | set(reasons) | silent
    rows = []
    for n in sorted(nodes):
        state = states.get(n, "drained")
        if state not in OUT_OF_SERVICE_STATES and n not in reasons:
            state = "not responding"
        rows.append(NodeRow(n, state, reasons.get(n, "")))
    return tuple(rows)


def build_status(
    config: Mapping,
    now: dt.datetime,
    windows: Iterable[Window],
    samples: Sequence[Sample] = (),
    stale: str = "",
    windows_error: str = "",
) -> StatusData:
    """The page's content; without ``stale``, the exporter's figures come from ``samples``; without
    ``windows_error``, ``windows`` are all of Slurm's maintenance windows."""
    policy = config["policy"]
    deletion = next_deletion(now.date(), policy["deletion"]["month"], policy["deletion"]["day"])
    partitions = config.get("partitions") or ()
    stale = stale or stale_reason(samples)
    figures = {}
    if not stale:
        types = [t for p in partitions for t in p.get("gpu_types", ())]
        figures = {
            "gpus": gpu_rows(samples, types),
            "queue": queue_rows(samples, partitions),
            "out_of_service": out_of_service(samples),
        }
    return StatusData(
        cluster=config["cluster"],
        now=now,
        deletion=deletion,
        windows=tuple(sorted((w for w in windows if w.end > now), key=lambda w: w.start)),
        stale=stale,
        windows_error=windows_error,
        support_email=policy.get("support_email") or "",
        extension_url=policy.get("extension_url") or "",
        **figures,
    )


CSS = """body{font-family:sans-serif;max-width:50em;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}th,td{padding:.2em .8em;border-bottom:1px solid #ccc;text-align:right}
th:first-child,td:first-child{text-align:left}.free{font-weight:bold;color:#060}
#stale,.stale{background:#fdd;border:1px solid #c00;padding:.5em}#updated{color:#666}"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _in_days(days: int) -> str:
    return "today" if days == 0 else "in 1 day" if days == 1 else f"in {days} days"


def _table(table_id: str, headings: Sequence[str], rows: Iterable[tuple[str, str, Sequence]]) -> list[str]:
    """A table: rows of (data attribute, its value, [(cell class, cell value), ...])."""
    out = [f'<table id="{table_id}">', "<tr>" + "".join(f"<th>{h}</th>" for h in headings) + "</tr>"]
    for attr, key, cells in rows:
        tds = "".join(f'<td class="{cls}">{_e(value)}</td>' for cls, value in cells)
        out.append(f'<tr data-{attr}="{_e(key)}">{tds}</tr>')
    return [*out, "</table>"]


def _node(n: NodeRow) -> str:
    reason = f': <span class="reason">{_e(n.reason)}</span>' if n.reason else ""
    return (
        f'<li data-node="{_e(n.node)}"><span class="node">{_e(n.node)}</span>'
        f' (<span class="state">{_e(n.state)}</span>){reason}</li>'
    )


def _window(w: Window, now: dt.datetime) -> str:
    running = " (in progress)" if w.start <= now else ""
    return (
        f'<li data-reservation="{_e(w.name)}">{w.start:%Y-%m-%d %H:%M} - {w.end:%Y-%m-%d %H:%M}{running}:'
        " no jobs run then.</li>"
    )


def render_html(data: StatusData) -> str:
    """The whole page: static HTML5, every dynamic text escaped, no script, no external resource."""
    title = _e(f"{data.cluster} status")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta http-equiv="refresh" content="60">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{CSS}</style></head>",
        "<body>",
        f"<h1>{title}</h1>",
        f'<p id="updated">Updated {data.now:%Y-%m-%d %H:%M}</p>',
    ]
    if data.stale:
        out.append(f'<p id="stale">The GPU, queue and node figures are unavailable: {_e(data.stale)}.</p>')
    else:
        gpus = [
            ("gpu-type", g.gpu_type, [("type", g.gpu_type), ("free", g.free), ("in-use", g.in_use),
                                      ("unavailable", g.unavailable), ("total", g.total)])
            for g in data.gpus
        ]  # fmt: skip
        queue = [
            ("partition", q.partition, [("partition", q.partition), ("gpu-types", ", ".join(q.gpu_types)),
                                        ("running", q.running), ("pending", q.pending)])
            for q in data.queue
        ]  # fmt: skip
        out += ["<h2>GPUs</h2>", *_table("gpus", ["GPU", "Free", "In use", "Unavailable", "Total"], gpus)]
        out += ["<h2>Queue</h2>", *_table("queue", ["Partition", "GPUs", "Running", "Pending"], queue)]
        out.append("<h2>Nodes out of service</h2>")
        if data.out_of_service:
            out += ['<ul id="out-of-service">', *(_node(n) for n in data.out_of_service), "</ul>"]
        else:
            out.append('<p id="out-of-service">All nodes in service.</p>')
    out.append("<h2>Maintenance</h2>")
    if data.windows_error:
        out.append(
            '<p id="maintenance" class="stale">The maintenance windows are unavailable: '
            f"{_e(data.windows_error)}. Check <code>sinfo -T</code> on the front-end.</p>"
        )
    elif data.windows:
        out += ['<ul id="maintenance">', *(_window(w, data.now) for w in data.windows), "</ul>"]
    else:
        out.append('<p id="maintenance">No maintenance window is scheduled.</p>')
    days = (data.deletion - data.now.date()).days
    out += [
        "<h2>Yearly deletion</h2>",
        f'<p id="deletion">All data and accounts are deleted on {data.deletion:%d %B %Y} ({_in_days(days)}).'
        " Copy your files off before then.</p>",
    ]
    if data.extension_url:
        url = _e(data.extension_url)
        out.append(
            f'<p id="extension">Need your data longer? Request an extension: <a href="{url}">{url}</a></p>'
        )
    if data.support_email:
        mail = _e(data.support_email)
        out.append(f'<p id="support">Questions: <a href="mailto:{mail}">{mail}</a></p>')
    return "\n".join([*out, "</body>", "</html>"]) + "\n"


def query_reservations(timeout: float) -> str:
    """``scontrol -o show reservation``; raises OSError saying why it could not be read."""
    scontrol = shutil.which("scontrol")
    if not scontrol:
        raise OSError("scontrol is not installed")
    try:
        argv = [scontrol, "-o", "show", "reservation"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"scontrol did not answer within {timeout:g} s") from None
    if result.returncode != 0:
        raise OSError(f"scontrol exited {result.returncode}: {result.stderr.strip()[:200]}")
    return result.stdout


def fetch_metrics(url: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode("utf-8")


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a file with ``text`` (mode 0644): a reader sees the old page or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_config(path: str) -> dict:
    """policy.json, checked for what the page needs."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        deletion = config["policy"]["deletion"]
        dt.date(2000, deletion["month"], deletion["day"])  # a valid day of the year
        if not isinstance(config["cluster"], str):
            raise ValueError('"cluster" is not a name')
        partitions = config.get("partitions") or []
        if not isinstance(partitions, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in partitions
        ):
            raise ValueError('"partitions" is not a list of {"name": ..., "gpu_types": [...]}')
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"--config: cannot use {path}: {e}") from None
    except KeyError as e:
        raise UsageError(f"--config: {path} is not an ailab policy document (no key {e})") from None
    return config


def main(argv: list[str] | None = None, fetch: Fetcher | None = None, query: Query | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", required=True, help="URL of the controller's ailab-exporter /metrics")
    parser.add_argument("--config", default="/etc/ailab/policy.json")
    parser.add_argument("--out", required=True, help="the page to write (its directory must exist)")
    parser.add_argument("--now", help="YYYY-MM-DDTHH:MM (for tests)")
    parser.add_argument("--reservations", help="file with `scontrol -o show reservation` output, or -")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default 5)")
    args = parser.parse_args(argv)
    try:
        out = Path(args.out)
        if not out.parent.is_dir():
            raise UsageError(f"--out: directory {out.parent} does not exist")
        if out.is_dir():
            raise UsageError(f"--out: {out} is a directory, not a file name")
        if args.timeout <= 0:
            raise UsageError(f"--timeout: {args.timeout} is not a positive number of seconds")
        try:
            now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now()
        except ValueError:
            raise UsageError(f"--now: {args.now!r} is not YYYY-MM-DDTHH:MM") from None
        config = _load_config(args.config)
        reservations = None
        if args.reservations:
            try:
                reservations = motd.read_reservations(args.reservations)
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"--reservations: cannot read {args.reservations}: {e}") from None
    except UsageError as e:
        print(f"statuspage: {e}", file=sys.stderr)
        return 2

    windows_error = ""
    if reservations is None:
        try:
            reservations = (query or query_reservations)(args.timeout)
        except OSError as e:
            reservations, windows_error = "", f"cannot read Slurm's reservations: {e}"
    windows = parse_reservations(reservations)

    samples: list[Sample] = []
    stale = ""
    try:
        text = (fetch or fetch_metrics)(args.exporter, args.timeout)
    except (OSError, ValueError, http.client.HTTPException) as e:
        stale = f"cannot fetch {args.exporter}: {e}"
    else:
        try:
            samples = parse_exposition(text)
        except ExpositionError as e:
            stale = f"cannot parse the metrics of {args.exporter}: {e}"
    data = build_status(config, now, windows, samples, stale, windows_error)
    try:
        write_atomically(out, render_html(data))
    except OSError as e:
        print(f"statuspage: --out: cannot write {out}: {e}", file=sys.stderr)
        return 2
    problems = [p for p in (data.stale, data.windows_error) if p]
    for problem in problems:
        print(f"statuspage: page written without current figures: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
