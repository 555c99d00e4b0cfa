"""plugins/modules/ailab_packages.py: packages present, asking dpkg before apt (its pure parts)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.scripts import load_node_script

ROOT = Path(__file__).resolve().parents[2]
pkgs = load_node_script("plugins/modules/ailab_packages.py", "ailab_packages")


def test_only_packages_dpkg_reports_installed_count():
    out = "munge\tii \nslurmd\trc \nceph-fuse:amd64\tii \npostfix\tiU \n"
    names = ["munge", "slurmd", "ceph-fuse", "postfix", "never-heard-of", "munge"]
    assert pkgs.missing(names, out) == ["slurmd", "postfix", "never-heard-of"]
    assert pkgs.missing(["munge"], out) == []


def test_the_query_and_install_commands():
    assert pkgs.query_command(["a", "b"]) == [
        "dpkg-query", "--show", "--showformat=${Package}\t${db:Status-Abbrev}\n", "--", "a", "b"
    ]  # fmt: skip
    install = pkgs.install_command(["munge"])
    assert install[:3] == ["apt-get", "install", "--yes"] and install[-2:] == ["--", "munge"]
    assert "Dpkg::Options::=--force-confold" in install and "Dpkg::Options::=--force-confdef" in install
    assert not any("Install-Recommends" in a for a in install)  # apt's configuration decides


def test_recommends_can_be_left_out_or_asked_for():
    without = pkgs.install_command(["prometheus-node-exporter"], False)
    assert without[-2:] == ["--", "prometheus-node-exporter"]
    assert without[without.index("APT::Install-Recommends=false") - 1] == "-o"
    assert "APT::Install-Recommends=true" in pkgs.install_command(["x"], True)


def test_package_lists_are_refreshed_when_missing_or_older_than_allowed():
    assert pkgs.lists_stale(None, 1000.0, 86400)
    assert not pkgs.lists_stale(1000.0, 1000.0 + 86400, 86400)
    assert pkgs.lists_stale(1000.0, 1000.0 + 86401, 86400)
    assert pkgs.lists_stale(1000.0, 1001.0, 0)


def test_newest_list_reads_the_package_index_files(tmp_path):
    assert pkgs.newest_list(str(tmp_path / "none")) is None
    assert pkgs.newest_list(str(tmp_path)) is None
    (tmp_path / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("")
    (tmp_path / "lock").write_text("")
    assert pkgs.newest_list(str(tmp_path)) is not None


def test_every_role_installs_through_it_and_removes_through_apt():
    import yaml

    from simulator.images import _tasks

    for tasks_file in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        for task in _tasks(yaml.safe_load(tasks_file.read_text())):
            apt = task.get("ansible.builtin.apt")
            if isinstance(apt, dict):
                hardware_only = "nvidia" in str(apt.get("name"))  # after adding non-free sources
                assert apt.get("state") == "absent" or hardware_only, (tasks_file, task.get("name"))
