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
    assert "| a256-t4-01 | 2x AMD EPYC 7302 16-core | 256 GB | 6x Tesla T4, 16 GB |" in doc
    assert "Jobs run at most 12:00:00" in doc


def test_docs_show_installed_memory_and_slurm_gets_less():
    """Issue 17: users are told what is installed (memory_installed_gb), Slurm's RealMemory (memory_mb) is a
    little lower; every production class declares both and they stay within 5 % of each other."""
    cluster, _ = load_cluster(ROOT / "inventory" / "production")
    doc = cluster_doc(cluster, "production")
    for host in cluster.compute:
        hw = host.hardware
        assert hw.memory_installed_gb is not None, f"{host.name}: set ailab_hardware.memory_installed_gb"
        installed_mb = hw.memory_installed_gb * 1024
        assert 0.95 * installed_mb <= hw.memory_mb <= installed_mb, (host.name, hw.memory_mb, installed_mb)
        row = next(line for line in doc.splitlines() if line.startswith(f"| {host.name} |"))
        assert f"| {hw.memory_installed_gb} GB |" in row, row
    assert "| a256-t4-01 | 2x AMD EPYC 7302 16-core | 256 GB |" in doc
    assert "| dgx2-01 | 2x Intel Xeon Platinum 8168 24-core | 1536 GB |" in doc


def test_docs_without_installed_memory_fall_back_to_memory_mb():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    assert "| t4-01 | simulated (container) | 3 GB |" in cluster_doc(cluster, "sim")
