#!/usr/bin/python3
"""Ansible module: directories on CephFS with owner, mode and quota, through libcephfs (no mount needed)."""

from __future__ import annotations

import errno
import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: cephfs_dirs
short_description: Create CephFS directories with a numeric owner, a mode and a ceph.quota.max_bytes quota
description:
  - Talks to the file system through libcephfs (python3-cephfs) with a Ceph identity that holds the C(p)
    flag, so quotas can be set without mounting anything.
  - A missing directory is created with its owner, mode and quota.  For an existing one only the top-level
    directory is compared and corrected (owner and mode when I(enforce_owner), quota always); its contents
    are never touched.  Directories not listed are left alone (reported by I(report_unlisted_in)).
options:
  conf:
    description: ceph.conf to read (monitor addresses).
    type: path
    default: /etc/ceph/ceph.conf
  client:
    description: Ceph client id without C(client.), e.g. ailab-admin.
    type: str
    required: true
  keyring:
    description: Keyring of that client.
    type: path
  fs_name:
    description: Name of the CephFS.
    type: str
    default: cephfs
  dirs:
    description:
      - Directories, parents first. Each has C(path) (absolute, inside the CephFS), C(uid), C(gid), C(mode)
        (octal string) and optionally C(quota_bytes) (an int; 0 removes the quota; absent or null leaves
        it as it is).
    type: list
    elements: dict
    required: true
  enforce_owner:
    description: Reset owner and mode of existing directories (top level only, never recursive).
    type: bool
    default: true
  report_unlisted_in:
    description: List the entries of these directories that are not in I(dirs) (e.g. homes of removed users).
    type: list
    elements: str
    default: []
"""

RETURN = r"""
created: {description: directories created, type: list, returned: always}
fixed: {description: existing directories whose owner or mode was reset, type: list, returned: always}
quota_set: {description: directories whose quota changed, type: list, returned: always}
unlisted: {description: entries of report_unlisted_in that are not in dirs, type: list, returned: always}
"""

QUOTA_XATTR = "ceph.quota.max_bytes"


class NotFound(Exception):
    pass


class LibCephFS:
    """The few libcephfs calls the module needs (python3-cephfs)."""

    def __init__(self, conf, client, keyring, fs_name):
        import cephfs

        self._cephfs = cephfs
        self.fs = cephfs.LibCephFS(conffile=conf, auth_id=client)
        if keyring:
            self.fs.conf_set("keyring", keyring)
        self.fs.conf_set("client_mount_timeout", "60")
        self.fs.mount(filesystem_name=fs_name.encode())

    def close(self):
        self.fs.shutdown()

    def stat(self, path):
        try:
            st = self.fs.stat(path.encode())
        except self._cephfs.ObjectNotFound as exc:
            raise NotFound(path) from exc
        return st.st_mode & 0o7777, st.st_uid, st.st_gid

    def mkdir(self, path, mode):
        self.fs.mkdir(path.encode(), mode)

    def chmod(self, path, mode):
        self.fs.chmod(path.encode(), mode)

    def chown(self, path, uid, gid):
        self.fs.chown(path.encode(), uid, gid)

    def get_quota(self, path):
        try:
            value = self.fs.getxattr(path.encode(), QUOTA_XATTR)
        except self._cephfs.NoData:
            return 0
        return int(value.decode() or 0)

    def set_quota(self, path, value):
        self.fs.setxattr(path.encode(), QUOTA_XATTR, str(value).encode(), 0)

    def listdir(self, path):
        names = []
        handle = self.fs.opendir(path.encode())
        try:
            while True:
                entry = self.fs.readdir(handle)
                if entry is None:
                    break
                name = entry.d_name.decode()
                if name not in (".", ".."):
                    names.append(name)
        finally:
            self.fs.closedir(handle)
        return sorted(names)


def parse_mode(value):
    if isinstance(value, int):
        return value
    text = str(value)
    if not text or any(c not in "01234567" for c in text):
        raise ValueError(f"mode {value!r} is not an octal string such as '0700'")
    return int(text, 8)


def check_entry(entry):
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "/../" in f"{path}/":
        raise ValueError(f"path {path!r} is not an absolute path inside the CephFS")
    for key in ("uid", "gid"):
        if isinstance(entry.get(key), bool) or not isinstance(entry.get(key), int) or entry[key] < 0:
            raise ValueError(f"{path}: {key} {entry.get(key)!r} is not a numeric id")
    quota = entry.get("quota_bytes")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota < 0):
        raise ValueError(f"{path}: quota_bytes {quota!r} is not a byte count")
    return path.rstrip("/") or "/", parse_mode(entry.get("mode", "0755")), entry["uid"], entry["gid"], quota


def converge(fs, dirs, enforce_owner=True, check_mode=False, report_unlisted_in=()):
    result = {"created": [], "fixed": [], "quota_set": [], "unlisted": []}
    wanted = [check_entry(e) for e in dirs]
    for path, mode, uid, gid, quota in wanted:
        try:
            current = fs.stat(path)
        except NotFound:
            current = None
        if current is None:
            result["created"].append(path)
            if not check_mode:
                fs.mkdir(path, mode)
                fs.chown(path, uid, gid)
                fs.chmod(path, mode)  # mkdir's mode is filtered by the umask
                if quota:
                    fs.set_quota(path, quota)
            continue
        if enforce_owner and current != (mode, uid, gid):
            was = f"{current[1]}:{current[2]} {current[0]:04o}"
            result["fixed"].append({"path": path, "was": was, "now": f"{uid}:{gid} {mode:04o}"})
            if not check_mode:
                if current[1:] != (uid, gid):
                    fs.chown(path, uid, gid)
                if current[0] != mode:
                    fs.chmod(path, mode)
        if quota is not None and fs.get_quota(path) != quota:
            result["quota_set"].append({"path": path, "bytes": quota})
            if not check_mode:
                fs.set_quota(path, quota)
    listed = {p for p, *_ in wanted}
    for parent in report_unlisted_in:
        parent = parent.rstrip("/") or "/"
        try:
            names = fs.listdir(parent)
        except NotFound:
            continue
        for name in names:
            child = f"{parent.rstrip('/')}/{name}"
            if child not in listed:
                result["unlisted"].append(child)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "conf": {"type": "path", "default": "/etc/ceph/ceph.conf"},
            "client": {"type": "str", "required": True},
            "keyring": {"type": "path"},
            "fs_name": {"type": "str", "default": "cephfs"},
            "dirs": {"type": "list", "elements": "dict", "required": True},
            "enforce_owner": {"type": "bool", "default": True},
            "report_unlisted_in": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        for entry in p["dirs"]:
            check_entry(entry)
    except ValueError as exc:
        module.fail_json(msg=f"dirs: {exc}")
    if p["keyring"] and not os.path.exists(p["keyring"]):
        module.fail_json(msg=f"keyring {p['keyring']} does not exist")
    try:
        fs = LibCephFS(p["conf"], p["client"], p["keyring"], p["fs_name"])
    except ImportError:
        module.fail_json(msg="python3-cephfs is not installed on this host (apt install python3-cephfs)")
    except Exception as exc:
        module.fail_json(msg=f"cannot reach the CephFS {p['fs_name']} as client.{p['client']}: {exc}")
    try:
        result = converge(fs, p["dirs"], p["enforce_owner"], module.check_mode, p["report_unlisted_in"])
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or ''}: {os.strerror(exc.errno or errno.EIO)}")
    except Exception as exc:
        module.fail_json(msg=f"CephFS error: {type(exc).__name__}: {exc}")
    finally:
        fs.close()
    changed = bool(result["created"] or result["fixed"] or result["quota_set"])
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
