"""Role ceph_cluster: the simulator's managed Ceph."""

from __future__ import annotations

import json

testinfra_hosts = ["stor01"]


def test_ceph_is_healthy_with_its_daemons(host):
    status = json.loads(host.check_output("ceph -s --format json"))
    assert status["health"]["status"] in ("HEALTH_OK", "HEALTH_WARN"), status["health"]
    assert status["osdmap"]["num_up_osds"] >= 1
    assert status["fsmap"]["up"] >= 1


def test_the_inventorys_file_system_exists(host, cluster):
    names = [fs["name"] for fs in json.loads(host.check_output("ceph fs ls --format json"))]
    assert cluster.ceph.fs_name in names
