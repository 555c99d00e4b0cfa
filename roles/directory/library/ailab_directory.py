#!/usr/bin/python3
"""Ansible module: the directory's users and groups (or cn=config settings) match the inventory, in one
ldapmodify."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tempfile

from ansible.module_utils.ailab_directory_plan import (
    SpecError,
    config_plan,
    parse_ldif,
    plan,
)

DOCUMENTATION = r"""
---
module: ailab_directory
short_description: Reconcile slapd's users, groups and service account (or cn=config) with the inventory
description:
  - One task for all users (no per-user loop). Reads the directory with C(ldapsearch -Y EXTERNAL -H
    ldapi:///) (root's identity over the local socket), computes the difference to O(spec) with the pure
    functions of ailab/directory.py (this role's module_utils) and applies it with one C(ldapmodify).
    Changed only when the directory differed. Check mode and diff mode show the LDIF.
  - Users no longer in O(spec) are locked (nologin, no SSH key, shadowExpire 1), users in O(spec.deleted)
    (the yearly deletion's record) lose their entry and personal group.
  - With O(config) instead, the given cn=config entries get the given attribute values (TLS, olcSecurity,
    ACLs); an empty list removes the attribute.
options:
  spec:
    description: The desired users and groups (ailab.directory.spec_data, rendered as directory.json).
    type: dict
  service_password:
    description: Password of the service account O(spec.service_dn) (checked with a bind; set when it fails).
    type: str
  config:
    description: cn=config DN -> attribute -> list of values.
    type: dict
  uri:
    description: slapd's local socket.
    type: str
    default: ldapi:///
author: ailab-iac
"""

RETURN = r"""
summary:
  description: DNs added and modified, users locked and deleted.
  type: dict
  returned: with spec
users:
  description: Every user name in the directory after the run (locked ones too).
  type: list
  returned: with spec
ldif:
  description: The changes applied (in check mode, that would be applied); no passwords.
  type: str
  returned: always
"""


def run(cmd: list[str], stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {done.returncode}: {done.stderr.strip()}")
    return done


def search(uri: str, base: str, scope: str, filt: str, attrs: list[str]) -> dict[str, dict[str, list[str]]]:
    cmd = ["ldapsearch", "-LLL", "-Q", "-Y", "EXTERNAL", "-H", uri, "-o", "ldif-wrap=no"]
    done = run([*cmd, "-b", base, "-s", scope, filt, *attrs], ok=(0, 32))  # 32: no such object
    return parse_ldif(done.stdout) if done.returncode == 0 else {}


def modify(uri: str, ldif: str) -> None:
    run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", uri], stdin=ldif)


def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def password_works(uri: str, dn: str, password: str) -> bool:
    """A simple bind as ``dn`` over the local socket (ssf 71: allowed by olcSecurity)."""
    with tempfile.NamedTemporaryFile("w", prefix=".ailab-bind-", delete=True) as fh:
        os.chmod(fh.name, 0o600)
        fh.write(password)
        fh.flush()
        done = subprocess.run(
            ["ldapwhoami", "-x", "-H", uri, "-D", dn, "-y", fh.name],
            capture_output=True,
            text=True,
            check=False,
        )
    return done.returncode == 0


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "spec": {"type": "dict"},
            "service_password": {"type": "str", "no_log": True},
            "config": {"type": "dict"},
            "uri": {"type": "str", "default": "ldapi:///"},
        },
        required_one_of=[("spec", "config")],
        mutually_exclusive=[("spec", "config")],
        supports_check_mode=True,
    )
    p = module.params
    uri = p["uri"]
    try:
        if p["config"]:
            wanted = {dn: {a: list(v or []) for a, v in attrs.items()} for dn, attrs in p["config"].items()}
            current = {}
            for dn, attrs in wanted.items():
                current.update(search(uri, dn, "base", "(objectClass=*)", list(attrs)))
            ldif = config_plan(current, wanted)
            result = {"changed": bool(ldif), "ldif": ldif}
            if ldif and module._diff:
                result["diff"] = {"before": "", "after": ldif}
            if ldif and not module.check_mode:
                modify(uri, ldif)
            module.exit_json(**result)
        spec = p["spec"]
        current = search(
            uri,
            spec["base_dn"],
            "sub",
            "(|(objectClass=posixAccount)(objectClass=posixGroup)(objectClass=organizationalUnit)"
            "(objectClass=organizationalRole)(objectClass=dcObject))",
            ["*"],
        )
        # Only the base entry, the three organisational units and what lies under them are ours.
        ours = tuple(dn.lower() for dn in (spec["users_dn"], spec["groups_dn"], spec["services_dn"]))
        base = spec["base_dn"].lower()
        current = {dn: a for dn, a in current.items() if dn.lower().endswith(ours) or dn.lower() == base}
        service = spec["service_dn"]
        password = p["service_password"]
        exists = service.lower() in {dn.lower() for dn in current}
        on_add = {service: {"userPassword": [ssha(password)]}} if password is not None else {}
        ldif, summary = plan(current, spec, on_add)
        reset = password is not None and exists and not password_works(uri, service, password)
        if reset:
            summary["password"] = [service]
        changed = bool(ldif or reset)
        shown = "\n".join(line for line in ldif.split("\n") if not line.startswith("userPassword:"))
        people = "," + spec["users_dn"].lower()
        names = {(a.get("uid") or [dn.split(",")[0].split("=", 1)[1]])[0] for dn, a in current.items()
                 if dn.lower().endswith(people)}  # fmt: skip
        names = (names | {u["name"] for u in spec["users"]}) - set(summary["deleted"])
        result = {"changed": changed, "ldif": shown, "summary": summary, "users": sorted(names)}
        if changed and module._diff:
            result["diff"] = {
                "before": "",
                "after": shown + (f"# new userPassword of {service}\n" if reset else ""),
            }
        if changed and not module.check_mode:
            if ldif:
                modify(uri, ldif)
            if reset:
                modify(
                    uri,
                    f"dn: {service}\nchangetype: modify\nreplace: userPassword\n"
                    f"userPassword: {ssha(password)}\n",
                )
        module.exit_json(**result)
    except (RuntimeError, SpecError, ValueError) as exc:
        module.fail_json(
            msg=f"{exc}: the directory may be partly updated -- fix: the cause, then converge again"
        )


if __name__ == "__main__":
    main()
