"""Role compute_login: who may log in to a compute node."""

from __future__ import annotations

testinfra_hosts = ["mol-t4-01"]


def test_sshd_pam_requires_a_job_after_letting_admins_in(host, cluster):
    pam = host.file("/etc/pam.d/sshd").content_string
    lines = [line for line in pam.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    adopt = next(i for i, line in enumerate(lines) if "pam_slurm_adopt" in line)
    access = next(i for i, line in enumerate(lines) if "pam_access" in line or "pam_listfile" in line)
    assert access < adopt, lines
    assert not any("pam_systemd" in line for line in lines), lines
    assert host.package("libpam-slurm-adopt").is_installed
