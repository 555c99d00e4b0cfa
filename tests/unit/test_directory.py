"""The directory's bulk reconcile (ailab/directory.py, role directory's module_utils): desired entries, the
LDIF diff, locking and deletion, LDIF parsing, cn=config settings, and the model's ailab_directory."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ailab import directory as d
from ailab.inventory import load_cluster

ROOT = Path(__file__).resolve().parents[2]
BASE = "dc=sim,dc=ailab,dc=test"
S1 = {"name": "s1", "uid": 200001, "gid": 200001, "full_name": "Søren Ålund", "email": "s1@x.org",
      "ssh_keys": ["ssh-ed25519 AAAA s1"]}  # fmt: skip
S2 = {"name": "s2", "uid": 200002, "gid": 200002, "full_name": "Student Two", "email": "s2@x.org"}
A1 = {"name": "a1", "uid": 200900, "gid": 200900, "full_name": "Admin", "email": "a1@x.org", "admin": True}


def spec(users, deleted=()):
    return d.spec_data(
        users,
        base_dn=BASE,
        users_ou="people",
        groups_ou="groups",
        service_account="sssd",
        home_root="/ceph/home",
        admin_group="ailab-admins",
        admin_gid=2900,
        deleted=deleted,
    )


def apply(current, ldif):
    """A tiny LDAP server: what slapd holds after ldapmodify of ``ldif`` (add, modify, delete)."""
    state = {dn: {a: list(v) for a, v in attrs.items()} for dn, attrs in current.items()}
    for record in filter(None, ldif.strip().split("\n\n")):
        lines = record.split("\n")
        dn = lines[0].split(": ", 1)[1] if not lines[0].startswith("dn::") else base64.b64decode(
            lines[0][5:]
        ).decode()  # fmt: skip
        kind = lines[1].split(": ")[1]
        if kind == "delete":
            del state[dn]
        elif kind == "add":
            entry = d.parse_ldif("dn: x\n" + "\n".join(lines[2:]))["x"]
            state[dn] = entry
        else:
            entry = state[dn]
            op, i = None, 2
            while i < len(lines):
                line = lines[i]
                if line == "-":
                    op = None
                elif op is None:
                    op, attr = line.split(": ")
                    if op == "replace" or op == "delete":
                        entry.pop(attr, None)
                else:
                    value = d.parse_ldif("dn: x\n" + line)["x"]
                    for k, v in value.items():
                        entry.setdefault(k, []).extend(v)
                i += 1
    return state


@pytest.mark.parametrize(
    ("users", "expect"),
    [
        ([], {BASE, f"ou=people,{BASE}", f"ou=groups,{BASE}", f"ou=services,{BASE}",
              f"cn=sssd,ou=services,{BASE}"}),
        ([S1], {f"uid=s1,ou=people,{BASE}", f"cn=s1,ou=groups,{BASE}"}),
        ([S1, S2, A1], {f"uid=a1,ou=people,{BASE}", f"cn=s2,ou=groups,{BASE}"}),
    ],
)  # fmt: skip
def test_desired_entries(users, expect):
    assert expect <= set(d.desired(spec(users)))


def test_user_entry_attributes():
    entry = d.desired(spec([S1]))[f"uid=s1,ou=people,{BASE}"]
    assert entry["uidNumber"] == ("200001",) and entry["gidNumber"] == ("200001",)
    assert entry["homeDirectory"] == ("/ceph/home/s1",) and entry["loginShell"] == ("/bin/bash",)
    assert entry["gecos"] == ("Soeren Alund,,,,s1@x.org",)  # IA5: no ø, no Å
    assert entry["cn"] == ("Søren Ålund",) and entry["sshPublicKey"] == ("ssh-ed25519 AAAA s1",)
    assert "shadowExpire" not in entry and "ldapPublicKey" in entry["objectClass"]


def test_the_admin_group_is_local_not_in_the_directory():
    assert not any("ailab-admins" in dn for dn in d.desired(spec([S1, A1])))


def test_render_leaves_the_admins_out():
    import json

    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    names = {u["name"] for u in json.loads(d.render_directory_json(cluster))["users"]}
    assert names == {u.name for u in cluster.users.values() if not u.admin} and "admin1" not in names


def test_admin_group_named_like_a_user_is_refused():
    with pytest.raises(d.SpecError):
        d.desired(spec([{**S2, "name": "ailab-admins"}]))


def test_empty_directory_gets_everything_then_nothing():
    ldif, summary = d.plan({}, spec([S1, S2]))
    assert ldif.index(f"dn: ou=people,{BASE}") < ldif.index(f"dn: uid=s1,ou=people,{BASE}")
    assert len(summary["added"]) == 9 and not summary["locked"]  # base, 3 ou, service, 2 x (user, group)
    after = apply({}, ldif)
    assert d.plan(after, spec([S1, S2])) == ("", {"added": [], "modified": [], "locked": [], "deleted": []})


@pytest.mark.parametrize(
    ("change", "expect_lines"),
    [
        ({"full_name": "Student Zwei"}, ["replace: cn", "replace: gecos", "replace: sn"]),
        ({"email": "new@x.org"}, ["replace: gecos", "replace: mail"]),
        ({"ssh_keys": ["ssh-ed25519 BBBB new"]}, ["replace: sshPublicKey"]),
        ({"uid": 200099}, ["replace: uidNumber"]),
    ],
)
def test_one_change_is_one_modify(change, expect_lines):
    before = apply({}, d.plan({}, spec([S2]))[0])
    ldif, summary = d.plan(before, spec([{**S2, **change}]))
    assert all(line in ldif for line in expect_lines), ldif
    assert "changetype: add" not in ldif and summary["modified"]
    assert d.plan(apply(before, ldif), spec([{**S2, **change}]))[0] == ""


def test_key_removed_deletes_the_attribute():
    before = apply({}, d.plan({}, spec([S1]))[0])
    ldif, _ = d.plan(before, spec([{**S1, "ssh_keys": []}]))
    assert "delete: sshPublicKey" in ldif


def test_removed_user_is_locked_not_deleted():
    before = apply({}, d.plan({}, spec([S1, S2]))[0])
    ldif, summary = d.plan(before, spec([S2]))
    assert summary["locked"] == ["s1"] and not summary["deleted"]
    after = apply(before, ldif)
    entry = after[f"uid=s1,ou=people,{BASE}"]
    assert entry["loginShell"] == ["/usr/sbin/nologin"] and entry["shadowExpire"] == ["1"]
    assert "sshPublicKey" not in entry and entry["uidNumber"] == ["200001"]
    assert f"cn=s1,ou=groups,{BASE}" in after
    # Locked stays locked: nothing more to do, still reported.
    assert d.plan(after, spec([S2]))[0] == ""
    # Back in the inventory: unlocked.
    ldif, _ = d.plan(after, spec([S1, S2]))
    assert "delete: shadowExpire" in ldif and "replace: loginShell" in ldif


def test_deleted_user_loses_entry_and_group():
    before = apply({}, d.plan({}, spec([S1, S2]))[0])
    ldif, summary = d.plan(before, spec([S2], deleted=["s1"]))
    assert summary["deleted"] == ["s1"]
    after = apply(before, ldif)
    assert f"uid=s1,ou=people,{BASE}" not in after and f"cn=s1,ou=groups,{BASE}" not in after
    # A user in the inventory is never deleted, even when listed.
    assert d.plan(before, spec([S1, S2], deleted=["s1"]))[0] == ""


def test_foreign_attributes_and_case_are_left_alone():
    before = apply({}, d.plan({}, spec([S2]))[0])
    entry = before[f"uid=s2,ou=people,{BASE}"]
    entry["description"] = ["set by an operator"]
    entry["objectClass"] = [c.upper() for c in entry["objectClass"]]
    assert d.plan(before, spec([S2]))[0] == ""


def test_on_add_only_when_created():
    service = f"cn=sssd,ou=services,{BASE}"
    ldif, _ = d.plan({}, spec([]), {service: {"userPassword": ["{SSHA}x"]}})
    assert "userPassword: {SSHA}x" in ldif
    after = apply({}, ldif)
    assert "userPassword" not in d.plan(after, spec([]), {service: {"userPassword": ["{SSHA}y"]}})[0]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("dn: uid=a,dc=x\nuid: a\n", {"uid=a,dc=x": {"uid": ["a"]}}),
        ("dn: uid=a,dc=x\ncn:: U8O4cmVu\n", {"uid=a,dc=x": {"cn": ["Søren"]}}),
        ("dn: uid=a,dc=x\nsshPublicKey: ssh-ed25519 AA\n AAB k\n",
         {"uid=a,dc=x": {"sshPublicKey": ["ssh-ed25519 AAAAB k"]}}),
        ("# comment\ndn: cn=a\n\ndn: cn=b\nx: 1\nx: 2\n", {"cn=a": {}, "cn=b": {"x": ["1", "2"]}}),
        ("", {}),
    ],
)  # fmt: skip
def test_parse_ldif(text, expect):
    assert d.parse_ldif(text) == expect


def test_non_ascii_values_are_base64():
    ldif, _ = d.plan({}, spec([S1]))
    assert "cn:: " + base64.b64encode("Søren Ålund".encode()).decode() in ldif


@pytest.mark.parametrize(
    ("current", "wanted", "expect"),
    [
        ({"cn=config": {"olcSecurity": ["ssf=71"]}}, {"cn=config": {"olcSecurity": ["ssf=71"]}}, ""),
        ({"cn=config": {}}, {"cn=config": {"olcSecurity": ["ssf=71"]}},
         "replace: olcSecurity\nolcSecurity: ssf=71"),
        ({"x": {"olcRootPW": ["{SSHA}a"]}}, {"x": {"olcRootPW": []}}, "delete: olcRootPW"),
        ({"x": {}}, {"x": {"olcRootPW": []}}, ""),
        ({"x": {"olcAccess": ["{0}to a", "{1}to b"]}}, {"x": {"olcAccess": ["to a", "to b"]}}, ""),
        ({"x": {"olcAccess": ["{0}to b", "{1}to a"]}}, {"x": {"olcAccess": ["to a", "to b"]}},
         "replace: olcAccess"),
    ],
)  # fmt: skip
def test_config_plan(current, wanted, expect):
    out = d.config_plan(current, wanted)
    assert (expect in out) if expect else out == ""


def test_sim_inventory_has_a_managed_directory():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    assert cluster.directory.enabled and cluster.directory.managed
    assert cluster.directory.base_dn == BASE
    s = d.settings(cluster)
    assert s["server"] == "ctl01" and s["uris"] == ["ldaps://10.213.0.11"] and s["domain"] == "sim.ailab.test"


def test_production_has_no_directory_yet():
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    assert not cluster.directory.enabled and d.settings(cluster)["uris"] == []


def _problems(tmp_path, directory_yaml, groups_extra=""):
    import shutil

    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory" / "sim", inv)
    cluster_file = inv / "group_vars" / "all" / "cluster.yml"
    text = cluster_file.read_text().split("\nailab_directory:")[0]
    cluster_file.write_text(text + "\n" + directory_yaml)
    if groups_extra:
        hosts = inv / "hosts.yml"
        hosts.write_text(
            hosts.read_text().replace(
                "        directory:\n          hosts:\n            ctl01:\n", groups_extra
            )
        )
    _, problems = load_cluster(inv, strict=False)
    return [str(p) for p in problems]


EXTERNAL = "ailab_directory: {managed: false, base_dn: dc=u, bind_dn: 'cn=s,dc=u', "


@pytest.mark.parametrize(
    ("directory_yaml", "groups_extra", "expect"),
    [
        ("ailab_directory: {managed: true}\n", "", None),
        ("ailab_directory: {}\n", "", "ailab_directory.managed"),
        ("ailab_directory: {managed: true, uris: [ldaps://x]}\n", "", "ailab_directory.uris"),
        ("ailab_directory: {managed: true, base_dn: 'ou=x,dc=y'}\n", "", "ailab_directory.base_dn"),
        ("ailab_directory: {managed: true, colour: blue}\n", "", "ailab_directory.colour"),
        ("ailab_directory: {managed: true}\n", "\n", "group directory"),
        ("", "", "group directory"),
        ("ailab_directory: {managed: false}\n", "\n", "ailab_directory.uris"),
        (EXTERNAL + "uris: [ldap://u.example], bind_password: x}\n", "\n", "clear text"),
        (EXTERNAL + "uris: [ldap://u.example], start_tls: true, bind_password: x}\n", "\n", None),
        (EXTERNAL + "uris: [ldaps://u.example]}\n", "\n", "ailab_directory.bind_password"),
        (EXTERNAL + "uris: [ldaps://u.example], bind_password: x}\n", "\n", None),
        (EXTERNAL + "uris: [ldaps://u.example], bind_password: x}\n", "", "group directory"),
    ],
)  # fmt: skip
def test_inventory_checks(tmp_path, directory_yaml, groups_extra, expect):
    problems = _problems(tmp_path, directory_yaml, groups_extra)
    if expect is None:
        assert problems == []
    else:
        assert any(expect in p and "fix:" in p for p in problems), problems


def test_an_admin_found_in_the_directory_is_removed_with_stray_groups():
    """Admins are local accounts: an entry of theirs (e.g. from before) goes, as does a group under
    ou=groups that is nobody's personal group (useradd/groupadd on a node would find them through NSS)."""
    before = apply({}, d.plan({}, spec([S1, {**A1, "admin": False}]))[0])
    before[f"cn=ailab-admins,ou=groups,{BASE}"] = {"objectClass": ["posixGroup"], "cn": ["ailab-admins"]}
    s = spec([S1])
    s["local"] = ["a1"]
    ldif, summary = d.plan(before, s)
    after = apply(before, ldif)
    assert summary["deleted"] == ["a1"] and not summary["locked"]
    assert not any("a1" in dn or "ailab-admins" in dn for dn in after)
    assert d.plan(after, s)[0] == ""


@pytest.mark.parametrize(
    ("name", "ascii_"),
    [("Søren Ærø", "Soeren Aeroe"), ("Dörte Müller", "Doerte Mueller"), ("José Łukasz", "Jose Lukasz"),
     ("A, B: C", "A B C"), ("李雷", "")],
)  # fmt: skip
def test_gecos_is_ascii(name, ascii_):
    assert d.ascii_text(name) == ascii_
