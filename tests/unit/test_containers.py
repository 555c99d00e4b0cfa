"""Issue 12, containers for students: the model (ailab_containers), its checks, the rendered files, the guide,
and the node tool (ailab/nodetools/containers.py) without a node."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ailab import containers as ct
from ailab.docs import EXAMPLE_IMAGE, containers_doc, example_partition, sh_blocks
from ailab.inventory import load_cluster, read_inventory
from ailab.nodetools import containers as tool
from ailab.parse import build_cluster
from ailab.validate import validate

ROOT = Path(__file__).resolve().parents[2]
SIM = load_cluster(ROOT / "inventory" / "sim")[0]
CONFIG = ct.wrapper_config(SIM)
HOSTVARS = read_inventory(ROOT / "inventory" / "sim")


def cluster_with(containers, ceph=None):
    """The sim inventory's hostvars with ailab_containers (and ailab_ceph) replaced: (cluster, problems)."""
    groups, hostvars = HOSTVARS
    hostvars = {h: dict(hv) for h, hv in hostvars.items()}
    for hv in hostvars.values():
        hv["ailab_containers"] = containers
        if ceph is not None:
            hv["ailab_ceph"] = ceph
    cluster, problems = build_cluster(groups, hostvars)
    return cluster, problems + validate(cluster)


def fields(problems):
    return {p.field for p in problems}


def test_the_sim_inventory_enables_containers_with_the_default_catalogue():
    c = SIM.containers
    assert c.enabled and c.catalogue == "/ceph/datasets/containers"
    assert [i.name for i in c.images] == ["debian-bookworm-python"]
    assert "python3" in c.images[0].packages


@pytest.mark.parametrize(
    ("containers", "field", "words"),
    [
        ({"enabled": True, "catalogue": "/ceph/home/cat"}, "ailab_containers.catalogue", "read-only area"),
        ({"enabled": True, "catalogue": "/ceph/datasets"}, "ailab_containers.catalogue", "read-only area"),
        ({"enabled": True, "catalogue": "rel/dir"}, "ailab_containers.catalogue", "absolute"),
        (
            {"enabled": True, "images": [{"name": "Bad Name"}]},
            "ailab_containers.images[0].name",
            "image name",
        ),
        (
            {"enabled": True, "images": [{"name": "a"}, {"name": "a"}]},
            "ailab_containers.images[1].name",
            "twice",
        ),
        (
            {"enabled": True, "images": [{"name": "a", "suite": "trixie"}]},
            "ailab_containers.images[0].suite",
            "",
        ),
        (
            {"enabled": True, "images": [{"name": "a", "packages": ["python3=3.11"]}]},
            "ailab_containers.images[0].packages[0]",
            "package name",
        ),
        ({"enabled": True, "images": []}, "ailab_containers.images", "empty"),
        ({"enabled": True, "registry": "https://x"}, "ailab_containers.registry", "host"),
        ({"enabled": True, "gpu_dir": "/usr"}, "ailab_containers.gpu_dir", "own"),
        ({"enabled": True, "runtime": "podman"}, "ailab_containers.runtime", "unknown"),
        ({"enabled": True, "images": "debian"}, "ailab_containers.images", "list"),
    ],
)
def test_bad_container_settings_name_the_field_and_the_fix(containers, field, words):
    _, problems = cluster_with(containers)
    found = [p for p in problems if p.field == field]
    assert found, f"{field} not reported; got {fields(problems)}"
    assert words in found[0].message and found[0].fix


def test_a_catalogue_needs_the_shared_area():
    ceph = {"managed": True, "fs_name": "cephfs", "home_root": "/ceph/home", "client": "fuse"}
    _, problems = cluster_with({"enabled": True}, ceph)
    assert "ailab_containers.catalogue" in fields(problems)
    _, problems = cluster_with({"enabled": False}, ceph)
    assert not any(f.startswith("ailab_containers") for f in fields(problems))


def test_a_registry_mirror_replaces_the_catalogue():
    cluster, problems = cluster_with({"enabled": True, "registry": "registry.example.org/ailab"})
    assert not problems
    config = ct.wrapper_config(cluster)
    assert config["catalogue"] == "" and config["images"] == []
    assert ct.catalogue_config(cluster)["images"] == []
    assert "FROM registry.example.org/ailab/debian-bookworm-python" in containers_doc(cluster, "x")


def test_the_digest_changes_with_the_definition_only():
    image = SIM.containers.images[0]
    same = type(image)(name=image.name, packages=tuple(reversed(image.packages)), description="other words")
    more = type(image)(name=image.name, packages=(*image.packages, "git"))
    assert ct.image_digest(image) == ct.image_digest(same)
    assert ct.image_digest(image) != ct.image_digest(more)


def test_wrapper_config_binds_the_simulators_gpu_state_only_in_a_simulated_inventory():
    assert CONFIG["binds"] == [["/etc/ailab-sim", "/mnt/7"], ["/var/lib/ailab-sim", "/mnt/8"]]
    assert CONFIG["env"] == {"AILAB_SIM_CONFIG": "/mnt/7/node.json", "AILAB_SIM_STATE": "/mnt/8"}
    production = load_cluster(ROOT / "inventory" / "production")[0]
    prod = ct.wrapper_config(production)
    assert prod["binds"] == [] and prod["env"] == {}
    assert "usage guideline 5" in prod["rules"]["gpu"]
    assert ct.catalogue_config(SIM)["subdir"] == "containers"


def test_the_guide_has_one_sh_block_with_the_clusters_partition_and_paths():
    doc = containers_doc(SIM, "sim")
    assert doc.splitlines()[1] == "# Containers on ailab-sim"
    (block,) = sh_blocks(doc)
    assert "FROM debian-bookworm-python" in block
    assert f"ailab-ch-build -t {EXAMPLE_IMAGE}" in block
    assert block.splitlines()[-1].startswith(f"srun --partition={example_partition(SIM)} --gres=gpu:1")
    assert block.splitlines()[-1].endswith(f"ailab-ch-run {EXAMPLE_IMAGE} -- nvidia-smi -L")
    assert example_partition(SIM) == "t4"
    assert "/ceph/datasets/containers" in doc and "/ceph/home/$USER" in doc
    for rule in ("C1", "C2", "C3", "C4"):
        assert f"rule {rule}" in doc


# --- the node tool --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--privileged", "img", "--", "true"], "rule C2"),
        (["--cap-add=SYS_ADMIN", "img", "--", "true"], "rule C2"),
        (["-u", "0", "img", "--", "true"], "rule C2"),
        (["--network=host", "img", "--", "true"], "rule C3"),
        (["--net", "host", "img", "--", "true"], "rule C3"),
        (["--device", "/dev/nvidia1", "img", "--", "true"], "rule C4"),
        (["-b", "/dev:/mnt/0", "img", "--", "true"], "rule C4"),
        (["-b", "/sys/class:/mnt/1", "img", "--", "true"], "rule C4"),
        (["-b", "/tmp:/mnt/9", "img", "--", "true"], "/mnt/7-9 are the platform's"),
        (["--join", "img", "--", "true"], "not an option"),
        ([], "no image"),
        (["img"], "no command"),
    ],
)
def test_run_refuses_what_the_platform_forbids_naming_the_rule(argv, words):
    with pytest.raises(tool.Refused, match="fix:") as exc:
        tool.parse_run_args(argv, CONFIG)
    assert words in str(exc.value)


def test_run_reads_binds_cd_image_and_command():
    req = tool.parse_run_args(["-b", "/data/x:/mnt/2", "--cd=/tmp", "img", "--", "python3", "-V"], CONFIG)
    assert req == tool.RunRequest("img", ("python3", "-V"), (("/data/x", "/mnt/2"),), "/tmp")
    assert tool.parse_run_args(["img", "nvidia-smi", "-L"], CONFIG).command == ("nvidia-smi", "-L")


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({}, "not inside a Slurm job"),
        ({"SLURM_JOB_ID": "7"}, "job 7 has no GPU"),
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, "job 7 has no GPU"),
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "1"}, None),
    ],
)
def test_run_needs_a_gpu_job_like_any_job(env, refused):
    if refused is None:
        tool.check_job(env, CONFIG)
        return
    with pytest.raises(tool.Refused) as exc:
        tool.check_job(env, CONFIG)
    assert refused in str(exc.value) and "usage guideline 5" in str(exc.value)


def test_images_resolve_home_first_then_the_catalogue(tmp_path):
    home = tmp_path / "home"
    (home / "images").mkdir(parents=True)
    (home / "images" / "mine.sqfs").write_text("x")
    catalogue = tmp_path / "cat"
    catalogue.mkdir()
    (catalogue / "debian-bookworm-python.sqfs").write_text("x")
    config = dict(CONFIG, catalogue=str(catalogue))
    assert tool.resolve_image("mine", str(home), config) == str(home / "images" / "mine.sqfs")
    assert tool.resolve_image("debian-bookworm-python", str(home), config).startswith(str(catalogue))
    with pytest.raises(tool.Refused, match="use one of: debian-bookworm-python, mine"):
        tool.resolve_image("nosuch", str(home), config)
    with pytest.raises(tool.Refused, match="does not exist"):
        tool.resolve_image("./nosuch.sqfs", str(home), config)


def test_run_argv_binds_home_gpu_directory_and_keeps_the_jobs_environment():
    req = tool.RunRequest("img", ("nvidia-smi", "-L"), (("/data", "/mnt/0"),))
    env = {
        "USER": "s1",
        "HOME": "/ceph/home/s1",
        "PWD": "/ceph/home/s1/proj",
        "CUDA_VISIBLE_DEVICES": "1",
        "SLURM_JOB_ID": "9",
        "PATH": "/host/bin",
        "LD_LIBRARY_PATH": "/host/lib",
    }
    argv, new_env = tool.run_argv(req, "/x/img.sqfs", env, "/ceph/home/s1", CONFIG)
    assert argv[:3] == ["ch-run", "--home", "--set-env"]
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-b"]
    assert pairs == [
        "/usr/local/lib/ailab-gpu:/mnt/9",
        "/etc/ailab-sim:/mnt/7",
        "/var/lib/ailab-sim:/mnt/8",
        "/data:/mnt/0",
    ]
    assert argv[argv.index("--cd") + 1] == "/home/s1/proj"
    tail = argv[argv.index("/x/img.sqfs") :]
    assert tail[:4] == ["/x/img.sqfs", "--", "/bin/sh", "-c"] and tail[5:] == ["/mnt/9", "nvidia-smi", "-L"]
    assert new_env["CUDA_VISIBLE_DEVICES"] == "1" and new_env["SLURM_JOB_ID"] == "9"
    assert new_env["PATH"] == tool.IMAGE_PATH and "LD_LIBRARY_PATH" not in new_env
    assert new_env["AILAB_SIM_STATE"] == "/mnt/8"


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("FROM debian-bookworm-python\nRUN true\n", ["debian-bookworm-python"]),
        ("from --platform=linux/amd64 debian-bookworm-python AS b\nFROM b\n", ["debian-bookworm-python"]),
        ("# FROM x\nRUN true\n", []),
    ],
)
def test_from_lines(text, refs):
    assert tool.from_images(text) == refs


def test_from_must_name_a_catalogue_image_when_no_registry_is_reachable():
    assert tool.check_froms(["debian-bookworm-python:latest"], CONFIG) == ["debian-bookworm-python"]
    with pytest.raises(tool.Refused, match="no registry is reachable") as exc:
        tool.check_froms(["ubuntu:22.04"], CONFIG)
    assert "build FROM one of: debian-bookworm-python" in str(exc.value)
    with pytest.raises(tool.Refused, match="no FROM"):
        tool.check_froms([], CONFIG)
    assert tool.check_froms(["ubuntu:22.04"], dict(CONFIG, registry="mirror.example.org")) == []


def test_publish_plan_builds_changed_and_missing_images_and_removes_unlisted_ones():
    images = [{"name": "a", "digest": "1"}, {"name": "b", "digest": "2"}, {"name": "c", "digest": "3"}]
    assert tool.publish_plan(images, {"a": "1", "b": "old", "z": "9", "c": ""}) == (["b", "c"], ["z"])


@pytest.mark.parametrize(
    ("build", "remove", "state", "action"),
    [
        ([], [], {"ActiveState": "inactive", "Result": "success"}, "none"),
        ([], [], {"ActiveState": "failed", "Result": "exit-code"}, "none"),
        (["a"], [], {"ActiveState": "inactive", "Result": "success"}, "start"),
        ([], ["z"], {"ActiveState": "inactive", "Result": "success"}, "start"),
        (["a"], [], {"ActiveState": "activating", "Result": "success"}, "running"),
        (["a"], [], {"ActiveState": "active", "Result": "success"}, "running"),
        (["a"], [], {"ActiveState": "failed", "Result": "exit-code"}, "retry"),
        (["a"], [], {"ActiveState": "inactive", "Result": "timeout"}, "retry"),
    ],
)
def test_the_converge_starts_the_publishing_unit_only_if_the_catalogue_differs(build, remove, state, action):
    assert tool.background_action(build, remove, state) == action


def test_publish_renames_into_place_and_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / ".old.sqfs.tmp").write_text("leftover")

    def fake_build(image, sources, workdir):
        if image["name"] == "broken":
            raise tool.Failed("mmdebstrap failed")
        out = os.path.join(workdir, "x.sqfs")
        Path(out).write_text(image["name"])
        return out

    monkeypatch.setattr(tool, "build_image", fake_build)
    config = {"images": [{"name": "good", "digest": "d1"}]}
    assert tool.publish(config, str(cat), [], tmp_root=str(tmp_path)) == {"built": ["good"], "removed": []}
    assert sorted(os.listdir(cat)) == ["good.json", "good.sqfs"]
    assert json.loads((cat / "good.json").read_text())["digest"] == "d1"
    assert tool.publish(config, str(cat), [], tmp_root=str(tmp_path)) == {"built": [], "removed": []}
    bad = {"images": [{"name": "good", "digest": "d1"}, {"name": "broken", "digest": "d2"}]}
    with pytest.raises(tool.Failed):
        tool.publish(bad, str(cat), [], tmp_root=str(tmp_path))
    assert sorted(os.listdir(cat)) == ["good.json", "good.sqfs"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("ailab-catalogue")] == []


def test_gpu_dir_copies_the_driver_tools_and_is_idempotent(tmp_path, monkeypatch):
    bindir, libdir, dest = tmp_path / "bin", tmp_path / "lib", tmp_path / "gpu"
    bindir.mkdir()
    libdir.mkdir()
    (bindir / "nvidia-smi").write_text("#!/bin/sh\n")
    (bindir / "nvidia-smi").chmod(0o755)
    (libdir / "libcuda.so.535.1").write_text("elf")
    (libdir / "libcuda.so.1").symlink_to("libcuda.so.535.1")
    (libdir / "libother.so").write_text("no")
    monkeypatch.setattr(
        shutil, "which", lambda name, path=None: str(bindir / name) if name == "nvidia-smi" else None
    )
    assert tool.collect_gpu_dir(str(dest), ["nvidia-smi", "nvidia-debugdump"], ["libcuda.so*"], [str(libdir)])
    assert sorted(os.listdir(dest / "lib")) == ["libcuda.so.1", "libcuda.so.535.1"]
    assert os.readlink(dest / "lib" / "libcuda.so.1") == "libcuda.so.535.1"
    assert (dest / "bin" / "nvidia-smi").read_text() == "#!/bin/sh\n"
    assert not tool.collect_gpu_dir(str(dest), ["nvidia-smi"], ["libcuda.so*"], [str(libdir)])
    (libdir / "libcuda.so.535.1").unlink()
    (libdir / "libcuda.so.1").unlink()
    assert tool.collect_gpu_dir(str(dest), ["nvidia-smi"], ["libcuda.so*"], [str(libdir)])
    assert os.listdir(dest / "lib") == []
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with pytest.raises(tool.Failed, match="install the NVIDIA driver"):
        tool.collect_gpu_dir(str(dest), ["nvidia-smi"], [], [])


def test_apt_sources_are_the_nodes_enabled_files(tmp_path):
    d = tmp_path / "etc" / "apt" / "sources.list.d"
    d.mkdir(parents=True)
    (d / "0000debian.sources").write_text("x")
    (d / "old.list.save").write_text("x")
    assert tool.apt_sources(str(tmp_path)) == [str(d / "0000debian.sources")]
