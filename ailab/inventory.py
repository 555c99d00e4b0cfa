"""Load an Ansible inventory into the typed model, through Ansible's own inventory API.

Host ranges, group_vars, host_vars, children and variable precedence therefore mean exactly what they mean
to ``ansible-playbook``.  This module is the thin I/O shell around :func:`ailab.parse.build_cluster` and
:func:`ailab.validate.validate`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ailab.model import Cluster
from ailab.parse import CLUSTER_VARS, ROLE_VARS, build_cluster
from ailab.problems import InventoryError, Problem
from ailab.validate import validate

MODEL_VARS = (*CLUSTER_VARS, "ailab_address", "ailab_hardware", *ROLE_VARS)


def read_inventory(path: str | os.PathLike[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Ansible's view of an inventory: ``groups`` (flattened, like the magic variable) and the model
    variables of every host, templated."""
    # Imported here: ansible is slow to import and not needed by the pure parts of the package.
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    source = Path(path)
    if not source.exists():
        raise InventoryError(
            [Problem(str(source), "inventory", "does not exist", "pass -i with an inventory directory")]
        )
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    variables = VariableManager(loader=loader, inventory=inventory)
    groups = {name: sorted(h.name for h in group.get_hosts()) for name, group in inventory.groups.items()}
    hostvars: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for host in inventory.get_hosts():
        hv = variables.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=hv)
        hostvars[host.name] = {}
        for key in MODEL_VARS:
            if key not in hv:
                continue
            if not has_template(hv[key]):
                # Nothing for Jinja to do: templating a 2,000-user ailab_users on every host cost most of
                # `ailab inventory check`'s time (the value is the same without it).
                hostvars[host.name][key] = _plain(hv[key])
                continue
            try:
                hostvars[host.name][key] = _plain(templar.template(hv[key]))
            except AnsibleError as exc:
                message = f"cannot be templated: {exc.message}".replace("\n", " ")
                if any(p.field == key and p.message == message for p in problems):
                    continue  # a cluster-wide variable: once, not once per host
                problems.append(
                    Problem(
                        f"host {host.name}",
                        key,
                        message,
                        "define the variable the template uses, or write the value itself instead of "
                        "the {{ ... }} expression",
                    )
                )
    if problems:
        raise InventoryError(problems)
    return groups, hostvars


JINJA_MARKERS = ("{{", "{%", "{#")


def has_template(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) has Jinja syntax, i.e. templating could change it.
    Ansible's templar returns every other value as it is."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(marker in item for marker in JINJA_MARKERS):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _plain(value: Any) -> Any:
    """Strip Ansible's wrapper types so the model sees plain Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    return value


class _DuplicateKeyLoader(yaml.SafeLoader):
    pass


# libyaml's parser when PyYAML has it: composing a 2,000-user users file in pure Python took longer than the
# rest of the check.  Its errors are reported by the pure-Python parser (same messages as before).
_FastComposer = getattr(yaml, "CSafeLoader", _DuplicateKeyLoader)


def _find_duplicate_keys(loader: _DuplicateKeyLoader, node: yaml.MappingNode, found: list[tuple[str, int]]):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                found.append((key_node.value, key_node.start_mark.line + 1))
            seen.add(key_node.value)


def duplicate_keys(text: str) -> list[tuple[str, int]]:
    """(key, line) for every key that appears twice in one YAML mapping.  Ansible keeps the last one with
    only a warning: a host listed twice under ``hosts:`` would silently lose its first definition."""
    found: list[tuple[str, int]] = []
    try:
        documents = list(yaml.compose_all(text, Loader=_FastComposer))
    except yaml.YAMLError:
        documents = list(yaml.compose_all(text, Loader=_DuplicateKeyLoader))  # raises with its message
    for document in documents:
        if document is None:
            continue
        stack = [document]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                _find_duplicate_keys(_DuplicateKeyLoader(""), node, found)
                stack.extend(v for pair in node.value for v in pair)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
    return sorted(found, key=lambda item: item[1])


def _yaml_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for candidate in sorted(path.rglob("*")):
        if candidate.suffix in (".yml", ".yaml") and candidate.is_file():
            yield candidate


YAML_FIX = "correct the YAML syntax there (e.g. indentation, a missing ':' or quote)"


def yaml_problem(name: str, exc: yaml.YAMLError) -> Problem:
    """A file that is not YAML: where it stopped (file, line and column, counted from 1) and what to do."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = " ".join(
        str(part).strip() for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
    )
    what = what or str(exc).replace("\n", " ")
    if mark is None:
        return Problem(name, "yaml", f"does not parse: {what}", f"{YAML_FIX}; then rerun the check")
    line, column = mark.line + 1, mark.column + 1
    return Problem(
        f"{name}:{line}",
        "yaml",
        f"does not parse at line {line}, column {column}: {what}",
        f"in {name}, line {line}, column {column}: {YAML_FIX}",
    )


def check_files(path: str | os.PathLike[str]) -> list[Problem]:
    """Problems Ansible would only warn about: duplicate keys and vault-less YAML errors."""
    problems = []
    root = Path(path)
    for file in _yaml_files(root):
        rel = file.relative_to(root) if root.is_dir() else file
        try:
            duplicates = duplicate_keys(file.read_text())
        except yaml.YAMLError as exc:
            problems.append(yaml_problem(str(rel), exc))
            continue
        for key, line in duplicates:
            problems.append(
                Problem(
                    f"{rel}:{line}",
                    key,
                    f"duplicate host or key: {key!r} appears twice in one mapping; "
                    "Ansible keeps only the last",
                    "list it once and merge its settings",
                )
            )
    return problems


def load_cluster(path: str | os.PathLike[str], *, strict: bool = True) -> tuple[Cluster, list[Problem]]:
    """Load and check an inventory.  With ``strict`` an :class:`InventoryError` carries every problem."""
    problems = check_files(path)
    if any(p.field == "yaml" for p in problems):
        raise InventoryError(problems)  # Ansible itself would stop on the first such file, with a traceback
    groups, hostvars = read_inventory(path)
    cluster, parse_problems = build_cluster(groups, hostvars)
    problems += parse_problems
    problems += validate(cluster)
    if strict and problems:
        raise InventoryError(problems)
    return cluster, problems
