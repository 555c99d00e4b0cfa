"""Containers for students (``ailab_containers``, role containers): the files rendered from the model.

- ``containers.json`` (/etc/ailab/containers.json on the front-end and GPU nodes): what ``ailab-ch-build``
  and ``ailab-ch-run`` (ailab/nodetools/containers.py) need: the catalogue, where images live, the per-node
  GPU directory bound into every container, the rules they enforce with their messages.
- ``catalogue.json`` (on the host that publishes the catalogue): each base image's definition and its
  digest; an image is rebuilt only when its digest changes.

Charliecloud runs the containers: no setuid helper, no daemon, only the user's own uid mapped (see
roles/containers/README.md for why not rootless podman).
"""

from __future__ import annotations

import hashlib
import json

from ailab.model import Cluster, ContainerImage
from ailab.slurm import job_submit_messages

# Bumped when the way an image is built changes (mmdebstrap arguments, fix-ups): every image is rebuilt.
BUILD_RECIPE = 2
GPU_MOUNT = "/mnt/9"  # Charliecloud 0.31 binds onto existing directories; every image has /mnt/0../mnt/9
USER_BINDS = tuple(f"/mnt/{n}" for n in range(7))  # /mnt/7-9 are the platform's
STORAGE = "/var/tmp/{user}.ch"  # ch-image's storage: local disk (its build cache is not for CephFS)
USER_IMAGES = "images"  # ~/images/<name>.sqfs: in the home, counted against the quota
# The simulator's nvidia-smi stand-in reads its node description and state from the host: bound into the
# container next to the GPU directory, named by the variables it reads (simulator/image/nvidia_smi.py).
SIM_BINDS = (("/etc/ailab-sim", "/mnt/7"), ("/var/lib/ailab-sim", "/mnt/8"))
SIM_ENV = {"AILAB_SIM_CONFIG": "/mnt/7/node.json", "AILAB_SIM_STATE": "/mnt/8"}


def guide_title(cluster: Cluster) -> str:
    return f"Containers on {cluster.name}"


def rules(cluster: Cluster) -> dict[str, str]:
    """The platform's container rules, by key: what the tools say when they refuse, and what the guide
    lists.  Each names its rule as the guide numbers it."""
    guide = guide_title(cluster)
    return {
        "gpu": job_submit_messages(cluster)["no_gpu"]
        + f"; containers run only inside such a job ({guide}, rule C1)",
        "privileged": (
            f"containers run as you, with your own uid and no added privileges ({guide}, rule C2): "
            "there is no root, --privileged, --cap-add or --uid in a container here"
        ),
        "network": (
            f"a container shares the network of the job it runs in ({guide}, rule C3): no --network, "
            "--net or host-network mode"
        ),
        "devices": (
            f"a container sees only the GPUs Slurm gave the job ({guide}, rule C4): no --device and no "
            "binds of /dev, /proc or /sys; ask Slurm for the GPUs instead (--gres=gpu:N)"
        ),
    }


def image_digest(image: ContainerImage) -> str:
    """What a published image was built from: its definition and the build recipe (sha256, hex)."""
    definition = {
        "name": image.name,
        "suite": image.suite,
        "packages": sorted(image.packages),
        "recipe": BUILD_RECIPE,
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def wrapper_config(cluster: Cluster) -> dict[str, object]:
    c = cluster.containers
    return {
        "cluster": cluster.name,
        "guide": guide_title(cluster),
        "catalogue": "" if c.registry else c.catalogue,
        "registry": c.registry,
        "images": [] if c.registry else sorted(i.name for i in c.images),
        "storage": STORAGE,
        "user_images": USER_IMAGES,
        "gpu_dir": c.gpu_dir,
        "gpu_mount": GPU_MOUNT,
        "user_binds": list(USER_BINDS),
        "binds": [list(b) for b in SIM_BINDS] if cluster.sim is not None else [],
        "env": dict(SIM_ENV) if cluster.sim is not None else {},
        "rules": rules(cluster),
    }


def catalogue_config(cluster: Cluster) -> dict[str, object]:
    c = cluster.containers
    images = [] if c.registry else c.images
    datasets = (cluster.ceph.datasets_path or "").rstrip("/")
    subdir = (
        c.catalogue[len(datasets) :].strip("/") if datasets and c.catalogue.startswith(datasets + "/") else ""
    )
    return {
        "catalogue": c.catalogue,
        "subdir": subdir,
        "images": [
            {
                "name": i.name,
                "suite": i.suite,
                "packages": sorted(i.packages),
                "description": i.description,
                "digest": image_digest(i),
            }
            for i in sorted(images, key=lambda i: i.name)
        ],
    }


def render_containers_json(cluster: Cluster, host: str | None = None) -> str:
    return json.dumps(wrapper_config(cluster), indent=2, sort_keys=True) + "\n"


def render_catalogue_json(cluster: Cluster, host: str | None = None) -> str:
    return json.dumps(catalogue_config(cluster), indent=2, sort_keys=True) + "\n"


def settings(cluster: Cluster) -> dict[str, object]:
    """What role containers decides on (the ``ailab_containers`` filter)."""
    c = cluster.containers
    return {
        "enabled": c.enabled,
        "catalogue": "" if c.registry else c.catalogue,
        "subdir": catalogue_config(cluster)["subdir"],
        "registry": c.registry,
        "gpu_dir": c.gpu_dir,
    }
