"""The directory's users and groups (``ailab_directory``): what the inventory wants in LDAP, and the one
LDIF change that makes slapd hold it.

Pure functions, standard library only: role directory's module (roles/directory/library/ailab_directory.py)
imports this file as its module_utils (a symlink), reads the directory with ``ldapsearch`` and applies
:func:`plan`'s LDIF with one ``ldapmodify``.  :func:`spec_data` (run on the Ansible controller) turns the
model into the JSON the module gets.

Entries (under the suffix):

- ``ou=people``: one ``uid=<name>`` per user: posixAccount + shadowAccount + inetOrgPerson + ldapPublicKey
  (uid/gid numbers, gecos, home, shell, mail, SSH keys);
- ``ou=groups``: each user's personal group ``cn=<name>`` (gid = the user's gid);
- ``ou=services``: the read-only account SSSD binds as (its password is checked and set by the module).

The admin users and the admin group are not in the directory: they stay local accounts on every node (role
accounts), so operators log in while the directory is down, and no name is both local and in LDAP (useradd
and groupadd ask NSS, and would find the directory's).

A user who left the inventory is **locked**, as role accounts locks a local account: shell
``/usr/sbin/nologin``, no SSH key, ``shadowExpire: 1`` (SSSD's ``ldap_account_expire_policy = shadow``
refuses every login); the entry, uid and personal group stay until the yearly deletion, which lists the
user in ``deleted`` and the entry and personal group go.  An admin (``local``) has no entry: one found is
removed with its personal group, as is any other group under ``ou=groups`` that is nobody's personal group.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LOCKED_EXPIRE = "1"  # shadowExpire: days since the epoch, expired long ago (as role accounts' lock)
USER_CLASSES = ("top", "posixAccount", "shadowAccount", "inetOrgPerson", "ldapPublicKey")
GROUP_CLASSES = ("top", "posixGroup")
OU_CLASSES = ("top", "organizationalUnit")
BASE_CLASSES = ("top", "dcObject", "organization")
SERVICE_CLASSES = ("top", "organizationalRole", "simpleSecurityObject")
# The attributes this reconcile owns on each kind of entry: others (e.g. an operator's description) are
# left alone.  Attributes whose values compare case-insensitively.
USER_ATTRS = (
    "objectClass",
    "uid",
    "cn",
    "sn",
    "uidNumber",
    "gidNumber",
    "gecos",
    "homeDirectory",
    "loginShell",
    "mail",
    "sshPublicKey",
    "shadowExpire",
)
GROUP_ATTRS = ("objectClass", "cn", "gidNumber", "memberUid")
OU_ATTRS = ("objectClass", "ou")
BASE_ATTRS = ("objectClass", "dc", "o")
SERVICE_ATTRS = ("objectClass", "cn", "description")
CASELESS = frozenset({"objectclass"})

Entry = dict[str, tuple[str, ...]]


class SpecError(ValueError):
    pass


def ascii_text(text: str) -> str:
    """``text`` in IA5 (ASCII), as the gecos attribute's syntax requires: accents dropped, other non-ASCII
    characters left out; the letters NFKD cannot take apart (ø, æ, ß, ł) and the umlauts are spelled out
    (``Søren Ærø`` -> ``Soeren Aeroe``, ``Dörte`` -> ``Doerte``)."""
    table = {"ø": "oe", "Ø": "Oe", "æ": "ae", "Æ": "Ae", "ö": "oe", "Ö": "Oe", "ä": "ae", "Ä": "Ae",
             "ü": "ue", "Ü": "Ue", "ß": "ss", "ł": "l", "Ł": "L"}  # fmt: skip
    spelled = text.translate(str.maketrans(table))
    folded = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in folded if c.isprintable() and c not in ",:")


def gecos(full_name: str, email: str) -> str:
    """Like role accounts' GECOS (``full name,,,,email``), in ASCII."""
    return f"{ascii_text(full_name or '')},,,,{email or ''}"


def user_dn(spec: Mapping[str, Any], name: str) -> str:
    return f"uid={name},{spec['users_dn']}"


def group_dn(spec: Mapping[str, Any], name: str) -> str:
    return f"cn={name},{spec['groups_dn']}"


def _rdn_value(dn: str) -> str:
    return dn.split(",", 1)[0].split("=", 1)[1]


def desired(spec: Mapping[str, Any]) -> dict[str, Entry]:
    """Every entry the inventory wants, by DN (the locked and deleted users are :func:`plan`'s part: they
    depend on what the directory holds)."""
    out: dict[str, Entry] = {
        spec["base_dn"]: {
            "objectClass": BASE_CLASSES,
            "dc": (_rdn_value(spec["base_dn"]),),
            "o": (spec.get("organization") or _rdn_value(spec["base_dn"]),),
        }
    }
    for dn in (spec["users_dn"], spec["groups_dn"], spec["services_dn"]):
        out[dn] = {"objectClass": OU_CLASSES, "ou": (_rdn_value(dn),)}
    for u in spec["users"]:
        name = u["name"]
        attrs: Entry = {
            "objectClass": USER_CLASSES,
            "uid": (name,),
            "cn": (u.get("full_name") or name,),
            "sn": (((u.get("full_name") or "").split() or [name])[-1],),
            "uidNumber": (str(int(u["uid"])),),
            "gidNumber": (str(int(u["gid"])),),
            "gecos": (gecos(u.get("full_name") or "", u.get("email") or ""),),
            "homeDirectory": (f"{spec['home_root'].rstrip('/')}/{name}",),
            "loginShell": (spec["shell"],),
        }
        if u.get("email"):
            attrs["mail"] = (u["email"],)
        keys = tuple(k.strip() for k in u.get("ssh_keys") or () if k and k.strip())
        if keys:
            attrs["sshPublicKey"] = keys
        out[user_dn(spec, name)] = attrs
        out[group_dn(spec, name)] = {
            "objectClass": GROUP_CLASSES,
            "cn": (name,),
            "gidNumber": (str(int(u["gid"])),),
        }
    admin = spec["admin_group"]
    if admin["name"] in {u["name"] for u in spec["users"]}:
        raise SpecError(f"the admin group {admin['name']} has the name of a user's personal group")
    service = spec["service_dn"]
    out[service] = {
        "objectClass": SERVICE_CLASSES,
        "cn": (_rdn_value(service),),
        "description": ("SSSD reads users, groups and SSH keys as this account (read-only)",),
    }
    return out


def locked_entry(current: Entry, locked_shell: str) -> Entry:
    """A user who left the inventory: the current entry with the lock applied (no key, nologin, expired)."""
    out = {k: v for k, v in current.items() if k.lower() != "sshpublickey"}
    out["loginShell"] = (locked_shell,)
    out["shadowExpire"] = (LOCKED_EXPIRE,)
    return out


def owned_attrs(dn: str, spec: Mapping[str, Any]) -> tuple[str, ...]:
    if dn.lower() == spec["base_dn"].lower():
        return BASE_ATTRS
    if dn.endswith("," + spec["users_dn"]):
        return USER_ATTRS
    if dn.endswith("," + spec["groups_dn"]):
        return GROUP_ATTRS
    if dn.endswith("," + spec["services_dn"]):
        return SERVICE_ATTRS
    return OU_ATTRS


def _norm(attr: str, values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.lower() for v in values) if attr.lower() in CASELESS else frozenset(values)


def _get(entry: Mapping[str, Sequence[str]], attr: str) -> tuple[str, ...]:
    """An attribute's values; LDAP attribute names are case-insensitive."""
    for key, values in entry.items():
        if key.lower() == attr.lower():
            return tuple(values)
    return ()


def _replace_or_delete(attr: str, values: Sequence[str]) -> str:
    """The modify change that gives ``attr`` exactly ``values`` (none: the attribute goes)."""
    if values:
        return "\n".join([f"replace: {attr}", *(_ldif_value(attr, v) for v in values), "-"])
    return f"delete: {attr}\n-"


def _ldif_value(attr: str, value: str) -> str:
    safe = value and value.isascii() and value.isprintable() and value[0] not in " :<" and value[-1] != " "
    if safe:
        return f"{attr}: {value}"
    return f"{attr}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def _dn_line(dn: str) -> str:
    return _ldif_value("dn", dn)


def plan(
    current: Mapping[str, Mapping[str, Sequence[str]]],
    spec: Mapping[str, Any],
    on_add: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> tuple[str, dict[str, list[str]]]:
    """The LDIF (for ``ldapmodify``) that turns ``current`` (DN -> attributes, as :func:`parse_ldif` reads
    ``ldapsearch``) into the inventory's ``spec``, and a summary (added, modified, locked, deleted DNs).
    Empty LDIF: nothing to do.  DNs compare case-insensitively, as LDAP does.  ``on_add``: attributes an
    entry gets only when it is created (the service account's hashed password)."""
    want = desired(spec)
    extra = {dn.lower(): attrs for dn, attrs in (on_add or {}).items()}
    have = {dn.lower(): (dn, attrs) for dn, attrs in current.items()}
    wanted_lower = {dn.lower() for dn in want}
    listed = {u["name"] for u in spec["users"]}
    deleted = {str(n) for n in (*(spec.get("deleted") or ()), *(spec.get("local") or ()))} - listed
    people_suffix = "," + spec["users_dn"].lower()
    groups_suffix = "," + spec["groups_dn"].lower()
    summary: dict[str, list[str]] = {"added": [], "modified": [], "locked": [], "deleted": []}
    records: list[str] = []
    deletes: list[str] = []
    locked_dns: set[str] = set()
    # Users in the directory that the inventory no longer lists: locked, or deleted (the yearly deletion).
    for low, (dn, attrs) in sorted(have.items()):
        if low in wanted_lower:
            continue
        if low.endswith(people_suffix):
            name = (_get(attrs, "uid") or (_rdn_value(dn),))[0]
            if name in deleted:
                deletes.append(dn)
                summary["deleted"].append(name)
                continue
            want[dn] = locked_entry({k: tuple(v) for k, v in attrs.items()}, spec["locked_shell"])
            locked_dns.add(dn)
            summary["locked"].append(name)
        elif low.endswith(groups_suffix):
            name = _rdn_value(dn)
            person = f"uid={name}{people_suffix}"
            if name in deleted or person not in have:
                deletes.append(dn)
    # Parents first: the ou entries, then the rest in DN order.
    order = sorted(want, key=lambda dn: (dn.count(","), dn.lower()))
    for dn in order:
        attrs = want[dn]
        found = have.get(dn.lower())
        if found is None:
            lines = [_dn_line(dn), "changetype: add"]
            for attr, values in {**attrs, **extra.get(dn.lower(), {})}.items():
                lines += [_ldif_value(attr, v) for v in values]
            records.append("\n".join(lines))
            summary["added"].append(dn)
            continue
        current_attrs = found[1]
        changes = []
        for attr in owned_attrs(dn, spec):
            now = _get(current_attrs, attr)
            new = attrs.get(attr, ())
            if attr == "objectClass":
                # Only ever added to: removing a class would drop the attributes it allows.
                missing = [v for v in new if v.lower() not in _norm(attr, now)]
                if missing:
                    changes.append("\n".join([f"add: {attr}", *(_ldif_value(attr, v) for v in missing), "-"]))
                continue
            if _norm(attr, now) == _norm(attr, new):
                continue
            changes.append(_replace_or_delete(attr, new))
        if changes:
            records.append("\n".join([_dn_line(found[0]), "changetype: modify", *changes]))
            if found[0] not in locked_dns:
                summary["modified"].append(found[0])
    for dn in sorted(deletes, key=lambda d: (-d.count(","), d.lower())):
        records.append(f"{_dn_line(dn)}\nchangetype: delete")
    summary["deleted"].sort()
    ldif = "\n\n".join(records) + "\n" if records else ""
    return ldif, summary


def parse_ldif(text: str) -> dict[str, dict[str, list[str]]]:
    """``ldapsearch -LLL`` output (any line wrapping, base64 values) as DN -> attribute -> values."""
    entries: dict[str, dict[str, list[str]]] = {}
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines: list[str] = []
        for raw in block.split("\n"):
            if raw.startswith("#"):
                continue
            if raw.startswith(" ") and lines:
                lines[-1] += raw[1:]
            elif raw:
                lines.append(raw)
        dn = None
        attrs: dict[str, list[str]] = {}
        for line in lines:
            attr, sep, rest = line.partition(":")
            if not sep:
                raise ValueError(f"not an LDIF line: {line!r}")
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip()).decode("utf-8")
            else:
                value = rest[1:] if rest.startswith(" ") else rest
            if attr.lower() == "dn":
                dn = value
            else:
                attrs.setdefault(attr, []).append(value)
        if dn is not None:
            entries[dn] = attrs
    return entries


def spec_data(
    users: Sequence[Mapping[str, Any]],
    *,
    base_dn: str,
    users_ou: str,
    groups_ou: str,
    service_account: str,
    home_root: str,
    admin_group: str,
    admin_gid: int,
    shell: str = "/bin/bash",
    locked_shell: str = "/usr/sbin/nologin",
    deleted: Sequence[str] = (),
    organization: str = "",
    local: Sequence[str] = (),
) -> dict[str, Any]:
    """The module's ``spec``: the users (name, uid, gid, full_name, email, admin, ssh_keys), where they go,
    and who was deleted by the yearly deletion (their entries go)."""
    return {
        "base_dn": base_dn,
        "organization": organization,
        "users_dn": f"ou={users_ou},{base_dn}",
        "groups_dn": f"ou={groups_ou},{base_dn}",
        "services_dn": f"ou=services,{base_dn}",
        "service_dn": f"cn={service_account},ou=services,{base_dn}",
        "home_root": home_root,
        "shell": shell,
        "locked_shell": locked_shell,
        "admin_group": {"name": admin_group, "gid": int(admin_gid)},
        "users": [
            {
                "name": u["name"],
                "uid": int(u["uid"]),
                "gid": int(u["gid"]),
                "full_name": u.get("full_name") or "",
                "email": u.get("email") or "",
                "admin": bool(u.get("admin")),
                "ssh_keys": [k for k in u.get("ssh_keys") or () if k],
            }
            for u in users
        ],
        "deleted": sorted(set(deleted)),
        "local": sorted(set(local)),
    }


def _ordinal_free(value: str) -> str:
    """cn=config numbers ordered values (``{0}to * by ...``); compare them without the number."""
    if value.startswith("{") and "}" in value and value[1 : value.index("}")].isdigit():
        return value[value.index("}") + 1 :]
    return value


def config_plan(
    current: Mapping[str, Mapping[str, Sequence[str]]], wanted: Mapping[str, Mapping[str, Sequence[str]]]
) -> str:
    """The LDIF that gives each cn=config entry of ``wanted`` (DN -> attribute -> values, in order; an empty
    list: the attribute must be absent) those values.  Ordered values (olcAccess) compare in order and
    without their ``{n}`` numbers.  All changes of one entry go in one modify (slapd checks TLS certificate
    and key together).  Empty: nothing to do."""
    records = []
    have = {dn.lower(): attrs for dn, attrs in current.items()}
    for dn, attrs in wanted.items():
        now_attrs = have.get(dn.lower(), {})
        changes = []
        for attr, values in attrs.items():
            now = [_ordinal_free(v) for v in _get(now_attrs, attr)]
            new = [_ordinal_free(v) for v in values]
            if now == new:
                continue
            changes.append(_replace_or_delete(attr, new))
        if changes:
            records.append("\n".join([_dn_line(dn), "changetype: modify", *changes]))
    return "\n\n".join(records) + "\n" if records else ""


# --- from the model (on the Ansible controller; ``cluster`` is an ailab.model.Cluster) -----------------


def settings(cluster: Any) -> dict[str, Any]:
    """What role directory decides on (the ``ailab_directory_settings`` filter): on or off, managed or not,
    where SSSD connects (the directory host by address, ldaps) and what it searches."""
    d = cluster.directory
    out: dict[str, Any] = {
        "enabled": d.enabled,
        "managed": d.managed,
        "base_dn": d.base_dn,
        "users_dn": d.users_dn if d.enabled else "",
        "groups_dn": d.groups_dn if d.enabled else "",
        "start_tls": d.start_tls,
        "server": "",
        "names": [],
        "addresses": [],
    }
    if not d.enabled:
        out.update(uris=[], bind_dn="")
        return out
    if d.managed:
        hosts = cluster.directory_hosts
        server = hosts[0] if hosts else None
        names = [server.name, f"{server.name}.{cluster.domain}"] if server and cluster.domain else []
        parts = [rdn.split("=", 1) for rdn in d.base_dn.split(",")] if d.base_dn else []
        out.update(
            domain=".".join(v for _, v in parts) if all(k.lower() == "dc" for k, _ in parts) else "",
            uris=[f"ldaps://{server.address}"] if server else [],
            bind_dn=f"cn={d.service_account},ou=services,{d.base_dn}",
            server=server.name if server else "",
            names=names or ([server.name] if server else []),
            addresses=[server.address] if server else [],
            start_tls=False,
        )
    else:
        out.update(uris=list(d.uris), bind_dn=d.bind_dn)
    return out


def render_directory_json(cluster: Any, host: str | None = None) -> str:
    """The reconcile's spec (role directory's ``ailab_directory`` module): every inventory user but the
    admins (local accounts, role accounts)."""
    import json

    d = cluster.directory
    users = [
        {
            "name": u.name,
            "uid": u.uid,
            "gid": u.gid,
            "full_name": u.full_name,
            "email": u.email,
            "admin": u.admin,
            "ssh_keys": list(u.ssh_keys),
        }
        for u in cluster.users.values()
        if not u.admin
    ]
    data = spec_data(
        users,
        base_dn=d.base_dn,
        users_ou=d.users_ou,
        groups_ou=d.groups_ou,
        service_account=d.service_account,
        home_root=cluster.ceph.home_root,
        admin_group=cluster.accounts.admin_group,
        admin_gid=cluster.accounts.admin_gid,
        organization=cluster.name,
        local=[u.name for u in cluster.users.values() if u.admin],
    )
    return json.dumps(data, sort_keys=True) + "\n"
