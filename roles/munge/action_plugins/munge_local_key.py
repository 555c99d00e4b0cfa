"""Action plugin: keep the cluster's munge key in a private file on the Ansible controller.

Action plugins run on the Ansible controller, so this needs neither ``delegate_to: localhost`` (which an
inventory may route over SSH) nor a window in which the key sits world-readable (``fetch`` writes 0644 and
cannot set a mode).  Options:

``dest``         path on the controller; its directory is created 0700, the key written 0400.
``src``          path of the key on the task's host (use ``delegate_to``), read when ``dest`` does not exist.
``content_b64``  the key as base64 (e.g. from ansible-vault): written to ``dest`` when it differs.

Once ``dest`` exists and no ``content_b64`` is given, it is never replaced: it is the cluster's key.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DIR_MODE = 0o700
KEY_MODE = 0o400
MIN_KEY_BYTES = 32  # munged refuses keys shorter than 32 bytes


def decide(existing: bytes | None, supplied: bytes | None) -> str:
    """What to do with the local copy: ``keep``, ``write`` (from ``supplied``) or ``fetch`` (from ``src``)."""
    if supplied is not None:
        return "keep" if existing == supplied else "write"
    return "keep" if existing is not None else "fetch"


def check_key(key: bytes, where: str) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise AnsibleActionFail(
            f"the munge key from {where} has {len(key)} bytes; munged needs at least {MIN_KEY_BYTES} "
            "(create one with `mungekey --create`)"
        )


def ensure_private_dir(path: str) -> bool:
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        changed = True
    if stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
        changed = True
    return changed


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` with mode 0400 from the first byte on (a temporary file renamed into place)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, KEY_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "src", "content_b64"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        dest = os.path.expanduser(str(args.get("dest") or ""))
        if not dest or not os.path.isabs(dest):
            raise AnsibleActionFail(
                f"dest must be an absolute path on the Ansible controller, got {dest!r} "
                "(set ailab_secrets_dir in group_vars/all)"
            )
        supplied = None
        if args.get("content_b64"):
            try:
                supplied = base64.b64decode(str(args["content_b64"]), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AnsibleActionFail(f"munge_key_b64 is not valid base64: {exc}") from exc
            check_key(supplied, "munge_key_b64")
        existing = None
        if os.path.exists(dest):
            with open(dest, "rb") as fh:
                existing = fh.read()

        action = decide(existing, supplied)
        changed = False
        if not self._task.check_mode:
            changed = ensure_private_dir(os.path.dirname(dest))
            if existing is not None and stat.S_IMODE(os.stat(dest).st_mode) != KEY_MODE:
                os.chmod(dest, KEY_MODE)
                changed = True
        if action == "write":
            if not self._task.check_mode:
                write_private(dest, supplied)  # type: ignore[arg-type]
            changed = True
        elif action == "fetch":
            src = args.get("src")
            if not src:
                raise AnsibleActionFail(f"{dest} does not exist and no src was given to read the key from")
            slurped = self._execute_module(
                module_name="ansible.builtin.slurp", module_args={"src": src}, task_vars=task_vars
            )
            if slurped.get("failed"):
                raise AnsibleActionFail(f"cannot read {src} on the key source host: {slurped.get('msg')}")
            key = base64.b64decode(slurped["content"])
            check_key(key, src)
            if not self._task.check_mode:
                write_private(dest, key)
            changed = True
        result.update(changed=changed, dest=dest, action=action)
        return result
