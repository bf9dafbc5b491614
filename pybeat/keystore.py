"""The keystore: secrets a config names as ``${KEY}``, kept out of the config files.

As Beats has it: ``pybeat keystore create|add KEY [--stdin] [--force]|list|remove KEY``, one
file (``<path.data>/pybeat.keystore``, or ``keystore.path``) with mode 0600, consulted by
``${KEY}`` before the environment. Values are never printed; ``list`` shows the keys.

At rest the file is ``PYBEAT-KEYSTORE-1`` and one base64 line: a 16-byte salt, a 12-byte nonce
and the AES-256-GCM encryption of the entries (JSON), under a key derived by scrypt (n=2^15,
r=8, p=1) from ``PYBEAT_KEYSTORE_PASSPHRASE``. Without a passphrase the key is derived from the
empty one: the file is then unreadable to a casual look but not to someone who has pybeat, as
with Beats' default keystore; set a passphrase where that matters. GCM authenticates the whole
file, so a wrong passphrase and a damaged file are both refused.

Owns: the file format, its permissions and atomic rewrite. Never logs or prints a value.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from typing import Iterator, Mapping

HEADER = b"PYBEAT-KEYSTORE-1"
FILENAME = "pybeat.keystore"
PASSPHRASE_ENV = "PYBEAT_KEYSTORE_PASSPHRASE"
_KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SALT, _NONCE = 16, 12
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class KeystoreError(Exception):
    """One line, naming the keystore file and what is wrong."""


def default_path(data_dir: str) -> str:
    return os.path.join(data_dir, FILENAME)


def passphrase_from_env(env: Mapping[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get(PASSPHRASE_ENV, "")


def _key(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.encode("utf-8"))


def check_perms(path: str) -> None:
    """``--strict.perms``: the keystore holds secrets, so only its owner may read it."""
    if os.name != "posix":
        return
    st = os.stat(path)
    if st.st_uid not in (0, os.geteuid()):
        raise KeystoreError(f"keystore {path!r} must be owned by the user running pybeat or root "
                            "(--strict.perms=false to skip)")
    if st.st_mode & 0o077:
        raise KeystoreError(f"keystore {path!r} can be read or written by group or others "
                            f"(mode {oct(stat.S_IMODE(st.st_mode))}); chmod 600 it, or run with --strict.perms=false")


def check_name(name: str) -> str:
    if not _KEY_NAME.match(name):
        raise KeystoreError(f"invalid key name {name!r}: use letters, digits, '_', '.' and '-', "
                            "starting with a letter or '_' (it is written ${NAME} in the config)")
    return name


class Keystore:
    """The entries of one keystore file, read and written whole."""

    def __init__(self, path: str, passphrase: str = "", entries: dict[str, str] | None = None):
        self.path = path
        self._passphrase = passphrase
        self._entries: dict[str, str] = dict(entries or {})

    @classmethod
    def open(cls, path: str, passphrase: str = "") -> "Keystore":
        try:
            with open(path, "rb") as fh:
                blob = fh.read(1 << 24)
        except FileNotFoundError:
            raise KeystoreError(f"keystore {path!r} does not exist: create it with 'pybeat keystore create'") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore {path!r}: {exc.strerror}") from None
        header, _, body = blob.partition(b"\n")
        if header != HEADER:
            raise KeystoreError(f"{path!r} is not a pybeat keystore")
        try:
            raw = base64.b64decode(body.strip(), validate=True)
        except ValueError:
            raise KeystoreError(f"keystore {path!r} is damaged (not base64)") from None
        if len(raw) < _SALT + _NONCE + 16:
            raise KeystoreError(f"keystore {path!r} is damaged (truncated)")
        salt, nonce, sealed = raw[:_SALT], raw[_SALT:_SALT + _NONCE], raw[_SALT + _NONCE:]
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plain = AESGCM(_key(passphrase, salt)).decrypt(nonce, sealed, HEADER)
        except InvalidTag:
            raise KeystoreError(
                f"cannot open keystore {path!r}: wrong passphrase ({PASSPHRASE_ENV}) or a damaged file"
            ) from None
        try:
            doc = json.loads(plain)
            entries = doc["entries"]
            if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise KeystoreError(f"keystore {path!r} is damaged (bad content)") from None
        return cls(path, passphrase, entries)

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> Iterator[str]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> str | None:
        return self._entries.get(name)

    def as_mapping(self) -> dict[str, str]:
        return dict(self._entries)

    def set(self, name: str, value: str) -> None:
        self._entries[check_name(name)] = value

    def remove(self, name: str) -> None:
        if name not in self._entries:
            raise KeystoreError(f"key {name!r} is not in keystore {self.path!r}")
        del self._entries[name]

    def save(self) -> None:
        """Write the whole file anew (mode 0600, directory 0700 if created), atomically."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
        plain = json.dumps({"version": 1, "entries": self._entries}).encode("utf-8")
        sealed = AESGCM(_key(self._passphrase, salt)).encrypt(nonce, plain, HEADER)
        blob = HEADER + b"\n" + base64.b64encode(salt + nonce + sealed) + b"\n"
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            tmp = f"{self.path}.tmp-{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise KeystoreError(f"cannot write keystore {self.path!r}: {exc.strerror}") from None


def create(path: str, passphrase: str = "", force: bool = False) -> Keystore:
    if os.path.exists(path) and not force:
        raise KeystoreError(f"keystore {path!r} exists already (--force to replace it with an empty one)")
    store = Keystore(path, passphrase)
    store.save()
    return store


def load_values(path: str, passphrase: str = "", strict_perms: bool = True) -> dict[str, str]:
    """The entries of the keystore at ``path`` for ``${KEY}``; none when there is no keystore."""
    if not os.path.exists(path):
        return {}
    if strict_perms:
        check_perms(path)
    return Keystore.open(path, passphrase).as_mapping()
