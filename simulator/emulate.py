"""``ailab sim emulate``: any inventory's scheduler at full size, on real Slurm daemons.

The simulator proves the IaC on a small cluster of systemd containers; the emulation proves an inventory's
*scheduling* at its real size: slurmctld, slurmdbd + MariaDB and one real ``slurmd`` per compute node of
the inventory, all in one light container (no systemd, no Ceph, no SSH), configured by the same renderers
as the real cluster (:mod:`ailab.slurm`).  Each slurmd runs in its own UTS namespace (``unshare -u``) whose
host name is its NodeName, listens on its own ``Port=`` on 127.0.0.1, and trusts the declared sizes
(``SlurmdParameters=config_overrides``); gres.conf's device files exist as real character devices.  A
slurmd idles at a few MB, so hundreds of production-sized nodes fit on one machine.

What differs from the real slurm.conf is :data:`DIFFERENCES` (listed in simulator/README.md): addresses,
ports and per-node paths, and the confinement and health-check settings that concern one real node, not
scheduling.  Accounting (cluster, QOS, accounts, associations) is the plan of role slurm_controller's
``slurm_accounting`` module for an empty database; the inventory's users get Unix accounts first, so
slurmctld maps their associations to uids.

The container is on an internal Docker network of its own (Slurm resolves even 127.0.0.1 only when the
container has an IPv4 interface; internal: nothing leaves the machine).  Pure functions build the files
and the start script; :class:`Emulation` runs them.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ailab import slurm
from ailab.hostlist import expand
from ailab.model import Cluster
from simulator.docker import Docker
from simulator.errors import SimError

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTING_MODULE = ROOT / "roles" / "slurm_controller" / "library" / "slurm_accounting.py"
LABEL = "ailab.emulation"  # on the container and network: the emulation's name
LABEL_DIGEST = "ailab.emulation.digest"  # on the container: a hash of the files it was started with
READY = "/run/ailab-emulation.ready"  # in the container: the start finished and every node was idle
FIRST_PORT = 20001
SLURMD_STARTS = 8  # slurmd started in parallel  # slurmd ports: one per node, in the order of the node lines
LOOPBACK = "127.0.0.1"

# slurm.conf settings of the emulation that differ from the real cluster's: key -> (value, why).  None
# drops the key.  Every other line is the renderer's.
DIFFERENCES: dict[str, tuple[str | None, str]] = {
    "SlurmctldHost": ("{controller}(127.0.0.1)", "all daemons share one container's loopback"),
    "AccountingStorageHost": (LOOPBACK, "slurmdbd runs in the same container"),
    "SlurmdParameters": ("config_overrides", "slurmd trusts the declared CPUs, memory and GPUs"),
    "SlurmdSpoolDir": (f"{slurm.SLURMD_SPOOL_DIR}/%n", "one spool per node (%n: the NodeName)"),
    "SlurmdPidFile": ("/run/slurmd-%n.pid", "one PID file per node"),
    "SlurmdLogFile": (f"{slurm.LOG_DIR}/slurmd-%n.log", "one log per node"),
    "ProctrackType": ("proctrack/linuxproc", "no per-node cgroup tree in one container"),
    "TaskPlugin": ("task/none", "confinement is the simulator's to prove, not the scheduler's"),
    "JobAcctGatherType": ("jobacct_gather/none", "no per-job sampling of hundreds of nodes"),
    "PrologFlags": (None, "no extern step: no SSH into emulated nodes (pam_slurm_adopt)"),
    "HealthCheckProgram": (None, "the GPU check reads one node's devices; all nodes share these"),
    "HealthCheckInterval": (None, "no health check (above)"),
    "HealthCheckNodeState": (None, "no health check (above)"),
}
# Per node line: NodeAddr=127.0.0.1 and Port=<FIRST_PORT + i> (each node its own line).
NODE_DIFFERENCES = {"NodeAddr": LOOPBACK, "Port": "a port of its own, from 20001"}


def node_ports(cluster: Cluster) -> dict[str, int]:
    """Every compute node's slurmd port, in name order."""
    names = sorted(h.name for h in cluster.compute)
    return {name: FIRST_PORT + i for i, name in enumerate(names)}


def emulated_slurm_conf(cluster: Cluster) -> str:
    """The real slurm.conf's settings (:func:`ailab.slurm.slurm_conf_settings`, the operator's extra_config
    included) with :data:`DIFFERENCES` spliced in by the same mechanism, each node on a line of its own
    with its port, and the real partitions."""
    ports = node_ports(cluster)
    controller = slurm.controller(cluster).name
    differences = [
        (key, None if value is None else value.format(controller=controller))
        for key, (value, _why) in DIFFERENCES.items()
    ]
    settings = slurm.splice(slurm.slurm_conf_settings(cluster), differences, "ailab sim emulate")
    nodes = [
        slurm.record({**fields, "NodeName": name, "NodeAddr": LOOPBACK, "Port": ports[name]})
        for fields in slurm.node_records(cluster)
        for name in expand(str(fields["NodeName"]))
    ]
    return slurm.assemble_slurm_conf(cluster, settings, nodes)


# (path, owner, mode, text)
File = tuple[str, str, str, str]


def files(cluster: Cluster) -> list[File]:
    """What the emulation's container gets in Slurm's configuration directory, from the real renderers."""
    return [
        (f"{slurm.CONF_DIR}/slurm.conf", "root", "0644", emulated_slurm_conf(cluster)),
        (f"{slurm.CONF_DIR}/gres.conf", "root", "0644", slurm.render_gres_conf(cluster)),
        (f"{slurm.CONF_DIR}/cgroup.conf", "root", "0644", slurm.render_cgroup_conf(cluster)),
        (f"{slurm.CONF_DIR}/job_submit.lua", "root", "0644", slurm.render_job_submit_lua(cluster)),
        (f"{slurm.CONF_DIR}/slurmdbd.conf", slurm.SLURM_USER, "0600", slurm.render_slurmdbd_conf(cluster)),
    ]


def digest(cluster: Cluster) -> str:
    h = hashlib.sha256()
    for path, owner, mode, text in files(cluster):
        h.update(f"{path}\0{owner}\0{mode}\0{text}\0".encode())
    return h.hexdigest()[:16]


def _accounting() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ailab_slurm_accounting", ACCOUNTING_MODULE)
    if spec is None or spec.loader is None:  # pragma: no cover - the file is part of the repository
        raise SimError(f"cannot load {ACCOUNTING_MODULE}", "restore it from git")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def accounting_queries() -> dict[str, list[str]]:
    """The ``sacctmgr -nP`` reads of role slurm_controller's accounting module, by name."""
    return {name: ["sacctmgr", "-nP", *args] for name, args in _accounting().QUERIES.items()}


def accounting_commands(cluster: Cluster, outputs: dict[str, str]) -> list[list[str]]:
    """The sacctmgr commands the module would run, given what :func:`accounting_queries` printed (slurmctld
    registers the cluster itself when it starts, so the state is read, not assumed empty)."""
    acct = _accounting()
    spec = slurm.accounting_spec(cluster)
    state = acct.parse_state(cluster=spec["cluster"].lower(), **outputs)
    todo = acct.plan(spec, state, {})
    return [["sacctmgr", "-i", *command] for command in todo.commands]


def users_script(cluster: Cluster) -> list[str]:
    """Unix accounts for the inventory's users (the same uids and gids as on the cluster), homes under
    the inventory's home root on the container's own disk."""
    lines = [f"install -d -m 0755 {shlex.quote(cluster.ceph.home_root)}"]
    for user in sorted(cluster.users.values(), key=lambda u: u.uid):
        home = f"{cluster.ceph.home_root}/{user.name}"
        lines.append(
            f"getent group {user.gid} >/dev/null || groupadd -g {user.gid} {shlex.quote(user.name)}; "
            f"id -u {shlex.quote(user.name)} >/dev/null 2>&1 || useradd -K UID_MAX=4294967293 "
            f"-K GID_MAX=4294967293 -u {user.uid} -g {user.gid} -m -d {shlex.quote(home)} -s /bin/bash "
            f"{shlex.quote(user.name)}"
        )
    return lines


def _wait(what: str, test: str, seconds: int) -> str:
    tries = seconds * 5
    return (
        f"for i in $(seq {tries}); do {test} && break; sleep 0.2; done; "
        f"{test} || {{ echo 'ailab sim emulate: {what} did not come up' >&2; exit 1; }}"
    )


def start_script(cluster: Cluster, wait_seconds: int = 120) -> str:
    """Bash, run as root in a fresh container: write the files, create the users, start munge, MariaDB,
    slurmdbd and slurmctld.  Then :func:`accounting_commands`, then :func:`nodes_script`."""
    lines = ["set -euo pipefail", "umask 022"]
    for path, owner, mode, text in files(cluster):
        data = base64.b64encode(text.encode()).decode()
        lines.append(f"echo {data} | base64 -d > {path}; chown {owner}: {path}; chmod {mode} {path}")
    lines += [
        # munge: a key of the emulation's own.
        "install -d -o munge -g munge -m 0700 /etc/munge",
        "head -c 1024 /dev/urandom > /etc/munge/munge.key",
        "chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key",
        "install -d -o munge -g munge -m 0755 /run/munge",
        "runuser -u munge -- /usr/sbin/munged",
        # MariaDB, as role slurm_controller sets it up (unix_socket login for slurmdbd), small buffers.
        "install -d -o mysql -g mysql -m 0755 /run/mysqld",
        "install -d -o mysql -g adm -m 0750 /var/log/mysql",
        "(setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --innodb-buffer-pool-size=64M "
        "> /var/log/mysql/emulation.log 2>&1 &)",
        _wait("MariaDB", "test -S /run/mysqld/mysqld.sock", wait_seconds),
        f'mariadb -e "CREATE DATABASE IF NOT EXISTS {slurm.ACCOUNTING_DB}; '
        f"CREATE USER IF NOT EXISTS '{slurm.SLURM_USER}'@'localhost' IDENTIFIED VIA unix_socket; "
        f"GRANT ALL ON {slurm.ACCOUNTING_DB}.* TO '{slurm.SLURM_USER}'@'localhost';\"",
        f"install -d -o slurm -g slurm -m 0700 {slurm.STATE_SAVE_LOCATION}",
        f"install -d -o slurm -g slurm -m 0755 {slurm.LOG_DIR}",
        *users_script(cluster),
        "/usr/sbin/slurmdbd",
        _wait("slurmdbd", f"(exec 3<>/dev/tcp/127.0.0.1/{slurm.SLURMDBD_PORT}) 2>/dev/null", wait_seconds),
        "/usr/sbin/slurmctld",
        _wait("slurmctld", "scontrol ping 2>/dev/null | grep -q UP", wait_seconds),
    ]
    return "\n".join(lines) + "\n"


def nodes_script(cluster: Cluster, commands: Sequence[Sequence[str]]) -> str:
    """Bash: the accounting commands (after slurmctld, as the role runs them: slurmctld registers the GPU
    TRES the QOS limit names), then the GPUs' device files and one slurmd per compute node."""
    counts = [h.hardware.gpu.count for h in cluster.compute if h.hardware and h.hardware.gpu]
    lines = ["set -euo pipefail"]
    lines += [shlex.join(command) + " >/dev/null" for command in commands]
    # slurmctld maps associations to uids when it loads them: reload now that users and associations exist.
    lines.append("scontrol reconfigure")
    # char 195:N, as the NVIDIA driver makes them; every node's gres.conf names some of them.
    lines += [
        f"[ -e /dev/nvidia{i} ] || mknod -m 0666 /dev/nvidia{i} c 195 {i}"
        for i in range(max(counts, default=0))
    ]
    names = " ".join(node_ports(cluster))
    lines.append(f"for n in {names}; do install -d -m 0755 {slurm.SLURMD_SPOOL_DIR}/$n; done")
    # Each slurmd reads its configuration before it daemonizes: start several at once.
    lines.append(
        f"printf '%s\\n' {names} | xargs -P {SLURMD_STARTS} -I NODE "
        "unshare -u sh -c 'hostname NODE && exec /usr/sbin/slurmd'"
    )
    return "\n".join(lines) + "\n"


def parse_node_states(sinfo: str) -> dict[str, str]:
    """``sinfo -h -N -o '%N %t'`` (a node once per partition) -> node -> state."""
    out = {}
    for line in sinfo.splitlines():
        if line.strip():
            name, state = line.split()[:2]
            out[name] = state
    return out


@dataclass(frozen=True)
class UpResult:
    name: str
    nodes: int
    seconds: float
    started: bool  # False: it was already running with these files


class Emulation:
    """One inventory's emulated scheduler: ``up``, ``run``, ``down``."""

    def __init__(
        self, cluster: Cluster, inventory: str, prefix: str = "ailab-emu", docker: Docker | None = None
    ):
        if not cluster.compute:
            raise SimError(f"{inventory} has no compute nodes to emulate", "add compute_<class> groups", 2)
        self.cluster = cluster
        self.inventory = inventory
        self.name = f"{prefix}-{cluster.slurm.cluster_name}".replace("_", "-")
        self.docker = docker or Docker()

    def _container(self) -> dict | None:
        found = self.docker.inspect("container", [self.name])
        return found[0] if found else None

    def _ours(self, info: dict) -> bool:
        return (info.get("Config", {}).get("Labels") or {}).get(LABEL) == self.name

    def ready(self) -> bool:
        """Running, started with the inventory's current files, and its start finished."""
        info = self._container()
        if not (info and self._ours(info) and info.get("State", {}).get("Running")):
            return False
        if (info.get("Config", {}).get("Labels") or {}).get(LABEL_DIGEST) != digest(self.cluster):
            return False
        return self.docker.run(["exec", self.name, "test", "-e", READY], check=False).returncode == 0

    def up(self, timeout: float = 600, log=print) -> UpResult:
        """Start the emulation unless it runs with the inventory's current files; wait until every node
        is idle."""
        from simulator.images import ensure_images
        from simulator.progress import Progress

        started = time.monotonic()
        want = digest(self.cluster)
        info = self._container()
        if info is not None and not self._ours(info):
            raise SimError(
                f"a container named {self.name} exists and is not an emulation",
                "remove it, or pass --prefix to use other names",
                2,
            )
        if info is not None:
            if self.ready():
                self.wait_idle(timeout)
                return UpResult(self.name, len(self.cluster.compute), time.monotonic() - started, False)
            log(
                f"ailab sim emulate: {self.name} is stopped, half-started or older than {self.inventory}: "
                "starting it anew"
            )
            self.down()
        image = ensure_images(self.docker, Progress())
        self._ensure_network()
        controller = slurm.controller(self.cluster).name
        self.docker.run(
            [
                "run", "-d", "--name", self.name, "--hostname", controller,
                "--label", f"{LABEL}={self.name}", "--label", f"{LABEL_DIGEST}={want}",
                "--network", self.name, "--add-host", f"{controller}:{LOOPBACK}",
                "--init", "--cap-add", "SYS_ADMIN", "--cap-add", "MKNOD",
                "--tmpfs", "/run", "--entrypoint", "sleep", image, "infinity",
            ]
        )  # fmt: skip
        self._script(start_script(self.cluster, wait_seconds=int(min(timeout, 600))), timeout)
        outputs = {name: self._checked(query).stdout for name, query in accounting_queries().items()}
        self._script(nodes_script(self.cluster, accounting_commands(self.cluster, outputs)), timeout)
        self.wait_idle(timeout - (time.monotonic() - started))
        self._checked(["touch", READY])
        return UpResult(self.name, len(self.cluster.compute), time.monotonic() - started, True)

    def _failed(self, what: str, result: subprocess.CompletedProcess[str]) -> SimError:
        said = (result.stderr or result.stdout or f"exit status {result.returncode}").strip()[-2000:]
        return SimError(
            f"the emulation did not start ({what}): {said}",
            f"see docker exec {self.name} tail {slurm.LOG_DIR}/slurmctld.log {slurm.LOG_DIR}/slurmdbd.log; "
            f"`ailab sim emulate -i {self.inventory} --down` removes it",
        )

    def _script(self, script: str, timeout: float) -> None:
        result = self.docker.run(
            ["exec", "-i", self.name, "bash", "-s"], input=script, check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise self._failed("start script", result)

    def _checked(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        result = self.docker.run(["exec", self.name, *command], check=False)
        if result.returncode != 0:
            raise self._failed(shlex.join(command), result)
        return result

    def _ensure_network(self) -> None:
        if self.docker.inspect("network", [self.name]):
            return
        self.docker.run(["network", "create", "--internal", "--label", f"{LABEL}={self.name}", self.name])

    def node_states(self) -> dict[str, str]:
        out = self.docker.run(["exec", self.name, "sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
        return parse_node_states(out)

    def wait_idle(self, timeout: float) -> None:
        want = set(node_ports(self.cluster))
        deadline = time.monotonic() + max(timeout, 10)
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.node_states()
            if set(states) == want and all(s == "idle" for s in states.values()):
                return
            time.sleep(1)
        bad = sorted(f"{n}={states.get(n, 'missing')}" for n in want if states.get(n) != "idle")
        raise SimError(
            f"{len(bad)} emulated nodes are not idle: {', '.join(bad[:10])}",
            f"see docker exec {self.name} tail {slurm.LOG_DIR}/slurmd-NODE.log",
        )

    def check_user(self, user: str | None) -> None:
        if user is not None and user not in self.cluster.users:
            known = ", ".join(sorted(self.cluster.users)) or "none"
            raise SimError(f"{user!r} is not a user of {self.inventory}", f"use one of: {known}", 2)

    def run(
        self, command: Sequence[str], user: str | None = None, *, capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the emulation (as ``user`` from the inventory, in their home; else root)."""
        if not command:
            raise SimError("no command given", "ailab sim emulate -i INVENTORY [--user NAME] -- COMMAND", 2)
        self.check_user(user)
        args = ["exec"]
        if user is not None:
            args += ["-u", user, "-w", f"{self.cluster.ceph.home_root}/{user}"]
        if not capture and sys.stdin.isatty():
            args += ["-it"]
        elif not capture:
            args += ["-i"]
        args += [self.name, *command]
        if capture:
            return self.docker.run(args, check=False, timeout=None)
        result = subprocess.run([self.docker.binary, *args], check=False)
        return subprocess.CompletedProcess(result.args, result.returncode, "", "")

    def down(self) -> list[str]:
        removed = []
        if self._container() is not None:
            self.docker.run(["rm", "-f", self.name])
            removed.append(self.name)
        if self.docker.inspect("network", [self.name]):
            self.docker.run(["network", "rm", self.name])
            removed.append(f"network {self.name}")
        return removed
