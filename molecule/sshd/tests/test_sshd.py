"""Role sshd: key-only logins; who may log in where (moved here from the whole-cluster suite)."""

from __future__ import annotations

testinfra_hosts = ["ctl01", "mol-t4-01"]


def effective(host) -> dict[str, str]:
    out = host.check_output("sshd -T -C user=nobody,host=x,addr=127.0.0.1")
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines())}


def test_sshd_runs_with_keys_only(host):
    assert host.service("ssh").is_running
    config = effective(host)
    assert config["passwordauthentication"] == "no"
    assert config["kbdinteractiveauthentication"] == "no"
    assert config["pubkeyauthentication"] == "yes"


def test_service_hosts_admit_root_and_the_admins_alone(host, cluster):
    config = effective(host)
    if host.check_output("hostname") == "ctl01":
        out = host.check_output("sshd -T -C user=nobody,host=x,addr=127.0.0.1")
        groups = {g for line in out.splitlines() if line.startswith("allowgroups ") for g in line.split()[1:]}
        assert groups == {"root", cluster.accounts.admin_group}
    else:
        # Compute nodes: everyone may try; pam_slurm_adopt (role compute_login) decides by job.
        assert "allowgroups" not in config
        assert config["hostbasedauthentication"] == "yes"
