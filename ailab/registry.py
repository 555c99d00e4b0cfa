"""Where the sub-command groups of `ailab` are listed.  Each entry is `module:function`, where the function
takes argparse's sub-parser collection and adds its commands.  Keeping the list here (not in cli.py) lets
each area own its module without editing the dispatcher."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

COMMAND_GROUPS = (
    "simulator.cli:register",
    "ailab.stack_inventory:register",
    "ailab.operations:register_retention",
    "ailab.operations:register_maintenance",
    "ailab.demo:register",
    "ailab.onboarding:register",
)


def registrars() -> Iterator[Callable]:
    for entry in COMMAND_GROUPS:
        module_name, func = entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        yield getattr(module, func)
