"""Role cephfs_client: the homes mounted on a client."""

from __future__ import annotations

testinfra_hosts = ["fe01"]


def test_homes_are_a_cephfs_mount(host, cluster):
    mount = host.mount_point(cluster.ceph.home_root)
    assert mount.exists
    assert "ceph" in mount.filesystem, mount.filesystem


def test_a_user_writes_their_home_and_not_anothers(host, cluster):
    first, second = [u for u in cluster.users.values() if not u.admin][:2]
    home = f"{cluster.ceph.home_root}/{first.name}"
    assert host.file(home).user == first.name
    host.run_expect(
        [0], f"runuser -u {first.name} -- sh -c 'echo ok > {home}/.molecule && rm {home}/.molecule'"
    )
    other = f"{cluster.ceph.home_root}/{second.name}"
    assert host.run(f"runuser -u {first.name} -- touch {other}/.molecule").rc != 0
