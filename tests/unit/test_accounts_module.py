"""The accounts role's one task for every user (roles/accounts/library/ailab_accounts.py): its pure plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.scripts import load_node_script

ROOT = Path(__file__).resolve().parents[2]
acc = load_node_script("roles/accounts/library/ailab_accounts.py", "ailab_accounts")

KW = {
    "admin_group": "ailab-admins",
    "admin_gid": 2900,
    "home_root": "/ceph/home",
    "shell": "/bin/bash",
    "locked_shell": "/usr/sbin/nologin",
}
S1 = {"name": "s1", "uid": 200001, "gid": 200001, "full_name": "Student One", "email": "s1@x.org",
      "ssh_keys": ["ssh-ed25519 AAAA s1"]}  # fmt: skip
A1 = {"name": "a1", "uid": 200900, "gid": 200900, "full_name": "Admin", "email": "a1@x.org", "admin": True}
SYSTEM = {"root": acc.Account("root", 0, 0, "root", "/root", "/bin/bash", None)}


def current(accounts=None, groups=None, members=None, keys=None, managed=()):
    return acc.Current(
        accounts={**SYSTEM, **(accounts or {})},
        groups={"root": 0, **(groups or {})},
        members=members or {},
        keys=keys or {},
        managed=tuple(managed),
    )


def converged(users):
    """What the node looks like after the plan for ``users`` ran."""
    accounts = {
        u["name"]: acc.Account(
            u["name"], u["uid"], u["gid"], acc.gecos(u), f"/ceph/home/{u['name']}", "/bin/bash", None
        )
        for u in users
    }
    groups = {"ailab-admins": 2900, **{u["name"]: u["gid"] for u in users}}
    members = {u["name"]: frozenset({"ailab-admins"}) for u in users if u.get("admin")}
    keys = {u["name"]: acc.key_text(u) for u in users}
    return current(accounts, groups, members, keys, managed=sorted(u["name"] for u in users))


def test_a_new_node_gets_every_group_account_and_key_file():
    todo = acc.plan(current(), [S1, A1], **KW)
    assert todo.commands == [
        ["groupadd", "-g", "2900", "ailab-admins"],
        ["groupadd", "-g", "200001", "s1"],
        ["groupadd", "-g", "200900", "a1"],
        ["useradd", "-u", "200001", "-g", "s1", "-c", "Student One,,,,s1@x.org", "-d", "/ceph/home/s1", "-M",
         "-s", "/bin/bash", "s1"],
        ["useradd", "-u", "200900", "-g", "a1", "-c", "Admin,,,,a1@x.org", "-d", "/ceph/home/a1", "-M",
         "-s", "/bin/bash", "-G", "ailab-admins", "a1"],
    ]  # fmt: skip
    assert todo.write == {"s1": "ssh-ed25519 AAAA s1\n", "a1": ""}
    assert todo.state == ["a1", "s1"] and todo.locked == [] and todo.remove == []


def test_a_converged_node_needs_nothing():
    todo = acc.plan(converged([S1, A1]), [S1, A1], **KW)
    assert (todo.commands, todo.write, todo.remove, todo.locked) == ([], {}, [], [])
    assert todo.state == ["a1", "s1"]


def test_changes_are_one_usermod_per_user():
    node = converged([S1, A1])
    s1 = {**S1, "full_name": "Student Uno", "admin": True, "ssh_keys": ["ssh-ed25519 BBBB new"]}
    todo = acc.plan(node, [s1, A1], **KW)
    assert todo.commands == [["usermod", "-c", "Student Uno,,,,s1@x.org", "-G", "ailab-admins", "s1"]]
    assert todo.write == {"s1": "ssh-ed25519 BBBB new\n"}
    # An admin who is no longer one leaves the group; an expired account that is back is unlocked.
    node.accounts["a1"] = acc.Account("a1", 200900, 200900, acc.gecos(A1), "/ceph/home/a1", "/bin/bash", 1)
    todo = acc.plan(node, [S1, {**A1, "admin": False}], **KW)
    assert todo.commands == [["usermod", "-G", "", "-e", "", "a1"]]


def test_removed_users_are_locked_once_and_keep_their_files():
    node = converged([S1, A1])
    todo = acc.plan(node, [A1], **KW)
    assert todo.commands == [["usermod", "-e", "1", "-s", "/usr/sbin/nologin", "s1"]]
    assert todo.locked == ["s1"] and todo.remove == ["s1"]
    assert todo.state == ["a1", "s1"]  # still managed: it stays locked
    node.accounts["s1"] = acc.Account(
        "s1", 200001, 200001, acc.gecos(S1), "/ceph/home/s1", "/usr/sbin/nologin", 1
    )
    del node.keys["s1"]
    again = acc.plan(node, [A1], **KW)
    assert (again.commands, again.remove, again.locked) == ([], [], ["s1"])


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        (
            current({"svc": acc.Account("svc", 200001, 999, "", "/", "/bin/false", None)}),
            "uid 200001 of user s1",
        ),
        (current(groups={"video": 200001}), "gid 200001 of user s1 belongs to the existing group video"),
        (
            current(groups={"other": 2900}),
            "gid 2900 of the admin group ailab-admins belongs to the group other",
        ),
    ],
)
def test_an_id_owned_by_another_account_stops_everything(node, needle):
    with pytest.raises(acc.Conflict, match=needle):
        acc.plan(node, [S1], **KW)


def test_directory_on_removes_the_students_it_created_and_keeps_the_admins():
    """accounts_directory: only the admins stay local; the students this role made leave /etc/passwd and
    /etc/group (no -r: the directory gives them the same uid) and their key files go; nothing is locked."""
    todo = acc.plan(converged([S1, A1]), [A1], **KW, remove_unlisted=True)
    assert todo.commands == [["userdel", "s1"], ["groupdel", "s1"]]
    assert todo.remove == ["s1"] and todo.locked == [] and todo.state == ["a1"]
    again = acc.plan(current({"a1": converged([A1]).accounts["a1"]}, {"ailab-admins": 2900, "a1": 200900},
                             {"a1": frozenset({"ailab-admins"})}, {"a1": ""}, ["a1"]), [A1], **KW,
                     remove_unlisted=True)  # fmt: skip
    assert (again.commands, again.write, again.remove) == ([], {}, [])


def test_directory_on_never_touches_accounts_it_did_not_create():
    node = converged([A1])
    node.accounts["localuser"] = acc.Account("localuser", 5000, 5000, "", "/home/x", "/bin/sh", None)
    todo = acc.plan(node, [A1], **KW, remove_unlisted=True)
    assert todo.commands == [] and todo.remove == []


@pytest.mark.parametrize("inventory", ["sim", "production"])
@pytest.mark.parametrize("directory", [False, True])
def test_the_models_users_plan_what_the_raw_ailab_users_planned(inventory, directory):
    """The role passes the model's users (vars/main.yml: ailab_model(groups, 'users')) where it passed the raw
    ailab_users: the same accounts, groups, key files and admin memberships, on a new node and on one that
    already has them."""
    from ailab.ansible_bridge import to_data
    from ailab.inventory import load_cluster, read_inventory

    _, hostvars = read_inventory(ROOT / "inventory" / inventory)
    raw = next(iter(hostvars.values()))["ailab_users"]
    cluster, _ = load_cluster(ROOT / "inventory" / inventory)
    model = list(to_data(cluster.users).values())
    if directory:  # only the admins stay local accounts
        raw = [u for u in raw if u.get("admin")]
        model = [u for u in model if u["admin"]]
    kw = {**KW, "home_root": cluster.ceph.home_root, "remove_unlisted": directory}
    assert len(acc.plan(current(), model, **kw).commands) >= 1 + 2 * len(model)  # groups and accounts
    for node in (current(), converged(raw)):
        assert vars(acc.plan(node, model, **kw)) == vars(acc.plan(node, raw, **kw))
