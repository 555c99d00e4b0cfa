"""Role frontend: the login node's message and limits."""

from __future__ import annotations

testinfra_hosts = ["fe01"]


def test_the_login_message_states_the_rules(host):
    pam = host.file("/etc/pam.d/sshd").content_string
    assert "pam_motd" in pam
    out = host.run("run-parts --lsbsysinit /etc/update-motd.d")
    assert out.rc == 0, out.stderr
    assert "12" in out.stdout or "rule" in out.stdout.lower(), out.stdout


def test_every_user_slice_is_limited_and_root_is_not(host):
    user_slice = host.check_output("systemctl show -P CPUQuotaPerSecUSec user-200001.slice")
    assert user_slice not in ("", "infinity"), user_slice
    root_slice = host.check_output("systemctl show -P CPUQuotaPerSecUSec user-0.slice")
    assert root_slice == "infinity", root_slice


def test_nginx_serves_the_status_page_on_the_cluster_address(host, cluster):
    """The students' status page (ailab_monitoring.status_page): nginx on the front-end's cluster address
    alone, the page written by the timer's unprivileged service, GET only.  This scenario has no controller,
    so the page says its figures are unavailable, which is what it must do then."""
    from ailab.frontend import STATUS_PAGE_DIR, STATUS_PAGE_UNIT, STATUS_PAGE_USER, status_page_settings

    settings = status_page_settings(cluster, "fe01", "/etc/ailab")
    assert settings["enabled"]
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.service(f"{STATUS_PAGE_UNIT}.timer").is_running
    address, port = cluster.hosts["fe01"].address, settings["port"]
    assert host.socket(f"tcp://{address}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    # Wait for the timer's first run (once when it starts), then read the page as a browser would.
    host.run(f"for i in $(seq 30); do test -s {STATUS_PAGE_DIR}/index.html && break; sleep 1; done")
    page = host.file(f"{STATUS_PAGE_DIR}/index.html")
    assert page.user == STATUS_PAGE_USER and page.mode == 0o644
    reply = host.run(f"curl -sS -D - http://{address}:{port}/")
    assert reply.rc == 0, reply.stderr
    assert "200 OK" in reply.stdout.splitlines()[0] and "Server: nginx\r\n" in reply.stdout
    assert f"<title>{cluster.name} status</title>" in reply.stdout and 'id="deletion"' in reply.stdout
    put = host.run(f"curl -sS -o /dev/null -w '%{{http_code}}' -X PUT --data x http://{address}:{port}/")
    assert put.stdout == "403", put.stdout
