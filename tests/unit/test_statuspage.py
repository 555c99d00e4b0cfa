"""The students' status page: ailab/nodetools/statuspage.py (the page), ailab/frontend.py (its nginx site and
units, policy.json's partitions), ailab.validate.check_status_page and the exporter's --allow for it."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import stat
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from ailab import frontend, monitoring
from ailab.inventory import load_cluster
from ailab.nodetools import exporter as ex
from ailab.nodetools import motd
from ailab.nodetools import statuspage as sp
from ailab.parse import build_cluster
from tests.unit.test_exporter import A40_DOWN, NODES_BUSY, T4_01_DRAINING, slurm_runner
from tests.unit.test_model_validation import good, only, problems_of, set_all

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 4, 10, 30)
CONFIG = {
    "cluster": "ailab-sim",
    "partitions": [
        {"name": "gpu", "gpu_types": ["a40", "t4"]},
        {"name": "t4", "gpu_types": ["t4"]},
        {"name": "a40", "gpu_types": ["a40"]},
    ],
    "policy": {
        "deletion": {"month": 8, "day": 1},
        "support_email": "support@example.org",
        "extension_url": "https://example.org/extend",
    },
}


def exporter_text(nodes: str = NODES_BUSY, ping=None) -> str:
    """What the controller's ailab-exporter serves for these `scontrol show node` lines (the real
    collector and prometheus_client's serializer)."""
    run = slurm_runner(nodes) if ping is None else slurm_runner(nodes, ping=ping)
    registry, _ = ex.build_registry([ex.SlurmCollector(run)])
    return generate_latest(registry).decode()


# --- the exposition format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "labels", "value"),
    [
        ("up 1", "up", {}, 1.0),
        ("up 1 1700000000000", "up", {}, 1.0),  # with a timestamp
        ('a_b{x="1",y="two"} 3.5', "a_b", {"x": "1", "y": "two"}, 3.5),
        ('a{x="1",} 2', "a", {"x": "1"}, 2.0),  # trailing comma
        ('a{ x = "q\\"uote" , y="back\\\\slash"} 0', "a", {"x": 'q"uote', "y": "back\\slash"}, 0.0),
        ('a{r="line\\nbreak, {braces} = x"} 1e3', "a", {"r": "line\nbreak, {braces} = x"}, 1000.0),
        ("a +Inf", "a", {}, math.inf),
        ("a -Inf", "a", {}, -math.inf),
        ("ns:a_b{} 7", "ns:a_b", {}, 7.0),
    ],
)
def test_parse_exposition_samples(line, name, labels, value):
    [sample] = sp.parse_exposition(f"# HELP {name} x\n# TYPE {name} gauge\n\n  {line}  \n")
    assert (sample.name, dict(sample.labels), sample.value) == (name, labels, value)


def test_parse_exposition_nan():
    [sample] = sp.parse_exposition("a NaN\n")
    assert math.isnan(sample.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n", "line 1: not a sample: 'a'"),
        ("# ok\n9abc 1\n", "line 2: not a sample"),
        ("a one\n", "line 1: bad value 'one'"),
        ("a{x=1} 1\n", "line 1: bad label set {x=1}"),
        ('a{x="1" y="2"} 1\n', "bad label set"),
        ("<html>403</html>\n", "not a sample"),
    ],
)
def test_parse_exposition_errors(text, message):
    with pytest.raises(sp.ExpositionError) as err:
        sp.parse_exposition(text)
    assert message in str(err.value)


def test_the_real_exporters_text_parses():
    samples = sp.parse_exposition(exporter_text())
    names = {s.name for s in samples}
    assert {"ailab_slurm_gpus_total", "ailab_slurm_jobs", "ailab_exporter_collector_success"} <= names


# --- the rows ------------------------------------------------------------------------------------------


def test_rows_from_the_exporter_of_a_busy_cluster():
    samples = sp.parse_exposition(exporter_text())
    assert sp.stale_reason(samples) == ""
    assert sp.gpu_rows(samples) == (
        sp.GpuRow("a40", free=2, in_use=0, unavailable=0, total=2),
        sp.GpuRow("t4", free=1, in_use=3, unavailable=0, total=4),
    )
    assert sp.queue_rows(samples, CONFIG["partitions"]) == (
        sp.QueueRow("gpu", ("a40", "t4"), running=0, pending=1),
        sp.QueueRow("t4", ("t4",), running=2, pending=0),
        sp.QueueRow("a40", ("a40",), running=0, pending=0),  # configured: shown without jobs
    )
    assert sp.out_of_service(samples) == ()


def test_rows_from_the_exporter_with_a_drained_and_a_dead_node():
    nodes = f"{A40_DOWN}\n{T4_01_DRAINING}\n{NODES_BUSY.splitlines()[2]}\n"
    samples = sp.parse_exposition(exporter_text(nodes))
    assert sp.gpu_rows(samples) == (
        sp.GpuRow("a40", free=0, in_use=0, unavailable=2, total=2),
        sp.GpuRow("t4", free=0, in_use=3, unavailable=1, total=4),
    )
    assert sp.out_of_service(samples) == (
        sp.NodeRow("a40-01", "drained", "Not responding"),
        sp.NodeRow("t4-01", "draining", "gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1"),
    )


def S(name, value=1.0, **labels):
    return sp.Sample(name, labels, value)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], ()),
        ([S("ailab_slurm_node_state", node="n1", state="idle")], ()),
        ([S("ailab_slurm_node_state", node="n1", state="down")], (sp.NodeRow("n1", "down", ""),)),
        ([S("ailab_slurm_node_state", node="n1", state="fail")], (sp.NodeRow("n1", "fail", ""),)),
        ([S("ailab_slurm_node_state", 0, node="n1", state="down")], ()),  # 0: not that state
        (  # idle but not responding: its GPUs are not free
            [S("ailab_slurm_node_state", node="n1", state="idle"),
             S("ailab_slurm_node_flag", node="n1", flag="not_responding")],
            (sp.NodeRow("n1", "not responding", ""),),
        ),
        (  # drained, named by the drained series alone
            [S("ailab_slurm_node_drained", node="n2", reason="fan"),
             S("ailab_slurm_node_state", node="n1", state="drained")],
            (sp.NodeRow("n1", "drained", ""), sp.NodeRow("n2", "drained", "fan")),
        ),
    ],
)  # fmt: skip
def test_out_of_service(samples, expected):
    assert sp.out_of_service(samples) == expected


def test_gpu_rows_show_configured_types_without_nodes_and_count_nan_as_zero():
    samples = [
        S("ailab_slurm_gpus_total", 2, gpu_type="t4"),
        S("ailab_slurm_gpus_idle", math.nan, gpu_type="t4"),
    ]
    assert sp.gpu_rows(samples, ["a100", "t4"]) == (
        sp.GpuRow("a100", 0, 0, 0, 0),
        sp.GpuRow("t4", free=0, in_use=0, unavailable=2, total=2),
    )


def test_queue_rows_add_unconfigured_partitions_with_jobs_after_the_configured_ones():
    samples = [
        S("ailab_slurm_jobs", 2, partition="zz", state="pending", reason="Priority"),
        S("ailab_slurm_jobs", 3, partition="aa", state="pending", reason="Resources"),
        S("ailab_slurm_jobs", 1, partition="gpu", state="pending", reason="Priority"),
        S("ailab_slurm_jobs", 4, partition="gpu", state="pending", reason="Resources"),
    ]
    rows = sp.queue_rows(samples, [{"name": "gpu"}])
    assert [(r.partition, r.pending) for r in rows] == [("gpu", 5), ("aa", 3), ("zz", 2)]


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        ([S("ailab_exporter_collector_success", 1, collector="slurm")], ""),
        ([S("ailab_exporter_collector_success", 0, collector="slurm")], "its slurm collector failed"),
        ([S("ailab_exporter_collector_success", 1, collector="gpu")], "no slurm collector"),
        ([], "no slurm collector"),
    ],
)
def test_stale_reason(samples, reason):
    got = sp.stale_reason(samples)
    assert (reason in got) if reason else got == ""


def test_a_failed_slurm_collector_hides_every_figure():
    samples = sp.parse_exposition(exporter_text(ping=(1, "Slurmctld(primary) at ctl01 is DOWN\n", "")))
    data = sp.build_status(CONFIG, NOW, [], samples)
    assert "slurm collector failed" in data.stale
    assert data.gpus == data.queue == data.out_of_service == ()
    page = sp.render_html(data)
    assert 'id="stale"' in page and 'id="gpus"' not in page and 'id="queue"' not in page
    assert 'id="deletion"' in page  # what does not come from the exporter is still there


# --- the page ------------------------------------------------------------------------------------------


def windows():
    return [
        motd.Window("past", dt.datetime(2026, 12, 1, 8), dt.datetime(2026, 12, 1, 16)),
        motd.Window("later", dt.datetime(2026, 12, 20, 8), dt.datetime(2026, 12, 20, 16)),
        motd.Window("now", dt.datetime(2026, 12, 4, 8), dt.datetime(2026, 12, 4, 16)),
    ]


def test_the_page_of_a_busy_cluster():
    data = sp.build_status(CONFIG, NOW, windows(), sp.parse_exposition(exporter_text()))
    assert [w.name for w in data.windows] == ["now", "later"]  # the past one dropped, by start
    page = sp.render_html(data)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert "<script" not in page and "http://" not in page  # no script, no external resource
    assert '<tr data-gpu-type="t4"><td class="type">t4</td><td class="free">1</td>' in page
    assert '<td class="total">4</td>' in page
    assert '<tr data-partition="gpu"><td class="partition">gpu</td><td class="gpu-types">a40, t4</td>' in page
    assert '<p id="out-of-service">All nodes in service.</p>' in page
    assert "2026-12-04 08:00 - 2026-12-04 16:00 (in progress)" in page
    assert 'data-reservation="later">2026-12-20 08:00 - 2026-12-20 16:00:' in page
    assert "deleted on 01 August 2027 (in 240 days)" in page
    assert '<a href="mailto:support@example.org">' in page and '<a href="https://example.org/extend">' in page
    assert 'content="60"' in page and "Updated 2026-12-04 10:30" in page


@pytest.mark.parametrize(
    ("today", "words"),
    [(dt.datetime(2027, 8, 1, 9), "(today)"), (dt.datetime(2027, 7, 31, 9), "(in 1 day)")],
)
def test_deletion_day_words(today, words):
    assert words in sp.render_html(sp.build_status(CONFIG, today, []))


def test_every_dynamic_text_is_escaped():
    evil = '<script>alert("x")</script>&'
    config = {
        "cluster": evil,
        "partitions": [{"name": evil, "gpu_types": [evil]}],
        "policy": {"deletion": {"month": 8, "day": 1}, "support_email": evil, "extension_url": evil},
    }
    samples = [
        S("ailab_exporter_collector_success", collector="slurm"),
        S("ailab_slurm_gpus_total", 1, gpu_type=evil),
        S("ailab_slurm_node_drained", node=evil, reason=evil),
    ]
    window = motd.Window(evil, dt.datetime(2026, 12, 20, 8), dt.datetime(2026, 12, 20, 9))
    for data in (
        sp.build_status(config, NOW, [window], samples),
        sp.build_status(config, NOW, [], stale=evil),
        sp.build_status(config, NOW, [], samples, windows_error=evil),
    ):
        page = sp.render_html(data)
        assert "<script" not in page and 'alert("x")' not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


# --- main ----------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    config = tmp_path / "policy.json"
    config.write_text(json.dumps(CONFIG))
    out = tmp_path / "www" / "index.html"
    out.parent.mkdir()
    return config, out


def args(config, out, *more):
    return ["--exporter", "http://ctl:9110/metrics", "--config", str(config), "--out", str(out),
            "--now", "2026-12-04T10:30", *more]  # fmt: skip


def no_reservations(timeout):
    return "No reservations in the system\n"


def test_main_writes_a_current_page(files, capsys):
    config, out = files
    calls = []

    def fetch(url, timeout):
        calls.append((url, timeout))
        return exporter_text()

    assert sp.main(args(config, out, "--timeout", "3"), fetch=fetch, query=no_reservations) == 0
    assert calls == [("http://ctl:9110/metrics", 3.0)]
    page = out.read_text()
    assert 'data-gpu-type="a40"' in page and 'id="stale"' not in page
    assert "No maintenance window is scheduled." in page
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]  # no temporary file left
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("fetch", "query", "says"),
    [
        (lambda url, t: (_ for _ in ()).throw(OSError("Connection refused")), no_reservations,
         "cannot fetch http://ctl:9110/metrics: Connection refused"),
        (lambda url, t: "<html>Forbidden</html>\n", no_reservations, "cannot parse the metrics"),
        (lambda url, t: exporter_text(), lambda t: (_ for _ in ()).throw(OSError("scontrol exited 1: x")),
         "cannot read Slurm&#x27;s reservations: scontrol exited 1: x"),
    ],
)  # fmt: skip
def test_main_writes_a_stale_page_and_exits_1(files, capsys, fetch, query, says):
    config, out = files
    assert sp.main(args(config, out), fetch=fetch, query=query) == 1
    assert says in out.read_text()
    assert "page written without current figures" in capsys.readouterr().err


def test_main_reads_reservations_from_a_file(files):
    config, out = files
    reservations = out.parent.parent / "res.txt"
    reservations.write_text(
        "ReservationName=m1 StartTime=2026-12-20T08:00:00 EndTime=2026-12-20T16:00:00 "
        "Flags=MAINT,SPEC_NODES\n"
    )

    def query(timeout):
        raise AssertionError("scontrol must not run with --reservations")

    assert sp.main(args(config, out, "--reservations", str(reservations)), fetch=lambda u, t: exporter_text(),
                   query=query) == 0  # fmt: skip
    assert 'data-reservation="m1"' in out.read_text()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c, o: (c, o.parent / "nodir" / "index.html"), "--out: directory"),
        (lambda c, o: (c, o.parent), "is a directory, not a file name"),
        (lambda c, o: (c.parent / "missing.json", o), "--config: cannot use"),
        (lambda c, o: (write(c, "{"), o), "--config: cannot use"),
        (lambda c, o: (write(c, '{"cluster": "x"}'), o), "is not an ailab policy document (no key 'policy')"),
        (lambda c, o: (write(c, json.dumps({**CONFIG, "cluster": 3})), o), '"cluster" is not a name'),
        (
            lambda c, o: (
                write(c, json.dumps({**CONFIG, "policy": {"deletion": {"month": 2, "day": 30}}})),
                o,
            ),
            "day is out of range",
        ),
        (
            lambda c, o: (write(c, json.dumps({**CONFIG, "partitions": ["gpu"]})), o),
            '"partitions" is not a list',
        ),
    ],
)
def test_main_bad_files_exit_2_and_write_nothing(files, capsys, change, message):
    config, out = change(*files)
    assert sp.main(args(config, out), fetch=lambda u, t: exporter_text(), query=no_reservations) == 2
    err = capsys.readouterr().err
    assert err.startswith("statuspage: ") and message in err and err.count("\n") == 1
    assert not files[1].exists()


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--timeout", "0"], "--timeout: 0.0 is not a positive number"),
        (["--now", "yesterday"], "--now: 'yesterday' is not YYYY-MM-DDTHH:MM"),
        (["--reservations", "/nonexistent/res"], "--reservations: cannot read /nonexistent/res"),
    ],
)
def test_main_bad_arguments_exit_2(files, capsys, more, message):
    config, out = files
    assert sp.main(args(config, out, *more), fetch=lambda u, t: exporter_text(), query=no_reservations) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv", [[], ["--out", "/tmp/x"], ["--exporter", "http://x/", "--timeout", "soon"]])
def test_main_missing_or_malformed_options_exit_2(argv):
    with pytest.raises(SystemExit) as exit_:
        sp.main(argv)
    assert exit_.value.code == 2


def fake_scontrol(tmp_path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\n{script}\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


@pytest.mark.parametrize(
    ("script", "result"),
    [
        ('[ "$*" = "-o show reservation" ] && echo "ReservationName=m Flags=MAINT"', "ReservationName=m"),
        ("echo 'slurm_load_reservations error: Unable to contact slurm controller' >&2; exit 1",
         "scontrol exited 1: slurm_load_reservations error"),
        ("sleep 5", "did not answer within 0.5 s"),
    ],
)  # fmt: skip
def test_query_reservations_runs_scontrol(tmp_path, monkeypatch, script, result):
    fake_scontrol(tmp_path, monkeypatch, script)
    try:
        got = sp.query_reservations(0.5)
    except OSError as e:
        got = str(e)
    assert result in got


def test_query_reservations_without_scontrol(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OSError, match="scontrol is not installed"):
        sp.query_reservations(1)


def test_write_atomically_replaces_and_cleans_up(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("old")
    os.chmod(page, 0o600)
    sp.write_atomically(page, "new")
    assert page.read_text() == "new" and stat.S_IMODE(page.stat().st_mode) == 0o644
    with pytest.raises(OSError):
        sp.write_atomically(tmp_path / "missing" / "index.html", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


# --- what role frontend installs (ailab/frontend.py) -------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    cluster, problems = load_cluster(ROOT / "inventory" / "sim")
    assert problems == []
    return cluster


def test_policy_json_lists_the_partitions_with_their_gpu_types(sim):
    config = json.loads(frontend.render_policy_json(sim))
    assert config["partitions"] == CONFIG["partitions"]  # inventory/sim: gpu over both, t4, a40
    assert sp._load_config  # the page's reader accepts what the model writes:
    assert sp.build_status(config, NOW, []).cluster == "ailab-sim"


def test_the_nginx_site_serves_the_page_alone_read_only_on_the_cluster_address(sim):
    site = frontend.render_status_nginx(sim, "fe01")
    lines = [line.strip() for line in site.splitlines()]
    assert "listen 10.213.0.10:80;" in lines  # the cluster address only, never 0.0.0.0
    assert lines.index("allow 10.213.0.0/24;") < lines.index("deny all;")  # the simulator's subnet
    assert "server_tokens off;" in lines and "root /run/ailab-status;" in lines
    assert "limit_except GET { deny all; }" in lines  # GET and HEAD only
    assert "try_files /index.html =404;" in lines and "return 404;" in lines  # nothing else is served
    assert site.count("{") == site.count("}")


def test_the_nginx_site_with_allowed_networks_and_port(sim):
    settings = {"enabled": True, "port": 8081, "allow": ["10.213.0.0/24", "192.0.2.7"]}
    cluster, problems = build_cluster(*with_status_page(settings, sim_subnet="10.0.0.0/24"))
    assert problems == []
    site = frontend.render_status_nginx(cluster, "fe")
    assert "listen 10.0.0.12:8081;" in site
    assert "allow 10.213.0.0/24;\n    allow 192.0.2.7/32;\n    deny all;" in site
    assert frontend.status_page_settings(cluster, "fe", "/c")["url"] == "http://10.0.0.12:8081/"


def test_the_units_run_the_page_unprivileged_every_minute(sim):
    service = frontend.render_status_service(sim, "/etc/ailab")
    assert (
        "ExecStart=/usr/local/lib/ailab/node/bin/ailab-status-page --exporter "
        f"http://10.213.0.11:{monitoring.EXPORTER_PORT}/metrics --config /etc/ailab/policy.json "
        "--out /run/ailab-status/index.html --timeout 10\n"
    ) in service
    for line in (
        "Type=oneshot",
        "User=ailab-status",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RuntimeDirectory=ailab-status",
        "RuntimeDirectoryMode=0755",
        "RuntimeDirectoryPreserve=yes",
        "CapabilityBoundingSet=",
        "ProtectHome=yes",
        "StartLimitIntervalSec=0",  # timer and manual starts (the tests) never trip a rate limit
    ):
        assert f"\n{line}\n" in service
    assert "DynamicUser" not in service  # its preserved directory would be in /run/private (0700)
    timer = frontend.render_status_timer(sim)
    assert "\nOnCalendar=*-*-* *:*:00\n" in timer and "\nOnActiveSec=1s\n" in timer
    assert "\nWantedBy=timers.target\n" in timer
    settings = frontend.status_page_settings(sim, "fe01", "/etc/ailab")
    assert settings["service"] == service and settings["timer"] == timer
    assert settings["url"] == "http://10.213.0.10:80/" and settings["allow"] == ["10.213.0.0/24"]


def test_the_front_end_may_read_the_controllers_exporter_only(sim):
    assert monitoring.host_settings(sim, "ctl01")["scrapers"] == ["10.213.0.11", "10.213.0.10"]
    assert monitoring.host_settings(sim, "t4-01")["scrapers"] == ["10.213.0.11"]  # job metrics name users
    cluster, problems = build_cluster(*with_status_page({"enabled": False}))
    assert problems == []
    assert monitoring.host_settings(cluster, "ctl")["scrapers"] == ["10.0.0.2"]
    assert frontend.status_page_settings(cluster, "fe", "/c") == {"enabled": False}


# --- the model: ailab_monitoring.status_page ---------------------------------------------------------


def with_status_page(settings, sim_subnet=None):
    groups, hostvars = good()
    groups["monitoring"] = ["ctl"]
    set_all(hostvars, "ailab_monitoring", {"status_page": settings})
    if sim_subnet:
        set_all(hostvars, "ailab_sim", {"prefix": "t", "network": "t", "subnet": sim_subnet})
        base = sim_subnet.rsplit(".", 1)[0]
        for i, host in enumerate(sorted(hostvars)):  # a40-01 .10, ctl .11, fe .12, t4-01 .13, t4-02 .14
            hostvars[host]["ailab_address"] = f"{base}.{10 + i}"
        value = dict(hostvars["fe"]["ailab_cluster"])
        value["admin_networks"] = [f"{sim_subnet.rsplit('.', 1)[0]}.1/32"]
        set_all(hostvars, "ailab_cluster", value)
    return groups, hostvars


def test_the_defaults(sim):
    cluster, problems = build_cluster(*with_status_page(None))
    assert problems == []
    page = cluster.monitoring.status_page
    assert (page.enabled, page.port, page.allow) == (True, 80, ())
    # good()'s hosts are 10.0.0.1-2, 10.0.1.1-2, 10.0.2.1: the smallest network holding them
    assert frontend.status_page_networks(cluster) == ["10.0.0.0/22"]
    production, problems = load_cluster(ROOT / "inventory" / "production")
    assert problems == [] and frontend.status_page_networks(production) == ["10.70.0.0/19"]


@pytest.mark.parametrize(
    ("settings", "sim_subnet", "needles"),
    [
        (
            {"port": 22},
            None,
            ("ailab_monitoring.status_page.port", "is 22, which sshd listens on", "fix: use"),
        ),
        ({"port": 9100}, None, ("status_page.port", "prometheus-node-exporter")),
        ({"port": 70000}, None, ("status_page.port", "is 70000, not a TCP port")),
        ({"port": 0}, None, ("status_page.port", "below the minimum 1")),
        ({"port": "http"}, None, ("status_page.port", "must be a whole number")),
        ({"enabled": "yes"}, None, ("status_page.enabled", "must be true or false")),
        (
            {"allow": ["10.0.0.0/33"]},
            None,
            ("status_page.allow[0]", "'10.0.0.0/33' is not an address", "CIDR"),
        ),
        ({"allow": ["campus"]}, None, ("status_page.allow[0]", "'campus' is not an address")),
        ({"allow": "10.0.0.0/8"}, None, ("status_page.allow", "must be a list")),
        (
            {"allow": ["10.0.0.0/8", "0.0.0.0/0"]},
            None,
            ("status_page.allow[1]", "0.0.0.0/0 is every address"),
        ),
        ({"allow": ["::/0"]}, None, ("status_page.allow[0]", "is every address")),
        ({"listen": "0.0.0.0"}, None, ("status_page.listen", "unknown field", "enabled, port, allow")),
        (
            {"allow": ["10.0.0.8/29"]},
            "10.0.0.0/24",
            (
                "status_page.allow",
                "does not contain 10.0.0.1",
                "add 10.0.0.1/32 to ailab_monitoring.status_page.allow",
            ),
        ),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(settings, sim_subnet, needles):
    only(problems_of(*with_status_page(settings, sim_subnet)), "group_vars/all", *needles)


@pytest.mark.parametrize(
    ("settings", "sim_subnet"),
    [
        ({"allow": ["10.0.0.1/32", "192.0.2.0/24"]}, "10.0.0.0/24"),
        (None, "10.0.0.0/24"),  # default: the simulator's subnet, which holds its gateway
        ({"enabled": False, "port": 22, "allow": ["0.0.0.0/0"]}, "10.0.0.0/24"),  # off: not checked
    ],
)
def test_good_settings(settings, sim_subnet):
    assert problems_of(*with_status_page(settings, sim_subnet)) == []


def test_a_controller_that_is_also_a_gpu_node_cannot_serve_the_page():
    groups, hostvars = with_status_page(None)
    groups["slurm_controller"] = ["t4-01"]
    groups["all"].remove("ctl")
    del hostvars["ctl"]
    groups["monitoring"] = ["t4-01"]
    problems = [p for p in problems_of(groups, hostvars) if "status_page" in p]
    only(problems, "status_page.enabled", "t4-01 is also a compute node", "enabled: false")
