import pytest

from ailab.bench import BenchResult, bench_form, bench_users, main, memory_of, render_table
from ailab.onboarding import parse_form
from ailab.parse import parse_users
from ailab.sshkeys import key_problem


def test_memory_of_reads_the_cgroup_files(tmp_path):
    base = tmp_path / "abc"
    base.mkdir()
    (base / "memory.usage_in_bytes").write_text(str(300 * 2**20))
    (base / "memory.stat").write_text("cache 1000\nrss 5\ntotal_rss 125829120\ntotal_cache 9\n")
    assert memory_of("abc", root=tmp_path) == {"usage": 300.0, "rss": 120.0}


def test_table_lists_times_and_ram():
    result = BenchResult(
        seconds={"warm sim up (cached images)": 12.34}, ram_mib={"fe01": {"usage": 80, "rss": 40}}
    )
    table = render_table(result)
    assert "warm sim up (cached images)  12.3 s" in table
    assert "RAM fe01" in table and "80 MiB (rss 40 MiB)" in table
    assert "RAM all nodes" in table


def test_the_users_run_generates_valid_users_and_a_clean_form():
    problems = []
    users = parse_users(bench_users(50, "course-ml"), problems)
    assert problems == [] and len(users) == 50
    assert len({u.uid for u in users.values()}) == 50
    assert all(key_problem(k) is None for u in users.values() for k in u.ssh_keys)
    assert len({u.ssh_keys for u in users.values()}) == 50
    rows, form_problems = parse_form(bench_form(50, "course-ml").encode())
    assert form_problems == [] and len(rows) == 50
    assert rows[0].row == 2 and rows[0].username == "fu00000" and rows[0].supervisor == "Prof. Bench"


def test_users_counts_are_checked_before_anything_runs(capsys):
    with pytest.raises(SystemExit):
        main(["--only-users", "--users", "many"])
    assert "write a user count like 2000" in capsys.readouterr().err


def test_the_deletion_bench_config_lists_only_its_users_with_its_own_state():
    from ailab.bench import scratch_ops_config

    deployed = {
        "cluster": "ailab-sim",
        "users": [{"name": "alice"}, {"name": "bu00000"}, {"name": "bu00001"}],
        "retention_state": "/var/lib/ailab/retention.json",
        "maintenance_state": "/var/lib/ailab/maintenance.json",
        "accounts_state": "/var/lib/ailab/managed-accounts.json",
        "directory_state": "/var/lib/ailab/directory-users.json",
        "manifest_dir": "/var/lib/ailab/manifests",
        "home_root": "/ceph/home",
    }
    config = scratch_ops_config(deployed, "/root/d", "bench", {"bu00000", "bu00001"})
    assert [u["name"] for u in config["users"]] == ["bu00000", "bu00001"]
    assert {k: v for k, v in config.items() if k != "users"} == {
        "cluster": "bench",
        "retention_state": "/root/d/retention.json",
        "maintenance_state": "/root/d/maintenance.json",
        "accounts_state": "/root/d/managed-accounts.json",
        "directory_state": "/root/d/directory-users.json",
        "manifest_dir": "/root/d/manifests",
        "home_root": "/ceph/home",
    }
    assert deployed["users"][0] == {"name": "alice"} and deployed["cluster"] == "ailab-sim"
    assert scratch_ops_config(deployed, "/root/d", "test-1")["users"] == deployed["users"]
