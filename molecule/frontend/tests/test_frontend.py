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
