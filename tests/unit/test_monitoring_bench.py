"""ailab.monitoring_bench: the metrics stack's processes from /proc, and their CPU over a window."""

from __future__ import annotations

from ailab import monitoring_bench as mb
from ailab.bench import BenchResult, render_table

SAMPLE = """\
systemd|/sbin/init |12000|3000|900|1
prometheus|/usr/bin/prometheus --config.file=/etc/prometheus/prometheus.yml |61440|40960|1200|310
prometheus-aler|/usr/bin/prometheus-alertmanager --config.file=x |35840|20480|300|311
prometheus-node|/usr/bin/prometheus-node-exporter --web.listen-address=10.0.0.2:9100 |19456|8192|100|312
python3|/usr/bin/python3 /usr/local/sbin/ailab-exporter --listen 10.0.0.2:9110 |25600|12288|450|313
python3|/usr/bin/python3 /usr/bin/nvidia-smi --query-gpu=index |9000|4000|5|314
broken line
sshd|sshd: /usr/sbin/sshd -D||0|7|315
"""


def test_the_stack_is_found_by_comm_and_our_exporter_by_its_command_line():
    procs = mb.parse_sample(SAMPLE)
    assert [(p.pid, p.what) for p in procs] == [
        (310, "prometheus"), (311, "alertmanager"), (312, "node-exporter"), (313, "ailab-exporter"),
    ]  # fmt: skip
    assert procs[0].rss_kib == 61440 and procs[0].pss_kib == 40960 and procs[0].ticks == 1200


def test_cpu_is_the_tick_delta_over_the_window_in_percent_of_a_core():
    before = mb.parse_sample(SAMPLE)
    after = [mb.Proc(p.pid, p.what, p.rss_kib, p.pss_kib, p.ticks + 30) for p in before]
    after.append(mb.Proc(999, "ailab-exporter", 1024, 1024, 5000))  # started in between: no CPU figure
    cpu = mb.cpu_percent(before, after, seconds=60.0)
    assert cpu == {p.pid: 0.5 for p in before}  # 30 ticks = 0.3 s in 60 s
    table = mb.summarise({"ctl": (before, after)}, 60.0)
    assert table["total"]["processes"] == 5
    assert table["prometheus"] == {"processes": 1, "rss_mib": 60.0, "pss_mib": 40.0, "cpu_percent": 0.5}
    assert table["ailab-exporter"]["processes"] == 2 and table["ailab-exporter"]["cpu_percent"] == 0.5
    assert table["total"]["cpu_percent"] == 2.0


def test_the_stopped_node_is_one_not_mailed_about_yet():
    box = "Subject: [FIRING:1] NodeDown a40-01 a40-01 (ailab-sim node critical)\nSubject: hello NodeDown\n"
    assert mb.quiet_node(["a40-01", "t4-01", "t4-02"], box) == "t4-01"
    assert mb.quiet_node(["a40-01"], box) == "a40-01"
    assert mb.quiet_node(["a40-01", "t4-01"], "") == "a40-01"


def test_timer_units_cost_one_runs_cpu_spread_over_the_minute():
    result = BenchResult()
    result.monitoring["timer_units"] = {
        "fe01/ailab-status-page.service": {"cpu_seconds_per_run": 0.12, "cpu_percent": 0.2}
    }
    assert "every minute: fe01/ailab-status-page.service  0.12 s CPU a run, 0.20 % of a core" in render_table(
        result
    )
    assert set(mb.TIMER_UNITS) == {"ailab-status-page.service", "ailab-idle-gpus.service"}
