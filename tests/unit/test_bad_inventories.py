"""Issue 14, "Bad inventories": input that would break a converge, take over a system account or make
Slurm refuse every job is refused by `ailab inventory check`, with one problem naming the field and the fix.

Each case feeds one bad value into the good inventory of test_model_validation and expects exactly the
problem(s) of one field: one (where, field) and a fragment of the fix.
"""

from __future__ import annotations

import base64
import copy
import struct
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from ailab.ceph import home_dirs, mount_unit_name
from ailab.model import AccountSettings, CephSettings
from ailab.opsconfig import ops_config_data, parse_ops_config
from ailab.parse import build_cluster
from ailab.problems import Problem
from ailab.render import RENDERERS, render
from ailab.validate import validate
from tests.unit.test_fix_hints import bad_inventories
from tests.unit.test_model_validation import CLUSTER_WIDE, ROOT, good, set_all

Change = Callable[[dict, dict], None]


def problems(groups, hostvars) -> list[Problem]:
    cluster, found = build_cluster(groups, hostvars)
    return found + validate(cluster)


def expect(change: Change, where: str, field: str, fix: str, message: str = "") -> None:
    """Every problem is about ``field``; exactly one of them is at ``where``, and it says ``fix``."""
    groups, hostvars = good()
    change(groups, hostvars)
    found = problems(groups, hostvars)
    lines = [str(p) for p in found]
    assert found, "accepted"
    assert {p.field for p in found} == {field}, lines
    [problem] = [p for p in found if p.where == where] or [None]
    assert problem is not None, lines
    assert fix in problem.fix, str(problem)
    assert message in problem.message, str(problem)


def accepted(change: Change) -> None:
    groups, hostvars = good()
    change(groups, hostvars)
    assert [str(p) for p in problems(groups, hostvars)] == []


# Changes ---------------------------------------------------------------------------------------------


def user(**fields: Any) -> Change:
    """A second user next to ab12cd (uid/gid 20001)."""

    def change(groups, hostvars):
        second = {"name": "xy99zz", "uid": 20003, "gid": 20003, "email": "x@example.org", "project": "course"}
        second.update(fields)
        set_all(hostvars, "ailab_users", [*CLUSTER_WIDE["ailab_users"], second])

    return change


def users(*entries: dict[str, Any]) -> Change:
    def change(groups, hostvars):
        base = {"email": "x@example.org", "project": "course"}
        set_all(hostvars, "ailab_users", [*CLUSTER_WIDE["ailab_users"], *({**base, **e} for e in entries)])

    return change


def cluster_var(key: str, **fields: Any) -> Change:
    def change(groups, hostvars):
        set_all(hostvars, key, {**CLUSTER_WIDE.get(key, {}), **fields})

    return change


def every_host(key: str, value: Any) -> Change:
    def change(groups, hostvars):
        set_all(hostvars, key, value)

    return change


def policy(**fields: Any) -> Change:
    return cluster_var("ailab_policy", **fields)


def ceph(**fields: Any) -> Change:
    return cluster_var("ailab_ceph", **fields)


def address(host: str, value: str) -> Change:
    def change(groups, hostvars):
        hostvars[host]["ailab_address"] = value

    return change


def rename_host(old: str, new: str) -> Change:
    def change(groups, hostvars):
        for members in groups.values():
            members[:] = [new if m == old else m for m in members]
        hostvars[new] = hostvars.pop(old)

    return change


def partition(index: int, **fields: Any) -> Change:
    def change(groups, hostvars):
        parts = copy.deepcopy(CLUSTER_WIDE["ailab_partitions"])
        parts[index].update(fields)
        set_all(hostvars, "ailab_partitions", parts)

    return change


def storage_hosts(count: int, *, sim: bool = False, **role_vars: Any) -> Change:
    """A managed Ceph on ``count`` storage hosts (stor01...), optionally in a simulated inventory."""

    def change(groups, hostvars):
        names = [f"stor0{i}" for i in range(1, count + 1)]
        groups["ceph"] = names
        groups["all"] += names
        template = copy.deepcopy(hostvars["ctl"])
        template.pop("ailab_hardware", None)
        for i, name in enumerate(names):
            hostvars[name] = {**copy.deepcopy(template), "ailab_address": f"10.0.3.{i + 1}", **role_vars}
        set_all(hostvars, "ailab_ceph", {"managed": True})
        if sim:
            hostvars["fe"]["ailab_address"] = "10.0.0.10"
            set_all(hostvars, "ailab_sim", {"subnet": "10.0.0.0/16"})

    return change


def both(*changes: Change) -> Change:
    def change(groups, hostvars):
        for c in changes:
            c(groups, hostvars)

    return change


def key_line(key_type: str, comment: str = "ab12cd@laptop") -> str:
    """A syntactically valid public key line of ``key_type`` (the blob's first field is the type)."""
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", 32) + bytes(range(32))
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}"


ED25519 = key_line("ssh-ed25519")


# Accounts --------------------------------------------------------------------------------------------

SYSTEM_NAMES = [
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "_apt",
    "nobody",
    "nogroup",
    "systemd-network",
    "systemd-anything",
    "messagebus",
    "sshd",
    "munge",
    "slurm",
    "ceph",
    "mysql",
    "postfix",
    "postdrop",
    "staff",
    "users",
    "adm",
    "sudo",
    "wheel",
    "_chrony",
    "ailab-admins",
]


@pytest.mark.parametrize("name", SYSTEM_NAMES)
def test_system_account_and_group_names_are_refused(name):
    expect(user(name=name), f"user {name}", "name", "university login", "role accounts would take")


def test_the_model_knows_the_defaults_of_the_roles_it_checks_for():
    """AccountSettings and CephSettings.pool_size repeat role defaults (the roles do not read the model for
    them yet): they must not drift apart."""
    accounts = yaml.safe_load((ROOT / "roles" / "accounts" / "defaults" / "main.yml").read_text())
    assert (AccountSettings().admin_group, AccountSettings().admin_gid) == (
        accounts["accounts_admin_group"],
        accounts["accounts_admin_gid"],
    )
    ceph_cluster = yaml.safe_load((ROOT / "roles" / "ceph_cluster" / "defaults" / "main.yml").read_text())
    assert CephSettings().pool_size == ceph_cluster["ceph_cluster_pool_size"]


def test_the_admin_group_name_comes_from_the_accounts_role_settings():
    renamed = every_host("accounts_admin_group", "cluster-admins")
    expect(both(renamed, user(name="cluster-admins")), "user cluster-admins", "name", "university login")
    accepted(both(renamed, user(name="ailab-admins")))


@pytest.mark.parametrize(
    ("uid", "message"),
    [
        (0, "system id"),
        (999, "system id"),
        (60000, "Debian reserves"),
        (65534, "Debian reserves"),
        (65535, "Debian reserves"),
        (4294967294, "Debian reserves"),
        (4294967295, "Debian reserves"),
        (4294967296, "above the largest id"),
    ],
)
def test_ids_in_the_system_or_reserved_ranges(uid, message):
    expect(user(uid=uid), "user xy99zz", "uid", "use an id from 1000 to 59999 or from 65536", message)


def test_gid_in_the_reserved_range():
    expect(user(gid=65534), "user xy99zz", "gid", "use an id from 1000", "Debian reserves")


@pytest.mark.parametrize("uid", [1000, 59999, 65536, 4294967293, 200101])
def test_ids_at_the_edges_of_the_allowed_ranges(uid):
    accepted(user(uid=uid, gid=uid))


def test_gid_of_another_user_is_refused():
    expect(user(gid=20001), "user xy99zz", "gid", "give every user their own gid", "duplicate gid 20001")


def test_gid_that_is_another_users_uid_is_refused():
    change = users(
        {"name": "xy99zz", "uid": 20003, "gid": 20004},
        {"name": "zz11aa", "uid": 20004, "gid": 20005},
    )
    expect(change, "user xy99zz", "gid", "gid = uid, here 20003", "20004 is the uid of user zz11aa")


def test_gid_of_the_admin_group_is_refused():
    expect(user(gid=2900), "user xy99zz", "gid", "its own gid", "admin group ailab-admins")
    moved = every_host("accounts_admin_gid", 3000)
    expect(both(moved, user(gid=3000)), "user xy99zz", "gid", "its own gid", "3000 is the gid of the admin")
    accepted(both(moved, user(uid=2900, gid=2900)))


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("cluster-admins!", "accounts_admin_group"),
        ("sudo", "accounts_admin_group"),
        (65534, "accounts_admin_gid"),
    ],
)
def test_admin_group_settings_that_cannot_work(value, field):
    expect(every_host(field, value), "group_vars/all", field, "leave it at")


@pytest.mark.parametrize("full_name", ["Bech: Anna", "Bech, Anna", "Anna\nBech", "Anna=Bech", "Anna\x07"])
def test_full_names_that_break_the_gecos_field(full_name):
    expect(user(full_name=full_name), "user xy99zz", "full_name", "without ':', ','", "GECOS")


@pytest.mark.parametrize("full_name", ["Mads Kjær", "Zoë O'Brien-Ølgaard", "Åse"])
def test_full_names_with_letters_beyond_ascii_are_fine(full_name):
    accepted(user(full_name=full_name))


@pytest.mark.parametrize(
    "email",
    [
        "ab12cd",
        "a,b@example.org",
        "a:b@example.org",
        "a b@example.org",
        "<a@example.org>",
        "a@example",
        "a@-x.org",
    ],
)
def test_email_addresses_that_break_gecos_or_mail_headers(email):
    expect(user(email=email), "user xy99zz", "email", "write a full address such as name@example.org")


@pytest.mark.parametrize(
    ("key", "message", "fix"),
    [
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----",
            "never paste private keys",
            "make a new key pair",
        ),
        ("PuTTY-User-Key-File-3: ssh-ed25519", "PRIVATE key", "paste the public key"),
        (f'from="10.0.0.0/8",no-pty {ED25519}', "options", "remove the options"),
        (key_line("ssh-dss"), "DSA key", "ssh-keygen -t ed25519"),
        ("ssh-ed25519 AAAA$$notbase64 me@laptop", "not base64", "paste the public key"),
        ("ssh-rsa " + ED25519.split()[1] + " me@laptop", "does not belong to a ssh-rsa key", "paste"),
        ("ssh-ed25519", "no key data", "paste the public key"),
        ("hello world", "not an OpenSSH public key type", "known types: ssh-ed25519"),
        (
            '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "me"\nAAAAC3Nz\n---- END SSH2 PUBLIC KEY ----',
            "RFC 4716",
            "ssh-keygen -i",
        ),
        (ED25519 + "\n" + ED25519, "several lines", "its own list entry"),
    ],
)
def test_ssh_keys_that_are_not_one_public_key_line(key, message, fix):
    expect(user(ssh_keys=[ED25519, key]), "user xy99zz", "ssh_keys[1]", fix, message)


@pytest.mark.parametrize(
    "key_type",
    [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ],
)
def test_every_openssh_key_type_is_accepted(key_type):
    accepted(user(ssh_keys=[key_line(key_type), key_line(key_type, comment="")]))


def test_the_simulators_real_keys_are_accepted():
    data = yaml.safe_load((ROOT / "inventory" / "sim" / "group_vars" / "all" / "users.yml").read_text())
    keys = [k for u in data["ailab_users"] for k in u.get("ssh_keys", [])]
    assert len(keys) == 4
    accepted(user(ssh_keys=keys))


# Hosts and addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "all", "localhost", "ungrouped"])
def test_host_names_slurm_or_ansible_reserve(name):
    expect(rename_host("t4-02", name), f"host {name}", "name", "rename the host", "reserved")


def test_host_named_like_a_group():
    expect(rename_host("ctl", "ceph"), "host ceph", "name", "rename the host", "name of an inventory group")


def test_host_names_that_differ_only_in_case():
    groups, hostvars = good()
    rename_host("t4-02", "T4-01")(groups, hostvars)
    found = problems(groups, hostvars)
    assert {p.field for p in found} == {"name"}
    assert any("are the same machine (t4-01)" in p.message for p in found), found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.5", "multicast"),
        ("169.254.10.1", "link-local"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("fd00::1", "IPv6"),
        ("::1", "IPv6"),
        ("ctl.example.org", "not an IP address"),
        ("10.0.0.2/24", "not an IP address"),
    ],
)
def test_addresses_that_cannot_be_a_cluster_address(value, message):
    expect(address("ctl", value), "host ctl", "ailab_address", "IPv4 address on the cluster network", message)


def sim(change: Change | None = None) -> Change:
    def apply(groups, hostvars):
        hostvars["fe"]["ailab_address"] = "10.0.0.10"
        set_all(hostvars, "ailab_sim", {"subnet": "10.0.0.0/16"})
        if change:
            change(groups, hostvars)

    return apply


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.0", "10.0.255.255", "10.1.0.5"])
def test_simulated_hosts_need_a_usable_address_of_the_subnet(value):
    accepted(sim())
    expect(sim(address("ctl", value)), "host ctl", "ailab_address", "pick a free address in 10.0.0.0/16")


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("subnet", "fd00:213::/64", "IPv4 CIDR"),
        ("subnet", "10.0.0.0/30", "IPv4 CIDR"),
        ("prefix", "ai lab", "prefix: ailab"),
        ("network", "sim/net", "network: ailab-sim"),
    ],
)
def test_simulator_settings_docker_or_the_addresses_cannot_use(field, value, fix):
    def change(groups, hostvars):
        set_all(hostvars, "ailab_sim", {"subnet": "10.0.0.0/16", field: value})

    expect(sim(change), "group_vars/all", f"ailab_sim.{field}", fix)


# Storage ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fix"),
    [
        ("ceph/home", "start it with /"),
        ("/", "a directory of its own"),
        ("/ceph/home/", "write it as /ceph/home"),
        ("/ceph//home", "write it as /ceph/home"),
        ("/ceph/../home", "write it as /home"),
        ("/ceph/./home", "write it as /ceph/home"),
        ("/etc", "outside /bin"),
        ("/var/lib/ceph/home", "outside /bin"),
        ("/usr/local/home", "outside /bin"),
        ("/tmp/home", "outside /bin"),
        ("/root", "outside /bin"),
        ("/run/ceph", "outside /bin"),
        ("/boot/x", "outside /bin"),
        ("/lib64", "outside /bin"),
        ("/ceph/my home", "rename the directory"),
        ("/ceph/home,ro", "rename the directory"),
    ],
)
@pytest.mark.parametrize("key", ["home_root", "datasets_path"])
def test_mount_points_that_would_cover_the_system_or_break_tools(key, path, fix):
    other = {"datasets_path": "/ceph/datasets"} if key == "home_root" else {"home_root": "/ceph/home"}
    expect(ceph(**other, **{key: path}), "group_vars/all", f"ailab_ceph.{key}", fix)


@pytest.mark.parametrize("path", ["/home", "/ceph/home", "/srv/ceph/home", "/mnt/cephfs/home", "/var-data/x"])
def test_mount_points_of_their_own_are_fine(path):
    accepted(ceph(home_root=path, datasets_path="/datasets"))


@pytest.mark.parametrize(
    ("home", "datasets", "relation"),
    [
        ("/ceph/home", "/ceph/home/datasets", "inside"),
        ("/ceph/data/home", "/ceph/data", "above"),
        ("/ceph/home", "/ceph/home", "the same directory"),
    ],
)
def test_datasets_neither_inside_nor_above_the_homes(home, datasets, relation):
    """The rule roles/cephfs_client/tasks/check.yml has in Jinja, now in the model's checks."""
    expect(
        ceph(home_root=home, datasets_path=datasets),
        "group_vars/all",
        "ailab_ceph.datasets_path",
        "pick separate directories",
        relation,
    )
    accepted(ceph(home_root="/ceph/home", datasets_path="/ceph/homes-datasets"))


@pytest.mark.parametrize("name", ["ceph fs", "my/fs", "fs,rw", "ümlaut"])
def test_cephfs_names_ceph_refuses(name):
    expect(ceph(fs_name=name), "group_vars/all", "ailab_ceph.fs_name", "fs_name: cephfs")


@pytest.mark.parametrize(
    ("monitor", "message", "fix"),
    [
        ("127.0.0.1", "loopback", "10.70.30.11:6789"),
        ("mon1.example.org", "not an IP address", "10.70.30.11:6789"),
        ("fd00::1", "not address or address:port", "10.70.30.11:6789"),
        ("[v2:10.0.9.1:3300,v1:10.0.9.1:6789]", "not address or address:port", "10.70.30.11:6789"),
        ("10.0.9.2:99999", "not a number from 1 to 65535", "10.70.30.11:6789"),
        ("10.0.9.2:", "not a number from 1 to 65535", "10.70.30.11:6789"),
        ("10.0.9.1", "listed twice", "list each monitor once"),
    ],
)
def test_monitor_addresses_of_an_external_ceph(monitor, message, fix):
    change = ceph(managed=False, monitors=["10.0.9.1", monitor])
    expect(change, "group_vars/all", "ailab_ceph.monitors[1]", fix, message)


def test_monitors_with_ports_are_fine():
    accepted(ceph(managed=False, monitors=["10.0.9.1:6789", "10.0.9.2", "10.0.9.3:3300"]))


def test_simulated_cluster_must_mount_with_fuse():
    expect(sim(ceph(client="kernel")), "group_vars/all", "ailab_ceph.client", "client: fuse", "CephFS module")


@pytest.mark.parametrize(
    ("key", "value", "fix", "message"),
    [
        ("ailab_cephfs_home_dir", "home", "ailab_cephfs_home_dir: /home", "not a directory inside"),
        ("ailab_cephfs_home_dir", "/", "ailab_cephfs_home_dir: /home", "not a directory inside"),
        ("ailab_cephfs_datasets_dir", "data", "e.g. ailab_cephfs_datasets_dir: /datasets", "absolute path"),
        ("ailab_cephfs_datasets_dir", "//", "ailab_cephfs_datasets_dir: /datasets", "below its root"),
        ("ailab_cephfs_home_dir", 7, "as a non-empty string", "got 7"),
        ("ailab_cephfs_datasets_dir", "", "as a non-empty string", "got ''"),
    ],
)
def test_cephfs_directories_are_paths_inside_the_file_system(key, value, fix, message):
    """The directories inside the CephFS that roles cephfs_client, user_dirs and containers mount."""
    expect(every_host(key, value), "group_vars/all", key, fix, message)


@pytest.mark.parametrize(
    ("values", "home", "datasets"),
    [
        ({}, "/home", "/datasets"),
        ({"ailab_cephfs_home_dir": "/ailab/home"}, "/ailab/home", "/datasets"),
        ({"ailab_cephfs_home_dir": "/a/home", "ailab_cephfs_datasets_dir": "/a/data"}, "/a/home", "/a/data"),
    ],
)
def test_cephfs_directories_default_in_the_model(values, home, datasets):
    """The roles read them from the model (ailab_model(groups, 'ceph')); the defaults are the model's."""
    groups, hostvars = good()
    for key, value in values.items():
        set_all(hostvars, key, value)
    cluster, found = build_cluster(groups, hostvars)
    assert found + validate(cluster) == []
    assert (cluster.ceph.fs_home_dir, cluster.ceph.fs_datasets_dir) == (home, datasets)


# Durability of a managed Ceph (table in ailab.ceph.pool_size)


def test_two_storage_hosts_would_accept_writes_with_a_single_copy():
    expect(storage_hosts(2), "group ceph", "hosts", "add a third host to group ceph", "min_size 1")


def test_three_storage_hosts_keep_two_copies_with_one_down():
    accepted(storage_hosts(3))
    accepted(storage_hosts(5))


def test_one_storage_host_only_in_the_simulator_or_when_chosen():
    expect(storage_hosts(1), "group ceph", "hosts", "ailab_ceph.pool_size: 1", "one copy of every file")
    accepted(storage_hosts(1, sim=True))
    accepted(storage_hosts(1, ceph_cluster_pool_size=1))

    def chosen(groups, hostvars):
        storage_hosts(1, ceph_cluster_pool_size=1)(groups, hostvars)
        set_all(hostvars, "ailab_ceph", {"managed": True, "pool_size": 1})

    accepted(chosen)


def with_pool_size(hosts: int, model: int | None, role: int | None) -> Change:
    def change(groups, hostvars):
        role_vars = {} if role is None else {"ceph_cluster_pool_size": role}
        storage_hosts(hosts, **role_vars)(groups, hostvars)
        if model is not None:
            set_all(hostvars, "ailab_ceph", {"managed": True, "pool_size": model})

    return change


def test_explicit_pool_size_two_is_refused_too():
    expect(with_pool_size(3, 2, 2), "group_vars/all", "ailab_ceph.pool_size", "drop pool_size", "min_size 1")
    expect(with_pool_size(4, None, 2), "group_vars/all", "ailab_ceph.pool_size", "drop pool_size")


def test_more_copies_than_storage_hosts():
    expect(with_pool_size(3, 4, 4), "group_vars/all", "ailab_ceph.pool_size", "at most 3", "could never")


def test_pool_size_in_the_model_must_match_what_the_role_reads():
    expect(
        with_pool_size(4, 4, None),
        "group_vars/all",
        "ailab_ceph.pool_size",
        "set ceph_cluster_pool_size: 4 in group_vars/ceph.yml",
        "(its default)",
    )
    accepted(with_pool_size(4, 4, 4))


def test_pool_size_differing_between_storage_hosts():
    def change(groups, hostvars):
        storage_hosts(3, ceph_cluster_pool_size=3)(groups, hostvars)
        hostvars["stor02"]["ceph_cluster_pool_size"] = 2

    expect(change, "group ceph", "ceph_cluster_pool_size", "set ailab_ceph.pool_size once")


# Times, sizes and policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_job_time", "00:00:00", "is zero"),
        ("max_job_time", "00:00:30", "whole minutes"),
        ("default_job_time", "00:00:00", "is zero"),
        ("default_job_time", "01:00:30", "whole minutes"),
    ],
)
def test_time_limits_slurm_cannot_keep(key, value, message):
    expect(policy(**{key: value}), "group_vars/all", f"ailab_policy.{key}", f'{key}: "', message)


@pytest.mark.parametrize(("value", "message"), [("00:00:00", "is zero"), ("04:00:30", "whole minutes")])
def test_partition_time_limits_slurm_cannot_keep(value, message):
    expect(partition(1, max_time=value), "partition t4", "max_time", 'max_time: "04:00:00"', message)


def test_default_time_above_max_time_names_the_largest_allowed():
    change = policy(max_job_time="02:00:00", default_job_time="04:00:00")
    expect(change, "group_vars/all", "ailab_policy.default_job_time", "set default_job_time to 02:00:00")


@pytest.mark.parametrize("name", ["DEFAULT", "default", "Default"])
def test_partition_named_like_the_slurm_keyword(name):
    expect(partition(2, name=name), f"partition {name}", "name", "rename it", "slurm.conf keyword")


def test_project_named_like_slurms_root_account():
    def change(groups, hostvars):
        set_all(hostvars, "ailab_projects", [{"name": "course"}, {"name": "root"}])

    expect(change, "project root", "name", "rename the project", "Slurm's own top account")


def test_project_named_like_a_user_is_fine():
    """Projects are Slurm accounts, not Unix groups: a project called like a user collides with nothing."""

    def change(groups, hostvars):
        set_all(hostvars, "ailab_projects", [{"name": "course"}, {"name": "ab12cd"}])

    accepted(change)


@pytest.mark.parametrize("description", ["ML | 2026", "Machine\nLearning"])
def test_project_descriptions_sacctmgr_output_cannot_carry(description):
    def change(groups, hostvars):
        set_all(hostvars, "ailab_projects", [{"name": "course", "description": description}])

    expect(change, "project course", "description", "on one line without '|'", "sacctmgr -P")


@pytest.mark.parametrize("cpu_model", ["EPYC | 7302", "EPYC\n7302"])
def test_cpu_models_that_break_the_docs_table(cpu_model):
    def change(groups, hostvars):
        hostvars["t4-01"]["ailab_hardware"]["cpu_model"] = cpu_model

    expect(change, "host t4-01", "ailab_hardware.cpu_model", "without '|'", "node table")


def test_no_deletion_notice_at_all():
    change = policy(deletion={"month": 8, "day": 1, "notices": []})
    expect(change, "group_vars/all", "ailab_policy.deletion.notices", 'notices: ["2 months"', "refuses")


@pytest.mark.parametrize("offset", ["12 months", "13 months", "365 days", "400 days"])
def test_deletion_notice_a_year_or_more_ahead(offset):
    change = policy(deletion={"month": 8, "day": 1, "notices": ["1 month", offset]})
    expect(change, "group_vars/all", "ailab_policy.deletion.notices[1]", "less than a year", "wrong cycle")


@pytest.mark.parametrize(("month", "day"), [(2, 29), (2, 30), (4, 31), (6, 31), (9, 31), (11, 31), (13, 1)])
def test_deletion_day_that_is_not_in_every_year(month, day):
    change = policy(deletion={"month": month, "day": day})
    expect(change, "group_vars/all", "ailab_policy.deletion.day", "exists in every year")


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("support_email", "support", "support@example.org"),
        ("support_email", "Support <support@example.org>", "support@example.org"),
        ("support_email", "support@example.org\nBcc: x@y.z", "support@example.org"),
        ("extension_url", "forms.office.com/e/x", "https://forms.example.org/extend"),
        ("extension_url", "javascript:alert(1)", "https://forms.example.org/extend"),
        ("extension_url", "https://forms.example.org/a b", "https://forms.example.org/extend"),
    ],
)
def test_policy_contacts_the_notices_print(key, value, fix):
    expect(policy(**{key: value}), "group_vars/all", f"ailab_policy.{key}", fix)


@pytest.mark.parametrize(
    ("change", "where", "field"),
    [
        (user(quota_gb=0), "user xy99zz", "ailab_users[1].quota_gb"),
        (user(quota_gb=-5), "user xy99zz", "ailab_users[1].quota_gb"),
        (policy(default_quota_gb=0), "group_vars/all", "ailab_policy.default_quota_gb"),
        (policy(max_gpus_per_user=0), "group_vars/all", "ailab_policy.max_gpus_per_user"),
        (every_host("ailab_slurm", {"def_cpu_per_gpu": 0}), "group_vars/all", "ailab_slurm.def_cpu_per_gpu"),
    ],
)
def test_zero_or_negative_sizes(change, where, field):
    expect(change, where, field, "or more")


@pytest.mark.parametrize("key", ["memory_mb", "sockets", "cores_per_socket", "threads_per_core"])
@pytest.mark.parametrize("value", [0, -1])
def test_zero_memory_or_cpus(key, value):
    def change(groups, hostvars):
        hostvars["t4-01"]["ailab_hardware"][key] = value

    expect(change, "host t4-01", f"ailab_hardware.{key}", "to 1 or more")


# Names that end up in paths and headers


@pytest.mark.parametrize("name", ["ai lab", "../../etc", "ailab <x@y>", "-x", "a" * 64])
def test_cluster_names_for_paths_and_mail_headers(name):
    change = cluster_var("ailab_cluster", name=name)
    expect(change, "group_vars/all", "ailab_cluster.name", "name: ailab")


@pytest.mark.parametrize(
    "domain", ["srv..example.org", "-srv.example.org", "srv.example.org.", "Srv.Example.org"]
)
def test_domains_that_are_not_dns_names(domain):
    change = cluster_var("ailab_cluster", domain=domain)
    expect(change, "group_vars/all", "ailab_cluster.domain", "domain: srv.example.org")


# What the check accepts, the tools accept --------------------------------------------------------------


def test_what_the_check_accepts_every_renderer_and_ops_tool_accepts():
    """Every inventory of the broad walk (test_fix_hints) that passes the check renders every file, the
    homes and mount units, and an ops.json that ailab-retention and ailab-maintenance read."""
    checked = 0
    for what, groups, hostvars in bad_inventories():
        cluster, found = build_cluster(groups, hostvars)
        if found or validate(cluster):
            continue
        checked += 1
        parse_ops_config(ops_config_data(cluster), what)
        home_dirs(cluster)
        mount_unit_name(cluster.ceph.home_root)
        for name in RENDERERS:
            hosts = [h.name for h in cluster.compute] if name == "gpu-health.json" else [None]
            for host in hosts:
                render(name, cluster, host)
    assert checked > 40


# Rule 6's caps and the QOS job counts (issue 14): the good cluster's t4 class has 32 CPUs and 257000 MB for
# 6 GPUs (5 CPUs, 42833 MB each); ailab_slurm gives every GPU 4 CPUs and 16000 MB by default.


@pytest.mark.parametrize(
    ("fields", "field", "fix", "message"),
    [
        ({"max_cpus_per_gpu": 6}, "ailab_policy.max_cpus_per_gpu", "to 5 or less", "compute_t4"),
        ({"max_mem_per_gpu_mb": 50000}, "ailab_policy.max_mem_per_gpu_mb", "to 42833 or less", "compute_t4"),
        ({"max_cpus_per_gpu": 2}, "ailab_policy.max_cpus_per_gpu", "to 4 or more", "by default"),
        ({"max_mem_per_gpu_mb": 8000}, "ailab_policy.max_mem_per_gpu_mb", "to 16000 or more", "by default"),
        ({"max_nodes_per_job": 9}, "ailab_policy.max_nodes_per_job", "to 3 or less", "compute nodes"),
        ({"max_nodes_per_job": 0}, "ailab_policy.max_nodes_per_job", "to 1 or more", ""),
        ({"max_submit_jobs_per_user": 0}, "ailab_policy.max_submit_jobs_per_user", "to 1 or more", ""),
        (
            {"max_submit_jobs_per_user": 4, "max_jobs_per_user": 8},
            "ailab_policy.max_jobs_per_user",
            "to 4 or less",
            "",
        ),
    ],
)
def test_job_size_caps_and_counts(fields, field, fix, message):
    expect(policy(**fields), "group_vars/all", field, fix, message)


def test_caps_at_the_smallest_share_per_gpu_are_accepted():
    accepted(policy(max_cpus_per_gpu=5, max_mem_per_gpu_mb=42833, max_nodes_per_job=3))
