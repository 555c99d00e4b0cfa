#!/usr/bin/python3
"""ailab simulator: create the GPU device nodes a simulated GPU host declares (run at boot by
ailab-sim-gpu-devices.service, installed as /usr/libexec/ailab-sim/gpu-devices).

/dev/nvidia<N> is char 195:N and /dev/nvidiactl char 195:255, mode 0666, like the NVIDIA driver makes
them.  No driver backs them: opening one gives ENXIO where the container's device cgroup allows major 195
(the simulator adds that rule to GPU hosts) and EPERM where a cgroup (Slurm's, for a job) denies it; the
nvidia-smi stand-in reads exactly that to decide which GPUs a process can see.
"""

from __future__ import annotations

import json
import os
import stat
import sys

CONFIG = "/etc/ailab-sim/node.json"
NVIDIA_MAJOR = 195
CTL_MINOR = 255


def device_nodes(config: dict, dev: str = "/dev") -> list[tuple[str, int]]:
    """(path, minor) of every device node the config asks for; empty for a host without GPUs."""
    gpu = config.get("gpu")
    if not gpu:
        return []
    nodes = [(os.path.join(dev, f"nvidia{d['minor']}"), int(d["minor"])) for d in gpu["devices"]]
    nodes.append((os.path.join(dev, "nvidiactl"), CTL_MINOR))
    return nodes


def make_node(path: str, minor: int) -> None:
    device = os.makedev(NVIDIA_MAJOR, minor)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not (stat.S_ISCHR(st.st_mode) and st.st_rdev == device):
        os.unlink(path)
        st = None
    if st is None:
        os.mknod(path, 0o666 | stat.S_IFCHR, device)
    os.chmod(path, 0o666)  # mknod honours the umask


def main(config_path: str = CONFIG, dev: str = "/dev") -> int:
    try:
        with open(config_path) as fh:
            config = json.load(fh)
    except FileNotFoundError:
        print(f"{config_path} is missing: no GPUs to create", file=sys.stderr)
        return 0
    nodes = device_nodes(config, dev)
    for path, minor in nodes:
        make_node(path, minor)
    names = ", ".join(os.path.basename(p) for p, _ in nodes) or "none"
    print(f"ailab-sim: GPU device nodes for {config.get('name', '?')}: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
