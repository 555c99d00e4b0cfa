"""Role slurm_controller: the daemons and the accounts (moved here from the whole-cluster suite)."""

from __future__ import annotations

testinfra_hosts = ["ctl01"]


def test_the_daemons_run(host):
    for service in ("mariadb", "slurmdbd", "slurmctld"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service


def test_accounting_holds_the_inventorys_cluster_accounts_and_users(host, cluster):
    clusters = host.check_output("sacctmgr -n -P show cluster format=cluster").split()
    assert cluster.slurm.cluster_name in clusters
    accounts = set(host.check_output("sacctmgr -n -P show account format=account").split())
    assert set(cluster.projects) <= accounts
    users = set(host.check_output("sacctmgr -n -P show user format=user").split())
    assert {u.name for u in cluster.users.values()} <= users


def test_slurmctld_has_the_inventorys_partitions(host, cluster):
    names = set(host.check_output("sinfo -h -o %R").split())
    assert {p.name for p in cluster.partitions} <= names
