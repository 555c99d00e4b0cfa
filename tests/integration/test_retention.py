"""Issue 7, rule 1 on the simulator: the yearly deletion's notices arrive by real mail on their day, once;
the deletion removes exactly the non-extended users' homes, accounts and Slurm associations (throwaway users
the test creates, so the shared cluster keeps its users) and writes the manifest first."""

from __future__ import annotations

import json
import shlex
import time

import pytest

from tests.integration.ops_helpers import mailbox, tool_run
from tests.integration.test_frontend import KEYS, ssh

# Throwaway users: uids far from the inventory's; created on every node so their jobs can run.
THROWAWAY = {
    "rtgone": {"uid": 290001, "extension_until": None},  # deleted
    "rtkept": {"uid": 290002, "extension_until": "2027-01-31"},  # extension after 1 August 2026: kept
    "rtedge": {"uid": 290003, "extension_until": "2026-08-01"},  # extension until the deletion day: deleted
}


def test_the_tools_configuration_comes_from_the_inventory(sim, fe):
    config = json.loads(sim.exec(fe, "cat /etc/ailab/ops.json").stdout)
    users = {u["name"]: u for u in config["users"]}
    assert set(users) == set(sim.cluster.users)
    for name, user in sim.cluster.users.items():
        expected = user.extension_until.isoformat() if user.extension_until else None
        assert (users[name]["email"], users[name]["extension_until"]) == (user.email, expected)
    assert config["home_root"] == sim.cluster.ceph.home_root
    mode = sim.exec(fe, "stat -c %a /etc/ailab/ops.json").stdout.strip()
    assert mode == "600"
    timers = sim.exec(fe, "systemctl is-enabled ailab-retention.timer ailab-maintenance-notify.timer").stdout
    assert timers.split() == ["enabled", "enabled"]


def test_each_notice_arrives_on_its_day_once(sim, fe):
    run = tool_run(sim, fe)
    try:
        notified = [u for u in sim.cluster.users.values() if not u.admin and not _extended(u, "2026-08-01")]
        kept = [u for u in sim.cluster.users.values() if u not in notified]
        assert notified and kept, "the sim inventory should have extended or admin users and others"
        expected: list[str] = []
        for day, key in (
            ("2026-05-31", None),
            ("2026-06-01", "2 months"),
            ("2026-06-01", None),  # the same day again: nothing new
            ("2026-06-20", None),
            ("2026-07-01", "1 month"),
            ("2026-07-18", "14 days"),
            ("2026-07-30", "2 days"),
            ("2026-07-31", None),
        ):
            run.run("ailab-retention", "run", now=day)
            if key:
                expected.append(f"retention 2026 {key}")
            for user in notified:
                assert run.tags(user.name, len(expected)) == expected, (day, user.name)
        for user in kept:
            assert run.tags(user.name, 0, timeout=0) == [], user.name
        message = next(m for m in mailbox(sim, fe, notified[0].name) if run.ours(m))
        assert message["To"] == notified[0].email
        body = " ".join(message.get_payload(decode=True).decode().split())
        assert "will be deleted on Saturday 1 August 2026, in 61 days" in body
        assert sim.cluster.policy.extension_url in body
    finally:
        run.cleanup()


def test_mail_never_leaves_the_simulator(sim, fe):
    marker = f"outside-{time.time_ns()}"
    sim.exec(
        fe,
        "/usr/sbin/sendmail -t -oi",
        input=f"To: someone@example.com\nFrom: root\nSubject: {marker}\n\ntest\n",
    )
    found: list = []
    for _ in range(30):
        found = [m for m in mailbox(sim, fe, "root") if m["Subject"] == marker]
        if found:
            break
        time.sleep(1)
    assert len(found) == 1, "a message to an outside address must land in the catch-all mailbox"
    assert sim.exec(fe, "postconf -h default_transport").stdout.startswith("error:")
    assert sim.exec(fe, "postconf -h relayhost").stdout.strip() == ""
    assert "Mail queue is empty" in sim.exec(fe, "mailq").stdout


def _extended(user, deletion: str) -> bool:
    return user.extension_until is not None and user.extension_until.isoformat() > deletion


@pytest.fixture
def throwaway(sim, fe):
    """Users rtgone/rtkept/rtedge on every node (same uid), each with a home full of files, a Slurm
    association and a mailbox; removed again afterwards whatever the test did."""
    nodes = [h.name for h in sim.cluster.hosts.values() if not h.in_group("ceph")]
    home_root = sim.cluster.ceph.home_root
    controller = sim.cluster.controllers[0].name
    project = sorted(sim.cluster.projects)[0]
    domain = sim.cluster.domain
    for name, spec in THROWAWAY.items():
        for node in nodes:
            sim.exec(
                node,
                f"id {name} >/dev/null 2>&1 || useradd -u {spec['uid']} -U -M -d {home_root}/{name} {name}",
            )
        home = f"{home_root}/{name}"
        sim.exec(
            fe,
            f"mkdir -p {home}/data/sub && head -c 4096 /dev/zero > {home}/data/w.bin && "
            f"echo hi > {home}/data/sub/n.txt && ln -sfn /etc {home}/etc-link && "
            f"chown -hR {name}: {home} && chmod 700 {home}",
        )
        sim.exec(controller, f"sacctmgr -i add user name={name} account={project} >/dev/null")
    yield {
        "nodes": nodes,
        "users": [
            {
                "name": name,
                "uid": spec["uid"],
                "email": f"{name}@{domain}",
                "full_name": f"Throwaway {name}",
                "extension_until": spec["extension_until"],
                "admin": False,
            }
            for name, spec in THROWAWAY.items()
        ],
    }
    for name in THROWAWAY:
        sim.exec(
            fe, f"scancel --user={name} 2>/dev/null; rm -rf {home_root}/{name} /var/mail/{name}", check=False
        )
        sim.exec(controller, f"sacctmgr -i delete user name={name} >/dev/null 2>&1", check=False)
        for node in nodes:
            sim.exec(node, f"userdel {name} >/dev/null 2>&1; groupdel {name} >/dev/null 2>&1", check=False)


def _job_state(sim, node: str, job: str, want: str, timeout: float = 60) -> str:
    """The job's state from accounting, once it is ``want`` (or whatever it is when time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        state = sim.exec(node, f"sacct -nX -P -j {job} -o State", check=False).stdout.strip()
        if state.startswith(want) or time.monotonic() > deadline:
            return state
        time.sleep(2)


def _assoc(sim, name: str) -> str:
    return sim.exec(
        sim.cluster.controllers[0].name, f"sacctmgr -nP show assoc users={name} format=user"
    ).stdout


def test_deletion_removes_exactly_the_non_extended_users(sim, fe, throwaway):
    home_root = sim.cluster.ceph.home_root

    def use_throwaway(data):
        data["users"] = throwaway["users"]

    run = tool_run(sim, fe, use_throwaway)
    try:
        # A running job of a user to delete: it is cancelled before the manifest is written.
        job = sim.exec(
            fe,
            "sbatch --parsable --gres=gpu:1 --time=00:10:00 --wrap 'sleep 300'",
            user="rtgone",
        ).stdout.strip()
        run.run("ailab-retention", "run", now="2026-07-30")
        assert run.tags("rtgone", 1) == ["retention 2026 2 days"]
        assert run.tags("rtkept", 0, timeout=0) == []

        dry = run.run("ailab-retention", "run", "--dry-run", now="2026-08-01").stdout
        assert "would delete rtgone" in dry and "would delete rtedge" in dry and "rtkept" not in dry
        assert (
            sim.exec(fe, f"test -d {home_root}/rtgone && test -d {home_root}/rtedge", check=False).returncode
            == 0
        )

        result = run.run("ailab-retention", "run", now="2026-08-01")
        assert "deleted rtgone" in result.stdout and "deleted rtedge" in result.stdout, result
        for name in ("rtgone", "rtedge"):
            assert sim.exec(fe, f"test -e {home_root}/{name}", check=False).returncode == 1, name
            assert sim.exec(fe, f"getent passwd {name}", check=False).returncode == 2, name
            assert _assoc(sim, name).strip() == "", name
            assert sim.exec(fe, f"test -e /var/mail/{name}", check=False).returncode == 1, name
        assert sim.exec(fe, f"test -f {home_root}/rtkept/data/w.bin").returncode == 0
        assert sim.exec(fe, "getent passwd rtkept").returncode == 0
        assert _assoc(sim, "rtkept").strip() == "rtkept"
        assert (
            sim.exec(fe, "test -f /etc/hostname").returncode == 0
        )  # the link out of the home was not followed
        for user in sim.cluster.users:  # the inventory's users are untouched
            assert sim.exec(fe, f"getent passwd {user}").returncode == 0
        assert _job_state(sim, fe, job, "CANCELLED").startswith("CANCELLED")

        manifests = sim.exec(fe, f"ls {run.directory}/manifests").stdout.split()
        assert len(manifests) == 1 and manifests[0].startswith("deletion-2026-")
        records = [
            json.loads(line)
            for line in sim.exec(fe, f"cat {run.directory}/manifests/{manifests[0]}").stdout.splitlines()
        ]
        paths = {r["path"]: r for r in records if "path" in r}
        assert paths[f"{home_root}/rtgone/data/w.bin"] == {
            "path": f"{home_root}/rtgone/data/w.bin",
            "owner": "rtgone",
            "uid": 290001,
            "bytes": 4096,
            "type": "file",
        }
        assert paths[f"{home_root}/rtgone/etc-link"]["type"] == "link"
        assert not any(p.startswith(f"{home_root}/rtkept") for p in paths)
        accounts = {r["user"]: r for r in records if "slurm_associations" in r}
        assert accounts["rtgone"]["account"]["passwd"].startswith("rtgone:x:290001:")
        assert accounts["rtgone"]["slurm_associations"]
        assert records[-1]["end"] is True

        again = run.run("ailab-retention", "run", now="2026-08-02")
        assert "deleted" not in again.stdout
    finally:
        run.cleanup()


def test_no_manifest_means_no_deletion(sim, fe, throwaway):
    home_root = sim.cluster.ceph.home_root

    def unwritable_manifest(data):
        data["users"] = throwaway["users"]
        data["manifest_dir"] = "/etc/hostname/manifests"  # below a regular file: cannot be created

    run = tool_run(sim, fe, unwritable_manifest)
    try:
        run.run("ailab-retention", "run", now="2026-07-30")
        result = run.run("ailab-retention", "run", now="2026-08-01", check=False)
        assert result.returncode == 2
        assert "cannot create the deletion manifest in /etc/hostname/manifests" in result.stderr
        assert "nothing was deleted" in result.stderr
        for name in THROWAWAY:
            assert sim.exec(fe, f"test -f {home_root}/{name}/data/w.bin").returncode == 0
            assert sim.exec(fe, f"getent passwd {name}").returncode == 0
        state = json.loads(sim.exec(fe, f"cat {shlex.quote(run.directory)}/retention.json").stdout)
        assert state["cycles"]["2026"]["deleted"] == {}
    finally:
        run.cleanup()


def _state(sim, fe, run) -> str:
    return sim.exec(fe, f"cat {shlex.quote(run.directory)}/retention.json").stdout


def test_without_cephfs_on_the_home_root_the_deletion_refuses(sim, fe, throwaway):
    """Hardening, rule 1: with an empty directory mounted over the home root (CephFS gone: every home
    looks absent) the deletion, its dry run and status refuse, naming the path and the fix, and change
    nothing: no account, association, mail or record goes.  With the mount back the same run deletes."""
    home_root = sim.cluster.ceph.home_root

    def use_throwaway(data):
        data["users"] = throwaway["users"]

    run = tool_run(sim, fe, use_throwaway)
    empty = f"{run.directory}/empty-home-root"
    try:
        run.run("ailab-retention", "run", now="2026-07-30")
        assert run.tags("rtgone", 1) == ["retention 2026 2 days"]
        before = _state(sim, fe, run)
        assert sim.exec(fe, f"findmnt -n -o FSTYPE {home_root}").stdout.split()[-1] == "fuse.ceph-fuse"
        sim.exec(fe, f"mkdir -p {empty} && mount --bind {empty} {home_root}")
        try:
            assert sim.exec(fe, f"ls -A {home_root}").stdout.strip() == ""  # every home looks absent
            for args in (("run",), ("run", "--dry-run"), ("status",)):
                result = run.run("ailab-retention", *args, now="2026-08-01", check=False)
                assert result.returncode == 2, (args, result)
                assert f"home_root {home_root} is not a mounted CephFS file system" in result.stderr, args
                assert "not CephFS" in result.stderr and "nothing was done" in result.stderr, args
                assert "systemctl start ceph-home.mount" in result.stderr, args
                assert "deleted" not in result.stdout and "would delete" not in result.stdout, args
        finally:
            sim.exec(fe, f"umount {home_root}")
        assert sim.exec(fe, f"findmnt -n -o FSTYPE {home_root}").stdout.split()[-1] == "fuse.ceph-fuse"
        assert _state(sim, fe, run) == before
        for name in ("rtgone", "rtedge"):
            assert sim.exec(fe, f"test -f {home_root}/{name}/data/w.bin").returncode == 0, name
            assert sim.exec(fe, f"getent passwd {name}").returncode == 0, name
            assert _assoc(sim, name).strip() == name, name
            assert sim.exec(fe, f"test -s /var/mail/{name}").returncode == 0, name
        assert sim.exec(fe, f"ls {run.directory}/manifests 2>/dev/null | wc -l").stdout.strip() == "0"

        result = run.run("ailab-retention", "run", now="2026-08-01")  # the mount is back: it deletes
        assert "deleted rtgone" in result.stdout and "deleted rtedge" in result.stdout, result
    finally:
        # Whatever failed above: the CephFS mount is the one on top of the home root again.
        top = f"findmnt -n -o FSTYPE {home_root} | tail -n 1"
        sim.exec(fe, f'[ "$({top})" = fuse.ceph-fuse ] || umount {home_root}', check=False)
        run.cleanup()


def _passwd_field(sim, node: str, user: str, database: str, field: int) -> str | None:
    """Field ``field`` (1-based) of ``user``'s getent ``database`` entry on ``node``; None: no entry."""
    out = sim.exec(node, f"getent {database} {user}", check=False)
    return out.stdout.strip().split(":")[field - 1] if out.returncode == 0 else None


@pytest.mark.lifecycle
def test_a_deleted_user_still_in_the_inventory_is_not_recreated(sim, fe, ctl, converge, tmp_path):
    """Hardening, rule 1: the deletion sticks.  A user the yearly deletion removed (here student2, deleted
    through the real deletion record on the operations host) but still listed in ailab_users gets no
    account, key, home or association from the next converge, stays locked where an account is left, and
    the converge warns naming them; `ailab-retention readmit` lets them back in.  The record is restored."""
    from tests.integration.conftest import explain, site_plays

    # site.yml's pre-flight plays and the plays of the roles that would recreate the user: the rest of
    # site.yml has nothing per user (and a full run costs twice as long).
    directory = sim.cluster.directory.enabled  # users from LDAP: the entry goes with the next converge
    roles = {"accounts", "user_dirs", "slurm_controller"} | ({"directory"} if directory else set())
    plays = str(site_plays(roles, "lifecycle-plays"))
    user = "student2"
    spec = sim.cluster.users[user]
    assert not spec.admin and spec.extension_until is None, "the test needs a plain student"
    assert sim.cluster.operations_host == fe
    home = f"{sim.cluster.ceph.home_root}/{user}"
    compute = sim.cluster.compute[0].name
    record = "/var/lib/ailab/retention.json"  # what the pre-flight reads (operations_state_dir)
    backup = f"{record}.test-backup"
    had_record = sim.exec(fe, f"test -e {record}", check=False).returncode == 0
    if had_record:
        sim.exec(fe, f"cp -a {record} {backup}")

    def only_this_user_on_the_real_record(data):
        data["users"] = [u for u in data["users"] if u["name"] == user]
        data["retention_state"] = record

    run = tool_run(sim, fe, only_this_user_on_the_real_record)
    try:
        run.run("ailab-retention", "run", now="2026-07-30")
        result = run.run("ailab-retention", "run", now="2026-08-01")
        assert f"deleted {user} (cycle 2026)" in result.stdout, result
        if not directory:  # a directory user has no local account; role directory deletes the entry
            assert _passwd_field(sim, fe, user, "passwd", 1) is None
        assert sim.exec(fe, f"test -e {home}", check=False).returncode == 1
        # Refused at once, before any converge: a local account is locked, a directory user is on the list
        # PAM reads (role operations) while the entry waits for the converge.
        key = tmp_path / user
        key.write_bytes((KEYS / user).read_bytes())
        key.chmod(0o600)
        refused = ssh(tmp_path, user, sim.cluster.hosts[fe].address, "true")
        assert refused.returncode == 255, (refused.stdout, refused.stderr)

        after = converge(plays)
        assert after.ok, f"converge after the deletion failed:\n{explain(after)}"
        text = " ".join(after.output.split())
        assert "WARNING: 1 user(s) in ailab_users were deleted by the yearly deletion: student2" in text
        assert text.count("WARNING: 1 user(s) in ailab_users were deleted") == 1
        assert f"ailab-retention readmit NAME` on {fe}" in text
        assert _passwd_field(sim, fe, user, "passwd", 1) is None  # no account on the front-end again
        assert sim.exec(fe, f"test -e {home}", check=False).returncode == 1  # no new (empty) home
        assert _assoc(sim, user).strip() == ""  # no Slurm association
        if directory:  # the directory entry is gone: no node knows the user
            assert _passwd_field(sim, compute, user, "passwd", 1) is None
            base = sim.cluster.directory.base_dn
            server = sim.cluster.directory_hosts[0].name
            search = f"ldapsearch -LLL -Q -Y EXTERNAL -H ldapi:/// -b {base} '(|(uid={user})(cn={user}))' dn"
            gone = sim.exec(server, search).stdout
            assert gone.strip() == "", gone
        else:
            assert _passwd_field(sim, compute, user, "shadow", 8) == "1"  # locked where the account is left
            assert _passwd_field(sim, compute, user, "passwd", 7) == "/usr/sbin/nologin"
        assert sim.exec(compute, f"test -e /etc/ssh/authorized_keys/{user}", check=False).returncode == 1

        readmitted = run.run("ailab-retention", "readmit", user)
        assert f"readmitted {user} (deleted 2026-08-01, cycle 2026" in readmitted.stdout
        back = converge(plays)
        assert back.ok, f"converge after the readmission failed:\n{explain(back)}"
        assert "were deleted by the yearly deletion" not in back.output
        assert _passwd_field(sim, fe, user, "passwd", 3) == str(spec.uid)
        assert sim.exec(fe, f"test -d {home}").returncode == 0
        assert _assoc(sim, user).strip() == user
        if directory:
            assert _passwd_field(sim, compute, user, "passwd", 3) == str(spec.uid)
            denied = sim.exec(fe, f"cat {record.rsplit('/', 1)[0]}/denied-users", check=False).stdout.split()
            assert user not in denied, denied
        else:
            assert _passwd_field(sim, compute, user, "shadow", 8) == ""
    finally:
        restore = f"mv -f {backup} {record}" if had_record else f"rm -f {record}"
        sim.exec(fe, restore, check=False)
        denied_list = f"{record.rsplit('/', 1)[0]}/denied-users"
        sim.exec(fe, f"test ! -e {denied_list} || sed -i '/^{user}$/d' {denied_list}", check=False)
        run.cleanup()
        if _passwd_field(sim, fe, user, "passwd", 1) is None or _assoc(sim, user).strip() != user:
            assert converge(plays).ok, "the converge that restores student2 failed"
