"""Role directory: users from slapd through SSSD on every node, none of them in /etc/passwd; slapd refuses
plain binds and anonymous reads."""

from __future__ import annotations

testinfra_hosts = ["ctl01", "fe01", "mol-t4-01"]


def test_users_resolve_from_the_directory_with_the_inventorys_ids(host, cluster):
    for user in cluster.users.values():
        entry = host.run(f"getent passwd {user.name}")
        assert entry.rc == 0, (user.name, entry.stderr)
        fields = entry.stdout.strip().split(":")
        assert fields[2:4] == [str(user.uid), str(user.gid)], fields
        assert fields[5] == f"{cluster.ceph.home_root}/{user.name}"
        local = host.run(f"grep -c '^{user.name}:' /etc/passwd").stdout.strip()
        assert local == ("1" if user.admin else "0"), (user.name, local)


def test_ssh_keys_come_from_the_directory(host, cluster):
    user = next(u for u in cluster.users.values() if u.ssh_keys and not u.admin)
    keys = host.run(f"/usr/bin/sss_ssh_authorizedkeys {user.name}")
    assert keys.rc == 0 and user.ssh_keys[0].split()[1] in keys.stdout, keys.stderr


def test_sssd_runs_and_its_sockets_are_masked(host):
    assert host.service("sssd").is_running
    assert host.run("systemctl is-enabled sssd-nss.socket").stdout.strip() == "masked"
    assert host.file("/etc/sssd/sssd.conf").mode == 0o600


def test_slapd_refuses_plain_and_anonymous(host, cluster):
    if host.backend.get_hostname() != "ctl01":
        return
    server = cluster.directory_hosts[0]
    anonymous = host.run(
        f"LDAPTLS_CACERT=/etc/ldap/tls/ca.pem ldapsearch -LLL -x -H ldaps://{server.address} "
        f"-b {cluster.directory.base_dn} '(uid=*)' uid"
    )
    # Anonymous sees nothing, not even the base entry: slapd answers noSuchObject (32) rather than reveal it.
    assert anonymous.rc in (0, 32) and "uid:" not in anonymous.stdout, anonymous.stderr
    base = cluster.directory.base_dn
    mine = host.run(f"ldapsearch -LLL -Q -Y EXTERNAL -H ldapi:/// -b {base} '(uid=*)' uid")
    assert mine.rc == 0 and "uid:" in mine.stdout, mine.stderr  # the same search as root finds the users
    plain = host.run(f"ldapsearch -LLL -x -H ldap://{server.address} -b {cluster.directory.base_dn} uid")
    assert plain.rc == 13, plain.stderr  # confidentialityRequired
