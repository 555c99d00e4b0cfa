"""Pure helpers for the Ceph roles (ceph_cluster, cephfs_client, user_dirs).

Exposed to Ansible by ailab/filters.py (plugins/filter/ailab.py).  Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ailab.model import Cluster

GIB = 1024**3
# The largest replica count the role chooses by itself; more copies than failure domains cannot be placed.
MAX_AUTO_REPLICAS = 3
# Ceph's default mds_reconnect_timeout: after an MDS (re)start, clients have this long to reconnect.
MDS_RECONNECT_WINDOW = 45
_SAFE_UNIT_CHAR = re.compile(r"[A-Za-z0-9:_.]")
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def systemd_escape_path(path: str) -> str:
    """``systemd-escape --path PATH``: the unit-name form of an absolute path (``/ceph/home`` ->
    ``ceph-home``), as systemd requires for the name of a mount unit."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{path!r} is not a normalised path")
    if not parts:
        return "-"
    out = []
    for part in parts:
        chars = []
        for i, ch in enumerate(part):
            if _SAFE_UNIT_CHAR.match(ch) and not (i == 0 and ch == "."):
                chars.append(ch)
            else:
                chars.extend(f"\\x{b:02x}" for b in ch.encode())
        out.append("".join(chars))
    return "-".join(out)


def mount_unit_name(path: str) -> str:
    """The name of the systemd mount unit that mounts ``path``."""
    return f"{systemd_escape_path(path)}.mount"


def quota_bytes(gib: int) -> int:
    """``ceph.quota.max_bytes`` for a quota given in the inventory's GB (binary: 1 GB = 1024^3 bytes, so
    ``df`` on the client shows the whole number the inventory says)."""
    if isinstance(gib, bool) or not isinstance(gib, int) or gib < 1:
        raise ValueError(f"a quota must be a whole number of GB, 1 or more, got {gib!r}")
    return gib * GIB


def pool_size(osd_hosts: int, requested: int = 0) -> dict[str, int]:
    """Replica ``size``/``min_size`` of the CephFS pools for ``osd_hosts`` hosts with OSDs.

    ``requested`` 0 picks min(3, hosts).  One host: size 1 / min_size 1 (a test or demo cluster: no
    redundancy).  Otherwise min_size = size - 1, so I/O goes on with one host down.

    What each size means for the homes (failure domain: host; ``ailab inventory check`` refuses the rows
    marked refused, see ailab.validate._check_pool_size):

    ====  ========  ===========================================  =============================================
    size  min_size  one host down                                inventory check
    ====  ========  ===========================================  =============================================
    1     1         the files on it are unavailable; a failed    refused, except in the simulator or with
                    disk loses them: no redundancy at all        ailab_ceph.pool_size: 1 (a test cluster)
    2     1         I/O goes on, every write in ONE copy only:   refused (2 storage hosts, or pool_size 2):
                    losing the other host's disk then loses it   add a third host
    3     2         I/O goes on, every write in two copies;      accepted (3 or more hosts, the default)
                    two hosts down: I/O stops, nothing is lost
    n>3   n-1       I/O goes on, every write in n-1 copies;      accepted (ailab_ceph.pool_size: n, n hosts)
                    nothing is lost until n hosts fail
    ====  ========  ===========================================  =============================================
    """
    if osd_hosts < 1:
        raise ValueError("the ceph group has no host with an OSD")
    size = requested or min(MAX_AUTO_REPLICAS, osd_hosts)
    if size > osd_hosts:
        raise ValueError(
            f"ceph_cluster_pool_size {size} needs at least {size} OSD hosts (failure domain host), "
            f"the ceph group has {osd_hosts}"
        )
    return {"size": size, "min_size": max(1, size - 1)}


def mon_hosts(ceph_hosts: Sequence[str], count: int = 3) -> list[str]:
    """The monitor hosts: the first ``count`` hosts of the ceph group, rounded down to an odd number (an
    even number of monitors tolerates no more failures than one fewer)."""
    hosts = list(ceph_hosts)
    n = min(count, len(hosts))
    if n > 1 and n % 2 == 0:
        n -= 1
    return hosts[:n]


def client_caps(fs_name: str, rw_paths: Sequence[str] = (), r_paths: Sequence[str] = (), *, p: bool = False):
    """The caps ``ceph fs authorize <fs> client.X <path> rw [<path> r ...]`` gives (Ceph 16), as a mapping
    ``{mds, mon, osd}``.  ``p`` adds the flag that allows setting quotas and layouts (admin side only)."""
    if not fs_name:
        raise ValueError("fs_name is empty")
    rw = "rwp" if p else "rw"
    grants = []
    for path in rw_paths:
        grants.append(f"allow {rw} fsname={fs_name}" + ("" if path == "/" else f" path={path}"))
    for path in r_paths:
        grants.append(f"allow r fsname={fs_name}" + ("" if path == "/" else f" path={path}"))
    if not grants:
        raise ValueError("no path to grant")
    osd = f"allow {'rw' if rw_paths else 'r'} tag cephfs data={fs_name}"
    return {"mds": ", ".join(grants), "mon": f"allow r fsname={fs_name}", "osd": osd}


def caps_args(caps: Mapping[str, str]) -> list[str]:
    """``ceph auth get-or-create``/``ceph auth caps`` arguments for ``caps``, in a stable order."""
    out: list[str] = []
    for daemon in sorted(caps):
        out += [daemon, caps[daemon]]
    return out


def check_client_name(name: str) -> str:
    """A Ceph client id without the ``client.`` prefix."""
    if not isinstance(name, str) or not _CLIENT_NAME.match(name) or name.startswith("client."):
        raise ValueError(f"{name!r} is not a Ceph client id (letters, digits, '.', '_', '-'; no 'client.')")
    return name


def join_fs_path(base: str, name: str) -> str:
    """``base`` (a directory inside CephFS) joined with one path component."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a single path component")
    return f"{base.rstrip('/')}/{name}"


def home_dirs(cluster: Cluster, fs_home_dir: str = "/home", mode: str = "0700") -> list[dict[str, Any]]:
    """One entry per inventory user for the ``cephfs_dirs`` module: path inside CephFS, numeric owner,
    mode and quota in bytes (the user's quota_gb or the policy's default_quota_gb)."""
    out = []
    for user in sorted(cluster.users.values(), key=lambda u: u.name):
        out.append(
            {
                "path": join_fs_path(fs_home_dir, user.name),
                "uid": user.uid,
                "gid": user.gid,
                "mode": mode,
                "quota_bytes": quota_bytes(cluster.quota_gb(user)),
            }
        )
    return out


def mon_addresses(mon_dump: Mapping[str, Any]) -> list[str]:
    """``mon_host`` entries (``[v2:ip:3300,v1:ip:6789]``) from ``ceph mon dump --format json``."""
    out = []
    for mon in mon_dump.get("mons", []):
        addrvec = (mon.get("public_addrs") or {}).get("addrvec") or []
        parts = [f"{a['type']}:{a['addr']}" for a in addrvec if a.get("type") in ("v1", "v2")]
        if parts:
            out.append("[" + ",".join(sorted(parts, key=lambda s: s[:2], reverse=True)) + "]")
        elif mon.get("addr"):
            out.append(str(mon["addr"]).split("/")[0])
    if not out:
        raise ValueError("the monitor map lists no monitor address")
    return out


def caps_differ(current: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """Whether an entity's caps (``ceph auth get --format json`` -> ``[0].caps``) differ from ``wanted``."""
    return {k: str(v) for k, v in current.items()} != dict(wanted)


def mount_check_config(
    mounts: Sequence[Mapping[str, Any]],
    *,
    client_name: str,
    fs_name: str,
    client: str,
    interval: int,
    probe_timeout: int,
    hung_grace: int,
    slurmd: bool,
) -> dict[str, Any]:
    """The settings of ``ailab-cephfs-check`` (ailab/nodetools/cephfscheck.py), the watchdog that keeps a
    node's CephFS mounts usable: one entry per mount (``where`` and its mount unit) and the timings.

    ``hung_grace`` counts from the first check that sees the metadata server up:active while a mount
    hangs; it must outlast the MDS reconnect window, or a client still reconnecting would be aborted."""
    if client not in ("fuse", "kernel"):
        raise ValueError(f"ailab_ceph.client must be fuse or kernel, got {client!r}")
    for name, value, least in (
        ("cephfs_client_check_interval", interval, 1),
        ("cephfs_client_probe_timeout", probe_timeout, 1),
        ("cephfs_client_hung_grace", hung_grace, MDS_RECONNECT_WINDOW),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be a whole number of seconds, at least {least}, got {value!r}")
    return {
        "client_name": check_client_name(client_name),
        "fs_name": fs_name,
        "interval": interval,
        "probe_timeout": probe_timeout,
        "hung_grace": hung_grace,
        "slurmd": bool(slurmd),
        "mounts": [
            {"where": str(m["where"]), "unit": mount_unit_name(str(m["where"])), "client": client}
            for m in mounts
        ],
    }
