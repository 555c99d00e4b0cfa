"""The simulator's Python API (integration tests and the ``ailab sim`` commands use it)::

    sim = Sim("inventory/sim")
    sim.up()                                   # images, network, containers; waits for systemd
    sim.exec("fe01", "sinfo", user="student1") # CompletedProcess[str]; str commands run via bash -lc
    sim.gpu_fail("t4-01", 1); sim.gpu_load("t4-01", 0, 85, memory_mib=2048)
    sim.disconnect("ctl01"); sim.status(); sim.down()

Everything the user can get wrong (unknown node, bad GPU index, no Docker Engine, a name taken by a
container that is not ours) raises :class:`SimError` before anything is changed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ailab.model import GROUP_CEPH, Cluster, Host
from simulator import cgroups, hostcheck, images, plan, ssh
from simulator.docker import Docker
from simulator.errors import SimError
from simulator.nodeconfig import (
    FAILED_DIR,
    LOAD_DIR,
    config_tar,
    gpu_count,
    gpu_memory_mib,
    node_config,
)
from simulator.progress import Progress

READY_STATES = ("running", "degraded")


@dataclass(frozen=True)
class NodeStatus:
    name: str
    container: str
    groups: tuple[str, ...]
    state: str  # Docker's: running, exited, created, paused, ...; "absent" when there is no container
    address: str  # from the inventory
    connected: bool  # attached to the simulator network
    systemd: str | None  # `systemctl is-system-running` inside a running container
    gpus: int
    gpu_model: str | None
    failed_gpus: tuple[int, ...] = ()
    in_inventory: bool = True  # False: a container of this prefix for a host no longer in the inventory
    image: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``ailab sim status --json``): the host name is under ``node``."""
        data = asdict(self)
        return {"node": data.pop("name"), **data}


@dataclass
class UpResult:
    image: str
    created: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DownResult:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    cgroups_removed: list[Path] = field(default_factory=list)
    cgroups_busy: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ExecError(subprocess.CalledProcessError):
    """A command in a container exited non-zero (``Sim.exec(..., check=True)``)."""

    def __init__(self, node: str, command: Sequence[str], result: subprocess.CompletedProcess[str]):
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)
        self.node = node
        self.command = list(command)

    def __str__(self) -> str:
        def tail(text: str | None) -> str:
            lines = (text or "").strip().splitlines()[-15:]
            return "\n".join("    " + line for line in lines) or "    (empty)"

        return (
            f"on {self.node}: {shlex.join(self.command)} exited {self.returncode}\n"
            f"  stdout:\n{tail(self.stdout)}\n  stderr:\n{tail(self.stderr)}"
        )


def _load(inventory_path: str | os.PathLike[str]) -> Cluster:
    from ailab.inventory import load_cluster

    cluster, _ = load_cluster(inventory_path)
    return cluster


class Sim:
    def __init__(
        self,
        inventory_path: str | os.PathLike[str] = "inventory/sim",
        *,
        docker: Docker | None = None,
        progress: Progress | None = None,
        cluster: Cluster | None = None,
    ):
        self.inventory_path = Path(inventory_path)
        self.cluster: Cluster = cluster if cluster is not None else _load(inventory_path)
        self.settings = plan.sim_settings(self.cluster)
        self.docker = docker or Docker()
        self.progress = progress or Progress()
        self._homes: dict[tuple[str, str], list[str]] = {}

    # Names ------------------------------------------------------------------------------------------

    def host(self, node: str) -> Host:
        try:
            return self.cluster.hosts[node]
        except KeyError:
            known = ", ".join(sorted(self.cluster.hosts))
            raise SimError(
                f"unknown node {node!r}: not a host of {self.inventory_path}",
                f"use one of: {known}",
                exit_code=2,
            ) from None

    def container(self, node: str) -> str:
        return self.settings.container(self.host(node).name)

    # Inspection -------------------------------------------------------------------------------------

    def _inspect_containers(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {c["Name"].lstrip("/"): c for c in self.docker.inspect("container", names)}

    def converge_stamp(self) -> dict[str, Any]:
        """What simulator/stamp.py records for this cluster now: the tree's digest and, when every node's
        container is running, each one's id and start time (else none, and no stamp ever matches)."""
        from simulator import stamp

        infos = self._inspect_containers([self.settings.container(h) for h in self.cluster.hosts])
        running = stamp.container_identity(infos)
        return stamp.stamp(stamp.tree_digest(), running if len(running) == len(self.cluster.hosts) else {})

    def _ours(self, info: dict[str, Any]) -> bool:
        labels = info.get("Config", {}).get("Labels") or {}
        return labels.get(plan.LABEL_PREFIX) == self.settings.prefix

    def _state(self, node: str) -> tuple[str, dict[str, Any] | None]:
        container = self.container(node)
        info = self._inspect_containers([container]).get(container)
        if info is None:
            return "absent", None
        if not self._ours(info):
            raise self._not_ours(container)
        return info["State"]["Status"], info

    def _not_ours(self, container: str) -> SimError:
        return SimError(
            f"a container named {container!r} exists but was not created by the simulator for prefix "
            f"{self.settings.prefix!r} (no label {plan.LABEL_PREFIX}={self.settings.prefix})",
            "remove or rename that container yourself, or change ailab_sim.prefix in the inventory",
            exit_code=2,
        )

    def _require_running(self, node: str) -> str:
        state, _ = self._state(node)
        if state != "running":
            raise SimError(
                f"node {node!r} is {state} (container {self.container(node)})",
                f"ailab sim start {node}" if state != "absent" else "ailab sim up",
            )
        return self.container(node)

    def _connected(self, info: dict[str, Any]) -> bool:
        return self.settings.network in (info.get("NetworkSettings", {}).get("Networks") or {})

    # Bringing up ------------------------------------------------------------------------------------

    def _check_network(self) -> bool:
        """True if the network exists (and is ours, with the right subnet)."""
        found = self.docker.inspect("network", [self.settings.network])
        if not found:
            return False
        net = found[0]
        labels = net.get("Labels") or {}
        if labels.get(plan.LABEL_PREFIX) != self.settings.prefix:
            raise SimError(
                f"a Docker network named {self.settings.network!r} exists but is not the simulator's for "
                f"prefix {self.settings.prefix!r}",
                "pick another ailab_sim.network in the inventory (or remove that network)",
                exit_code=2,
            )
        subnets = [c.get("Subnet") for c in (net.get("IPAM", {}).get("Config") or [])]
        if self.settings.subnet not in subnets:
            raise SimError(
                f"network {self.settings.network!r} has subnet {', '.join(map(str, subnets))}, the inventory "
                f"says ailab_sim.subnet {self.settings.subnet}",
                "ailab sim down (it removes the network) and ailab sim up again",
                exit_code=2,
            )
        return True

    def up(self, timeout: float = 300, only: Sequence[str] | None = None) -> UpResult:
        """Bring every host of the inventory up (or the hosts ``only`` names: a Molecule scenario's): create
        what is missing, start what is stopped, leave running containers alone; wait until systemd runs in
        all of them."""
        start = time.monotonic()
        hosts = [self.host(n) for n in only] if only else list(self.cluster.hosts.values())
        self.docker.ensure_available()
        names = [self.settings.container(h.name) for h in hosts]
        existing = self._inspect_containers(names)
        for name, info in existing.items():
            if not self._ours(info):
                raise self._not_ours(name)
        network_exists = self._check_network()

        image = images.ensure_images(self.docker, self.progress)
        hostcheck.ensure_limits(self.progress)
        result = UpResult(image=image)
        if not network_exists:
            self.docker.run(plan.network_create_args(self.cluster))
            self.progress.say(f"==> network {self.settings.network} ({self.settings.subnet}) created")

        with self.progress.step(f"containers ({self.settings.prefix}-*)"):
            for host in hosts:
                container = self.settings.container(host.name)
                info = existing.get(container)
                if info is None:
                    self._create(host, image)
                    result.created.append(host.name)
                elif info["State"]["Status"] != "running":
                    self.docker.run(["start", container])
                    result.started.append(host.name)
                else:
                    result.unchanged.append(host.name)
                    if info.get("Config", {}).get("Image") != image:
                        self.progress.say(
                            f"    {host.name}: runs an older image ({info['Config']['Image']}); "
                            "ailab sim down && ailab sim up recreates it"
                        )
            for extra in self._extra_containers():
                self.progress.say(
                    f"    {extra}: not in the inventory any more (`ailab sim prune` removes it)"
                )
        with self.progress.step("wait for systemd in every container"):
            self.wait_ready([h.name for h in hosts], timeout=timeout)
        with self.progress.step("SSH: authorize Ansible's key, pin every host key"):
            self.pin_ssh([h.name for h in hosts])
        result.seconds = time.monotonic() - start
        return result

    def pin_ssh(self, nodes: Sequence[str]) -> ssh.SshFiles:
        """What a provisioner does for a real machine: put the controller's public key in root's
        authorized_keys and record the host's key, so Ansible connects over SSH with strict host key
        checking (``inventory/sim/group_vars/sim.yml``).  Idempotent; returns where the files are."""
        files = ssh.ssh_files(self.cluster)
        key = ssh.ensure_key(files, f"ansible@{self.settings.prefix} (ailab simulator controller)")
        script = (
            'install -d -m 0700 /root/.ssh && touch "$2" && chmod 0600 "$2" '
            '&& { grep -qxF "$1" "$2" || printf "%s\\n" "$1" >> "$2"; } && cat "$3"'
        )
        host_keys = {}
        for node in nodes:
            result = self.docker.run(
                ["exec", self._require_running(node), "sh", "-c", script, "sh", key, ssh.AUTHORIZED_KEYS,
                 ssh.HOST_KEY],
                check=False,
                timeout=30,
            )  # fmt: skip
            if result.returncode != 0:
                raise SimError(
                    f"{node}: could not authorize the controller key or read {ssh.HOST_KEY}: "
                    f"{result.stderr.strip() or result.stdout.strip()}",
                    f"ailab sim exec {node} -- systemctl status ailab-sim-ssh-keygen ssh",
                )
            host_keys[node] = result.stdout
        old = files.known_hosts.read_text() if files.known_hosts.exists() else ""
        ssh.write_known_hosts(
            files, ssh.merge_known_hosts(old, ssh.known_hosts_text(self.cluster, host_keys))
        )
        return files

    def _create(self, host: Host, image: str) -> None:
        for volume, _ in plan.volumes(self.cluster, host):
            if not self.docker.inspect("volume", [volume]):
                self.docker.run(plan.volume_create_args(self.cluster, host, volume))
        self.docker.run(plan.create_args(self.cluster, host, image))
        container = self.settings.container(host.name)
        self.docker.run(
            ["cp", "-", f"{container}:/etc/ailab-sim"], input=config_tar(node_config(self.cluster, host))
        )
        self.docker.run(["start", container])
        self.progress.say(f"    {host.name}: created {container} at {host.address}")

    def _extra_containers(self) -> list[str]:
        ours = set(self.docker.ids("container", plan.prefix_filter(self.settings)))
        expected = {self.settings.container(h) for h in self.cluster.hosts}
        return sorted(ours - expected)

    def wait_ready(self, nodes: Iterable[str], timeout: float = 300) -> dict[str, str]:
        """Poll ``systemctl is-system-running`` until every node says running or degraded."""
        pending = {node: "unknown" for node in nodes}
        done: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for node in list(pending):
                result = self.docker.run(
                    ["exec", self.container(node), "systemctl", "is-system-running"], check=False, timeout=30
                )
                state = (result.stdout.strip() or result.stderr.strip() or "unknown").splitlines()[0]
                pending[node] = state
                if state in READY_STATES:
                    done[node] = state
                    del pending[node]
                    if state == "degraded":
                        failed = self.docker.run(
                            ["exec", self.container(node), "systemctl", "--failed", "--plain", "--no-legend"],
                            check=False,
                        ).stdout.split()
                        units = [w for w in failed if "." in w and not w.startswith("●")]
                        self.progress.say(f"    {node}: degraded (failed units: {', '.join(units) or '?'})")
            if pending and time.monotonic() > deadline:
                states = ", ".join(f"{n}: {s}" for n, s in sorted(pending.items()))
                raise SimError(
                    f"systemd did not finish booting within {timeout:.0f}s ({states})",
                    "look at `docker logs <container>` and `ailab sim exec NODE -- systemctl list-jobs`",
                )
            if pending:
                time.sleep(0.5)
        return done

    # Tearing down -----------------------------------------------------------------------------------

    def down(self) -> DownResult:
        """Remove every container, network and volume of this prefix (by label) and the host cgroups
        Slurm left for this inventory's nodes."""
        self.docker.ensure_available()
        result = DownResult()
        selector = plan.prefix_filter(self.settings)
        containers = self.docker.ids("container", selector)
        infos = self._inspect_containers(containers)
        node_names = set(self.cluster.hosts)
        node_names |= {
            (i.get("Config", {}).get("Labels") or {}).get(plan.LABEL_HOST, "") for i in infos.values()
        } - {""}
        if containers:
            with self.progress.step(f"remove {len(containers)} containers"):
                self.docker.run(["rm", "--force", "--volumes", *containers], timeout=300)
            result.containers = containers
        for network in self.docker.ids("network", selector):
            removed = self.docker.run(["network", "rm", network], check=False)
            if removed.returncode == 0:
                result.networks.append(network)
            else:
                result.warnings.append(f"network {network} kept: {removed.stderr.strip()}")
        self._remove_volumes(self.docker.ids("volume", selector), result)
        self._clean_cgroups(node_names, result)
        for warning in result.warnings:
            self.progress.say(f"warning: {warning}")
        return result

    def _remove_volumes(self, volumes: Iterable[str], result: DownResult) -> None:
        for volume in volumes:
            removed = self.docker.run(["volume", "rm", volume], check=False)
            if removed.returncode == 0:
                result.volumes.append(volume)
            else:
                result.warnings.append(f"volume {volume} kept: {removed.stderr.strip()}")

    def _clean_cgroups(self, node_names: set[str], result: DownResult) -> None:
        """Remove the host cgroups Slurm left for ``node_names`` (those no other cluster's container uses)."""
        # A node name another prefix's cluster also uses: its slurmd may use the same host cgroup.
        shared = self._names_used_elsewhere(node_names)
        for name in sorted(n for n in shared if cgroups.leftover_roots(cgroups.CGROUP_ROOT, [n])):
            result.warnings.append(
                f"cgroups slurm_{name} kept: a container of another simulated cluster has host name {name}"
            )
        try:
            report = cgroups.remove_leftovers(sorted(node_names - shared))
            # Processes of a killed container can take a moment to leave their cgroups.
            for _ in range(10):
                if not report.busy:
                    break
                time.sleep(0.5)
                again = cgroups.remove_leftovers(sorted(node_names - shared))
                report.removed += again.removed
                report.busy = again.busy
        except PermissionError as exc:
            result.warnings.append(f"host cgroups not cleaned ({exc}); run as root")
        else:
            result.cgroups_removed, result.cgroups_busy = report.removed, report.busy
            for busy in report.busy:
                result.warnings.append(f"cgroup {busy} kept: still busy (a process lives in it)")

    def prune(self) -> DownResult:
        """Remove the containers of this prefix whose host is no longer in the inventory (a retired node:
        drain it and converge without it first), with their volumes and the host cgroups Slurm left."""
        self.docker.ensure_available()
        result = DownResult()
        extras = self._extra_containers()
        infos = self._inspect_containers(extras)
        names = {
            (i.get("Config", {}).get("Labels") or {}).get(plan.LABEL_HOST, "") for i in infos.values()
        } - {""}
        if not extras:
            return result
        with self.progress.step(f"remove {len(extras)} containers not in the inventory"):
            self.docker.run(["rm", "--force", "--volumes", *extras], timeout=300)
        result.containers = extras
        selector = plan.prefix_filter(self.settings)
        volumes = self.docker.inspect("volume", self.docker.ids("volume", selector))
        retired = [v["Name"] for v in volumes if (v.get("Labels") or {}).get(plan.LABEL_HOST) in names]
        self._remove_volumes(retired, result)
        self._clean_cgroups(names, result)
        for warning in result.warnings:
            self.progress.say(f"warning: {warning}")
        return result

    def destroy(self, node: str) -> DownResult:
        """Lose ``node`` as a machine whose disk died: remove its container and the volumes only it uses
        (not the shared backup volume, which stands in for the site's backup server).  ``ailab sim up``
        builds it again from the image, empty, for a converge to rebuild (and restore) it."""
        self.docker.ensure_available()
        host = self.cluster.hosts.get(node)
        if host is None:
            raise SimError(f"node {node!r} is not in the inventory", "pick a host of `ailab sim status`")
        if host.in_group(GROUP_CEPH):
            raise SimError(
                f"{node} holds the simulated Ceph cluster's disks: destroying it loses every home",
                "destroy a controller, front-end or compute node; `ailab sim down` removes everything",
                exit_code=2,
            )
        state, _ = self._state(node)
        if state == "absent":
            raise SimError(f"node {node!r} has no container", "ailab sim up")
        result = DownResult()
        self.docker.run(["rm", "--force", "--volumes", self.container(node)], timeout=300)
        result.containers = [self.container(node)]
        own = [v for v, _ in plan.volumes(self.cluster, host) if v != plan.backup_volume(self.settings)]
        self._remove_volumes([v for v in own if self.docker.inspect("volume", [v])], result)
        self._clean_cgroups({node}, result)
        for warning in result.warnings:
            self.progress.say(f"warning: {warning}")
        return result

    def _names_used_elsewhere(self, names: set[str]) -> set[str]:
        fmt = f'{{{{.Label "{plan.LABEL_PREFIX}"}}}} {{{{.Label "{plan.LABEL_HOST}"}}}}'
        out = self.docker.run(["ps", "-a", "--filter", f"label={plan.LABEL_PREFIX}", "--format", fmt]).stdout
        used = set()
        for line in out.splitlines():
            prefix, _, host = line.partition(" ")
            if prefix != self.settings.prefix and host in names:
                used.add(host)
        return used

    # Status -----------------------------------------------------------------------------------------

    def status(self) -> list[NodeStatus]:
        self.docker.ensure_available()
        expected = {self.settings.container(h): h for h in self.cluster.hosts}
        extras = self._extra_containers()
        infos = self._inspect_containers([*expected, *extras])
        out = []
        for container in [*expected, *extras]:
            info = infos.get(container)
            host = self.cluster.hosts.get(expected.get(container, ""))
            if info is not None and not self._ours(info):
                raise self._not_ours(container)
            state = info["State"]["Status"] if info else "absent"
            systemd, failed = None, ()
            if state == "running":
                systemd, failed = self._probe(container)
            labels = (info or {}).get("Config", {}).get("Labels") or {}
            gpu = host.hardware.gpu if host and host.hardware else None
            out.append(
                NodeStatus(
                    name=host.name if host else labels.get(plan.LABEL_HOST, container),
                    container=container,
                    groups=host.groups if host else (),
                    state=state,
                    address=host.address if host else "",
                    connected=bool(info) and self._connected(info),
                    systemd=systemd,
                    gpus=gpu_count(host) if host else 0,
                    gpu_model=gpu.model if gpu else None,
                    failed_gpus=failed,
                    in_inventory=host is not None,
                    image=(info or {}).get("Config", {}).get("Image"),
                )
            )
        return out

    def _probe(self, container: str) -> tuple[str | None, tuple[int, ...]]:
        script = f"systemctl is-system-running; echo ---; ls {FAILED_DIR} 2>/dev/null; true"
        result = self.docker.run(["exec", container, "sh", "-c", script], check=False, timeout=30)
        head, _, tail = result.stdout.partition("---")
        state = head.strip() or None
        failed = tuple(sorted(int(x) for x in tail.split() if x.isdigit()))
        return state, failed

    # Running commands -------------------------------------------------------------------------------

    def _home(self, node: str, container: str, user: str) -> str:
        return self._passwd(node, container, user)[5] or "/"

    def _ids(self, node: str, container: str, user: str) -> str:
        """``uid:gid`` as NSS gives them: Docker's ``-u NAME`` reads only the container's /etc/passwd, which
        holds no directory (SSSD) user."""
        fields = self._passwd(node, container, user)
        return f"{fields[2]}:{fields[3]}"

    def _passwd(self, node: str, container: str, user: str) -> list[str]:
        key = (node, user)
        if key not in self._homes:
            found = self.docker.run(["exec", container, "getent", "passwd", user], check=False)
            fields = found.stdout.strip().split(":")
            if found.returncode != 0 or len(fields) < 6:
                raise SimError(
                    f"user {user!r} does not exist on {node}",
                    "converge the cluster (users come from ailab_users) or pick an existing user",
                    exit_code=2,
                )
            self._homes[key] = fields
        return self._homes[key]

    def exec_args(self, node: str, cmd: Sequence[str] | str, user: str | None, interactive: bool, tty: bool):
        container = self._require_running(node)
        argv = ["bash", "-lc", cmd] if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise SimError("no command given", "ailab sim exec NODE -- COMMAND [ARGS...]", exit_code=2)
        args = ["exec"]
        if interactive:
            args.append("-i")
        if tty:
            args.append("-t")
        if user:
            home, ids = self._home(node, container, user), self._ids(node, container, user)
            # Start where a login would, unless the home is not there yet (e.g. CephFS not mounted).
            args += ["-u", ids, "-e", f"HOME={home}", "-e", f"USER={user}", "-e", f"LOGNAME={user}"]
            probe = self.docker.run(["exec", "-u", ids, container, "test", "-d", home], check=False)
            if probe.returncode == 0:
                args += ["-w", home]
        return [*args, container, *argv]

    def exec(
        self,
        node: str,
        cmd: list[str] | str,
        user: str | None = None,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in ``node``'s container and capture its output.  A str runs via ``bash -lc``.
        ``check``: raise :class:`ExecError` (a CalledProcessError) on a non-zero exit."""
        args = self.exec_args(node, cmd, user, interactive=input is not None, tty=False)
        result = self.docker._run(args, check=False, input=input, timeout=timeout)
        result = subprocess.CompletedProcess(
            ["docker", *args], result.returncode, result.stdout, result.stderr
        )
        if check and result.returncode != 0:
            raise ExecError(node, [cmd] if isinstance(cmd, str) else cmd, result)
        return result

    def exec_interactive(self, node: str, cmd: Sequence[str], user: str | None = None) -> int:
        """Run with the caller's terminal (``ailab sim exec`` / ``shell``); returns the exit status."""
        import sys

        tty = sys.stdin.isatty() and sys.stdout.isatty()
        args = self.exec_args(node, cmd, user, interactive=True, tty=tty)
        return subprocess.run([self.docker.binary, *args], check=False).returncode

    # Faults -----------------------------------------------------------------------------------------

    def stop(self, node: str) -> None:
        state, _ = self._state(node)
        if state == "absent":
            raise SimError(f"node {node!r} has no container", "ailab sim up")
        self.docker.run(["stop", self.container(node)], timeout=120)

    def start(self, node: str, timeout: float = 300, wait: bool = True) -> None:
        """Start ``node``'s container and wait until systemd has finished booting it (``wait``: False
        returns once the container runs, e.g. to watch one unit of a boot that waits on a fault)."""
        state, _ = self._state(node)
        if state == "absent":
            raise SimError(f"node {node!r} has no container", "ailab sim up")
        if state != "running":
            hostcheck.ensure_limits(self.progress)
            self.docker.run(["start", self.container(node)])
        if wait:
            self.wait_ready([node], timeout=timeout)

    def disconnect(self, node: str) -> bool:
        """Take ``node`` off the simulator network (as if its cable were pulled).  False: it already was."""
        _, info = self._state(node)
        if info is None:
            raise SimError(f"node {node!r} has no container", "ailab sim up")
        if not self._connected(info):
            return False
        self.docker.run(["network", "disconnect", self.settings.network, self.container(node)])
        return True

    def reconnect(self, node: str) -> bool:
        """Put ``node`` back on the network with its address and names.  False: it was connected."""
        _, info = self._state(node)
        if info is None:
            raise SimError(f"node {node!r} has no container", "ailab sim up")
        if self._connected(info):
            return False
        self.docker.run(plan.connect_args(self.cluster, self.host(node)))
        return True

    def _gpu(self, node: str, index: int) -> str:
        """The running container of ``node``, once ``index`` is known to be one of its GPUs."""
        self._check_gpu(node, index)
        return self._require_running(node)

    def _check_gpu(self, node: str, index: int) -> Host:
        host = self.host(node)
        count = gpu_count(host)
        if count == 0:
            raise SimError(
                f"node {node!r} has no GPUs (its hardware has no gpu in the inventory)",
                "pick a compute node: "
                + ", ".join(h.name for h in self.cluster.hosts.values() if gpu_count(h)),
                exit_code=2,
            )
        if not 0 <= index < count:
            raise SimError(
                f"GPU index {index} is out of range for {node!r}, which has {count} GPU(s)",
                f"use an index from 0 to {count - 1}",
                exit_code=2,
            )
        return host

    def gpu_fail(self, node: str, index: int) -> None:
        """Make GPU ``index`` of ``node`` fall off the bus: nvidia-smi stops listing it and exits 15."""
        container = self._gpu(node, index)
        self.docker.run(
            ["exec", container, "sh", "-c", f"mkdir -p {FAILED_DIR} && touch {FAILED_DIR}/{index}"]
        )

    def gpu_restore(self, node: str, index: int) -> None:
        container = self._gpu(node, index)
        self.docker.run(["exec", container, "rm", "-f", f"{FAILED_DIR}/{index}"])

    def gpu_load(self, node: str, index: int, percent: int, memory_mib: int = 0) -> None:
        """Make GPU ``index`` of ``node`` look busy: nvidia-smi reports ``percent`` utilisation and
        ``memory_mib`` MiB used (memory.free = total - used).  0 and 0 make it idle again."""
        host = self._check_gpu(node, index)
        total = gpu_memory_mib(host)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise SimError(
                f"GPU utilisation must be a whole percentage from 0 to 100, not {percent!r}",
                f"ailab sim gpu-load {node} {index} 85 (0 makes the GPU idle again)",
                exit_code=2,
            )
        if isinstance(memory_mib, bool) or not isinstance(memory_mib, int) or not 0 <= memory_mib <= total:
            raise SimError(
                f"GPU memory used must be a whole number of MiB from 0 to {total} (the memory of a GPU of "
                f"{node!r}), not {memory_mib!r}",
                f"ailab sim gpu-load {node} {index} {percent} --memory-mib {min(2048, total)}",
                exit_code=2,
            )
        container = self._require_running(node)
        path = f"{LOAD_DIR}/{index}"
        if percent == 0 and memory_mib == 0:
            self.docker.run(["exec", container, "rm", "-f", path])
            return
        script = (
            f"mkdir -p {LOAD_DIR} && printf '%s %s\\n' {percent} {memory_mib} > {path}.tmp "
            f"&& mv {path}.tmp {path}"
        )
        self.docker.run(["exec", container, "sh", "-c", script])
