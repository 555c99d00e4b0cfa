"""Issue 11: users from a real directory (slapd on the directory host, SSSD on every node), on the simulator.

A student imported from the application form's CSV (`ailab users import`) logs in over SSH with their key
and runs a GPU job, with the same uid on every node and no line in /etc/passwd; removed from the inventory,
they can neither log in nor submit.  slapd restarted under a running job: the job survives, SSSD's cache
answers `id` while slapd is down, logins come back.  A student can neither write to the directory nor read
anyone's entry over LDAP (anonymous reads nothing), and a plain (non-TLS) bind is refused.

Only when the simulated inventory has ``ailab_directory`` (inventory/sim does)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import INVENTORY, ROOT, explain, site_plays
from tests.integration.slurm_helpers import wait_for
from tests.integration.test_frontend import SSH_OPTS

pytestmark = pytest.mark.usefixtures("cancel_leftover_jobs")

NEWBIE = "dirnew01"
# The plays a new or removed user touches: the directory, local accounts (admins), homes, Slurm accounting.
ROLES = {"directory", "accounts", "user_dirs", "slurm_controller"}


@pytest.fixture(scope="module")
def directory(sim):
    d = sim.cluster.directory
    if not d.enabled or not d.managed:
        pytest.skip("the simulated inventory has no managed ailab_directory")
    return d


@pytest.fixture(scope="module")
def server(sim, directory):
    return sim.cluster.directory_hosts[0]


def ssh(key: Path, user: str, address: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "IdentitiesOnly=yes", "-i", str(key), f"{user}@{address}", command],
        capture_output=True,
        text=True,
        timeout=90,
    )


def ldap(sim, node: str, command: str, user: str | None = None) -> subprocess.CompletedProcess:
    """An LDAP tool on ``node`` that trusts the cluster CA (as any user could set up)."""
    env = "LDAPTLS_CACERT=/etc/sssd/ailab-directory-ca.pem LDAPTLS_REQCERT=demand"
    return sim.exec(node, f"env {env} {command}", user=user, check=False, timeout=60)


@pytest.fixture(scope="module")
def newcomer(sim, directory, converge, tmp_path_factory):
    """``NEWBIE`` imported from a CSV into a copy of the inventory, with a fresh SSH key, converged in; the
    original inventory (without them) is converged again at the end: they are then a removed user."""
    tmp = tmp_path_factory.mktemp("directory")
    inventory = tmp / "inventory"
    shutil.copytree(INVENTORY, inventory)
    form = tmp / "form.csv"
    form.write_text(
        "ID,Start time,Username,Full Name,E-mail,Project,Supervisor\n"
        f"7,2026-09-01 10:00,{NEWBIE},Dörte Øster,{NEWBIE}@student.sim.ailab.test,course-ml,Prof. X\n",
        encoding="utf-8",
    )
    imported = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ailab"), "users", "import", str(form), "-i", str(inventory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    key = tmp / "id_newbie"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    users_file = inventory / "group_vars" / "all" / "users.yml"
    data = yaml.safe_load(users_file.read_text())
    (entry,) = [u for u in data["ailab_users"] if u["name"] == NEWBIE]
    entry["ssh_keys"] = [key.with_suffix(".pub").read_text().strip()]
    users_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    record = yaml.safe_load((inventory / "group_vars" / "all" / "uids.yml").read_text())
    playbook = str(site_plays(ROLES, "directory-users"))
    result = converge(playbook, inventory=inventory)
    assert result.ok, explain(result)
    yield {"key": key, "uid": entry["uid"], "inventory": inventory, "record": record, "playbook": playbook}
    sim.exec(sim.cluster.frontends[0].name, f"scancel -u {entry['uid']}", check=False)


def test_imported_student_logs_in_with_their_key_and_runs_a_gpu_job(sim, newcomer):
    fe = sim.cluster.frontends[0]
    who = ssh(newcomer["key"], NEWBIE, fe.address, "id -u; id -gn; echo $HOME; pwd")
    assert who.returncode == 0, who.stderr
    uid, group, home, cwd = who.stdout.split()
    assert (int(uid), group) == (newcomer["uid"], NEWBIE)
    assert home == cwd == f"{sim.cluster.ceph.home_root}/{NEWBIE}"
    job = ssh(
        newcomer["key"],
        NEWBIE,
        fe.address,
        "sbatch --parsable --wait --gres=gpu:1 --time=00:05:00 --output=gpu-%j.out "
        "--wrap 'id -un; nvidia-smi -L' && cat gpu-*.out",
    )
    assert job.returncode == 0, job.stdout + job.stderr
    assert NEWBIE in job.stdout and "GPU 0:" in job.stdout, job.stdout


def test_same_uid_on_every_node_and_no_student_in_etc_passwd(sim, newcomer):
    students = [u.name for u in sim.cluster.users.values() if not u.admin]
    for host in sim.cluster.hosts:
        entry = sim.exec(host, f"getent passwd {NEWBIE}").stdout.strip().split(":")
        assert entry[2:4] == [str(newcomer["uid"])] * 2, (host, entry)
        assert entry[4].startswith("Doerte Oester"), entry  # gecos is ASCII; cn keeps the real name
        for name in (NEWBIE, *students):
            local = sim.exec(host, f"grep -c '^{name}:' /etc/passwd /etc/group", check=False).stdout
            assert all(line.endswith(":0") for line in local.split()), (host, name, local)
    admin = next(u.name for u in sim.cluster.users.values() if u.admin)
    assert sim.exec(sim.cluster.frontends[0].name, f"grep -c '^{admin}:' /etc/passwd").stdout.strip() == "1"


def test_a_student_cannot_write_or_read_entries(sim, newcomer, directory, server):
    fe = sim.cluster.frontends[0].name
    uri = f"ldaps://{server.address}"
    other = f"uid=student2,{directory.users_dn}"
    # Anonymous (students have no LDAP password): nothing at all, not even another student's uid.
    found = ldap(
        sim, fe, f"ldapsearch -LLL -x -H {uri} -b {directory.base_dn} '(uid=*)' uid mail", user=NEWBIE
    )
    # noSuchObject (32): slapd does not even admit the base exists to someone who may read nothing.
    assert found.returncode in (0, 32) and "uid:" not in found.stdout and "mail:" not in found.stdout, found
    # No password to bind with.
    bound = ldap(
        sim, fe, f"ldapwhoami -x -H {uri} -D uid={NEWBIE},{directory.users_dn} -w guess", user=NEWBIE
    )
    assert bound.returncode == 49, bound  # invalidCredentials
    change = f"dn: {other}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/sh\n"
    wrote = sim.exec(
        fe,
        "env LDAPTLS_CACERT=/etc/sssd/ailab-directory-ca.pem ldapmodify -x -H " + uri,
        user=NEWBIE,
        input=change,
        check=False,
    )
    # strongerAuthRequired (anonymous may not write at all) or insufficientAccess: refused either way.
    assert wrote.returncode in (8, 50), wrote
    # What getent shows (the public fields) every user sees, through SSSD; the mail address nobody does.
    public = sim.exec(fe, "getent passwd student2", user=NEWBIE).stdout
    assert public.startswith("student2:") and "/bin/bash" in public
    assert sim.exec(fe, "cat /etc/sssd/sssd.conf", user=NEWBIE, check=False).returncode != 0
    # ... and the entry is unchanged.
    shell = sim.exec(server.name, f"ldapsearch -LLL -Q -Y EXTERNAL -H ldapi:/// -b {other} loginShell").stdout
    assert "loginShell: /bin/bash" in shell


def test_plain_binds_are_refused_tls_binds_work(sim, directory, server):
    fe = sim.cluster.frontends[0].name
    password = (Path(sim.cluster.secrets_dir) / "directory" / "service.password").read_text().strip()
    bind_dn = f"cn={directory.service_account},ou=services,{directory.base_dn}"
    creds = f"-D {shlex.quote(bind_dn)} -w {shlex.quote(password)}"
    plain = ldap(sim, fe, f"ldapwhoami -x -H ldap://{server.address} {creds}")
    assert plain.returncode == 13, plain  # confidentialityRequired
    assert "onfidentiality required" in plain.stderr
    for how in (f"-H ldaps://{server.address}", f"-ZZ -H ldap://{server.address}"):
        tls = ldap(sim, fe, f"ldapwhoami -x {how} {creds}")
        assert tls.returncode == 0 and bind_dn in tls.stdout, (how, tls)
    # The service account reads the posix attributes and keys, nothing it may not.
    read = ldap(sim, fe, f"ldapsearch -LLL -x -H ldaps://{server.address} {creds} -b {directory.users_dn} "
                "'(uid=student1)' uidNumber sshPublicKey mail userPassword")  # fmt: skip
    assert "uidNumber: 200001" in read.stdout and "sshPublicKey:" in read.stdout, read
    assert "mail:" not in read.stdout and "userPassword" not in read.stdout, read


def test_slapd_restart_under_a_running_job(sim, newcomer, server):
    fe = sim.cluster.frontends[0]
    started = ssh(
        newcomer["key"],
        NEWBIE,
        fe.address,
        "sbatch --parsable --gres=gpu:1 --time=00:10:00 --wrap 'sleep 600'",
    )
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip().split(";")[0]
    wait_for(
        f"job {job} running",
        lambda: sim.exec(fe.name, f"squeue -h -j {job} -o %T").stdout.strip() == "RUNNING",
        120,
    )
    node = sim.exec(fe.name, f"squeue -h -j {job} -o %N").stdout.strip()
    try:
        sim.exec(server.name, "systemctl stop slapd")
        down = ldap(sim, fe.name, f"ldapwhoami -x -H ldaps://{server.address}")
        assert down.returncode == 255, down  # cannot contact the server
        for host in (fe.name, node, server.name):
            ids = sim.exec(host, f"id {NEWBIE}", check=False)
            assert ids.returncode == 0 and f"uid={newcomer['uid']}({NEWBIE})" in ids.stdout, (host, ids)
        assert sim.exec(fe.name, f"squeue -h -j {job} -o %T").stdout.strip() == "RUNNING"
    finally:
        sim.exec(server.name, "systemctl start slapd", check=False)
    assert sim.exec(server.name, "systemctl is-active slapd").stdout.strip() == "active"
    wait_for(
        "a login after slapd came back",
        lambda: ssh(newcomer["key"], NEWBIE, fe.address, "true").returncode == 0,
        90,
    )
    assert sim.exec(fe.name, f"squeue -h -j {job} -o %T").stdout.strip() == "RUNNING"
    sim.exec(fe.name, f"scancel {job}")


def test_removed_student_can_neither_log_in_nor_submit(sim, newcomer, converge, directory, server):
    """Converging the original inventory (without them) removes the imported student: their entry is
    locked (nologin, no key, expired), their home stays, they can neither log in nor submit."""
    fe = sim.cluster.frontends[0]
    marker = f"{sim.cluster.ceph.home_root}/{NEWBIE}/keep-me.txt"
    sim.exec(fe.name, f"echo draft > {marker}", user=NEWBIE)
    result = converge(newcomer["playbook"])
    assert result.ok, explain(result)
    denied = ssh(newcomer["key"], NEWBIE, fe.address, "true")
    assert denied.returncode == 255, denied.stdout
    entry = sim.exec(server.name, f"ldapsearch -LLL -Q -Y EXTERNAL -H ldapi:/// -b {directory.users_dn} "
                     f"'(uid={NEWBIE})' loginShell shadowExpire sshPublicKey uidNumber").stdout  # fmt: skip
    assert "loginShell: /usr/sbin/nologin" in entry and "shadowExpire: 1" in entry, entry
    assert "sshPublicKey" not in entry and f"uidNumber: {newcomer['uid']}" in entry
    for host in (fe.name, sim.cluster.compute[0].name):  # getent within SSSD's entry_cache_timeout (60 s)

        def shell(host=host):
            entry = sim.exec(host, f"getent passwd {NEWBIE}").stdout.strip()
            return entry.endswith(":/usr/sbin/nologin")

        wait_for(f"{NEWBIE}'s locked shell on {host}", shell, 90, interval=5)
    refused = sim.exec(fe.name, "sbatch --gres=gpu:1 --wrap true", user=NEWBIE, check=False)
    assert refused.returncode != 0, refused.stdout
    owner = sim.exec(fe.name, f"stat -c %u {marker}").stdout.strip()
    assert owner == str(newcomer["uid"]) and sim.exec(fe.name, f"cat {marker}").stdout.strip() == "draft"
    assert converge(newcomer["playbook"]).changed == 0


def without_group(group: dict, name: str) -> dict:
    """A group of a YAML inventory (e.g. ``all``) without group ``name`` wherever it is nested."""
    out = dict(group)
    if isinstance(out.get("children"), dict):
        out["children"] = {k: without_group(v or {}, name) for k, v in out["children"].items() if k != name}
    return out


def test_an_external_directory_is_read_with_the_vaulted_bind_password(
    sim, directory, server, converge, tmp_path
):
    """``managed: false`` (the production case: the university's LDAP): the simulator's own slapd plays
    the university's directory.  A copy of the inventory names it by URI, with SSSD's account as bind_dn,
    the password in an ansible-vault file and the CA's certificate as ca_cert; role directory on one GPU
    node then resolves the students through it, and the inventory's own settings come back after."""
    node = sim.cluster.compute[-1].name
    student = sorted(u for u, spec in sim.cluster.users.items() if not spec.admin)[0]
    uid = sim.cluster.users[student].uid
    secrets = Path(sim.cluster.secrets_dir)
    password = (secrets / "directory" / "service.password").read_text().strip()
    inventory = tmp_path / "inventory"
    shutil.copytree(INVENTORY, inventory)
    cluster_file = inventory / "group_vars" / "all" / "cluster.yml"
    data = yaml.safe_load(cluster_file.read_text())
    data["ailab_directory"] = {
        "managed": False,
        "uris": [f"ldaps://{server.address}"],
        "base_dn": directory.base_dn,
        "bind_dn": f"cn={directory.service_account},ou=services,{directory.base_dn}",
        "bind_password": "{{ vault_ailab_directory_bind_password }}",
        "ca_cert": str(secrets / "directory" / "ca.crt"),
    }
    cluster_file.write_text(yaml.safe_dump(data, sort_keys=False))
    hosts_file = inventory / "hosts.yml"  # not our server any more: group directory goes
    hosts = yaml.safe_load(hosts_file.read_text())
    hosts_file.write_text(yaml.safe_dump({"all": without_group(hosts["all"], "directory")}, sort_keys=False))
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("simulator-test-only\n")
    vault_file = inventory / "group_vars" / "all" / "vault.yml"
    vault_file.write_text(f"vault_ailab_directory_bind_password: {password}\n")
    subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(vault_pass),
            str(vault_file),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert vault_file.read_text().startswith("$ANSIBLE_VAULT;"), "the password must be stored encrypted"
    playbook = str(site_plays({"directory"}, "directory-external"))
    forget = (
        "systemctl stop sssd; rm -f /var/lib/sss/db/cache_* /var/lib/sss/mc/*; "
        "systemctl reset-failed sssd; systemctl start sssd"
    )
    try:
        result = converge(
            playbook, "--limit", node, "--vault-password-file", str(vault_pass), inventory=inventory
        )
        assert result.ok, explain(result)
        conf = sim.exec(node, "cat /etc/sssd/sssd.conf").stdout
        assert "from the university directory" in conf
        assert f"ldap_uri = ldaps://{server.address}\n" in conf
        assert f"ldap_default_authtok = {password}\n" in conf
        sim.exec(node, forget)
        lookup = f"getent passwd {student}"
        entry = wait_for(lookup, lambda: sim.exec(node, lookup, check=False).stdout, timeout=60)
        assert entry.split(":")[2] == str(uid), entry
        assert sim.exec(node, f"grep -c '^{student}:' /etc/passwd", check=False).stdout.strip() == "0"
        keys = sim.exec(node, f"/usr/bin/sss_ssh_authorizedkeys {student}").stdout.split()
        assert keys and keys[0].startswith("ssh-"), keys
    finally:
        restored = converge(playbook, "--limit", node)
        sim.exec(node, forget, check=False)
    assert restored.ok, explain(restored)
    assert "from the cluster directory" in sim.exec(node, "cat /etc/sssd/sssd.conf").stdout
