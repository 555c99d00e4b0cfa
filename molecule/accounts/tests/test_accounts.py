"""Role accounts: the same accounts, uids and gids on every node (moved here from the whole-cluster suite)."""

from __future__ import annotations

testinfra_hosts = ["fe01", "mol-t4-01"]


def test_every_user_with_the_inventorys_uid_and_gid(host, cluster):
    for user in cluster.users.values():
        entry = host.user(user.name)
        assert entry.exists, user.name
        assert (entry.uid, entry.gid) == (user.uid, user.gid), user.name
        assert host.group(user.name).gid == user.gid


def test_admins_are_in_the_admin_group_and_may_sudo(host, cluster):
    group = cluster.accounts.admin_group
    assert host.group(group).gid == cluster.accounts.admin_gid
    admins = [u.name for u in cluster.users.values() if u.admin]
    assert admins, "the simulated inventory has an admin"
    for name in admins:
        assert group in host.user(name).groups
    students = [u.name for u in cluster.users.values() if not u.admin]
    for name in students:
        assert group not in host.user(name).groups
    sudoers = host.run("visudo -c")
    assert sudoers.rc == 0, sudoers.stderr


def test_ssh_keys_are_the_inventorys(host, cluster):
    user = next(u for u in cluster.users.values() if u.ssh_keys)
    keys = host.run(
        f"cat /etc/ssh/authorized_keys/{user.name} 2>/dev/null || cat ~{user.name}/.ssh/authorized_keys"
    )
    assert keys.rc == 0, keys.stderr
    for key in user.ssh_keys:
        assert key.split()[1] in keys.stdout
