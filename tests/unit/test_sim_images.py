"""Images are tagged by a hash of their inputs; the base comes from the host's own apt sources."""

from __future__ import annotations

import shutil
from pathlib import Path

from simulator import images

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "simulator" / "image"


def test_package_lists_parse_comments_and_blanks():
    assert images.read_package_list("# c\nslurmd\n\n  munge  # auth\n") == ("slurmd", "munge")


def test_the_image_installs_exactly_what_the_roles_install():
    """packages-roles.txt is baked into the node image; it must not drift from the roles' apt tasks."""
    listed = set(images.read_package_list((IMAGE_DIR / "packages-roles.txt").read_text()))
    by_role = images.role_packages()
    from_roles = set().union(*by_role.values())
    assert listed == from_roles - {"chrony"}  # no NTP servers in the simulator: role common skips it
    assert {"slurmd", "slurmctld", "mariadb-server", "ceph-mon", "ceph-fuse", "postfix"} <= listed
    assert "nvidia-driver" not in from_roles  # real GPU nodes only
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    assert "packages-roles.txt" in dockerfile and "--download-only" not in dockerfile
    # What the packages enabled is disabled again: the roles start what a node runs.
    assert "xargs -r systemctl disable" in dockerfile and "policy-rc.d" in dockerfile
    base = images.read_package_list((IMAGE_DIR / "packages-base.txt").read_text())
    assert {"systemd", "systemd-sysv", "dbus", "python3"} <= set(base)


def test_role_packages_reads_literals_default_lists_and_expressions(tmp_path):
    tasks = tmp_path / "r" / "tasks"
    tasks.mkdir(parents=True)
    (tmp_path / "r" / "defaults").mkdir()
    (tmp_path / "r" / "defaults" / "main.yml").write_text("r_packages: [a, b]\n")
    (tasks / "main.yml").write_text(
        "- ansible.builtin.apt: {name: '{{ r_packages }}'}\n"
        "- block:\n"
        "    - ansible.builtin.apt:\n"
        "        name: \"{{ ['cc'] + (['dd'] if x == 'notapackage' else []) }}\"\n"
        "- ansible.builtin.apt: {name: e}\n"
        "- ansible.builtin.apt: {name: [f], state: absent}\n"
        "- ailab_packages: {names: [gg, hh]}\n"
    )
    assert images.role_packages(tmp_path) == {"r": {"a", "b", "cc", "dd", "e", "gg", "hh"}}


def test_apt_keeps_downloaded_debs_and_time_sync_is_masked():
    conf = (IMAGE_DIR / "rootfs" / "etc" / "apt" / "apt.conf.d" / "90ailab-sim").read_text()
    assert 'Binary::apt::APT::Keep-Downloaded-Packages "true";' in conf
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    assert "rm -f /etc/apt/apt.conf.d/docker-clean" in dockerfile
    assert "systemd-timesyncd.service" in dockerfile and "systemctl mask" in dockerfile


def test_sources_are_the_hosts_enabled_files_for_the_suite(tmp_path):
    parts = tmp_path / "etc" / "apt" / "sources.list.d"
    parts.mkdir(parents=True)
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n"
    )
    (parts / "other.list").write_text("deb http://elsewhere.invalid/apt stable main\n")
    (parts / "old.list.disabled").write_text("deb http://mirror.invalid/debian bookworm main\n")
    (parts / "commented.list").write_text("# deb http://mirror.invalid/debian bookworm main\n")
    assert images.apt_source_files(tmp_path) == [parts / "debian.sources"]


def test_mmdebstrap_names_no_mirror_itself():
    args = images.mmdebstrap_args(("systemd", "python3"), [Path("/etc/apt/sources.list.d/debian.sources")])
    assert args[:2] == ["mmdebstrap", "--variant=minbase"]
    assert "--include=systemd,python3" in args
    assert not any("://" in a for a in args)
    assert args[-3:] == ["bookworm", "-", "/etc/apt/sources.list.d/debian.sources"]


def test_tags_are_stable_and_change_with_any_input(tmp_path):
    context = tmp_path / "image"
    shutil.copytree(IMAGE_DIR, context, ignore=shutil.ignore_patterns("__pycache__"))
    root = tmp_path / "root"
    (root / "etc" / "apt").mkdir(parents=True)
    (root / "etc" / "apt" / "sources.list").write_text("deb http://mirror.invalid/debian bookworm main\n")
    first = images.image_plan(context, root)
    assert images.image_plan(context, root) == first
    assert first.base_tag.startswith("ailab-sim/base:") and first.node_tag.startswith("ailab-sim/node:")

    (context / "nvidia_smi.py").write_text((context / "nvidia_smi.py").read_text() + "\n# changed\n")
    second = images.image_plan(context, root)
    assert second.base_tag == first.base_tag and second.node_tag != first.node_tag

    (context / "packages-base.txt").write_text((context / "packages-base.txt").read_text() + "vim-tiny\n")
    third = images.image_plan(context, root)
    assert third.base_tag != first.base_tag and third.node_tag != second.node_tag

    (root / "etc" / "apt" / "sources.list").write_text("deb http://other.invalid/debian bookworm main\n")
    assert images.image_plan(context, root).base_tag != third.base_tag


def test_pycache_does_not_change_the_tag(tmp_path):
    context = tmp_path / "image"
    shutil.copytree(IMAGE_DIR, context, ignore=shutil.ignore_patterns("__pycache__"))
    before = images.image_plan(context, tmp_path).node_tag
    (context / "__pycache__").mkdir()
    (context / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert images.image_plan(context, tmp_path).node_tag == before
