"""The Pulumi program: config -> settings -> inventory -> plan -> resources -> outputs.

Everything up to the plan is checked before the first resource is declared; a bad stack config or an
inventory the cloud cannot build stops ``pulumi up``/``preview`` with one line per problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from ailab.inventory import load_cluster
from ailab.model import Cluster
from ailab.problems import InventoryError, Problem
from ailab.stack_inventory import (
    OUT_ADMIN_USER,
    OUT_CLOUD,
    OUT_CLUSTER,
    OUT_HOSTS,
    OUT_INVENTORY,
    OUT_NODE_CLASSES,
    OUT_STORAGE,
)
from ailab_cloud import gcp, openstack
from ailab_cloud.nodes import Deployment, hosts_output
from ailab_cloud.plan import ROLE_FRONTEND, ROLE_STORAGE, Plan, check_roles, make_plan
from ailab_cloud.settings import StackConfigError, StackSettings, key, parse_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]  # pulumi/: where Pulumi.yaml is and `pulumi up` runs


@dataclass(frozen=True)
class Prepared:
    settings: StackSettings
    cluster: Cluster
    plan: Plan
    inventory: str  # the source inventory, relative to the repository root when inside it


def raw_config() -> dict[str, Any]:
    """Every config value of the stack.  The language host passes them in PULUMI_CONFIG; tests (and
    pulumi.runtime.set_all_config) put them in the runtime's config map."""
    from pulumi.runtime.config import CONFIG, get_config_env

    raw = dict(get_config_env())
    raw.update(CONFIG.get())
    return raw


def inventory_path(settings: StackSettings, project_dir: Path) -> Path:
    path = Path(settings.inventory)
    return path if path.is_absolute() else (project_dir / path)


def repo_relative(path: Path, project_dir: Path) -> str:
    """How `ailab inventory from-stack` (run from the repository root) finds the source inventory."""
    resolved, root = path.resolve(), project_dir.resolve().parent
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return str(resolved)


def load_inventory(settings: StackSettings, project_dir: Path, stack: str) -> Cluster:
    path = inventory_path(settings, project_dir)
    where = f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackConfigError(
            [
                Problem(
                    where,
                    key("inventory"),
                    f"{settings.inventory} does not exist (resolved to {path}; "
                    "relative paths start at pulumi/)",
                    f"pulumi config set {key('inventory')} ../inventory/production",
                )
            ]
        )
    try:
        cluster, problems = load_cluster(path, strict=False)
    except InventoryError as exc:
        cluster, problems = None, exc.problems
    if problems or cluster is None:
        # What the stack itself cannot do without comes first, then the inventory's own problems.
        first = check_roles(cluster, settings, where) if cluster is not None else []
        raise StackConfigError(
            first
            + [
                Problem(
                    where, key("inventory"), f"{settings.inventory}: {p.where}: {p.field}: {p.message}", p.fix
                )
                for p in problems
            ]
        )
    return cluster


def prepare(raw: Mapping[str, Any], *, stack: str, project_dir: Path = PROJECT_DIR) -> Prepared:
    """Settings, inventory and plan: all checks, no resources.  Raises StackConfigError."""
    settings = parse_settings(raw, stack=stack)
    cluster = load_inventory(settings, project_dir, stack)
    plan = make_plan(cluster, settings, stack=stack)
    inventory = repo_relative(inventory_path(settings, project_dir), project_dir)
    return Prepared(settings, cluster, plan, inventory)


def declare(prepared: Prepared) -> dict[str, Any]:
    """Declare the resources of the plan; return the stack outputs."""
    plan, settings = prepared.plan, prepared.settings
    deployment: Deployment = (gcp.deploy if settings.cloud == "gcp" else openstack.deploy)(plan, settings)
    hosts = hosts_output(deployment.records)
    frontend = next(r for r in deployment.records if r.host.role == ROLE_FRONTEND)
    node_classes = {
        c.name: {
            "hosts": list(c.hosts),
            "machine": deployment.machines[c.name],
            "gpus_per_node": c.gpu.count,
            "hardware": deployment.hardware[c.name],
        }
        for c in plan.classes
        if c.name in deployment.hardware
    }
    storage_hosts = [h.name for h in plan.role(ROLE_STORAGE)]
    return {
        OUT_CLOUD: settings.cloud,
        OUT_CLUSTER: plan.cluster_name,
        OUT_INVENTORY: prepared.inventory,
        OUT_ADMIN_USER: settings.admin_user,
        OUT_HOSTS: hosts,
        OUT_NODE_CLASSES: node_classes,
        OUT_STORAGE: {
            "managed": plan.storage_managed,
            "hosts": storage_hosts,
            "osd_disks_per_node": settings.osd_disks_per_node if storage_hosts else 0,
            "osd_disk_gb": settings.osd_disk_gb if storage_hosts else 0,
        },
        "frontend_public_ip": frontend.public_address,
        "ssh": pulumi.Output.concat("ssh ", settings.admin_user, "@", frontend.public_address),
        **deployment.extra,
    }


def run(raw: Mapping[str, Any] | None = None, *, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    raw = raw_config() if raw is None else raw
    return declare(prepare(raw, stack=pulumi.get_stack(), project_dir=project_dir))


def main() -> None:
    try:
        outputs = run()
    except StackConfigError as exc:
        raise pulumi.RunError(str(exc)) from None
    for name, value in outputs.items():
        pulumi.export(name, value)
