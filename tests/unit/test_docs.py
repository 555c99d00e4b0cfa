from pathlib import Path

from ailab.docs import ROOT, cluster_doc, generated, role_doc_problems
from ailab.inventory import load_cluster


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_undocumented_default_is_reported(tmp_path):
    role = tmp_path / "roles" / "demo"
    write(role / "README.md", "# demo\n")
    write(role / "defaults" / "main.yml", "demo_a: 1\ndemo_b: 2\n")
    write(
        role / "meta" / "argument_specs.yml",
        "argument_specs:\n  main:\n    options:\n      demo_a:\n        type: int\n        description: x\n",
    )
    assert role_doc_problems(tmp_path / "roles") == [
        "role demo: default demo_b is not documented in meta/argument_specs.yml -- add it"
    ]


def test_missing_readme_and_unprefixed_variable(tmp_path):
    role = tmp_path / "roles" / "demo"
    write(role / "defaults" / "main.yml", "other: 1\n")
    write(
        role / "meta" / "argument_specs.yml",
        "argument_specs:\n  main:\n    options:\n      other:\n        description: x\n",
    )
    problems = role_doc_problems(tmp_path / "roles")
    assert "role demo: roles/demo/README.md is missing -- add it" in problems
    assert "role demo: variable other should be prefixed demo_ -- rename it" in problems


def test_every_role_in_the_repo_is_documented():
    assert role_doc_problems(ROOT / "roles") == []


def test_generated_docs_are_current():
    for path, text in generated().items():
        assert path.read_text() == text, f"{path} is stale: run python -m ailab.docs"


def test_node_table_fills_the_seed_placeholder():
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    doc = cluster_doc(cluster, "production")
    assert "| a256-t4-01 | 2x AMD EPYC 7302 16-core | 257 GB | 6x Tesla T4, 16 GB |" in doc
    assert "Jobs run at most 12:00:00" in doc
