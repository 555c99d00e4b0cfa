"""Keeps this node's CephFS mounts usable (role cephfs_client; run by ailab-cephfs-check.timer).

For every mount in /etc/ceph/ailab-cephfs-check.json it looks once and acts:

* not mounted (storage down at boot, a mount attempt timed out): start the mount unit;
* the mount answers with an error (client gone: "Transport endpoint is not connected", evicted:
  "Cannot send after transport endpoint shutdown", or its root vanished): unmount lazily, mount again;
* the mount does not answer: while the cluster does not answer either (storage down) or its metadata
  server is still recovering, wait: the client reconnects by itself.  Once the file system's MDS has been
  up:active for ``hung_grace`` seconds and the mount still hangs, the client missed the MDS reconnect
  window and will never come back by itself: abort its FUSE connection (or force-unmount the kernel
  client), which releases every process stuck on it with an error, and mount again.  Whatever such a
  client had not written was already lost with its eviction.

Probing never blocks the check: a ``stat`` that a stuck client can hold in uninterruptible sleep runs as
a child that is given ``probe_timeout`` seconds and then left behind (it ends when the mount answers or
is aborted); while it is still there, the next check does not start another one.

When it brought a mount back and slurmd is set up to require the homes, it starts slurmd again (its start
was refused while the homes were missing).  ``--dry-run`` prints what it would do.  Only the Python
standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

CONFIG = "/etc/ceph/ailab-cephfs-check.json"
STATE_DIR = "/run/ailab-cephfs-check"
CEPH_CONF = "/etc/ceph/ceph.conf"
CLUSTER_TIMEOUT = 10  # seconds the ceph CLI may take to reach the monitors

# What one look at a mount found.
OK, ERROR, HUNG, NOT_MOUNTED = "ok", "error", "hung", "not-mounted"
# What to do about it.
NOTHING, MOUNT, REMOUNT, WAIT, FORCE_REMOUNT = "nothing", "mount", "remount", "wait", "force-remount"


@dataclass(frozen=True)
class Probe:
    state: str  # OK, ERROR, HUNG or NOT_MOUNTED
    detail: str = ""


@dataclass
class Memory:
    """What the check remembers about one mount between runs (a file under /run)."""

    hung_since: float | None = None  # first run that found the mount hanging
    active_since: float | None = None  # first run that found it hanging while the MDS was active
    probe_pid: int | None = None  # a probe still stuck in the mount

    @classmethod
    def from_dict(cls, data: dict) -> Memory:
        return cls(**{k: data.get(k) for k in ("hung_since", "active_since", "probe_pid")})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    memory: Memory = field(default_factory=Memory)


def decide(probe: Probe, memory: Memory, now: float, mds_active: bool | None, grace: float) -> Decision:
    """What to do about one mount, from this run's probe, what earlier runs saw, and (only asked when the
    mount hangs) whether the cluster answers with every MDS rank up:active (None: it did not answer)."""
    if probe.state == NOT_MOUNTED:
        return Decision(MOUNT, "not mounted")
    if probe.state == OK:
        return Decision(NOTHING, "answers")
    if probe.state == ERROR:
        return Decision(REMOUNT, probe.detail or "the mount answers with an error")
    hung_since = memory.hung_since if memory.hung_since is not None else now
    kept = Memory(hung_since=hung_since, probe_pid=memory.probe_pid)
    if mds_active is None:
        return Decision(WAIT, "not answering, nor is the cluster (storage down?): waiting", kept)
    if not mds_active:
        return Decision(WAIT, "not answering; the metadata server is still recovering: waiting", kept)
    active_since = memory.active_since if memory.active_since is not None else now
    kept = Memory(hung_since=hung_since, active_since=active_since, probe_pid=memory.probe_pid)
    waited = now - active_since
    if waited < grace:
        return Decision(
            WAIT,
            f"not answering while the metadata server is active ({waited:.0f}s of {grace:.0f}s): "
            "waiting for the client to reconnect",
            kept,
        )
    return Decision(
        FORCE_REMOUNT,
        f"hung for {now - hung_since:.0f}s, {waited:.0f}s of them with the metadata server active: "
        "the client missed its reconnect; aborting it and mounting again",
    )


def mds_ready(fs_get: dict) -> bool:
    """Every rank of the file system is served by an up:active MDS, from ``ceph fs get FS --format json``."""
    mdsmap = fs_get.get("mdsmap", fs_get)
    ranks = mdsmap.get("in") or []
    up = mdsmap.get("up") or {}
    info = mdsmap.get("info") or {}
    if not ranks:
        return False
    for rank in ranks:
        gid = up.get(f"mds_{rank}")
        if gid is None or info.get(f"gid_{gid}", {}).get("state") != "up:active":
            return False
    return True


def mount_entry(mountinfo: str, where: str) -> list[str] | None:
    """The /proc/self/mountinfo fields of the mount at ``where`` (the one on top), or None."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[4] == where:
            found = fields
    return found


def fuse_connection(mountinfo: str, where: str) -> str | None:
    """The FUSE connection id (the device minor, as in /sys/fs/fuse/connections/<id>) of the mount at
    ``where``; None when the mount there (the one on top) is not a FUSE mount, or there is none."""
    fields = mount_entry(mountinfo, where)
    if fields is None or "-" not in fields:
        return None
    fstype = fields[fields.index("-") + 1]
    major, _, minor = fields[2].partition(":")
    return minor if fstype.startswith("fuse") and major == "0" else None


# --- I/O -------------------------------------------------------------------------------------------------


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return f.read()


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def probe(where: str, memory: Memory, timeout: float) -> tuple[Probe, Memory]:
    if mount_entry(read_mountinfo(), where) is None:
        return Probe(NOT_MOUNTED), Memory()
    if alive(memory.probe_pid):
        return Probe(HUNG, "an earlier probe is still waiting for it"), memory
    child = subprocess.Popen(
        ["stat", "-t", os.path.join(where, ".")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # a no-op while it sleeps uninterruptibly in the mount; it ends when the mount answers
        return Probe(HUNG, f"no answer within {timeout:.0f}s"), Memory(
            memory.hung_since, memory.active_since, child.pid
        )
    if child.returncode == 0:
        return Probe(OK), Memory()
    return Probe(
        ERROR, err.strip().splitlines()[-1] if err.strip() else f"stat exited {child.returncode}"
    ), Memory()


def ask_mds_active(config: dict) -> bool | None:
    """Whether the cluster answers with every MDS rank of the file system up:active; None: no answer."""
    cmd = [
        "ceph",
        "--id",
        config["client_name"],
        "--conf",
        CEPH_CONF,
        "--connect-timeout",
        str(CLUSTER_TIMEOUT),
    ]
    try:
        out = subprocess.run(
            [*cmd, "fs", "get", config["fs_name"], "--format", "json"],
            capture_output=True,
            text=True,
            timeout=CLUSTER_TIMEOUT + 10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return mds_ready(json.loads(out.stdout))
    except ValueError:
        return None


def systemctl(*args: str) -> bool:
    return subprocess.run(["systemctl", *args], check=False).returncode == 0


def start_mount(unit: str) -> bool:
    systemctl("reset-failed", unit)
    return systemctl("start", unit)


def unmount_lazily(where: str) -> None:
    subprocess.run(["umount", "-l", where], check=False, stderr=subprocess.DEVNULL)


def abort_client(mount: dict) -> None:
    """Release everything stuck on a dead client, then take the mount off."""
    where = mount["where"]
    if mount.get("client", "fuse") == "fuse":
        conn = fuse_connection(read_mountinfo(), where)
        if conn is not None:
            try:
                with open(f"/sys/fs/fuse/connections/{conn}/abort", "w", encoding="utf-8") as f:
                    f.write("1")
            except OSError as exc:
                print(f"{where}: could not abort FUSE connection {conn}: {exc}")
        unmount_lazily(where)
        # ceph-fuse leaves once its connection is aborted; whatever of the unit is left goes now.
        systemctl("kill", "--signal=SIGKILL", mount["unit"])
    else:
        subprocess.run(["umount", "-f", "-l", where], check=False, stderr=subprocess.DEVNULL)


def load_memory(unit: str) -> Memory:
    try:
        with open(os.path.join(STATE_DIR, f"{unit}.json"), encoding="utf-8") as f:
            return Memory.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return Memory()


def save_memory(unit: str, memory: Memory) -> None:
    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    path = os.path.join(STATE_DIR, f"{unit}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(memory.as_dict(), f)
    os.replace(path + ".tmp", path)


def check(config: dict, dry_run: bool) -> bool:
    """One look at every mount; True when a mount was brought back."""
    grace = float(config.get("hung_grace", 90))
    timeout = float(config.get("probe_timeout", 10))
    recovered = False
    cluster: list[bool | None] = []  # the cluster's answer, asked at most once a run (all mounts share it)
    for mount in config["mounts"]:
        unit, where = mount["unit"], mount["where"]
        memory = load_memory(unit)
        seen, memory = probe(where, memory, timeout)
        if seen.state == HUNG and not cluster:
            cluster.append(ask_mds_active(config))
        mds = cluster[0] if seen.state == HUNG else None
        decision = decide(seen, memory, time.time(), mds, grace)
        if decision.action != NOTHING:
            print(f"{where}: {decision.reason}")
        if dry_run:
            continue
        save_memory(unit, decision.memory)
        if decision.action == FORCE_REMOUNT:
            abort_client(mount)
        elif decision.action == REMOUNT:
            unmount_lazily(where)
        if decision.action in (MOUNT, REMOUNT, FORCE_REMOUNT):
            if start_mount(unit):
                recovered = True
                print(f"{where}: mounted again")
            else:
                print(f"{where}: mount failed; next try in {config.get('interval', 15)}s")
    return recovered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    recovered = check(config, args.dry_run)
    if (
        recovered
        and config.get("slurmd")
        and not args.dry_run
        and systemctl("-q", "is-enabled", "slurmd.service")
        and not systemctl("-q", "is-active", "slurmd.service")
    ):
        print("homes are back: starting slurmd")
        systemctl("start", "--no-block", "slurmd.service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
