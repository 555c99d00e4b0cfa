"""Issue 13 part 5 on the simulator: the students' status page (role frontend), loaded by a real headless
Chromium on this machine through the simulator's network, as a student's browser would load it.

The page shows every GPU class of the inventory with its total; draining a compute node on the controller
and refreshing the page (starting its service rather than waiting for the timer) takes the node's GPUs out
of the free ones and lists the node; the node is resumed whatever happens.  A student cannot write the
page, and nginx serves it read-only (GET/HEAD), alone, on the front-end's cluster address.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from html.parser import HTMLParser

import pytest

from ailab import frontend
from tests.integration.conftest import ROOT, record_timing
from tests.integration.slurm_helpers import wait_for

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

UNIT = frontend.STATUS_PAGE_UNIT
PAGE = f"{frontend.STATUS_PAGE_DIR}/index.html"
SCREENSHOT = ROOT / ".cache" / "statuspage.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class StatusPage(HTMLParser):
    """The figures of the page's DOM: GPU rows by type, queue rows by partition, nodes out of service."""

    def __init__(self, text: str):
        super().__init__()
        self.gpus: dict[str, dict[str, str]] = {}
        self.queue: dict[str, dict[str, str]] = {}
        self.nodes: dict[str, dict[str, str]] = {}
        self.ids: set[str] = set()
        self._row: dict[str, str] | None = None
        self._cell: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr" and "data-gpu-type" in a:
            self._row = self.gpus.setdefault(a["data-gpu-type"], {})
        elif tag == "tr" and "data-partition" in a:
            self._row = self.queue.setdefault(a["data-partition"], {})
        elif tag == "li" and "data-node" in a:
            self._row = self.nodes.setdefault(a["data-node"], {})
        elif self._row is not None and tag in ("td", "span") and a.get("class"):
            self._cell = a["class"]
            self._row[self._cell] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "span"):
            self._cell = None
        elif tag in ("tr", "li"):
            self._row = None

    def handle_data(self, data):
        if self._row is not None and self._cell:
            self._row[self._cell] += data

    def gpu(self, gpu_type: str, column: str) -> int:
        return int(self.gpus[gpu_type][column])


@pytest.fixture(scope="module")
def settings(sim, fe):
    return frontend.status_page_settings(sim.cluster, fe, "/etc/ailab")


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/ensure-host.sh installs it (Debian package chromium)"
    with tempfile.TemporaryDirectory(prefix="ailab-chromium-") as profile:

        def run(url: str, *extra: str) -> str:
            result = subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
            return result.stdout

        yield run


def refresh(sim, fe) -> float:
    """Start the page's service (what the timer does every minute); the seconds it took to write the page."""
    result = sim.exec(fe, f"systemctl start {UNIT}.service", check=False, timeout=120)
    show = sim.exec(
        fe,
        f"systemctl show {UNIT}.service -P ExecMainStartTimestampMonotonic -P ExecMainExitTimestampMonotonic",
    ).stdout.split()
    assert result.returncode == 0, (
        f"{UNIT} failed: {result.stderr}\n"
        + sim.exec(fe, f"journalctl -u {UNIT} -n 20 --no-pager", check=False).stdout
    )
    return (int(show[1]) - int(show[0])) / 1e6


def expected_gpus(cluster) -> Counter:
    """GPUs per class (GRES type) of the inventory's compute nodes."""
    totals: Counter = Counter()
    for host in cluster.compute:
        totals[host.hardware.gpu.model] += host.hardware.gpu.count
    return totals


def test_the_page_loads_in_a_browser_and_shows_every_gpu_class(sim, fe, settings, browser):
    assert settings["enabled"]
    for state in ("is-active", "is-enabled"):
        assert (
            sim.exec(fe, f"systemctl {state} {UNIT}.timer nginx").stdout.split()
            == ["active" if state == "is-active" else "enabled"] * 2
        )
    seconds = refresh(sim, fe)
    record_timing("statuspage_generation_seconds", seconds)
    page = StatusPage(browser(settings["url"], "--dump-dom"))
    totals = expected_gpus(sim.cluster)
    assert set(page.gpus) == set(totals), page.gpus
    for gpu_type, total in totals.items():
        row = {k: int(v) for k, v in page.gpus[gpu_type].items() if k != "type"}
        assert row["total"] == total, (gpu_type, row)
        assert row["free"] + row["in-use"] + row["unavailable"] == total, (gpu_type, row)
    assert list(page.queue) == [p.name for p in sim.cluster.partitions]
    assert {"updated", "maintenance", "deletion", "out-of-service"} <= page.ids and "stale" not in page.ids
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser(settings["url"], f"--screenshot={SCREENSHOT}", "--window-size=900,1100")
    assert SCREENSHOT.stat().st_size > 10_000


def test_a_drained_node_leaves_the_free_gpus(sim, fe, ctl, settings, browser):
    node = max(sim.cluster.compute, key=lambda h: h.name)  # one of the last class
    gpu_type, count = node.hardware.gpu.model, node.hardware.gpu.count
    wait_for(
        f"{node.name} idle",
        lambda: sim.exec(ctl, f"sinfo -h -n {node.name} -o %T").stdout.strip().upper() == "IDLE",
        timeout=60,
    )
    refresh(sim, fe)
    before = StatusPage(browser(settings["url"], "--dump-dom"))
    assert node.name not in before.nodes
    reason = "statuspage test: fan replaced"
    try:
        sim.exec(ctl, f"scontrol update NodeName={node.name} State=DRAIN Reason='{reason}'")
        drained_at = time.monotonic()

        def changed():
            refresh(sim, fe)
            page = StatusPage(browser(settings["url"], "--dump-dom"))
            return page if node.name in page.nodes else None

        after = wait_for(f"{node.name} on the page", changed, timeout=90, interval=2)
        record_timing("statuspage_drain_to_page_seconds", time.monotonic() - drained_at)
        assert after.nodes[node.name] == {"node": node.name, "state": "drained", "reason": reason}
        assert after.gpu(gpu_type, "free") == before.gpu(gpu_type, "free") - count
        assert after.gpu(gpu_type, "unavailable") == before.gpu(gpu_type, "unavailable") + count
        assert after.gpu(gpu_type, "total") == before.gpu(gpu_type, "total")
    finally:
        sim.exec(ctl, f"scontrol update NodeName={node.name} State=RESUME", check=False)

    def back():
        # slurmctld marks a resumed node not responding until its next ping answers: the page says so.
        refresh(sim, fe)
        page = StatusPage(browser(settings["url"], "--dump-dom"))
        return page if node.name not in page.nodes else None

    again = wait_for(f"{node.name} back in service on the page", back, timeout=90, interval=2)
    assert again.gpu(gpu_type, "free") == before.gpu(gpu_type, "free")


def test_a_student_cannot_write_the_page(sim, fe):
    for cmd in (f"echo defaced > {PAGE}", f"touch {frontend.STATUS_PAGE_DIR}/other.html", f"rm -f {PAGE}"):
        result = sim.exec(fe, cmd, user="student1", check=False)
        assert result.returncode != 0 and "ermission denied" in result.stderr, (cmd, result)
    owner = sim.exec(fe, f"stat -c '%U %a' {frontend.STATUS_PAGE_DIR} {PAGE}").stdout.split()
    assert owner[0] != "student1" and owner[1] == "755" and owner[3] == "644", owner
    assert "defaced" not in sim.exec(fe, f"cat {PAGE}").stdout


def request(url: str, method: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, data=b"x" if method in ("PUT", "POST") else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_nginx_serves_the_page_alone_read_only_on_the_cluster_address(sim, fe, settings):
    url = settings["url"]
    status, headers, body = request(url, "GET")
    assert status == 200 and body.startswith(b"<!DOCTYPE html>")
    assert headers["Server"] == "nginx"  # no version (server_tokens off)
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert request(url, "HEAD")[0] == 200
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        assert request(url, method)[0] == 403, method
    for path in ("index.html", "nginx.conf", ".index.html.tmp"):
        assert request(url + path, "GET")[0] == 404, path
    assert request(url + "../etc/passwd", "GET")[0] == 400  # nginx refuses a path above the root
    listening = sim.exec(fe, "ss -Hltn").stdout.split("\n")
    web = sorted(
        line.split()[3] for line in listening if line and line.split()[3].endswith(f":{settings['port']}")
    )
    address = sim.cluster.hosts[fe].address
    assert web == [f"{address}:{settings['port']}"], web  # not 0.0.0.0 nor [::]: the default site is gone
    assert sim.exec(fe, "test -e /etc/nginx/sites-enabled/default", check=False).returncode == 1
    rss = sim.exec(fe, "ps -C nginx -o rss=").stdout.split()
    record_timing("statuspage_nginx_rss_kib", sum(int(kib) for kib in rss))
