"""Load an Ansible module of ours (roles/<role>/library/*.py, plugins/modules/*.py) as a Python module, so
its pure parts can be unit-tested."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_node_script(relative_path: str, module_name: str) -> ModuleType:
    path = ROOT / relative_path
    loader = importlib.machinery.SourceFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_loader(module_name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    loader.exec_module(module)
    return module
