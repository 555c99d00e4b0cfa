"""How each host becomes a container: names, labels and the exact ``docker`` arguments.  Pure functions of
the model, so what the simulator will do can be tested (and read) without a Docker Engine."""

from __future__ import annotations

from ailab.model import (
    GROUP_CEPH,
    GROUP_COMPUTE,
    GROUP_CONTROLLER,
    GROUP_DIRECTORY,
    Cluster,
    Host,
    SimSettings,
)

# Labels mark what the simulator created; `down` removes exactly what carries its prefix label.
LABEL_PREFIX = "ailab.sim.prefix"
LABEL_HOST = "ailab.sim.host"
LABEL_CLUSTER = "ailab.sim.cluster"
LABEL_IMAGE = "ailab.sim.image"  # on images: "base" or "node"

# What systemd as PID 1 needs here (host cgroups v1, no --privileged: it fails on this kind of machine).
SYSTEMD_ARGS = (
    "--cap-add", "SYS_ADMIN",
    "--cap-add", "NET_ADMIN",
    "--cap-add", "MKNOD",
    "--cap-add", "SYS_NICE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "--device", "/dev/fuse",
    "--stop-signal", "SIGRTMIN+3",
    "--stop-timeout", "30",
    "--env", "container=docker",
)  # fmt: skip
# Compute nodes only: slurmstepd (root) reads /proc/PID/stat and /proc/PID/io of the job's processes, which
# run as the student, for Slurm's job accounting (MaxRSS, sstat).  The kernel lets root read another user's
# /proc/PID/io only with CAP_SYS_PTRACE, which root has on a real node and Docker drops by default; without
# it Slurm 22.05 silently drops every process of the batch and srun steps, and records no memory peak.
COMPUTE_ARGS = ("--cap-add", "SYS_PTRACE")
# The directory host too: Debian's slapd init script stops slapd (user openldap) with start-stop-daemon
# --exec, which reads /proc/PID/exe; without CAP_SYS_PTRACE root cannot, finds no slapd and every restart
# fails with "Address already in use".
DIRECTORY_ARGS = COMPUTE_ARGS
NVIDIA_MAJOR = 195
GPU_DEVICE_RULE = f"c {NVIDIA_MAJOR}:* rwm"
CEPH_DATA = "/var/lib/ceph"


def labels(sim: SimSettings, cluster: Cluster, host: str | None = None) -> dict[str, str]:
    out = {LABEL_PREFIX: sim.prefix, LABEL_CLUSTER: cluster.name}
    if host is not None:
        out[LABEL_HOST] = host
    return out


def label_args(values: dict[str, str]) -> list[str]:
    return [arg for key, value in sorted(values.items()) for arg in ("--label", f"{key}={value}")]


def prefix_filter(sim: SimSettings) -> str:
    """The ``--filter`` value selecting everything of this prefix."""
    return f"label={LABEL_PREFIX}={sim.prefix}"


def sim_settings(cluster: Cluster) -> SimSettings:
    from simulator.errors import SimError

    if cluster.sim is None:
        raise SimError(
            "the inventory has no ailab_sim settings: it is not a simulated inventory",
            "pass -i inventory/sim (or add ailab_sim: {prefix, network, subnet} to group_vars/all)",
            exit_code=2,
        )
    return cluster.sim


def aliases(cluster: Cluster, host: Host) -> list[str]:
    """DNS names of the host on the simulator network (Docker's embedded DNS answers them)."""
    names = [host.name]
    if cluster.domain:
        names.append(f"{host.name}.{cluster.domain}")
    return names


def backup_volume(sim: SimSettings) -> str:
    """The volume that stands in for the site's backup server: shared by the hosts that back up, it outlives
    any one of them (``ailab sim destroy``) and goes only with ``ailab sim down``."""
    return f"{sim.prefix}-backup"


def backs_up(cluster: Cluster, host: Host) -> bool:
    """Whether ``host`` writes backups (role backup): a controller or the operations host."""
    return bool(cluster.backup.destination) and (
        host.in_group(GROUP_CONTROLLER) or host.name == cluster.operations_host
    )


def volumes(cluster: Cluster, host: Host) -> list[tuple[str, str]]:
    """(named volume, mount point) the host keeps across stop/start: Ceph's data on the storage hosts, and
    the shared backup volume at ``ailab_backup.destination`` on the hosts that back up (it is mounted apart
    from the container's root, as the site's backup share is on a real host)."""
    sim = sim_settings(cluster)
    out = []
    if host.in_group(GROUP_CEPH):
        out.append((f"{sim.prefix}-{host.name}-ceph", CEPH_DATA))
    if backs_up(cluster, host):
        out.append((backup_volume(sim), cluster.backup.destination))
    return out


def has_gpus(host: Host) -> bool:
    return bool(host.hardware and host.hardware.gpu and host.hardware.gpu.count)


def network_create_args(cluster: Cluster) -> list[str]:
    sim = sim_settings(cluster)
    return [
        "network", "create",
        "--driver", "bridge",
        "--subnet", sim.subnet,
        *label_args(labels(sim, cluster)),
        sim.network,
    ]  # fmt: skip


def volume_create_args(cluster: Cluster, host: Host, volume: str) -> list[str]:
    sim = sim_settings(cluster)
    owner = None if volume == backup_volume(sim) else host.name  # shared: no host owns it
    return ["volume", "create", *label_args(labels(sim, cluster, owner)), volume]


def create_args(cluster: Cluster, host: Host, image: str) -> list[str]:
    """``docker create`` arguments for ``host`` (after ``docker``)."""
    sim = sim_settings(cluster)
    args = [
        "create",
        "--name", sim.container(host.name),
        "--hostname", host.name,
        *label_args(labels(sim, cluster, host.name)),
        "--network", sim.network,
        "--ip", host.address,
    ]  # fmt: skip
    for alias in aliases(cluster, host):
        args += ["--network-alias", alias]
    args += SYSTEMD_ARGS
    if host.in_group(GROUP_COMPUTE):
        args += COMPUTE_ARGS
    elif host.in_group(GROUP_DIRECTORY):
        args += DIRECTORY_ARGS
    if has_gpus(host):
        args += ["--device-cgroup-rule", GPU_DEVICE_RULE]
    for volume, target in volumes(cluster, host):
        args += ["-v", f"{volume}:{target}"]
    args += [image, "/sbin/init"]
    return args


def connect_args(cluster: Cluster, host: Host) -> list[str]:
    """``docker network connect`` arguments that put ``host`` back with its address and names."""
    sim = sim_settings(cluster)
    args = ["network", "connect", "--ip", host.address]
    for alias in aliases(cluster, host):
        args += ["--alias", alias]
    return [*args, sim.network, sim.container(host.name)]
