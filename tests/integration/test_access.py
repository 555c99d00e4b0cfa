"""Issue 14, "who may log in where": real SSH logins and mail submissions on the simulator, as a student
would try them.  Students log in to the front-end, and to a compute node only while their job runs there;
the service hosts (controller, storage) admit operators alone; only the keys of the inventory open an
account; students cannot send mail from the cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_frontend import KEYS, SSH_OPTS


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    for name in ("student1", "student2", "admin1"):
        shutil.copy(KEYS / name, out / name)
        (out / name).chmod(0o600)
    return out


def login(key: Path, user: str, address: str, command: str = "hostname") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "IdentitiesOnly=yes", "-i", str(key), f"{user}@{address}", command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def service_hosts(sim):
    return [h for h in sim.cluster.hosts.values() if not (h.in_group("frontend") or h.in_group("compute"))]


def test_students_log_in_to_the_front_end_but_not_to_the_service_hosts(sim, keydir):
    fe = sim.cluster.frontends[0]
    ok = login(keydir / "student1", "student1", fe.address)
    assert ok.returncode == 0 and ok.stdout.strip() == fe.name, ok.stderr
    hosts = service_hosts(sim)
    assert {h.name for h in hosts} >= {sim.cluster.controllers[0].name}
    for host in hosts:
        refused = login(keydir / "student1", "student1", host.address)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, (host.name, refused)
        journal = sim.exec(host.name, "journalctl -u ssh --no-pager -n 50", check=False).stdout
        assert "student1" in journal and "AllowGroups" in journal, journal
        # Operators (the admin group) still get in, with their central key.
        admin = login(keydir / "admin1", "admin1", host.address)
        assert admin.returncode == 0 and admin.stdout.strip() == host.name, (host.name, admin.stderr)


def test_students_cannot_hop_from_the_front_end_to_the_service_hosts(sim):
    fe = sim.cluster.frontends[0].name
    for host in service_hosts(sim):
        hop = sim.exec(
            fe,
            f"ssh -o BatchMode=yes -o ConnectTimeout=10 {host.name} hostname",
            user="student1",
            check=False,
        )
        assert hop.returncode == 255 and "Permission denied" in hop.stderr, (host.name, hop)


def test_a_key_in_the_shared_home_opens_nothing(sim, tmp_path):
    """Only the inventory's keys (/etc/ssh/authorized_keys/<user>, role accounts) count: removing a key from
    the inventory revokes it, whatever the user put in ~/.ssh/authorized_keys."""
    fe = sim.cluster.frontends[0]
    key = tmp_path / "own"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (tmp_path / "own.pub").read_text().strip()
    sim.exec(
        fe.name,
        f"mkdir -p -m 700 ~/.ssh && printf '%s\\n' '{pub}' >> ~/.ssh/authorized_keys"
        " && chmod 600 ~/.ssh/authorized_keys",
        user="student2",
    )
    try:
        for host in [fe, *sim.cluster.compute[:1]]:
            refused = login(key, "student2", host.address)
            assert refused.returncode == 255 and "Permission denied" in refused.stderr, (host.name, refused)
    finally:
        sim.exec(
            fe.name,
            f"grep -vxF '{pub}' ~/.ssh/authorized_keys > ~/.ssh/k.new;"
            " mv ~/.ssh/k.new ~/.ssh/authorized_keys",
            user="student2",
            check=False,
        )


def test_hops_to_compute_nodes_need_no_key_but_a_job(sim):
    """Host-based authentication from the front-end: no key in the home is offered (PubkeyAuthentication
    off), the admin gets in, a student without a job there is stopped by pam_slurm_adopt."""
    fe = sim.cluster.frontends[0].name
    node = sim.cluster.compute[0].name
    no_keys = "-o BatchMode=yes -o ConnectTimeout=10 -o PubkeyAuthentication=no"
    admin = sim.exec(fe, f"ssh {no_keys} {node} id -un", user="admin1", check=False)
    assert admin.returncode == 0 and admin.stdout.strip() == "admin1", admin
    student = sim.exec(fe, f"ssh {no_keys} {node} id -un", user="student1", check=False)
    assert student.returncode != 0
    assert "Access denied by pam_slurm_adopt" in student.stdout + student.stderr, student


def test_root_is_never_trusted_by_host(sim):
    """shosts.equiv does not apply to root: from the front-end, root without a key gets nowhere."""
    fe = sim.cluster.frontends[0].name
    node = sim.cluster.compute[0].name
    hop = sim.exec(
        fe,
        "ssh -o BatchMode=yes -o ConnectTimeout=10 -o PubkeyAuthentication=no -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null {node} true",
        check=False,
    )
    assert hop.returncode == 255 and "Permission denied" in hop.stderr, hop


NOTICE = "From: ailab-notices@sim.ailab.test\nX-Ailab-Notice: forged\nTo: student2\nSubject: forged\n\nhi\n"


def test_students_cannot_send_or_forge_mail(sim):
    fe = sim.cluster.frontends[0].name
    before = sim.exec(
        fe, "cat /var/mail/student2 2>/dev/null | grep -c '^X-Ailab-Notice: forged'", check=False
    )
    sent = sim.exec(fe, "/usr/sbin/sendmail -t -oi", user="student1", input=NOTICE, check=False)
    assert sent.returncode != 0 and "not allowed to submit mail" in sent.stderr, sent
    # No SMTP listener to talk to instead (not even on loopback).
    smtp = sim.exec(fe, "exec 3<>/dev/tcp/127.0.0.1/25", user="student1", check=False)
    assert smtp.returncode != 0 and "refused" in smtp.stderr, smtp
    queue = sim.exec(fe, "mailq", user="student1", check=False)
    assert queue.returncode != 0 and "not allowed" in queue.stderr, queue
    after = sim.exec(
        fe, "cat /var/mail/student2 2>/dev/null | grep -c '^X-Ailab-Notice: forged'", check=False
    )
    assert after.stdout == before.stdout
    # The platform's own tools (root) still hand mail to the MTA.
    ok = sim.exec(
        fe, "/usr/sbin/sendmail -t -oi", input="To: root\nSubject: access test\n\nok\n", check=False
    )
    assert ok.returncode == 0, ok
