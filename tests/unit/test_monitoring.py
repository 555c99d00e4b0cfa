"""ailab.monitoring: Prometheus' and Alertmanager's configuration from the model, and the checks of
ailab_monitoring (ailab.validate.check_monitoring)."""

from __future__ import annotations

import copy

import pytest
import yaml

from ailab import monitoring
from ailab.inventory import load_cluster
from ailab.parse import build_cluster
from ailab.render import render
from tests.unit.test_model_validation import good, only, problems_of, set_all

SIM = "inventory/sim"
PRODUCTION = "inventory/production"


def with_monitoring(settings=None, monitors=("ctl",)):
    groups, hostvars = good()
    groups["monitoring"] = list(monitors)
    if settings is not None:
        set_all(hostvars, "ailab_monitoring", settings)
    return groups, hostvars


def model(settings=None, monitors=("ctl",)):
    cluster, problems = build_cluster(*with_monitoring(settings, monitors))
    assert problems == []
    return cluster


def jobs(cluster) -> dict[str, list[dict]]:
    config = yaml.safe_load(render("prometheus.yml", cluster))
    return {j["job_name"]: j["static_configs"] for j in config["scrape_configs"]}


def test_every_host_runs_node_exporter_and_gpu_nodes_and_controllers_ours():
    cluster = model()
    scraped = jobs(cluster)
    node = {c["labels"]["instance"]: c["targets"] for c in scraped["node"]}
    assert all(c["labels"]["node"] == c["labels"]["instance"] for c in scraped["node"])
    assert node == {h.name: [f"{h.address}:{monitoring.NODE_EXPORTER_PORT}"] for h in cluster.hosts.values()}
    ours = {c["labels"]["instance"] for c in scraped["ailab"]}
    assert ours == {"ctl", "t4-01", "t4-02", "a40-01"}  # not the front-end
    assert monitoring.exporter_collectors(cluster, "t4-01") == ("gpu",)
    assert monitoring.exporter_collectors(cluster, "ctl") == ("slurm",)
    assert monitoring.exporter_collectors(cluster, "fe") == ()
    # Prometheus and Alertmanager are on loopback: the job metrics name users and their jobs.
    assert scraped["prometheus"] == [
        {"targets": [f"127.0.0.1:{monitoring.PROMETHEUS_PORT}"], "labels": {"instance": "ctl"}}
    ]
    assert scraped["alertmanager"][0]["targets"] == [f"127.0.0.1:{monitoring.ALERTMANAGER_PORT}"]
    assert "ceph" not in scraped  # external Ceph and no ceph_exporters


def test_intervals_and_thresholds_come_from_the_inventory():
    cluster = model({"scrape_interval_s": 60, "idle_gpu_minutes": 45, "cephfs_full_percent": 80,
                     "node_down_minutes": 3})  # fmt: skip
    config = yaml.safe_load(render("prometheus.yml", cluster))
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "60s"
    assert config["global"]["scrape_timeout"] == "10s"
    rules = {
        r["alert"]: r
        for g in yaml.safe_load(render("ailab-rules.yml", cluster))["groups"]
        for r in g["rules"]
    }
    assert rules["JobGpuIdle"]["for"] == "45m"
    assert rules["NodeDown"]["for"] == "3m"
    assert rules["CephFSFull"]["expr"].endswith("> 80")
    assert "gpu-health:" in rules["GpuDrainedByHealthCheck"]["expr"]
    assert '!~"gpu-health:' in rules["SlurmNodeDrained"]["expr"]
    assert "{{ $labels.instance }}" in rules["NodeDown"]["annotations"]["summary"]


def test_the_issue_names_an_alert_for_each_fault():
    cluster = model()
    names = {r["alert"] for g in monitoring.alert_rules(cluster)["groups"] for r in g["rules"]}
    assert {"NodeDown", "SlurmNodeDown", "SlurmNodeDrained", "GpuDrainedByHealthCheck", "CephNotHealthy",
            "CephFSFull", "SlurmctldDown", "SlurmdbdDown", "JobGpuIdle"} <= names  # fmt: skip


def test_alerts_are_mailed_through_the_operations_front_end():
    cluster = model({"alerts_to": ["ops@example.org", "oncall@example.org"]})
    config = yaml.safe_load(render("alertmanager.yml", cluster))
    assert config["global"]["smtp_smarthost"] == "10.0.0.1:25"
    assert config["global"]["smtp_from"] == f"alertmanager@{cluster.domain}"
    assert config["route"]["receiver"] == "operators"
    (email,) = next(r for r in config["receivers"] if r["name"] == "operators")["email_configs"]
    assert email == {"to": "ops@example.org, oncall@example.org", "send_resolved": True}
    # One mail per fault and node; a node that is down does not also page for its Slurm node.
    assert config["route"]["group_by"] == ["alertname", "instance", "node"]
    slurm = next(r for r in config["inhibit_rules"] if "SlurmNodeDown" in r["target_matchers"][0])
    assert slurm["source_matchers"] == ['alertname="NodeDown"'] and slurm["equal"] == ["node"]
    # The front-end takes SMTP from the monitoring host alone; other front-ends and hosts take none.
    assert monitoring.host_settings(cluster, "fe")["smtp_clients"] == ["10.0.0.2"]
    assert monitoring.host_settings(cluster, "ctl")["smtp_clients"] == []


def test_alertmanager_waits_30_s_for_a_group_unless_the_inventory_says_otherwise():
    assert yaml.safe_load(render("alertmanager.yml", model()))["route"]["group_wait"] == "30s"
    quick = model({"alert_group_wait_s": 5})
    assert yaml.safe_load(render("alertmanager.yml", quick))["route"]["group_wait"] == "5s"


def test_without_recipients_nothing_is_mailed_and_no_smtp_is_opened():
    # Nor any student (rule 6's idle-GPU mail off; with it on, test_idle_gpus.py shows the MTA opened).
    groups, hostvars = with_monitoring()
    set_all(hostvars, "ailab_policy", {"idle_gpu_mail_minutes": 0})
    cluster, problems = build_cluster(groups, hostvars)
    assert problems == []
    config = yaml.safe_load(render("alertmanager.yml", cluster))
    assert "global" not in config and config["route"]["receiver"] == "nobody"
    assert monitoring.host_settings(cluster, "fe")["smtp_clients"] == []


def test_managed_ceph_is_scraped_on_the_storage_hosts_external_on_the_listed_endpoints():
    sim, _ = load_cluster(SIM)
    ceph = jobs(sim)["ceph"]
    assert ceph == [{"targets": [f"{h.address}:{monitoring.CEPH_MGR_PORT}"], "labels": {"instance": h.name}}
                    for h in sim.ceph_hosts]  # fmt: skip
    production, _ = load_cluster(PRODUCTION)
    assert [c["targets"] for c in jobs(production)["ceph"]] == [list(production.monitoring.ceph_exporters)]


@pytest.mark.parametrize("inventory", [SIM, PRODUCTION])
def test_both_inventories_render_every_file(inventory):
    cluster, problems = load_cluster(inventory)
    assert problems == []
    assert len(cluster.monitoring_hosts) == 1 and cluster.monitoring.alerts_to
    for name in ("prometheus.yml", "ailab-rules.yml", "alertmanager.yml"):
        text = render(name, cluster)
        assert text.startswith("# Rendered by ailab-iac") and yaml.safe_load(text)


def test_host_settings_carry_the_one_source_of_ports():
    cluster = model()
    s = monitoring.host_settings(cluster, "t4-01")
    assert s["address"] == "10.0.1.1" and s["collectors"] == ["gpu"] and not s["monitoring_host"]
    assert s["slurmdbd"] == "10.0.0.2:6819"
    assert (s["node_exporter_port"], s["exporter_port"]) == (
        monitoring.NODE_EXPORTER_PORT,
        monitoring.EXPORTER_PORT,
    )
    assert monitoring.host_settings(cluster, "ctl")["monitoring_host"]
    assert s["scrapers"] == ["10.0.0.2"]  # ailab-exporter answers the monitoring host (and loopback)
    groups, hostvars = with_monitoring(monitors=())
    alone, _ = build_cluster(groups, hostvars)
    assert monitoring.host_settings(alone, "t4-01")["scrapers"] == ["127.0.0.1"]


BAD = [
    ({"alerts_to": ["not-an-address"]}, ("ctl",), ("ailab_monitoring.alerts_to[0]", "ailab-ops@example.org")),
    ({"alerts_from": "alertmanager"}, ("ctl",), ("ailab_monitoring.alerts_from", "not an e-mail address")),
    (
        {"alerts_to": ["ops@example.org"]},
        (),
        ("ailab_monitoring.alerts_to", "add the host that runs Prometheus"),
    ),
    ({}, ("ctl", "fe"), ("monitoring", "keep one host in group monitoring")),
    ({"ceph_exporters": ["mgr.example.org"]}, ("ctl",), ("ceph_exporters[0]", "is not host:port")),
    ({"cephfs_full_percent": 99.5}, ("ctl",), ("cephfs_full_percent", "whole number")),
    ({"cephfs_full_percent": 100}, ("ctl",), ("cephfs_full_percent", "from 50 to 99")),
    ({"scrape_interval_s": 600, "node_down_minutes": 20}, ("ctl",), ("scrape_interval_s", "300 or less")),
    (
        {"scrape_interval_s": 120, "node_down_minutes": 3},
        ("ctl",),
        ("node_down_minutes", "set it to 4 or more"),
    ),
    ({"scrape_interval_s": 2}, ("ctl",), ("scrape_interval_s", "minimum 5")),
    ({"retention": "30d"}, ("ctl",), ("ailab_monitoring.retention", "unknown field", "retention_days")),
    ({"idle_gpu_minutes": 0}, ("ctl",), ("idle_gpu_minutes", "minimum 1")),
    ({"alert_group_wait_s": -1}, ("ctl",), ("alert_group_wait_s", "minimum 0")),
]


@pytest.mark.parametrize(("settings", "monitors", "needles"), BAD)
def test_bad_monitoring_settings_are_refused_with_a_fix(settings, monitors, needles):
    only(problems_of(*with_monitoring(settings, monitors)), *needles)


def test_managed_ceph_needs_no_ceph_exporters():
    groups, hostvars = with_monitoring({"ceph_exporters": ["mgr.example.org:9283"]})
    for hv in hostvars.values():
        hv["ailab_ceph"] = {**copy.deepcopy(hv["ailab_ceph"]), "managed": True}
    groups["ceph"] = ["ctl"]
    found = [p for p in problems_of(groups, hostvars) if "ceph_exporters" in p]
    assert len(found) == 1 and "it is for an external Ceph cluster" in found[0], found
