"""Role mail: local delivery on the front-end, nothing leaves the machine."""

from __future__ import annotations

import time

testinfra_hosts = ["fe01"]


def test_postfix_runs_and_relays_nowhere(host):
    assert host.service("postfix").is_running
    assert host.run("postfix check").rc == 0
    relay = host.check_output("postconf -h relayhost")
    assert relay == "", relay
    assert host.check_output("postconf -h inet_interfaces") in ("loopback-only", "127.0.0.1", "localhost")


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
