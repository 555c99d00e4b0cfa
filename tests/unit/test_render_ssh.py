"""Who trusts whom over SSH, rendered from the model (role sshd, site.yml)."""

import dataclasses
from pathlib import Path

from ailab.inventory import load_cluster
from ailab.render import render

ROOT = Path(__file__).resolve().parents[2]


def test_compute_nodes_trust_the_front_ends_by_every_name():
    cluster = load_cluster(ROOT / "inventory" / "sim")[0]
    assert render("shosts.equiv", cluster).split("\n") == ["10.213.0.10", "fe01.sim.ailab.test", "fe01"]


def test_only_front_ends_are_trusted_and_each_of_them():
    cluster = load_cluster(ROOT / "inventory" / "production")[0]
    names = render("shosts.equiv", cluster).split("\n")
    assert [n for n in names if "." not in n] == [h.name for h in cluster.frontends]
    assert [n for n in names if n[0].isdigit()] == [h.address for h in cluster.frontends]
    assert not set(names) & ({h.name for h in cluster.compute} | {h.name for h in cluster.controllers})


def test_without_a_domain_only_short_names():
    cluster = dataclasses.replace(load_cluster(ROOT / "inventory" / "sim")[0], domain="")
    assert render("shosts.equiv", cluster) == "10.213.0.10\nfe01"
