from ailab.bench import BenchResult, memory_of, render_table


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
