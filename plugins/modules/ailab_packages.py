#!/usr/bin/python3
"""Ansible module: Debian packages present; asks dpkg first, so a no-op costs no apt cache."""

from __future__ import annotations

import os
import subprocess
import time

DOCUMENTATION = r"""
---
module: ailab_packages
short_description: Make sure Debian packages are installed; cheap when they already are
description:
  - Asks C(dpkg-query) which of O(names) are installed (a few milliseconds). Only when some are missing it
    runs C(apt-get update) (if O(update_cache) and the package lists are older than O(cache_valid_time), or
    there are none) and C(apt-get install) of the missing ones, non-interactively, keeping changed
    configuration files (C(--force-confdef --force-confold), as M(ansible.builtin.apt) does). Recommends
    follow apt's configuration, as with M(ansible.builtin.apt).
  - M(ansible.builtin.apt) opens the whole apt cache on every run, about a second of CPU per host and task
    even when nothing is to do; with a dozen package tasks per node that was the largest part of a no-op
    converge of many nodes. Removing packages is still M(ansible.builtin.apt)'s job.
options:
  names:
    description: Package names.
    type: list
    elements: str
    required: true
  update_cache:
    description: Refresh the package lists before installing, if they are older than O(cache_valid_time).
    type: bool
    default: false
  cache_valid_time:
    description:
      - Seconds the package lists count as fresh. Set, it implies O(update_cache) (as with
        M(ansible.builtin.apt)).
    type: int
    default: 0
  install_recommends:
    description:
      - Install the packages' recommends too (V(true)) or not (V(false)); unset, apt's configuration
        decides (as with M(ansible.builtin.apt)).
    type: bool
author: ailab-iac
"""

RETURN = r"""
installed:
  description: The packages this run installed (in check mode, would install).
  type: list
  elements: str
  returned: always
"""

LISTS = "/var/lib/apt/lists"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}


def query_command(names: list[str]) -> list[str]:
    return ["dpkg-query", "--show", "--showformat=${Package}\t${db:Status-Abbrev}\n", "--", *names]


def missing(names: list[str], dpkg_output: str) -> list[str]:
    """The names that dpkg does not report as installed (status ``ii``), in the order given.  Names dpkg
    has never heard of are missing too (dpkg-query prints nothing for them)."""
    installed = set()
    for line in dpkg_output.splitlines():
        package, _, status = line.partition("\t")
        if status.startswith("ii"):
            installed.add(package.split(":", 1)[0])
    return [n for n in dict.fromkeys(names) if n not in installed]


def lists_stale(newest_mtime: float | None, now: float, valid: int) -> bool:
    """Whether the package lists need an ``apt-get update``: none yet, or older than ``valid`` seconds."""
    return newest_mtime is None or now - newest_mtime > valid


def install_command(packages: list[str], install_recommends: bool | None = None) -> list[str]:
    recommends = (
        []
        if install_recommends is None
        else ["-o", f"APT::Install-Recommends={str(install_recommends).lower()}"]
    )
    return [
        "apt-get", "install", "--yes", "--quiet",
        "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
        *recommends, "--", *packages,
    ]  # fmt: skip


def newest_list(directory: str = LISTS) -> float | None:
    try:
        entries = [e for e in os.scandir(directory) if e.is_file() and e.name.endswith("_Packages")]
    except FileNotFoundError:
        return None
    return max((e.stat().st_mtime for e in entries), default=None)


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "update_cache": {"type": "bool", "default": False},
            "cache_valid_time": {"type": "int", "default": 0},
            "install_recommends": {"type": "bool", "default": None},
        },
        supports_check_mode=True,
    )
    names = [n.strip() for n in module.params["names"] if n and n.strip()]
    if not names:
        module.fail_json(msg="names is empty -- fix: list the Debian packages to install")
    query = subprocess.run(query_command(names), capture_output=True, text=True, check=False)
    todo = missing(names, query.stdout)
    if not todo or module.check_mode:
        module.exit_json(changed=bool(todo), installed=todo)
    env = {**os.environ, **APT_ENV}
    newest = newest_list()
    stale = lists_stale(newest, time.time(), module.params["cache_valid_time"])
    wants_update = module.params["update_cache"] or module.params["cache_valid_time"] > 0
    if stale and (wants_update or newest is None):
        update = subprocess.run(["apt-get", "update", "--quiet"], capture_output=True, text=True, env=env)
        if update.returncode != 0:
            module.fail_json(msg=f"apt-get update failed: {update.stderr.strip()[-2000:]}", installed=[])
    done = subprocess.run(
        install_command(todo, module.params["install_recommends"]),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        module.fail_json(
            msg=f"apt-get install {' '.join(todo)} failed: {done.stderr.strip()[-2000:]}",
            stdout=done.stdout[-4000:],
            installed=[],
        )
    left = missing(todo, subprocess.run(query_command(todo), capture_output=True, text=True).stdout)
    if left:
        module.fail_json(
            msg=f"apt-get install returned 0 but {', '.join(left)} is not installed", installed=[]
        )
    module.exit_json(changed=True, installed=todo, stdout=done.stdout[-4000:])


if __name__ == "__main__":
    main()
