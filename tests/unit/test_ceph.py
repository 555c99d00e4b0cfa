"""Pure helpers of the Ceph roles (ailab/ceph.py) and their Ansible filters."""

from __future__ import annotations

import subprocess

import pytest

from ailab import ceph
from ailab.inventory import load_cluster
from plugins.filter.ailab import FilterModule
from tests.unit.test_model_validation import ROOT


@pytest.mark.parametrize(
    ("path", "unit"),
    [
        ("/ceph/home", "ceph-home.mount"),
        ("/ceph/datasets/", "ceph-datasets.mount"),
        ("/srv/ai-lab/home", "srv-ai\\x2dlab-home.mount"),
        ("/", "-.mount"),
        ("/a b/.hidden", "a\\x20b-\\x2ehidden.mount"),
    ],
)
def test_mount_unit_names_match_systemd_escape(path, unit):
    assert ceph.mount_unit_name(path) == unit


def test_mount_unit_name_agrees_with_systemd_escape_where_available():
    try:
        out = subprocess.run(
            ["systemd-escape", "--path", "--suffix=mount", "/srv/ai-lab/home dir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("systemd-escape is not installed here")
    assert ceph.mount_unit_name("/srv/ai-lab/home dir") == out


@pytest.mark.parametrize("bad", ["ceph/home", "/ceph/../etc"])
def test_mount_unit_name_rejects_relative_and_dotdot(bad):
    with pytest.raises(ValueError):
        ceph.mount_unit_name(bad)


def test_quota_is_binary_gigabytes():
    assert ceph.quota_bytes(1) == 1073741824
    assert ceph.quota_bytes(200) == 200 * 2**30
    for bad in (0, -1, True, 1.5, "1"):
        with pytest.raises(ValueError):
            ceph.quota_bytes(bad)


@pytest.mark.parametrize(
    ("hosts", "requested", "size", "min_size"),
    [(1, 0, 1, 1), (2, 0, 2, 1), (3, 0, 3, 2), (7, 0, 3, 2), (5, 2, 2, 1), (3, 1, 1, 1)],
)
def test_pool_size_follows_the_number_of_hosts(hosts, requested, size, min_size):
    assert ceph.pool_size(hosts, requested) == {"size": size, "min_size": min_size}


def test_pool_size_refuses_more_replicas_than_hosts():
    with pytest.raises(ValueError, match="needs at least 3 OSD hosts"):
        ceph.pool_size(2, 3)
    with pytest.raises(ValueError):
        ceph.pool_size(0)


def test_monitors_are_an_odd_number_of_the_first_hosts():
    assert ceph.mon_hosts(["a"]) == ["a"]
    assert ceph.mon_hosts(["a", "b"]) == ["a"]
    assert ceph.mon_hosts(["a", "b", "c", "d"]) == ["a", "b", "c"]
    assert ceph.mon_hosts(["a", "b", "c", "d", "e"], 5) == ["a", "b", "c", "d", "e"]
    assert ceph.mon_hosts(["a", "b", "c", "d", "e"], 4) == ["a", "b", "c"]


def test_node_caps_are_path_restricted_like_fs_authorize():
    # What `ceph fs authorize cephfs client.x /home rw /datasets r` gives on Ceph 16.2.15.
    assert ceph.client_caps("cephfs", ["/home"], ["/datasets"]) == {
        "mds": "allow rw fsname=cephfs path=/home, allow r fsname=cephfs path=/datasets",
        "mon": "allow r fsname=cephfs",
        "osd": "allow rw tag cephfs data=cephfs",
    }


def test_admin_caps_carry_the_p_flag_and_no_path_for_root():
    caps = ceph.client_caps("cephfs", ["/"], p=True)
    assert caps["mds"] == "allow rwp fsname=cephfs"
    assert "p" not in ceph.client_caps("cephfs", ["/home"])["mds"].split()[1]


def test_caps_args_and_difference():
    caps = ceph.client_caps("fs1", ["/home"])
    assert ceph.caps_args(caps) == ["mds", caps["mds"], "mon", caps["mon"], "osd", caps["osd"]]
    assert not ceph.caps_differ(dict(caps), caps)
    assert ceph.caps_differ({**caps, "mds": "allow rw fsname=fs1"}, caps)
    assert ceph.caps_differ({}, caps)


@pytest.mark.parametrize("bad", ["", "client.node", "a b", "-x"])
def test_client_names_are_checked(bad):
    with pytest.raises(ValueError):
        ceph.check_client_name(bad)
    assert ceph.check_client_name("ailab-node") == "ailab-node"


def test_mon_addresses_from_a_pacific_mon_dump():
    dump = {
        "mons": [
            {
                "name": "stor01",
                "public_addrs": {
                    "addrvec": [
                        {"type": "v1", "addr": "10.0.0.12:6789", "nonce": 0},
                        {"type": "v2", "addr": "10.0.0.12:3300", "nonce": 0},
                    ]
                },
                "addr": "10.0.0.12:6789/0",
            },
            {"name": "old", "addr": "10.0.0.13:6789/0"},
        ]
    }
    assert ceph.mon_addresses(dump) == ["[v2:10.0.0.12:3300,v1:10.0.0.12:6789]", "10.0.0.13:6789"]
    with pytest.raises(ValueError):
        ceph.mon_addresses({"mons": []})


def test_home_dirs_of_the_sim_inventory_use_user_and_default_quota():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    dirs = {d["path"]: d for d in ceph.home_dirs(cluster, "/home")}
    assert set(dirs) == {f"/home/{name}" for name in cluster.users}
    for user in cluster.users.values():
        entry = dirs[f"/home/{user.name}"]
        assert (entry["uid"], entry["gid"], entry["mode"]) == (user.uid, user.gid, "0700")
        expected_gb = user.quota_gb if user.quota_gb is not None else cluster.policy.default_quota_gb
        assert entry["quota_bytes"] == expected_gb * 2**30


def test_home_dirs_of_production_honour_a_users_quota():
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    dirs = {d["path"]: d for d in ceph.home_dirs(cluster, "/ailab/home/")}
    assert dirs["/ailab/home/mk34ef"]["quota_bytes"] == 500 * 2**30
    assert dirs["/ailab/home/ab12cd"]["quota_bytes"] == cluster.policy.default_quota_gb * 2**30


def test_filters_are_registered_and_wrap_errors():
    from ansible.errors import AnsibleFilterError

    filters = FilterModule().filters()
    assert filters["ailab_mount_unit"]("/ceph/home") == "ceph-home.mount"
    assert filters["ailab_ceph_pool_size"](1, 0) == {"size": 1, "min_size": 1}
    with pytest.raises(AnsibleFilterError, match="needs at least"):
        filters["ailab_ceph_pool_size"](1, 3)
    with pytest.raises(AnsibleFilterError):
        filters["ailab_ceph_client_name"]("client.x")
