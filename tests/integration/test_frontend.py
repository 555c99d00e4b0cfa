"""Issue 5: the front-end and student accounts, acting as students logging in over SSH."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from simulator.ssh import ssh_files
from tests.integration.conftest import INVENTORY, ROOT, explain, roles_changed, site_plays

KEYS = ROOT / "simulator" / "keys"
SSH_OPTS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
]  # fmt: skip


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    """The simulator's test keys with the 0600 mode ssh insists on (git does not keep modes)."""
    out = tmp_path_factory.mktemp("keys")
    for key in KEYS.iterdir():
        if key.suffix == "" and key.name != "README":
            shutil.copy(key, out / key.name)
            (out / key.name).chmod(0o600)
    return out


@pytest.fixture(scope="module")
def fe(sim):
    return sim.cluster.frontends[0]


def ssh(
    keydir: Path,
    user: str,
    address: str,
    command: str | None,
    *extra: str,
    key: str | None = None,
    stdin=None,
):
    """ssh as USER; command None opens an interactive login (the shell reads ``stdin``)."""
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-i", str(keydir / (key or user)), *extra, f"{user}@{address}"]
        + ([command] if command else []),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def test_student_logs_in_with_key_and_sees_the_rules(sim, fe, keydir):
    result = ssh(keydir, "student1", fe.address, None, "-tt", stdin="id -un\nexit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"\nstudent1\r?\n", out), out
    # The login message (pam_motd) states the rules, the next deletion date and the time limit.
    assert "only classification levels 0 (public) and 1 (internal)" in out
    assert re.search(r"deleted on 01 August \d{4} \(in \d+ days\)", out), out
    assert "Jobs run at most 12:00:00" in out
    # The pre-authentication banner (sshd Banner) arrives on stderr.
    assert "By logging in you accept the usage rules" in result.stderr


def controller_ssh(sim, address: str, command: str) -> subprocess.CompletedProcess:
    """ssh as root from this machine with the simulator's controller key and pinned host keys, as Ansible
    connects (inventory/sim/group_vars/sim.yml)."""
    files = ssh_files(sim.cluster)
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={files.known_hosts}", "-o", "IdentitiesOnly=yes",
         "-i", str(files.private_key), f"root@{address}", command],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_root_logs_in_to_the_front_end_only_from_the_admin_networks(sim, fe, keydir):
    """Issue 10: Ansible connects as root, so the front-end admits root (key only) from the operators'
    networks (ailab_cluster.admin_networks: this machine, the bridge gateway) and from nowhere else, even
    with an authorized key."""
    import ipaddress

    admin = [ipaddress.ip_network(n, strict=False) for n in sim.cluster.admin_networks]
    ok = controller_ssh(sim, fe.address, "id -un")
    assert ok.returncode == 0 and ok.stdout.strip() == "root", ok.stderr
    other = sim.cluster.controllers[0]
    assert not any(ipaddress.ip_address(other.address) in n for n in admin)
    pub = (KEYS / "admin1.pub").read_text().strip()
    sim.exec(fe.name, f"printf '%s\\n' '{pub}' >> /root/.ssh/authorized_keys")
    sim.exec(
        other.name, "install -m 0600 /dev/stdin /root/.ailab-test-key", input=(KEYS / "admin1").read_text()
    )
    try:
        from_other = sim.exec(
            other.name,
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"-o ConnectTimeout=10 -i /root/.ailab-test-key root@{fe.address} true",
            check=False,
        )
        assert from_other.returncode == 255 and "Permission denied" in from_other.stderr, from_other
        # The same key is accepted from an admin network: the address decides.
        from_admin = ssh(keydir, "root", fe.address, "true", "-o", "IdentitiesOnly=yes", key="admin1")
        assert from_admin.returncode == 0, from_admin.stderr
    finally:
        sim.exec(
            fe.name,
            f"grep -vxF '{pub}' /root/.ssh/authorized_keys > /root/.ssh/k.new; "
            "mv /root/.ssh/k.new /root/.ssh/authorized_keys; chmod 0600 /root/.ssh/authorized_keys",
        )
        sim.exec(other.name, "rm -f /root/.ailab-test-key")
    assert controller_ssh(sim, fe.address, "true").returncode == 0  # Ansible's own key still works


def test_the_old_front_end_rule_locks_ansible_out(sim, fe, converge):
    """Issue 10: the front-end play used to refuse root from everywhere (no admin_networks).  The simulator
    converges over SSH as production does, so that rule must lock its next converge out, and the rule with
    admin_networks must not."""
    playbook = site_plays({"sshd"}, "sshd-plays")
    dropin = "/etc/ssh/sshd_config.d/50-ailab.conf"
    sim.exec(fe.name, f"cp -p {dropin} /root/.50-ailab.conf.saved")
    try:
        old = converge(str(playbook), "--limit", fe.name, "-e", '{"sshd_root_login_from": []}')
        assert old.ok, explain(old)  # the run that applies it still finishes on its open connection
        assert "Match Address" not in sim.exec(fe.name, f"cat {dropin}").stdout
        locked = converge(str(playbook), "--limit", fe.name)
        assert not locked.ok and locked.recap[fe.name].unreachable == 1, explain(locked)
    finally:
        sim.exec(fe.name, f"cp -p /root/.50-ailab.conf.saved {dropin} && systemctl reload ssh")
        sim.exec(fe.name, "rm -f /root/.50-ailab.conf.saved")
    back = converge(str(playbook), "--limit", fe.name)
    assert back.ok and back.changed == 0, explain(back)


def test_password_login_is_not_offered(sim, fe, keydir):
    # A local account with a password: with the directory (no passwords there) only the admins are local.
    user = (
        next(u.name for u in sim.cluster.users.values() if u.admin)
        if sim.cluster.directory.enabled
        else "student2"
    )
    sim.exec(fe.name, f"echo '{user}:correct horse battery' | chpasswd")
    try:
        result = subprocess.run(
            [
                "ssh", *SSH_OPTS,
                "-o", "PubkeyAuthentication=no",
                "-o", "PreferredAuthentications=password,keyboard-interactive",
                f"{user}@{fe.address}", "true",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 255
        methods = re.search(r"Permission denied \(([^)]*)\)", result.stderr)
        assert methods, result.stderr
        assert "password" not in methods.group(1) and "keyboard-interactive" not in methods.group(1)
    finally:
        sim.exec(fe.name, f"passwd -d {user} >/dev/null && passwd -l {user} >/dev/null")


def test_uid_and_gid_are_the_same_on_every_node(sim):
    for user in sim.cluster.users.values():
        for node in sim.cluster.hosts:
            out = sim.exec(node, f"getent passwd {user.name}").stdout.strip().split(":")
            assert (int(out[2]), int(out[3])) == (user.uid, user.gid), (node, user.name, out)
            assert out[5] == f"{sim.cluster.ceph.home_root}/{user.name}"


# No Slurm daemon on the front-end: role slurm_client's scenario (molecule/slurm_client/tests/).


BURN = "for i in 1 2; do timeout {s} sh -c 'while :; do :; done' & done; wait; times"


def children_cpu_seconds(times_output: str) -> float:
    """CPU seconds of the children from bash's `times` (second line: user and system time)."""
    line = times_output.strip().splitlines()[-1]
    total = 0.0
    for part in line.split():
        minutes, seconds = part.rstrip("s").split("m")
        total += int(minutes) * 60 + float(seconds)
    return total


def throttled(sim, node: str, uid: int) -> int:
    """How often the kernel has throttled the user's slice for exceeding its CPU quota (cgroup v1)."""
    path = sim.exec(node, f"systemctl show user-{uid}.slice -p ControlGroup --value").stdout.strip()
    stat = sim.exec(node, f"cat /sys/fs/cgroup/cpu{path}/cpu.stat", check=False).stdout
    values = dict(line.split() for line in stat.splitlines() if line.strip())
    return int(values.get("nr_throttled", 0))


def test_cpu_burner_on_the_frontend_is_held_near_the_quota(sim, fe, keydir):
    """Two busy loops of a student (200% of the 2 cores if unconstrained) next to two of root (unlimited)."""
    user = sim.cluster.users["student2"]
    quota = sim.cluster.policy.login_limits.cpu_quota_percent
    seconds = 8
    student = subprocess.Popen(
        ["ssh", *SSH_OPTS, "-i", str(keydir / "student2"), f"student2@{fe.address}", BURN.format(s=seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(2)
    throttled_before = throttled(sim, fe.name, user.uid)
    root = sim.exec(fe.name, BURN.format(s=seconds - 3), timeout=60)
    throttled_after = throttled(sim, fe.name, user.uid)
    out, _ = student.communicate(timeout=60)
    student_percent = children_cpu_seconds(out) / seconds * 100
    root_percent = children_cpu_seconds(root.stdout) / (seconds - 3) * 100
    print(
        f"front-end CPU: student2 {student_percent:.0f}% over {seconds}s (quota {quota}%), "
        f"root {root_percent:.0f}% alongside; slice throttled {throttled_after - throttled_before} times"
    )
    assert student_percent > 0, "the student's loops did not run"
    assert student_percent <= quota * 1.25, f"{student_percent:.0f}% CPU is above the {quota}% quota"
    assert throttled_after > throttled_before, "the quota never throttled the student's slice"


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def hop(sim, fe: str, user: str, node: str, command: str = "cat /proc/self/cgroup"):
    """ssh from the front-end to a compute node as USER: host-based authentication (no key offered), the
    node's host key from /etc/ssh/ssh_known_hosts (role common), strict checking."""
    return sim.exec(
        fe,
        f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o PubkeyAuthentication=no {node} '{command}'",
        user=user,
        check=False,
        timeout=60,
    )


def test_compute_node_login_only_while_a_job_runs_there(sim, fe):
    node = sim.cluster.compute[0].name
    denied = hop(sim, fe.name, "student1", node)
    assert denied.returncode != 0
    assert "Access denied by pam_slurm_adopt" in denied.stdout + denied.stderr
    job = sim.exec(
        fe.name,
        f"sbatch --parsable --gres=gpu:1 --time=00:05:00 -w {node} --wrap 'sleep 300'",
        user="student1",
    ).stdout.strip()
    try:
        wait_for(
            lambda: sim.exec(fe.name, f"squeue -h -j {job} -o %T", check=False).stdout.strip() == "RUNNING",
            120,
            what=f"job {job} to run",
        )
        allowed = hop(sim, fe.name, "student1", node)
        assert allowed.returncode == 0, allowed.stderr
        assert f"job_{job}" in allowed.stdout, "the SSH session was not adopted into the job's cgroup"
    finally:
        sim.exec(fe.name, f"scancel {job}", check=False)


def test_admin_always_gets_into_compute_nodes(sim, fe):
    node = sim.cluster.compute[-1].name
    admin = next(u.name for u in sim.cluster.users.values() if u.admin)
    result = hop(sim, fe.name, admin, node, "id -un")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == admin


def inventory_without(user: str, dest: Path) -> Path:
    shutil.copytree(INVENTORY, dest)
    users_file = dest / "group_vars" / "all" / "users.yml"
    data = yaml.safe_load(users_file.read_text())
    data["ailab_users"] = [u for u in data["ailab_users"] if u["name"] != user]
    users_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def test_removed_user_is_locked_out_and_keeps_files(sim, fe, keydir, converge, tmp_path):
    user = "student3"
    marker = f"{sim.cluster.ceph.home_root}/{user}/keep-me.txt"
    sim.exec(fe.name, f"echo 'thesis draft' > {marker}", user=user)
    assert ssh(keydir, user, fe.address, "true").returncode == 0
    reduced = inventory_without(user, tmp_path / "inventory")
    result = None
    try:
        result = converge("site.yml", inventory=reduced)
        assert result.ok, explain(result)
        denied = ssh(keydir, user, fe.address, "true")
        assert denied.returncode == 255, denied.stdout
        assert sim.exec(fe.name, f"cat {marker}").stdout.strip() == "thesis draft"
        for node in sim.cluster.hosts:
            if sim.cluster.directory.enabled:
                # From the directory (role directory): locked with nologin and shadowExpire, through SSSD,
                # whose getent cache shows it within its entry_cache_timeout (60 s).
                def locked(node=node):
                    entry = sim.exec(node, f"getent passwd {user}").stdout.strip()
                    return entry.endswith(":/usr/sbin/nologin")

                wait_for(locked, 90, interval=5, what=f"{user}'s locked shell on {node}")
                continue
            expiry = sim.exec(node, f"getent shadow {user}").stdout.split(":")[7]
            # Expired on day 0 or 1 of the epoch (the user module stores expires=1 s as day 0).
            assert expiry in ("0", "1"), (node, expiry)
    finally:
        # Put the user back: the plays of the roles the removal changed suffice (all of site.yml when the
        # removal failed half-way or changed something outside a role).
        changed = roles_changed(result) if result is not None and result.ok else None
        restore = str(site_plays(changed, "restore-user")) if changed else "site.yml"
        restored = converge(restore)
        assert restored.ok, explain(restored)
    assert ssh(keydir, user, fe.address, "true").returncode == 0
    sim.exec(fe.name, f"rm -f {marker}")
