"""OpenSSH public key lines as ``authorized_keys`` takes them (role accounts writes them one per line).

Pure: :func:`key_problem` says what is wrong with one ``ailab_users[].ssh_keys`` entry, or None.
"""

from __future__ import annotations

import base64
import binascii
import struct

# The key types OpenSSH 9.2 (Debian 12) accepts by default.  ssh-dss is disabled since OpenSSH 7.0.
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
PRIVATE_MARKERS = ("-----BEGIN", "PRIVATE KEY", "PuTTY-User-Key-File")
RFC4716_MARKER = "---- BEGIN SSH2 PUBLIC KEY ----"
PASTE_PUBLIC = (
    "paste the public key: the one line of the .pub file, e.g. 'ssh-ed25519 AAAAC3Nza... name@laptop'"
)


def _first_string(blob: bytes) -> bytes | None:
    """The first length-prefixed string of an SSH wire-format key blob (the key type)."""
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    if length > len(blob) - 4:
        return None
    return blob[4 : 4 + length]


def key_problem(entry: str) -> tuple[str, str] | None:
    """(message, fix) for an ssh_keys entry that is not one OpenSSH public key line, else None."""
    if any(marker in entry for marker in PRIVATE_MARKERS):
        return (
            "is a PRIVATE key: never paste private keys into the inventory (if it was committed or shared, "
            "treat it as compromised)",
            f"remove it, have the user make a new key pair (ssh-keygen -t ed25519), and {PASTE_PUBLIC}",
        )
    if RFC4716_MARKER in entry:
        return (
            "is a public key in the RFC 4716 (PuTTY/SSH2) format, which authorized_keys does not read",
            "convert it with ssh-keygen -i -f key.pub and paste the one line it prints",
        )
    if "\n" in entry or "\r" in entry:
        return (
            "spans several lines; authorized_keys takes one key per line",
            f"write each key as its own list entry, on one line: {PASTE_PUBLIC}",
        )
    fields = entry.split()
    if not fields:
        return ("is empty", PASTE_PUBLIC)
    if fields[0] not in KEY_TYPES:
        if any(f in KEY_TYPES for f in fields[1:]):
            return (
                "starts with authorized_keys options (from=, command=, ...); role accounts writes plain keys",
                "remove the options before the key type; per-user restrictions belong in the sshd role",
            )
        if fields[0] == "ssh-dss":
            return (
                "is a DSA key, which OpenSSH on Debian 12 refuses",
                "have the user make an ed25519 key (ssh-keygen -t ed25519) and paste its .pub line",
            )
        return (
            f"{fields[0][:40]!r} is not an OpenSSH public key type",
            f"{PASTE_PUBLIC}; known types: {', '.join(KEY_TYPES)}",
        )
    if len(fields) < 2:
        return ("has a key type but no key data", PASTE_PUBLIC)
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return ("has key data that is not base64 (cut off or mangled when copied?)", PASTE_PUBLIC)
    if _first_string(blob) != fields[0].encode():
        return (
            f"key data does not belong to a {fields[0]} key (cut off, or the type was edited)",
            PASTE_PUBLIC,
        )
    return None
