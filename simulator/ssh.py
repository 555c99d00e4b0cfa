"""How Ansible reaches the simulated hosts: over SSH at their ``ailab_address``, as root, exactly as the
operators' controller reaches the real cluster (inventory/sim/group_vars/sim.yml says so to Ansible).

The simulator plays the part a machine provisioner (cloud-init, Pulumi) plays for real hosts:

* a controller key pair in ``<ailab_secrets_dir>/ssh/`` (generated once, never in git);
* the public key in each container's ``/root/.ssh/authorized_keys``;
* each container's own host key (made at its first boot) pinned in ``<ailab_secrets_dir>/ssh/known_hosts``
  under its name, FQDN and address, so Ansible checks host keys strictly (no ``host_key_checking=False``).

Paths and the known_hosts text are pure functions; only :func:`ensure_key` and :func:`write_known_hosts`
touch the disk (the controller's, never a node's).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ailab.model import Cluster
from simulator.errors import SimError

KEY_TYPE = "ed25519"
HOST_KEY = f"/etc/ssh/ssh_host_{KEY_TYPE}_key.pub"  # inside a container
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"  # inside a container


@dataclass(frozen=True)
class SshFiles:
    directory: Path
    private_key: Path
    public_key: Path
    known_hosts: Path


def ssh_files(cluster: Cluster) -> SshFiles:
    """Where the controller's key and the pinned host keys live (``<ailab_secrets_dir>/ssh``)."""
    if not cluster.secrets_dir:
        raise SimError(
            "the inventory sets no ailab_secrets_dir: the simulator keeps Ansible's SSH key and the pinned "
            "host keys there",
            "set ailab_secrets_dir in group_vars/all/cluster.yml (see inventory/sim)",
            exit_code=2,
        )
    directory = Path(cluster.secrets_dir) / "ssh"
    return SshFiles(
        directory=directory,
        private_key=directory / f"id_{KEY_TYPE}",
        public_key=directory / f"id_{KEY_TYPE}.pub",
        known_hosts=directory / "known_hosts",
    )


def ensure_key(files: SshFiles, comment: str) -> str:
    """Create the controller key pair if it is missing (mode 0600 in a 0700 directory); return the public
    key line."""
    files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.directory.parent, 0o700)
    os.chmod(files.directory, 0o700)
    if not files.private_key.exists():
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", KEY_TYPE, "-N", "", "-C", comment, "-f", str(files.private_key)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SimError(
                f"ssh-keygen failed: {result.stderr.strip()}",
                "install openssh-client (apt-get install openssh-client)",
            )
    return files.public_key.read_text().strip()


def host_names(cluster: Cluster, name: str) -> list[str]:
    """The names Ansible or an operator may use for a host: its name, FQDN and address."""
    host = cluster.hosts[name]
    names = [name]
    if cluster.domain:
        names.append(f"{name}.{cluster.domain}")
    names.append(host.address)
    return names


def parse_host_key(text: str) -> str:
    """``type base64`` of a host's ``ssh_host_*_key.pub`` (its comment dropped)."""
    fields = text.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise ValueError(f"not an OpenSSH public key: {text.strip()[:60]!r}")
    return f"{fields[0]} {fields[1]}"


def known_hosts_text(cluster: Cluster, host_keys: Mapping[str, str]) -> str:
    """known_hosts lines, one per host of ``host_keys`` (host name -> public key text), sorted by name."""
    lines = []
    for name in sorted(host_keys):
        lines.append(f"{','.join(host_names(cluster, name))} {parse_host_key(host_keys[name])}\n")
    return "".join(lines)


def merge_known_hosts(old: str, new: str) -> str:
    """``new``'s lines, then the lines of ``old`` for names ``new`` does not cover (another inventory's hosts
    with the same secrets dir, e.g. a copy with one more node): one line per name, never a stale key."""
    covered = {n for line in new.splitlines() if line.strip() for n in line.split()[0].split(",")}
    kept = [
        line + "\n"
        for line in old.splitlines()
        if line.strip() and not covered & set(line.split()[0].split(","))
    ]
    return new + "".join(kept)


def write_known_hosts(files: SshFiles, text: str) -> None:
    """Replace known_hosts atomically (a concurrent ssh never sees half a file)."""
    files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=files.directory, prefix=".known_hosts.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, files.known_hosts)
