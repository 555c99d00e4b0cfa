"""Every `ailab ...` command the Makefile and the READMEs tell people to run exists in the CLI."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ailab.cli import build_parser, playbook_args

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    "Makefile",
    "README.md",
    "simulator/README.md",
    *[str(p.relative_to(ROOT)) for p in ROOT.glob("roles/*/README.md")],
]
# `ailab x y` in inline code, or a line of a shell block / recipe that runs it.
COMMAND = re.compile(r"(?:\$\(BIN\)/|\.venv/bin/|^\s*|`)ailab ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", re.M)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def documented() -> list[tuple[str, str]]:
    found = []
    for doc in DOCUMENTS:
        path = ROOT / doc
        if path.exists():
            found += [(doc, m.group(1)) for m in COMMAND.finditer(path.read_text())]
    return sorted(set(found))


def test_the_makefile_runs_commands_of_every_group():
    words = {cmd.split()[0] for doc, cmd in documented() if doc == "Makefile"}
    assert {"sim", "converge", "demo", "inventory"} <= words


@pytest.mark.parametrize(("doc", "command"), documented())
def test_documented_command_exists(doc, command):
    top = subcommands(build_parser())
    first, *rest = command.split()
    assert first in top, f"{doc} runs `ailab {command}`, but the CLI has no `{first}` (has {sorted(top)})"
    nested = subcommands(top[first])
    if rest and nested:
        assert rest[0] in nested, f"{doc} runs `ailab {command}`, but `ailab {first}` has no `{rest[0]}`"


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["converge", "-i", "inv", "--", "--tags", "monitoring,mail"], ["--tags", "monitoring,mail"]),
        (
            ["converge", "--playbook", "playbooks/add-nodes.yml", "--", "--limit", "t4-03"],
            ["--limit", "t4-03"],
        ),
        (["converge"], []),
    ],
)
def test_converge_hands_ansible_playbook_what_follows_its_own_options(argv, extra):
    assert playbook_args(build_parser().parse_args(argv).ansible_args) == extra
