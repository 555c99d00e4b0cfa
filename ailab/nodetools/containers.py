"""Containers for students, with Charliecloud (role containers; command ailab-containers
of the node package).

    ailab-ch-build -t NAME [-f FILE] DIR     build DIR's Containerfile on the front-end: ~/images/NAME.sqfs
    ailab-ch-run [-b SRC[:/mnt/N]] IMAGE [--] CMD...  run CMD in IMAGE, inside a Slurm GPU job
    ailab-containers gpu-dir ...              (role) collect the driver's user-space tools for containers
    ailab-containers publish ...              (role) build and publish the catalogue's base images

``ailab-ch-run`` binds the home (at /home/$USER), the node's GPU directory (the NVIDIA driver's nvidia-smi
and libraries, collected by the role) at /mnt/9 with PATH and LD_LIBRARY_PATH set, and passes the job's
environment (CUDA_VISIBLE_DEVICES included).  ch-run forks nothing outside the job: the container is the
job's process, in its cgroup, and /dev is the host's, so the job's devices cgroup decides which GPUs open.
It refuses, naming the platform's rule, to run outside a GPU job and any option that would add privileges,
another network or devices.  Bad input gets one line naming what is wrong and the fix, exit status 2.
Only the Python standard library is used: it runs on the nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections import namedtuple
from collections.abc import Mapping, Sequence

# ailab-ch-run starts every container: it imports only what it needs (the build, gpu-dir and publish
# commands import the rest when they run).

CONFIG = "/etc/ailab/containers.json"
IMAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# What the image's own PATH is when the tool adds the GPU directory to it (Debian's default).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Run inside the image: $0 is the GPU directory's mount point, "$@" the command.
GPU_ENV_SH = 'PATH="$0/bin:$PATH" LD_LIBRARY_PATH="$0/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$@"'
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

# Options of container runtimes a student may try, by the rule that forbids them (rules in the config).
FORBIDDEN = {
    "--privileged": "privileged",
    "--cap-add": "privileged",
    "--security-opt": "privileged",
    "--uid": "privileged",
    "--gid": "privileged",
    "--userns": "privileged",
    "-u": "privileged",
    "--user": "privileged",
    "--network": "network",
    "--net": "network",
    "--ipc": "network",
    "--device": "devices",
    "--gpus": "devices",
    "--nv": "devices",
}
DEVICE_PATHS = ("/dev", "/proc", "/sys")


class Refused(Exception):
    """Bad input: the message names what is wrong and the fix (exit status 2)."""


class Failed(Exception):
    """A step failed (exit status 1)."""


def load_config(path: str = CONFIG) -> dict:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise Failed(f"{path} is missing -- fix: converge role containers on this node") from exc


# --- ailab-ch-run ---------------------------------------------------------------------------------------


# image, command (tuple), binds ((src, dst), ...), cd ("" = the home, or where the job is inside it)
RunRequest = namedtuple("RunRequest", "image command binds cd", defaults=((), ""))


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def parse_run_args(argv: Sequence[str], config: Mapping) -> RunRequest:
    """``[-b SRC[:DST]]... [-c DIR] IMAGE [--] CMD...``; a forbidden runtime option is refused by its rule."""
    rules = config["rules"]
    binds: list[tuple[str, str]] = []
    cd = ""
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        opt, _, inline = args[i].partition("=")
        if opt in FORBIDDEN:
            raise Refused(f"{opt}: {rules[FORBIDDEN[opt]]} -- fix: drop {opt}")
        if opt in ("-b", "--bind", "-c", "--cd"):
            if inline:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise Refused(f"{opt} needs a value -- fix: e.g. {opt} ~/data:/mnt/0")
            if opt in ("-c", "--cd"):
                cd = value
            else:
                binds.append(parse_bind(value, config))
        elif opt in ("-h", "--help"):
            raise Refused(
                "usage: ailab-ch-run [-b SRC[:/mnt/N]] [-c DIR] IMAGE [--] CMD... -- fix: see the guide "
                f"{config['guide']!r}"
            )
        else:
            raise Refused(
                f"{opt}: not an option of ailab-ch-run -- fix: use -b SRC[:/mnt/N] or -c DIR before the image"
            )
        i += 1
    if i < len(args) and args[i] == "--":
        i += 1
    if i >= len(args):
        raise Refused(
            "no image given -- fix: ailab-ch-run IMAGE -- CMD..., e.g. ailab-ch-run myimage -- nvidia-smi -L"
        )
    image = args[i]
    rest = args[i + 1 :]
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        raise Refused(
            f"no command given for {image} -- fix: ailab-ch-run {image} -- CMD, e.g. -- python3 train.py"
        )
    return RunRequest(image=image, command=tuple(rest), binds=tuple(binds), cd=cd)


def parse_bind(value: str, config: Mapping) -> tuple[str, str]:
    src, _, dst = value.partition(":")
    src = os.path.normpath(os.path.expanduser(src))
    dst = dst or "/mnt/0"
    if any(_inside(src, top) for top in DEVICE_PATHS):
        raise Refused(f"-b {value}: {config['rules']['devices']} -- fix: drop the bind of {src}")
    allowed = config["user_binds"]
    if dst not in allowed:
        raise Refused(
            f"-b {value}: {dst} is not a bind target here (Charliecloud binds onto the image's /mnt/N; "
            f"/mnt/7-9 are the platform's) -- fix: bind onto one of {', '.join(allowed)}"
        )
    return src, dst


def job_gpus(env: Mapping[str, str]) -> str:
    """The GPUs Slurm gave this job on this node ("" when none): what the job's environment says."""
    for key in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        value = env.get(key, "").strip()
        if value and value not in ("NoDevFiles", "-1"):
            return value
    return ""


def check_job(env: Mapping[str, str], config: Mapping) -> None:
    if not env.get("SLURM_JOB_ID"):
        raise Refused(f"not inside a Slurm job: {config['rules']['gpu']}")
    if not job_gpus(env):
        raise Refused(f"job {env['SLURM_JOB_ID']} has no GPU: {config['rules']['gpu']}")


def available_images(home: str, config: Mapping) -> list[str]:
    names = set(config.get("images") or [])
    with contextlib.suppress(OSError):
        names |= {
            f[: -len(".sqfs")]
            for f in os.listdir(os.path.join(home, config["user_images"]))
            if f.endswith(".sqfs")
        }
    return sorted(names)


def resolve_image(image: str, home: str, config: Mapping, exists=os.path.exists) -> str:
    """A path (``./x.sqfs``, ``~/images/x.sqfs``, a directory) as it is; a name: ``~/images/<name>.sqfs``,
    then the catalogue's ``<name>.sqfs``."""
    if "/" in image or image.endswith(".sqfs"):
        path = os.path.abspath(os.path.expanduser(image))
        if exists(path):
            return path
        raise Refused(
            f"image {image}: {path} does not exist -- fix: build it with ailab-ch-build or give another path"
        )
    if not IMAGE_NAME_RE.match(image):
        raise Refused(
            f"image {image!r} is not an image name -- fix: use a name like myimage or a path to a .sqfs"
        )
    looked = [os.path.join(home, config["user_images"], f"{image}.sqfs")]
    if config.get("catalogue"):
        looked.append(os.path.join(config["catalogue"], f"{image}.sqfs"))
    for path in looked:
        if exists(path):
            return path
    names = ", ".join(available_images(home, config)) or "none yet"
    raise Refused(
        f"image {image} does not exist (looked for {' and '.join(looked)}) -- fix: build it first with "
        f"ailab-ch-build -t {image} DIR, or use one of: {names}"
    )


def run_argv(
    req: RunRequest, image_path: str, env: Mapping[str, str], home: str, config: Mapping
) -> tuple[list[str], dict[str, str]]:
    """ch-run's command line and environment for ``req`` (pure; tested without a node)."""
    user = env.get("USER") or os.path.basename(home)
    argv = ["ch-run", "--home", "--set-env", "--unset-env=LD_PRELOAD"]
    argv += ["-b", f"{config['gpu_dir']}:{config['gpu_mount']}"]
    for src, dst in config.get("binds") or []:
        argv += ["-b", f"{src}:{dst}"]
    for src, dst in req.binds:
        argv += ["-b", f"{src}:{dst}"]
    cd = req.cd
    if not cd:
        cwd = env.get("PWD", "")
        cd = f"/home/{user}" + cwd[len(home) :] if cwd and _inside(cwd, home) else f"/home/{user}"
    argv += ["--cd", cd, image_path, "--"]
    # The job's environment goes in as it is (CUDA_VISIBLE_DEVICES, SLURM_*), with the image's default PATH
    # (the host's means nothing in the image); ch-run --set-env applies the image's ENV lines on top, and a
    # shell in the image puts the GPU directory first in PATH and LD_LIBRARY_PATH.
    new_env = dict(env)
    new_env["PATH"] = IMAGE_PATH
    new_env.pop("LD_LIBRARY_PATH", None)
    new_env.update(config.get("env") or {})
    argv += ["/bin/sh", "-c", GPU_ENV_SH, config["gpu_mount"], *req.command]
    return argv, new_env


def cmd_run(argv: Sequence[str], config: Mapping, env: Mapping[str, str]) -> int:
    req = parse_run_args(argv, config)
    check_job(env, config)
    home = env.get("HOME") or os.path.expanduser("~")
    image_path = resolve_image(req.image, home, config)
    for src, _ in req.binds:
        if not os.path.isdir(src):
            raise Refused(f"-b {src}: not a directory -- fix: bind a directory you can read")
    args, new_env = run_argv(req, image_path, env, home, config)
    os.execvpe(args[0], args, new_env)
    return EXIT_FAILED  # not reached


# --- ailab-ch-build -------------------------------------------------------------------------------------

FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def from_images(text: str) -> list[str]:
    """The images a Containerfile's FROM lines name, earlier stages (``FROM x AS y``) left out."""
    stages: set[str] = set()
    out = []
    for line in text.splitlines():
        m = FROM_RE.match(line)
        if not m:
            continue
        ref = m[1]
        if ref.lower() not in stages and ref not in out:
            out.append(ref)
        if m[2]:
            stages.add(m[2].lower())
    return out


def catalogue_name(ref: str, config: Mapping) -> str | None:
    """The catalogue image a FROM reference names (``debian-bookworm-python`` or ``...:latest``)."""
    name = ref.split(":", 1)[0] if ref.endswith(":latest") else ref
    return name if name in (config.get("images") or []) else None


def check_froms(refs: Sequence[str], config: Mapping) -> list[str]:
    """The catalogue images to import; refuses a FROM that is neither in the catalogue nor pullable."""
    if not refs:
        raise Refused("the Containerfile has no FROM line -- fix: start it with FROM <catalogue image>")
    wanted = []
    for ref in refs:
        name = catalogue_name(ref, config)
        if name:
            wanted.append(name)
        elif not config.get("registry"):
            names = ", ".join(config.get("images") or []) or "none"
            raise Refused(
                f"FROM {ref}: no registry is reachable from {config['cluster']}; images come from the "
                f"cluster's catalogue ({config['catalogue']}) -- fix: build FROM one of: {names}"
            )
    return wanted


def containerfile(context: str, file: str | None) -> str:
    if file:
        path = os.path.abspath(os.path.expanduser(file))
        if not os.path.isfile(path):
            raise Refused(f"-f {file}: no such file -- fix: give the path of your Containerfile")
        return path
    for name in ("Containerfile", "Dockerfile"):
        path = os.path.join(context, name)
        if os.path.isfile(path):
            return path
    raise Refused(
        f"{context} has no Containerfile or Dockerfile -- fix: write one there, or give it with -f FILE"
    )


def _ch(cmd: list[str], env: Mapping[str, str], what: str, fix: str) -> None:
    import subprocess

    result = subprocess.run(cmd, env=dict(env), check=False)
    if result.returncode != 0:
        raise Failed(f"{what} failed (exit status {result.returncode}; its messages are above) -- fix: {fix}")


def cmd_build(argv: Sequence[str], config: Mapping, env: Mapping[str, str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ailab-ch-build", description="build an image into ~/images/NAME.sqfs")
    p.add_argument("-t", "--tag", required=True, help="the image's name: ~/images/NAME.sqfs")
    p.add_argument("-f", "--file", help="the Containerfile (default: DIR/Containerfile or DIR/Dockerfile)")
    p.add_argument("context", metavar="DIR")
    for opt in ("--privileged", "--network", "--net", "--device", "--cap-add", "--security-opt"):
        p.add_argument(opt, nargs="?", const="", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for opt in ("privileged", "network", "net", "device", "cap_add", "security_opt"):
        if getattr(args, opt) is not None:
            flag = "--" + opt.replace("_", "-")
            raise Refused(f"{flag}: {config['rules'][FORBIDDEN[flag]]} -- fix: drop {flag}")
    name = args.tag
    if not IMAGE_NAME_RE.match(name):
        raise Refused(
            f"-t {name!r} is not an image name -- fix: use lower-case letters, digits, '.', '_', '-'"
        )
    context = os.path.abspath(os.path.expanduser(args.context))
    if not os.path.isdir(context):
        raise Refused(f"{args.context}: no such directory -- fix: give the directory of your Containerfile")
    file = containerfile(context, args.file)
    with open(file) as fh:
        wanted = check_froms(from_images(fh.read()), config)
    user = env.get("USER") or os.environ.get("USER", "")
    home = env.get("HOME") or os.path.expanduser("~")
    storage = config["storage"].format(user=user)
    ch_env = dict(env, CH_IMAGE_STORAGE=storage)
    for base in wanted:
        import_base(base, storage, config, ch_env)
    print(f"ailab-ch-build: building {name} from {file}", file=sys.stderr, flush=True)
    _ch(
        ["ch-image", "build", "--force", "-t", name, "-f", file, context],
        ch_env,
        f"building {name}",
        "correct the Containerfile line ch-image names; nothing was written to your images",
    )
    out_dir = os.path.join(home, config["user_images"])
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, f"{name}.sqfs")
    tmp = os.path.join(out_dir, f".{name}.sqfs.tmp-{os.getpid()}")
    try:
        _ch(
            ["ch-convert", "-i", "ch-image", "-o", "squash", name, tmp],
            ch_env,
            f"packing {name} into SquashFS",
            "check your quota (ailab-ch-build prints it) and free space in your home",
        )
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    size = os.path.getsize(final)
    print(f"ailab-ch-build: {final} ({size / 2**20:.0f} MiB){quota_line(home)}")
    return 0


def import_base(name: str, storage: str, config: Mapping, env: Mapping[str, str]) -> None:
    """Put catalogue image ``name`` into the user's ch-image storage, again when the catalogue's changed."""
    import filecmp
    import shutil

    stamp_src = os.path.join(config["catalogue"], f"{name}.json")
    sqfs = os.path.join(config["catalogue"], f"{name}.sqfs")
    if not os.path.exists(sqfs):
        raise Failed(
            f"catalogue image {sqfs} is missing -- fix: ask the admins (role containers publishes it)"
        )
    # Beside ch-image's storage, not in it: ch-image refuses a storage directory with files of others.
    stamp = os.path.join(f"{storage}-imported", f"{name}.json")
    with contextlib.suppress(OSError):
        if filecmp.cmp(stamp_src, stamp, shallow=False):
            return
    _ch(
        ["ch-convert", "-i", "squash", "-o", "ch-image", sqfs, name],
        env,
        f"importing catalogue image {name}",
        f"remove {storage} and try again",
    )
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.copyfile(stamp_src, stamp)


def quota_line(home: str) -> str:
    """ "; your home uses X of Y GiB" from CephFS's directory statistics, or "" where there are none."""
    try:
        used = int(os.getxattr(home, "ceph.dir.rbytes"))
        quota = int(os.getxattr(home, "ceph.quota.max_bytes"))
    except (OSError, ValueError):
        return ""
    if quota <= 0:
        return f"; your home uses {used / 2**30:.2f} GiB"
    return f"; your home uses {used / 2**30:.2f} of {quota / 2**30:.0f} GiB ({100 * used / quota:.1f} %)"


# --- gpu-dir (role) -------------------------------------------------------------------------------------


def collect_gpu_dir(
    dest: str, bins: Sequence[str], lib_globs: Sequence[str], lib_dirs: Sequence[str]
) -> bool:
    """Make ``dest``/bin and ``dest``/lib hold exactly the driver's tools and libraries found on this node
    (copies; symlinks kept as symlinks).  True when something changed."""
    import filecmp
    import glob
    import shutil

    wanted: dict[str, str] = {}
    for name in bins:
        found = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin")
        if found:
            wanted[f"bin/{name}"] = found
    if "bin/nvidia-smi" not in wanted:
        raise Failed("no nvidia-smi on this GPU node -- fix: install the NVIDIA driver first")
    for directory in lib_dirs:
        for pattern in lib_globs:
            for path in sorted(glob.glob(os.path.join(directory, pattern))):
                wanted.setdefault(f"lib/{os.path.basename(path)}", path)
    changed = False
    for sub in ("bin", "lib"):
        os.makedirs(os.path.join(dest, sub), mode=0o755, exist_ok=True)
        for name in os.listdir(os.path.join(dest, sub)):
            if f"{sub}/{name}" not in wanted:
                os.unlink(os.path.join(dest, sub, name))
                changed = True
    for rel, src in sorted(wanted.items()):
        target = os.path.join(dest, rel)
        if os.path.islink(src):
            link = os.readlink(src)
            if os.path.islink(target) and os.readlink(target) == link:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            os.symlink(link, target)
        else:
            if (
                os.path.isfile(target)
                and not os.path.islink(target)
                and filecmp.cmp(src, target, shallow=False)
            ):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            shutil.copy2(src, target)
            os.chmod(target, 0o755)
        changed = True
    return changed


def cmd_gpu_dir(argv: Sequence[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ailab-containers gpu-dir")
    p.add_argument("--dest", required=True)
    p.add_argument("--bin", action="append", default=[])
    p.add_argument("--lib", action="append", default=[], help="a glob of library file names")
    p.add_argument("--lib-dir", action="append", default=[])
    args = p.parse_args(argv)
    changed = collect_gpu_dir(args.dest, args.bin, args.lib, args.lib_dir)
    print(json.dumps({"changed": changed}))
    return 0


# --- publish (role) -------------------------------------------------------------------------------------


def publish_plan(images: Sequence[Mapping], present: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(images to build, images to remove) given the digests already published (name -> digest; "" for an
    image whose stamp is missing or unreadable)."""
    wanted = {i["name"]: i["digest"] for i in images}
    build = sorted(n for n, d in wanted.items() if present.get(n) != d)
    remove = sorted(n for n in present if n not in wanted)
    return build, remove


def published(directory: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in os.listdir(directory):
        if entry.endswith(".sqfs") and not entry.startswith("."):
            name = entry[: -len(".sqfs")]
            try:
                with open(os.path.join(directory, f"{name}.json")) as fh:
                    out[name] = json.load(fh).get("digest", "")
            except (OSError, ValueError):
                out[name] = ""
    return out


def build_image(image: Mapping, sources: Sequence[str], workdir: str) -> str:
    """mmdebstrap a minbase ``suite`` with the packages from the node's own apt sources into a directory,
    fix it up for ch-run (ch-convert), pack it into SquashFS; the .sqfs path."""
    import shutil
    import subprocess

    root = os.path.join(workdir, "root")
    include = ",".join(image["packages"])
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory", "--quiet"]
    if include:
        cmd.append(f"--include={include}")
    cmd += [image["suite"], root, *sources]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Failed(f"mmdebstrap of {image['name']} failed: {result.stderr.strip()[-2000:]}")
    # ch-run binds the host's /dev; device nodes in the image would only stop users from unpacking it
    # (ch-convert to ch-image runs unsquashfs unprivileged).
    dev = os.path.join(root, "dev")
    for entry in os.listdir(dev):
        path = os.path.join(dev, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    sqfs = os.path.join(workdir, f"{image['name']}.sqfs")
    result = subprocess.run(
        ["ch-convert", "-i", "dir", "-o", "squash", root, sqfs], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise Failed(f"ch-convert of {image['name']} failed: {result.stderr.strip()[-2000:]}")
    return sqfs


def publish(
    config: Mapping, directory: str, sources: Sequence[str], tmp_root: str = "/var/tmp"
) -> dict[str, list[str]]:
    """Bring ``directory`` (the catalogue, writable here) to ``config``: leftovers of a failed run removed,
    changed images rebuilt and each put in place by a rename (readers see the old or the new file, never a
    half-written one), images no longer listed removed."""
    import shutil
    import tempfile

    os.makedirs(directory, mode=0o755, exist_ok=True)
    for entry in os.listdir(directory):
        if entry.startswith(".") and ".tmp" in entry:
            os.unlink(os.path.join(directory, entry))
    build, remove = publish_plan(config["images"], published(directory))
    by_name = {i["name"]: i for i in config["images"]}
    for name in build:
        image = by_name[name]
        workdir = tempfile.mkdtemp(prefix=f"ailab-catalogue-{name}-", dir=tmp_root)
        try:
            sqfs = build_image(image, sources, workdir)
            tmp = os.path.join(directory, f".{name}.sqfs.tmp")
            shutil.copyfile(sqfs, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(directory, f"{name}.sqfs"))
            stamp = dict(image, size=os.path.getsize(sqfs))
            tmp = os.path.join(directory, f".{name}.json.tmp")
            with open(tmp, "w") as fh:
                json.dump(stamp, fh, indent=2, sort_keys=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(directory, f"{name}.json"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    for name in remove:
        for suffix in (".sqfs", ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name + suffix))
    return {"built": build, "removed": remove}


def apt_sources(root: str = "/") -> list[str]:
    """The node's enabled apt source files: mmdebstrap takes them as they are, so the images come from the
    mirror the node itself uses and from nowhere else."""
    etc = os.path.join(root, "etc", "apt")
    out = [os.path.join(etc, "sources.list")] if os.path.isfile(os.path.join(etc, "sources.list")) else []
    parts = os.path.join(etc, "sources.list.d")
    if os.path.isdir(parts):
        out += sorted(os.path.join(parts, f) for f in os.listdir(parts) if f.endswith((".list", ".sources")))
    return out


def cmd_publish(argv: Sequence[str]) -> int:
    import argparse
    import shlex
    import subprocess
    import tempfile

    p = argparse.ArgumentParser(prog="ailab-containers publish")
    p.add_argument("--config", required=True, help="catalogue.json (role containers)")
    p.add_argument(
        "--mount", required=True, help="the command that mounts the catalogue's parent (MNT appended)"
    )
    p.add_argument("--subdir", required=True, help="the catalogue below the mounted directory")
    p.add_argument(
        "--background",
        metavar="UNIT",
        help="only compare the catalogue with its definition; if they differ, start UNIT (which runs this "
        "command without --background) and return at once",
    )
    args = p.parse_args(argv)
    with open(args.config) as fh:
        config = json.load(fh)
    sources = apt_sources()
    if not sources:
        raise Failed("no apt sources in /etc/apt -- fix: configure this host's package mirror first")
    mnt = tempfile.mkdtemp(prefix="ailab-catalogue-mnt-", dir="/run")
    try:
        subprocess.run([*shlex.split(args.mount), mnt], check=True, capture_output=True, text=True)
        try:
            directory = os.path.join(mnt, args.subdir.strip("/"))
            if args.background:
                present = published(directory) if os.path.isdir(directory) else {}
                build, remove = publish_plan(config["images"], present)
            else:
                result = publish(config, directory, sources)
        finally:
            subprocess.run(["umount", mnt], check=False)
    except subprocess.CalledProcessError as exc:
        raise Failed(f"mounting the catalogue failed: {(exc.stderr or '').strip()}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(mnt)
    if args.background:
        result = start_publish(args.background, build, remove)
        print(json.dumps(result))
        if result.get("previous_failure"):
            print(f"ailab-containers publish: {result['previous_failure']}", file=sys.stderr)
            return 1
        return 0
    print(json.dumps({"changed": bool(result["built"] or result["removed"]), **result}))
    return 0


def unit_state(unit: str) -> dict[str, str]:
    import subprocess

    out = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "Result", unit],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def background_action(build: Sequence[str], remove: Sequence[str], state: Mapping[str, str]) -> str:
    """What the converge does about the catalogue: "none" (it matches its definition), "running" (the unit
    is publishing now; the next converge looks again), "start" or "retry" (its last run failed)."""
    if not build and not remove:
        return "none"
    if state.get("ActiveState") in ("active", "activating", "reloading", "deactivating"):
        return "running"
    return "retry" if state.get("Result", "success") != "success" else "start"


def start_publish(unit: str, build: Sequence[str], remove: Sequence[str]) -> dict[str, object]:
    """Start ``unit`` without waiting when the catalogue differs from its definition.  A converge then costs
    no image build; a failed earlier run is started again and reported (journal tail) so the operator sees
    it."""
    import subprocess

    action = background_action(build, remove, unit_state(unit))
    out: dict[str, object] = {"changed": action in ("start", "retry"), "action": action,
                              "build": list(build), "remove": list(remove)}  # fmt: skip
    if action == "retry":
        journal = subprocess.run(
            ["journalctl", "-u", unit, "-n", "20", "--no-pager", "-o", "cat"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        out["previous_failure"] = (
            f"the last run of {unit} failed; started it again -- fix: read `journalctl -u {unit}`, remove "
            f"the cause, converge again:\n{journal.strip()}"
        )
        subprocess.run(["systemctl", "reset-failed", unit], check=False)
    if action in ("start", "retry"):
        subprocess.run(["systemctl", "start", "--no-block", unit], check=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: ailab-containers run|build|gpu-dir|publish ...", file=sys.stderr)
        return EXIT_BAD_INPUT
    command, rest = argv[0], argv[1:]
    prog = {"run": "ailab-ch-run", "build": "ailab-ch-build"}.get(command, "ailab-containers")
    try:
        if command == "run":
            return cmd_run(rest, load_config(), os.environ)
        if command == "build":
            return cmd_build(rest, load_config(), os.environ)
        if command == "gpu-dir":
            return cmd_gpu_dir(rest)
        if command == "publish":
            return cmd_publish(rest)
        print(
            f"{prog}: unknown command {command!r} -- fix: use run, build, gpu-dir or publish", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except Refused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Failed as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
