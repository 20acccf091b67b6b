"""The SASL user store: SCRAM credentials in a JSON file of mode 0600.

Format (version 1)::

    {"version": 1,
     "users": {"alice": {"SCRAM-SHA-256": {"salt": b64, "iterations": 8192,
                                           "stored_key": b64, "server_key": b64},
                         "SCRAM-SHA-512": {...}}}}

Only salted, hashed credentials are kept (RFC 5802 StoredKey and ServerKey), never a password;
PLAIN logins are checked by re-deriving StoredKey from the offered password. The file is
written atomically (temporary file created 0600, fsync, rename) and refused at load when group
or others may read it, as ssh does with private keys. The broker loads the file at start and
re-reads it when its size or mtime change, so `kafkito users add` takes effect without a restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import stat
from collections.abc import Iterable
from typing import Any

from kafkito.broker.auth.scram import DIGESTS, MIN_ITERATIONS, ScramCredential, derive_credential
from kafkito.errors import KafkitoError

__all__ = ["DEFAULT_ITERATIONS", "UserStore", "UserStoreError"]

log = logging.getLogger(__name__)

DEFAULT_ITERATIONS = 8192


class UserStoreError(KafkitoError):
    """The user store file is unreadable, malformed or too widely readable."""


class UserStore:
    """Users and their SCRAM credentials, backed by one file."""

    def __init__(self, path: str, users: dict[str, dict[str, ScramCredential]] | None = None):
        self.path = path
        self.users: dict[str, dict[str, ScramCredential]] = users or {}
        self._stamp: tuple[int, int] | None = None

    @classmethod
    def load(cls, path: str, *, missing_ok: bool = False) -> UserStore:
        """Read the store; raises UserStoreError (a missing file is empty if `missing_ok`)."""
        store = cls(path)
        try:
            store._read()
        except FileNotFoundError:
            if not missing_ok:
                raise UserStoreError(f"user store {path} does not exist") from None
        return store

    def _read(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            info = os.fstat(fd)
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UserStoreError(
                    f"user store {self.path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):o}); run: chmod 600 {self.path}"
                )
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read()
        finally:
            os.close(fd)
        self.users = _parse(raw, self.path)
        self._stamp = (info.st_mtime_ns, info.st_size)

    def reload_if_changed(self) -> None:
        """Re-read the file if it changed since the last read; keep the old users on error."""
        try:
            info = os.stat(self.path)
        except OSError:
            return
        if (info.st_mtime_ns, info.st_size) == self._stamp:
            return
        try:
            self._read()
        except (OSError, UserStoreError) as exc:
            log.error("keeping the previous users: cannot reload %s: %s", self.path, exc)
            self._stamp = (info.st_mtime_ns, info.st_size)

    def credential(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.users.get(user, {}).get(mechanism)

    def any_credential(self, user: str) -> tuple[str, ScramCredential] | None:
        """Some credential of `user` (the strongest), to check a PLAIN password against."""
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            found = self.credential(user, mechanism)
            if found is not None:
                return mechanism, found
        return None

    def set_password(
        self,
        user: str,
        password: str,
        *,
        mechanisms: Iterable[str] = ("SCRAM-SHA-256", "SCRAM-SHA-512"),
        iterations: int = DEFAULT_ITERATIONS,
    ) -> None:
        """Add or replace `user` with fresh random salts (call save() to keep it)."""
        if not user or "\0" in user:
            raise UserStoreError("a username must be non-empty and hold no NUL")
        if not password:
            raise UserStoreError("a password must not be empty")
        self.users[user] = {
            m: derive_credential(m, password, iterations=iterations) for m in mechanisms
        }

    def remove(self, user: str) -> bool:
        return self.users.pop(user, None) is not None

    def save(self) -> None:
        """Write the file atomically with mode 0600."""
        data = {
            "version": 1,
            "users": {
                user: {
                    m: {
                        "salt": _b64(c.salt),
                        "iterations": c.iterations,
                        "stored_key": _b64(c.stored_key),
                        "server_key": _b64(c.server_key),
                    }
                    for m, c in creds.items()
                }
                for user, creds in sorted(self.users.items())
            },
        }
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{self.path}.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _parse(raw: bytes, path: str) -> dict[str, dict[str, ScramCredential]]:
    try:
        data: Any = json.loads(raw)
        if data.get("version") != 1:
            raise UserStoreError(f"user store {path}: unknown version {data.get('version')!r}")
        users: dict[str, dict[str, ScramCredential]] = {}
        for user, creds in data["users"].items():
            users[user] = {}
            for mechanism, c in creds.items():
                if mechanism not in DIGESTS:
                    raise UserStoreError(f"user store {path}: unknown mechanism {mechanism!r}")
                credential = ScramCredential(
                    salt=base64.b64decode(c["salt"], validate=True),
                    iterations=int(c["iterations"]),
                    stored_key=base64.b64decode(c["stored_key"], validate=True),
                    server_key=base64.b64decode(c["server_key"], validate=True),
                )
                if credential.iterations < MIN_ITERATIONS:
                    raise UserStoreError(
                        f"user store {path}: {user!r} {mechanism} has {credential.iterations} "
                        f"iterations, below {MIN_ITERATIONS}"
                    )
                users[user][mechanism] = credential
        return users
    except UserStoreError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise UserStoreError(f"user store {path} is malformed: {exc!r}") from exc
