#!/usr/bin/python3
"""ailab simulator: a stand-in for ``nvidia-smi`` (installed as /usr/bin/nvidia-smi in every simulated host).

It reports the GPUs the host declares in /etc/ailab-sim/node.json (written by ``ailab sim up`` from the
inventory), and honours the device access a process has the way the real tool does (NVML only enumerates
devices it can open):

* it opens every /dev/nvidia<N>: EPERM/EACCES (a device cgroup, e.g. Slurm's for a job, denies it) or a
  missing node make that GPU invisible; ENXIO/ENODEV (no driver behind the node) or success make it visible;
* a GPU marked failed (``ailab sim gpu-fail``: a file /var/lib/ailab-sim/failed/<minor>) is left out of
  the output and reported on stderr as ``Unable to determine the device handle for GPU <bus id>: Unknown
  Error``, and the exit status is 15 (GPU has fallen off the bus), so health checks notice;
* no process can really use a simulated GPU, so utilisation and memory used are 0 unless a load is set
  (``ailab sim gpu-load``: a file /var/lib/ailab-sim/load/<minor> holding ``<percent> <MiB used>``, e.g.
  ``85 2048``): that GPU then reports that utilization.gpu (and utilization.memory, the same value),
  memory.used and memory.free = total - used.  A missing or malformed file, or values out of range
  (percent 0..100, MiB 0..the GPU's memory), mean no load.

Supported: the plain table, ``-L``, ``--query-gpu=FIELDS --format=csv[,noheader][,nounits]`` and
``-i/--id``.
Only the Python standard library is used: it runs inside the containers.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# Inside a container (role containers, ailab-ch-run) the host's files are bind-mounted elsewhere: the
# wrapper names them with AILAB_SIM_CONFIG and AILAB_SIM_STATE (the directory of failed/ and load/).
CONFIG = os.environ.get("AILAB_SIM_CONFIG") or "/etc/ailab-sim/node.json"
STATE_DIR = os.environ.get("AILAB_SIM_STATE") or "/var/lib/ailab-sim"
FAILED_DIR = f"{STATE_DIR}/failed"
LOAD_DIR = f"{STATE_DIR}/load"

EXIT_INVALID_ARGUMENT = 2
EXIT_NOT_FOUND = 6
EXIT_NO_DRIVER = 9
EXIT_FALLEN_OFF_BUS = 15

NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)
INVALID_ARGS = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."

VISIBLE_ERRNOS = {errno.ENXIO, errno.ENODEV, errno.EBUSY}


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Device:
    """A GPU of the host, as node.json declares it."""

    minor: int
    path: str
    uuid: str
    bus_id: str
    serial: str
    name: str
    memory_mib: int


@dataclass(frozen=True)
class Load:
    """What a GPU is busy with: utilisation in percent and memory used in MiB (0, 0: idle)."""

    percent: int = 0
    memory_mib: int = 0


IDLE = Load()


@dataclass(frozen=True)
class Gpu:
    """A GPU as this process sees it: ``index`` counts the GPUs it can open, like NVML."""

    index: int
    device: Device
    failed: bool
    load: Load = IDLE


def devices(config: dict) -> list[Device]:
    gpu = config.get("gpu")
    if not gpu:
        return []
    return [
        Device(
            minor=int(d["minor"]),
            path=d["path"],
            uuid=d["uuid"],
            bus_id=d["bus_id"],
            serial=d["serial"],
            name=gpu["product"],
            memory_mib=int(gpu["memory_mib"]),
        )
        for d in sorted(gpu["devices"], key=lambda d: int(d["minor"]))
    ]


def can_open(path: str) -> bool:
    """What the driver library would conclude: can this process use the device node?"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return exc.errno in VISIBLE_ERRNOS
    os.close(fd)
    return True


def parse_load(text: str, memory_mib: int) -> Load:
    """A load file's ``<percent> <MiB used>`` (the MiB may be left out: 0) for a GPU of ``memory_mib``;
    anything malformed or out of range is no load."""
    words = text.split()
    if not 1 <= len(words) <= 2 or not all(w.isascii() and w.isdigit() for w in words):
        return IDLE
    percent, used = int(words[0]), int(words[1]) if len(words) == 2 else 0
    if percent > 100 or used > memory_mib:
        return IDLE
    return Load(percent, used)


def enumerate_gpus(
    devs: Iterable[Device],
    accessible: Callable[[str], bool],
    failed: set[int],
    loads: Mapping[int, str] | None = None,
) -> list[Gpu]:
    """The GPUs this process can open, numbered from 0; ``loads``: load file text by minor number."""
    visible = [d for d in devs if accessible(d.path)]
    loads = loads or {}
    return [
        Gpu(
            index=i,
            device=d,
            failed=d.minor in failed,
            load=parse_load(loads[d.minor], d.memory_mib) if d.minor in loads else IDLE,
        )
        for i, d in enumerate(visible)
    ]


def read_failed(directory: str = FAILED_DIR) -> set[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {int(n) for n in names if n.isdigit()}


def read_loads(directory: str = LOAD_DIR) -> dict[int, str]:
    """The load files' text by minor number (unreadable ones are left out: no load)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    loads = {}
    for name in names:
        if name.isascii() and name.isdigit():
            try:
                with open(os.path.join(directory, name)) as fh:
                    loads[int(name)] = fh.read(100)
            except (OSError, UnicodeDecodeError):
                continue
    return loads


def select(gpus: Sequence[Gpu], ids: str | None) -> list[Gpu]:
    """``-i 0,1`` / ``-i GPU-uuid`` / ``-i 00000000:3B:00.0``; None: all."""
    if ids is None:
        return list(gpus)
    wanted = [w.strip() for w in ids.split(",") if w.strip()]
    chosen = []
    for want in wanted:
        for gpu in gpus:
            if want in (str(gpu.index), gpu.device.uuid, gpu.device.bus_id) and gpu not in chosen:
                chosen.append(gpu)
    return chosen


def _timestamp(now: dt.datetime) -> str:
    return now.strftime("%Y/%m/%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"


# --query-gpu fields: name -> (unit or None, value function(gpu, listed GPUs, config, now))
Field = tuple[str | None, Callable[[Gpu, int, dict, dt.datetime], str]]
FIELDS: dict[str, Field] = {
    "timestamp": (None, lambda g, n, c, now: _timestamp(now)),
    "driver_version": (None, lambda g, n, c, now: c.get("driver_version", "[N/A]")),
    "count": (None, lambda g, n, c, now: str(n)),
    "index": (None, lambda g, n, c, now: str(g.index)),
    "name": (None, lambda g, n, c, now: g.device.name),
    "serial": (None, lambda g, n, c, now: g.device.serial),
    "uuid": (None, lambda g, n, c, now: g.device.uuid),
    "pci.bus_id": (None, lambda g, n, c, now: g.device.bus_id),
    "pci.domain": (None, lambda g, n, c, now: "0x" + g.device.bus_id.split(":")[0][-4:]),
    "pci.bus": (None, lambda g, n, c, now: "0x" + g.device.bus_id.split(":")[1]),
    "pci.device": (None, lambda g, n, c, now: "0x" + g.device.bus_id.split(":")[2].split(".")[0]),
    "persistence_mode": (None, lambda g, n, c, now: "Enabled"),
    "compute_mode": (None, lambda g, n, c, now: "Default"),
    "memory.total": ("MiB", lambda g, n, c, now: str(g.device.memory_mib)),
    "memory.used": ("MiB", lambda g, n, c, now: str(g.load.memory_mib)),
    "memory.free": ("MiB", lambda g, n, c, now: str(g.device.memory_mib - g.load.memory_mib)),
    "utilization.gpu": ("%", lambda g, n, c, now: str(g.load.percent)),
    "utilization.memory": ("%", lambda g, n, c, now: str(g.load.percent)),
    "temperature.gpu": (None, lambda g, n, c, now: "[N/A]"),
    "power.draw": ("W", lambda g, n, c, now: "[N/A]"),
    "power.limit": ("W", lambda g, n, c, now: "[N/A]"),
}
ALIASES = {
    "gpu_name": "name",
    "gpu_serial": "serial",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
}


def parse_format(text: str) -> tuple[bool, bool]:
    """(header, units) from ``csv[,noheader][,nounits]``."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or parts[0] != "csv" or any(p not in ("noheader", "nounits") for p in parts[1:]):
        raise UsageError(f'"{text}" is not a valid format.')
    return "noheader" not in parts, "nounits" not in parts


def render_csv(
    gpus: Sequence[Gpu], fields: Sequence[str], config: dict, now: dt.datetime, header: bool, units: bool
) -> str:
    resolved = []
    for field in fields:
        name = ALIASES.get(field, field)
        if name not in FIELDS:
            raise UsageError(f'Field "{field}" is not a valid field to query.')
        resolved.append((field, *FIELDS[name]))
    lines = []
    if header:
        lines.append(", ".join(f"{f} [{u}]" if u and units else f for f, u, _ in resolved))
    for gpu in gpus:
        values = []
        for _, unit, value in resolved:
            text = value(gpu, len(gpus), config, now)
            if unit and units and not text.startswith("["):
                text = f"{text} {unit}" if unit != "%" else f"{text} %"
            values.append(text)
        lines.append(", ".join(values))
    return "".join(line + "\n" for line in lines)


def render_list(gpus: Sequence[Gpu]) -> str:
    return "".join(f"GPU {g.index}: {g.device.name} (UUID: {g.device.uuid})\n" for g in gpus)


def _cell(left: str, right: str, width: int) -> str:
    return left + " " * max(1, width - len(left) - len(right)) + right


def render_table(gpus: Sequence[Gpu], config: dict, now: dt.datetime) -> str:
    driver = config.get("driver_version", "N/A")
    cuda = config.get("cuda_version", "N/A")
    bar = "+" + "-" * 87 + "+"
    split = "+" + "-" * 41 + "+" + "-" * 22 + "+" + "-" * 22 + "+"
    out = [
        now.strftime("%a %b %d %H:%M:%S %Y"),
        bar,
        "| " + _cell(f"NVIDIA-SMI {driver}", f"Driver Version: {driver}   CUDA Version: {cuda}  ", 85) + " |",
        "|" + "-" * 41 + "+" + "-" * 22 + "+" + "-" * 22 + "+",
        "| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |",
        "|                                         |                      |               MIG M. |",
        "|" + "=" * 41 + "+" + "=" * 22 + "+" + "=" * 22 + "|",
    ]
    for n, gpu in enumerate(gpus):
        mem = f"{gpu.load.memory_mib}MiB / {gpu.device.memory_mib}MiB "
        out += [
            "|"
            + _cell(f"{gpu.index:>4}  {gpu.device.name}", "On  ", 41)
            + "|"
            + f" {gpu.device.bus_id} Off ".rjust(22)
            + "|"
            + "N/A ".rjust(22)
            + "|",
            "|"
            + _cell(" N/A   N/A    P0", "N/A /  N/A ", 41)
            + "|"
            + mem.rjust(22)
            + "|"
            + f"{gpu.load.percent}%      Default ".rjust(22)
            + "|",
            "|" + " " * 41 + "|" + " " * 22 + "|" + "N/A ".rjust(22) + "|",
            split if n == len(gpus) - 1 else "|" + "-" * 41 + "+" + "-" * 22 + "+" + "-" * 22 + "+",
        ]
    out += [
        " " * 89,
        bar,
        "| Processes:" + " " * 76 + "|",
        "|  GPU   GI   CI        PID   Type   Process name" + " " * 28 + "GPU Memory |",
        "|        ID   ID" + " " * 61 + "Usage      |",
        "|" + "=" * 87 + "|",
        "|  No running processes found" + " " * 59 + "|",
        bar,
    ]
    return "\n".join(out) + "\n"


@dataclass
class Options:
    mode: str = "table"  # table | list | query | help
    query: str | None = None
    fmt: str | None = None
    ids: str | None = None


def parse_args(argv: Sequence[str]) -> Options:
    opts = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, eq, value = arg.partition("=")

        def take(key: str = key, value: str = value, eq: str = eq) -> str:
            if eq:
                return value
            if not args:
                raise UsageError(INVALID_ARGS)
            return args.pop(0)

        if arg in ("-h", "--help"):
            opts.mode = "help"
        elif arg in ("-L", "--list-gpus"):
            opts.mode = "list"
        elif key in ("--query-gpu", "-query-gpu"):
            opts.mode, opts.query = "query", take()
        elif key in ("--format", "-format"):
            opts.fmt = take()
        elif key in ("-i", "--id"):
            opts.ids = take()
        else:
            raise UsageError(INVALID_ARGS)
    if opts.mode == "query" and opts.fmt is None:
        raise UsageError("--format must be specified when using --query-gpu.")
    return opts


HELP = """NVIDIA System Management Interface -- ailab simulator stand-in.

    nvidia-smi [-i ID] [-L | --query-gpu=FIELDS --format=csv[,noheader][,nounits]]

    -L, --list-gpus       Display a list of GPUs connected to the system.
    -i, --id=             Target a specific GPU (index, UUID or PCI bus ID; comma-separated).
    --query-gpu=          Information about GPU, e.g. index,name,uuid,memory.total,memory.used,
                          utilization.gpu,pci.bus_id,driver_version,count
    --format=             csv, optionally with noheader and/or nounits.
"""


def run(
    argv: Sequence[str],
    config: dict | None,
    accessible: Callable[[str], bool],
    failed: set[int],
    now: dt.datetime,
    loads: Mapping[int, str] | None = None,
) -> tuple[int, str, str]:
    """(exit status, stdout, stderr): all of the tool's behaviour, without I/O (``loads``: the load
    files' text by minor number)."""
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        return EXIT_INVALID_ARGUMENT, "", f"{exc}\n"
    if opts.mode == "help":
        return 0, HELP, ""
    if not config or not config.get("gpu"):
        return EXIT_NO_DRIVER, f"{NO_DRIVER}\n", ""
    gpus = select(enumerate_gpus(devices(config), accessible, failed, loads), opts.ids)
    if not gpus:
        return EXIT_NOT_FOUND, "No devices were found\n", ""
    healthy = [g for g in gpus if not g.failed]
    err = "".join(
        f"Unable to determine the device handle for GPU {g.device.bus_id}: Unknown Error\n"
        for g in gpus
        if g.failed
    )
    status = EXIT_FALLEN_OFF_BUS if err else 0
    try:
        if opts.mode == "list":
            out = render_list(healthy)
        elif opts.mode == "query":
            header, units = parse_format(opts.fmt or "")
            fields = [f.strip() for f in (opts.query or "").split(",") if f.strip()]
            out = render_csv(healthy, fields, config, now, header, units)
        else:
            out = render_table(healthy, config, now) if healthy else ""
    except UsageError as exc:
        return EXIT_INVALID_ARGUMENT, f"{exc}\n\n", ""
    return status, out, err


def load_config(path: str = CONFIG) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    status, out, err = run(
        sys.argv[1:] if argv is None else argv,
        load_config(),
        can_open,
        read_failed(),
        dt.datetime.now(),
        read_loads(),
    )
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
