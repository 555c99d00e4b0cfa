"""Role mail: local delivery on the front-end, nothing leaves the machine."""

from __future__ import annotations

import shlex
import time

from ailab import monitoring

testinfra_hosts = ["fe01"]


def test_postfix_runs_and_relays_nowhere(host):
    assert host.service("postfix").is_running
    assert host.run("postfix check").rc == 0
    relay = host.check_output("postconf -h relayhost")
    assert relay == "", relay


def test_smtp_only_from_the_monitoring_host_on_the_cluster_address(host, cluster):
    """Alertmanager on the monitoring host mails through this MTA; nobody else may talk SMTP to it."""
    me = cluster.hosts["fe01"]
    clients = monitoring.host_settings(cluster, "fe01")["smtp_clients"]
    interfaces = host.check_output("postconf -h inet_interfaces")
    if not clients:
        assert interfaces == "loopback-only"
        return
    assert interfaces == me.address
    assert host.check_output("postconf -h mynetworks").split() == [f"{c}/32" for c in clients]
    assert host.check_output("postconf -h smtpd_client_restrictions") == "permit_mynetworks, reject"
    assert not host.socket("tcp://127.0.0.1:25").is_listening
    # A student on the front-end connects from the front-end's own address: refused.
    student = next(u for u in cluster.users.values() if not u.admin)
    rcpt = f"{student.name}@{cluster.domain}"
    probe = (
        f"import smtplib; s = smtplib.SMTP('{me.address}', 25, timeout=10); s.mail('x@example.org'); "
        f"print(s.rcpt('{rcpt}')[0])"
    )
    code = host.check_output(f"runuser -u {student.name} -- python3 -c {shlex.quote(probe)}")
    assert code.strip().startswith("5"), code


def test_mail_to_a_user_is_delivered_locally(host, cluster):
    user = next(u for u in cluster.users.values() if not u.admin)
    marker = f"molecule-{time.time_ns()}"
    host.run_expect([0], f"printf 'Subject: {marker}\\n\\ntest\\n' | /usr/sbin/sendmail {user.name}")
    for _ in range(60):
        if host.run(f"grep -rqs {marker} /var/mail/{user.name} /var/spool/mail/{user.name}").rc == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no mail with {marker} in {user.name}'s mailbox: {host.run('mailq').stdout}")
