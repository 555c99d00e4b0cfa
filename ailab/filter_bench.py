"""What the model's Jinja filters cost Ansible's controller in one ``site.yml`` run, without any node.

A scratch inventory of N GPU compute nodes (``simulator/scale.py``, from ``inventory/sim``) is loaded through
Ansible's own API (InventoryManager, VariableManager, HostVars: what a play's ``hostvars`` is), every host is
given a realistic set of gathered facts and registered results, and each filter call of ``site.yml``'s roles
is run the way Ansible runs it: in a process forked from the controller for each (task, host), so nothing a
worker caches survives into the next one.  When the filter plugin offers a controller-side warm-up
(:func:`ailab.filters.warm`, called by the callback plugin at each task start), it is called in the parent
first, as the callback would.

``python -m ailab.filter_bench --nodes 64`` (or ``python -m ailab.bench --only-filters``) prints, per call
site, the milliseconds of one worker's filter calls and the seconds over all the hosts the play runs it on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = object()  # stands for inventory_hostname in a call's arguments

# (call site, the group whose hosts run it (None: one host, run_once/delegated), the filter calls of one
# worker).  One entry per task of site.yml that calls a model filter; a loop is one worker.
OPS = {"mail_from": "", "state_dir": "/var/lib/ailab", "catch_up_days": 30}
CALL_SITES: list[tuple[str, str | None, list[tuple[str, tuple[Any, ...], dict[str, Any]]]]] = [
    ("preflight: ailab_problems", None, [("ailab_problems", (), {})]),
    ("common: /etc/hosts", "all", [("ailab_render", ("hosts",), {})]),
    ("common: motd", "all", [("ailab_render", ("motd", HOST), {})]),
    # The parts of the model roles bind in vars/main.yml: one call per task that names the variable.
    (
        "common: time zone x2, domain",
        "all",
        [("ailab_model", (p,), {}) for p in ("timezone",) * 2 + ("domain",)],
    ),
    ("site.yml: directory on/off", "all", [("ailab_model", ("directory",), {})]),
    ("accounts: users, home_root", "all", [("ailab_model", ("users",), {}), ("ailab_model", ("ceph",), {})]),
    ("cephfs_client: ceph (one task)", "compute", [("ailab_model", ("ceph",), {})]),
    ("user_dirs: home dirs", None, [("ailab_home_dirs", ("/home", "0700"), {})]),
    ("slurm_controller: slurmdbd.conf", "slurm_controller", [("ailab_render", ("slurmdbd.conf",), {})]),
    ("slurm_controller: slurm.conf", "slurm_controller", [("ailab_render", ("slurm.conf",), {})]),
    ("slurm_controller: job_submit.lua", "slurm_controller", [("ailab_render", ("job_submit.lua",), {})]),
    ("slurm_controller: jobstats-epilog", "slurm_controller", [("ailab_render", ("jobstats-epilog",), {})]),
    ("slurm_controller: reload (slurm.conf)", "slurm_controller", [("ailab_render", ("slurm.conf",), {})]),
    ("slurm_controller: accounting", "slurm_controller", [("ailab_render", ("slurm-accounting.json",), {})]),
    (
        "slurm_compute: slurm/gres/cgroup.conf",
        "compute",
        [("ailab_render", (name, HOST), {}) for name in ("slurm.conf", "gres.conf", "cgroup.conf")],
    ),
    ("sshd: shosts.equiv", "all", [("ailab_render", ("shosts.equiv",), {})]),
    ("slurm_compute: gpu-health.json", "compute", [("ailab_render", ("gpu-health.json", HOST), {})]),
    ("slurm_client: slurm.conf", "frontend", [("ailab_render", ("slurm.conf",), {})]),
    ("sshd (front-end): banner x2", "frontend", [("ailab_render", ("banner",), {})] * 2),
    ("frontend: policy.json", "frontend", [("ailab_render", ("policy.json",), {})]),
    ("frontend: user-slice.conf", "frontend", [("ailab_render", ("user-slice.conf",), {})]),
    (
        "frontend: status page",
        "frontend",
        [("ailab_status_page", (HOST, "/etc/ailab"), {})],
    ),
    ("operations: ops.json", "frontend", [("ailab_ops_config", (), OPS)]),
    ("mail: SMTP clients", "frontend", [("ailab_monitoring", (HOST,), {})]),
    ("mail: domain", "frontend", [("ailab_model", ("domain",), {})]),
    ("metrics: settings", "all", [("ailab_monitoring", (HOST,), {})]),
    ("monitoring: settings", "monitoring", [("ailab_monitoring", (HOST,), {})]),
    (
        "monitoring: rules, prometheus.yml, alertmanager.yml",
        "monitoring",
        [("ailab_render", (name,), {}) for name in ("ailab-rules.yml", "prometheus.yml", "alertmanager.yml")],
    ),
    ("monitoring: idle-gpus.json", "monitoring", [("ailab_render", ("idle-gpus.json",), {})]),
    ("containers: settings", "all", [("ailab_containers", (), {})]),
    ("containers: containers.json", "compute", [("ailab_render", ("containers.json",), {})]),
    ("containers: catalogue.json", "ceph", [("ailab_render", ("catalogue.json",), {})]),
    ("directory: settings", "all", [("ailab_directory_settings", (), {})]),
    ("directory: directory.json", "directory", [("ailab_render", ("directory.json",), {})]),
]


def load_filters() -> dict[str, Callable[..., Any]]:
    """Every filter of the project's filter plugin files, loaded from the files as Ansible loads them."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    filters: dict[str, Callable[..., Any]] = {}
    files = sorted((ROOT / "plugins" / "filter").glob("*.py")) + sorted(
        ROOT.glob("roles/*/filter_plugins/*.py")
    )
    for path in files:
        spec = importlib.util.spec_from_file_location(f"_ailab_bench_filter_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        filters.update(module.FilterModule().filters())
    return filters


def fake_facts(host: str) -> dict[str, Any]:
    """About what ``gather_subset: [min]`` returns on a Debian 12 node."""
    return {
        "ansible_hostname": host,
        "ansible_nodename": host,
        "ansible_fqdn": f"{host}.cluster",
        "ansible_domain": "cluster",
        "ansible_distribution": "Debian",
        "ansible_distribution_release": "bookworm",
        "ansible_distribution_version": "12.8",
        "ansible_distribution_major_version": "12",
        "ansible_os_family": "Debian",
        "ansible_system": "Linux",
        "ansible_kernel": "6.1.0-28-amd64",
        "ansible_architecture": "x86_64",
        "ansible_machine": "x86_64",
        "ansible_python_version": "3.11.2",
        "ansible_python": {"executable": "/usr/bin/python3", "version": {"major": 3, "minor": 11}},
        "ansible_env": {f"VAR{i}": f"value-{i}" for i in range(20)},
        "ansible_date_time": {f"k{i}": str(i) for i in range(18)},
        "ansible_lsb": {"codename": "bookworm", "id": "Debian", "major_release": "12"},
        "ansible_selinux": {"status": "disabled"},
        "ansible_service_mgr": "systemd",
        "ansible_pkg_mgr": "apt",
        "ansible_user_id": "root",
        "ansible_user_dir": "/root",
        "ansible_local": {},
        **{f"ansible_misc_{i}": f"v{i}" for i in range(20)},
    }


@dataclass
class PlayState:
    hostvars: Any  # ansible.vars.hostvars.HostVars
    groups: dict[str, list[str]]
    variables: Any  # ansible.vars.manager.VariableManager


def load_play_state(inventory: Path, *, facts: bool = True) -> PlayState:
    """``hostvars`` and ``groups`` as a play's tasks see them, after fact gathering and a few registered
    results (what the fact caches hold in the middle of a run)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory_manager = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=inventory_manager)
    hostvars = HostVars(inventory_manager, variables, loader)
    if facts:
        for host in inventory_manager.hosts:
            variables.set_host_facts(host, fake_facts(host))
            for i in range(10):
                variables.set_nonpersistent_facts(
                    host, {f"result_{i}": {"changed": False, "rc": 0, "stdout": ""}}
                )
    groups = {g: list(members) for g, members in inventory_manager.get_groups_dict().items()}
    return PlayState(hostvars, groups, variables)


def scratch_inventory(nodes: int, dest: Path) -> Path:
    """A copy of inventory/sim with ``nodes`` GPU compute nodes (what ``make bench``'s scale run uses)."""
    from ailab.inventory import load_cluster
    from simulator.scale import write_scale_inventory

    source = ROOT / "inventory" / "sim"
    cluster, _ = load_cluster(source)
    write_scale_inventory(source, cluster, nodes, dest, prefix="ailab-scale", subnet="10.214.0.0/24")
    return dest


def in_worker(action: Callable[[], None]) -> float:
    """Seconds ``action`` takes in a child forked from this process (as Ansible runs a task on a host)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code = 0
        try:
            start = time.perf_counter()
            action()
            os.write(write, repr(time.perf_counter() - start).encode())
        except BaseException as exc:
            os.write(write, f"error {exc!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    if out.startswith("error"):
        raise RuntimeError(f"filter call failed in the worker: {out}")
    return float(out)


def call_site_hosts(state: PlayState, group: str | None) -> list[str]:
    return state.groups.get(group, []) if group else state.groups["all"][:1]


def run(state: PlayState, filters: Mapping[str, Callable[..., Any]], *, sample: int = 0) -> list[dict]:
    """Per call site: median milliseconds of one worker and seconds over its hosts.  ``sample`` > 0 times
    only that many hosts per call site and scales the sum (the median is per worker anyway)."""
    warm = getattr(sys.modules.get("ailab.filters"), "warm", None)
    rows = []
    for label, group, calls in CALL_SITES:
        hosts = call_site_hosts(state, group)
        if warm is not None:
            warm(state.hostvars, state.groups)  # the callback, at the task's start in the controller
        timed = hosts[:sample] if sample else hosts
        seconds = []
        for host in timed:

            def worker(host: str = host, calls=calls) -> None:
                for name, args, kwargs in calls:
                    real = tuple(host if a is HOST else a for a in args)
                    filters[name](state.hostvars, state.groups, *real, **kwargs)

            seconds.append(in_worker(worker))
        total = sum(seconds) * len(hosts) / len(timed)
        rows.append(
            {
                "call site": label,
                "hosts": len(hosts),
                "ms per worker": round(statistics.median(seconds) * 1000, 2),
                "s over hosts": round(total, 3),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    width = max(len(r["call site"]) for r in rows)
    lines = [f"{'call site':<{width}}  hosts  ms/worker  s over hosts"]
    lines += [
        f"{r['call site']:<{width}}  {r['hosts']:>5}  {r['ms per worker']:>9.2f}  {r['s over hosts']:>12.3f}"
        for r in rows
    ]
    lines.append(f"{'total':<{width}}  {'':>5}  {'':>9}  {sum(r['s over hosts'] for r in rows):>12.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64, help="GPU compute nodes of the scratch inventory")
    parser.add_argument("--sample", type=int, default=0, help="time only this many hosts per call site")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    filters = load_filters()
    with tempfile.TemporaryDirectory(prefix="ailab-filter-bench-") as tmp:
        state = load_play_state(scratch_inventory(args.nodes, Path(tmp) / "inv"))
        rows = run(state, filters, sample=args.sample)
    print(f"{args.nodes} GPU compute nodes, {len(state.groups['all'])} hosts")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
