"""Action plugin: the directory's cluster CA, slapd's server certificate and the SSSD service account's
password, generated once on the Ansible controller into a private directory (``ailab_secrets_dir``, never
git) and returned to the play.

Runs on the controller by design (no ``delegate_to: localhost``, which an inventory may route over SSH).
Options:

``dir``        absolute path on the controller; created 0700, every file in it 0600.
``cluster``    the cluster's name (the CA's common name).
``names``      DNS names of the directory host (the certificate's subjectAltName, with ``addresses``).
``addresses``  its IP addresses (clients connect by address).

The CA and the password are made once and kept.  The server certificate is made again (same CA) when the
names or addresses change.  Returns ``ca_cert``, ``server_cert``, ``server_key``, ``service_password``
(the task must say ``no_log``); changed when it wrote a file.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
import subprocess
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DIR_MODE = 0o700
FILE_MODE = 0o600
CA_DAYS = 3650
SERVER_DAYS = 825
PASSWORD_CHARS = string.ascii_letters + string.digits


def san_text(names: list[str], addresses: list[str]) -> str:
    return ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{a}" for a in addresses)])


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AnsibleActionFail(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _write(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def ensure(directory: str, cluster: str, names: list[str], addresses: list[str]) -> bool:
    changed = False
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=DIR_MODE)
        changed = True
    if stat.S_IMODE(os.stat(directory).st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)
        changed = True
    old_umask = os.umask(0o077)
    try:
        ca_key, ca_crt = f"{directory}/ca.key", f"{directory}/ca.crt"
        if not (os.path.exists(ca_key) and os.path.exists(ca_crt)):
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key)
            _openssl(
                "req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", str(CA_DAYS),
                "-subj", f"/CN={cluster} directory CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", ca_crt,
            )  # fmt: skip
            for stale in ("server.crt", "server.san"):
                if os.path.exists(f"{directory}/{stale}"):
                    os.unlink(f"{directory}/{stale}")
            changed = True
        san = san_text(names, addresses)
        key, crt, san_file = f"{directory}/server.key", f"{directory}/server.crt", f"{directory}/server.san"
        have_san = _read(san_file).strip() if os.path.exists(san_file) else None
        if not os.path.exists(key) or not os.path.exists(crt) or have_san != san:
            if not os.path.exists(key):
                _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
            csr, ext = f"{directory}/server.csr", f"{directory}/server.ext"
            _write(
                ext,
                f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
                "basicConstraints=CA:FALSE\n",
            )
            _openssl("req", "-new", "-key", key, "-subj", f"/CN={names[0]}", "-out", csr)
            _openssl(
                "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial",
                str(secrets.randbits(63)), "-days", str(SERVER_DAYS), "-sha256", "-extfile", ext, "-out", crt,
            )  # fmt: skip
            os.unlink(csr)
            os.unlink(ext)
            _write(san_file, san + "\n")
            changed = True
        password = f"{directory}/service.password"
        if not os.path.exists(password):
            _write(password, "".join(secrets.choice(PASSWORD_CHARS) for _ in range(32)) + "\n")
            changed = True
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isfile(path) and stat.S_IMODE(os.stat(path).st_mode) != FILE_MODE:
                os.chmod(path, FILE_MODE)
    finally:
        os.umask(old_umask)
    return changed


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "cluster", "names", "addresses"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        directory = os.path.expanduser(str(args.get("dir") or ""))
        if not directory or not os.path.isabs(directory):
            raise AnsibleActionFail(
                f"dir must be an absolute path on the Ansible controller, got {directory!r} -- fix: set "
                "ailab_secrets_dir (group_vars/all) to an absolute directory"
            )
        names = [str(n) for n in args.get("names") or []]
        addresses = [str(a) for a in args.get("addresses") or []]
        if not names:
            raise AnsibleActionFail("names is empty -- fix: give the directory host's DNS names")
        result["changed"] = ensure(directory, str(args.get("cluster") or "ailab"), names, addresses)
        result["ca_cert"] = _read(f"{directory}/ca.crt")
        result["server_cert"] = _read(f"{directory}/server.crt")
        result["server_key"] = _read(f"{directory}/server.key")
        result["service_password"] = _read(f"{directory}/service.password").strip()
        return result
