"""Slurm hostlist expressions: expand, compress, and that one undoes the other."""

from __future__ import annotations

import random
import re

import pytest

from ailab.hostlist import HostlistError, compress, expand


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("", []),
        ("fe01", ["fe01"]),
        ("t4-[01-03]", ["t4-01", "t4-02", "t4-03"]),
        ("t4-[01-02],a40-01", ["t4-01", "t4-02", "a40-01"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("n[1,3,5-6]", ["n1", "n3", "n5", "n6"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a256-t4-[01-02]-ib", ["a256-t4-01-ib", "a256-t4-02-ib"]),
        ("/dev/nvidia[0-3]", ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3"]),
        (" x1 , x2 ", ["x1", "x2"]),
    ],
)
def test_expand(expr, names):
    assert expand(expr) == names


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("n[1-", "'[' without ']'"),
        ("n1]", "']' without '['"),
        ("n[[1]]", "nested"),
        ("n[]", "empty brackets"),
        ("n[3-1]", "backwards"),
        ("n[a-b]", "not a number"),
        ("n1,,n2", "empty name"),
        ("n[1-99999999]", "larger than"),
        ("n 1", "whitespace"),
    ],
)
def test_expand_rejects_bad_expressions_naming_the_problem(expr, needle):
    with pytest.raises(HostlistError, match=re.escape(needle)):
        expand(expr)


@pytest.mark.parametrize(
    ("names", "expr"),
    [
        ([], ""),
        (["fe01"], "fe01"),
        (["t4-01", "t4-02", "t4-03"], "t4-[01-03]"),
        (["t4-03", "t4-01", "t4-02", "t4-01"], "t4-[01-03]"),  # unsorted, duplicate
        (["t4-01", "t4-02", "a40-01"], "a40-01,t4-[01-02]"),
        (["n9", "n10"], "n[9-10]"),
        (["n1", "n2", "n4", "n5", "n6", "n9"], "n[1-2,4-6,9]"),
        (["n1", "n02", "n3"], "n[1,02,3]"),  # widths differ: no range across them
        (["n099", "n100"], "n[099-100]"),
        (["ctl", "fe"], "ctl,fe"),
        (["node", "node1", "node2"], "node,node[1-2]"),
        (["/dev/nvidia0", "/dev/nvidia1"], "/dev/nvidia[0-1]"),
        (["a256-t4-01", "a256-t4-02", "a768-l4-01"], "a256-t4-[01-02],a768-l4-01"),
    ],
)
def test_compress(names, expr):
    assert compress(names) == expr


@pytest.mark.parametrize("bad", ["", "n[1]", "a,b", "a b", None, 5])
def test_compress_rejects_names_that_are_not_hostnames(bad):
    with pytest.raises(HostlistError):
        compress([bad])


def test_compress_then_expand_gives_back_the_names():
    rng = random.Random(1234)
    for _ in range(200):
        names = set()
        for _ in range(rng.randint(1, 30)):
            prefix = rng.choice(["n", "t4-", "a256-t4-", "gpu", "x"])
            number = rng.randint(0, 120)
            width = rng.choice([0, 2, 3])
            names.add(f"{prefix}{number:0{width}d}" if width else f"{prefix}{number}")
        if rng.random() < 0.2:
            names.add("ctl")
        expr = compress(names)
        assert sorted(expand(expr)) == sorted(names), expr
        assert len(expand(expr)) == len(names), expr
