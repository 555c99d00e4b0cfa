#!/usr/bin/python3
"""Ansible module: systemd units masked, all of them with one ``systemctl mask`` (one daemon reload)."""

from __future__ import annotations

import subprocess

DOCUMENTATION = r"""
---
module: ailab_masked
short_description: Mask systemd units; one systemctl call for all of them
description:
  - Asks C(systemctl is-enabled) for each of O(names) and masks those that are not masked yet, with one
    C(systemctl mask) (one daemon reload). Masking a unit that does not exist masks it too (a link to
    C(/dev/null)), so a package installed later cannot start it.
  - M(ansible.builtin.systemd_service) with C(masked=true) in a loop costs one module run and one daemon
    reload per unit: about 2 s per unit and host on a first converge, 0.35 s on a converge with nothing to
    do. Units stay running if they run (as with M(ansible.builtin.systemd_service)); stop them separately.
options:
  names:
    description: Unit names, with their suffix (V(sssd-nss.socket)).
    type: list
    elements: str
    required: true
  stop:
    description: Also stop those of O(names) that are active (one C(systemctl stop)).
    type: bool
    default: false
author: ailab-iac
"""

RETURN = r"""
masked:
  description: The units this run masked (in check mode, would mask).
  type: list
  elements: str
  returned: always
stopped:
  description: The units this run stopped (in check mode, would stop); empty unless O(stop).
  type: list
  elements: str
  returned: always
"""


def states(names: list[str], output: str) -> dict[str, str]:
    """Unit -> state from ``systemctl is-enabled|is-active`` output (one line per unit, in order).  When the
    lines do not match the names one to one (an unknown unit prints its error to stderr instead), every
    state is unknown (``""``): the caller then acts on all of them, which is safe to repeat."""
    lines = [line.strip() for line in output.splitlines()]
    unique = list(dict.fromkeys(names))
    if len(lines) != len(unique):
        return dict.fromkeys(unique, "")
    return dict(zip(unique, lines, strict=True))


def unmasked(names: list[str], is_enabled_output: str) -> list[str]:
    """The names ``systemctl is-enabled`` does not report as masked (``masked`` or ``masked-runtime``)."""
    return [n for n, s in states(names, is_enabled_output).items() if s not in ("masked", "masked-runtime")]


def running(names: list[str], is_active_output: str) -> list[str]:
    """The names ``systemctl is-active`` reports as running or on their way (not inactive or failed)."""
    return [n for n, s in states(names, is_active_output).items() if s not in ("inactive", "failed")]


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "stop": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    names = [n.strip() for n in module.params["names"] if n and n.strip()]
    if not names:
        module.fail_json(msg="names is empty -- fix: list the systemd units to mask, e.g. [sssd-nss.socket]")
    bad = [n for n in names if "." not in n or n.startswith("-")]
    if bad:
        module.fail_json(msg=f"not unit names: {', '.join(bad)} -- fix: give each with its suffix (x.socket)")
    unique = list(dict.fromkeys(names))

    def query(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["systemctl", *args, "--", *unique], capture_output=True, text=True, check=False
        )

    to_mask = unmasked(unique, query("is-enabled").stdout)
    to_stop = running(unique, query("is-active").stdout) if module.params["stop"] else []
    if module.check_mode or not (to_mask or to_stop):
        module.exit_json(changed=bool(to_mask or to_stop), masked=to_mask, stopped=to_stop)
    for verb, todo in (("mask", to_mask), ("stop", to_stop)):
        if not todo:
            continue
        done = subprocess.run(["systemctl", verb, "--", *todo], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            module.fail_json(msg=f"systemctl {verb} {' '.join(todo)} failed: {done.stderr.strip()[-2000:]}")
    module.exit_json(changed=True, masked=to_mask, stopped=to_stop)


if __name__ == "__main__":
    main()
