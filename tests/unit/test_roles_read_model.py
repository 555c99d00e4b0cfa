"""Roles read the typed model (ailab_model(groups, PART), bound once in a role's vars/main.yml), not the raw
inventory variables with defaults of their own: the defaults live in ailab/model.py and ailab/parse.py."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAW_DEFAULT = re.compile(r"\b(ailab_[a-z_]+(?:\.[a-z_]+)*)\s*\|\s*default\(")
# Not inventory variables, or read before the model: the pre-flight play computes the users the model sees
# (ailab_users without those the deletion removed) from the registered deletion record; role directory's
# list of deleted names is that play's fact.
ALLOWED = {
    ("playbooks/preflight.yml", "ailab_users"),
    ("playbooks/preflight.yml", "ailab_retention_record_stat.stat.exists"),
    ("roles/directory/tasks/server.yml", "ailab_deleted_names"),
}
# Being reworked on another branch (issue 16's operations part).
ELSEWHERE = ("roles/operations/",)


def ansible_files():
    yield ROOT / "site.yml"
    yield from ROOT.glob("playbooks/*.yml")
    for kind in ("tasks", "handlers", "defaults", "vars", "templates"):
        yield from (p for p in ROOT.glob(f"roles/*/{kind}/*") if p.is_file())


def test_no_role_applies_its_own_default_to_an_inventory_variable():
    found = set()
    for path in ansible_files():
        name = str(path.relative_to(ROOT))
        if name.startswith(ELSEWHERE):
            continue
        found |= {(name, var) for var in RAW_DEFAULT.findall(path.read_text())}
    assert found - ALLOWED == set(), "read these from the model (ailab_model(groups, PART)) instead"


def test_the_model_parts_roles_bind_are_fields_of_the_model():
    from ailab.filters import MODEL_PARTS

    part = re.compile(r"ailab_model\(groups, '([a-z_]+)'\)")
    used = set()
    for path in ansible_files():
        if not str(path.relative_to(ROOT)).startswith(ELSEWHERE):
            used |= set(part.findall(path.read_text()))
    assert {"ceph", "directory", "users", "timezone", "domain"} <= used
    assert used <= set(MODEL_PARTS)
