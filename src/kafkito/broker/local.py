"""The local broker that several processes on one machine share.

A running broker holds an exclusive `flock` on `<data dir>/broker.lock` (so two brokers never
write one data directory) and publishes its bootstrap address in `<data dir>/broker.addr`.
`kafkito.broker.embedded.attach_or_start()` is the rule the CLI and the client library follow
when no brokers are configured: if a broker holds the default data directory, connect to it;
otherwise start one in this process. It lives beside `Broker`, above the core, because the core
takes this module's lock: here below it, so that nothing imports in a circle.

The default data directory is `./.kafkito/data`, or `$KAFKITO_DATA_DIR`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass

from kafkito.errors import KafkitoError

LOCK_FILE = "broker.lock"
ADDRESS_FILE = "broker.addr"
DEFAULT_DATA_DIR = "./.kafkito/data"


def default_data_dir() -> str:
    return os.path.abspath(os.environ.get("KAFKITO_DATA_DIR") or DEFAULT_DATA_DIR)


class DataDirInUse(KafkitoError):
    """Another broker process holds this data directory."""


@dataclass
class DataDirLock:
    """The exclusive hold of a broker on its data directory."""

    path: str
    fd: int

    @classmethod
    def acquire(cls, data_dir: str) -> DataDirLock:
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_address(data_dir) or "unknown address"
            raise DataDirInUse(
                f"data directory {data_dir} is in use by another kafkito broker ({holder}); "
                "connect to it, or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def publish(self, bootstrap: str) -> None:
        """Write the address file atomically so readers never see half of it."""
        data_dir = os.path.dirname(self.path)
        tmp = os.path.join(data_dir, ADDRESS_FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(bootstrap + "\n")
        os.replace(tmp, os.path.join(data_dir, ADDRESS_FILE))

    def release(self) -> None:
        data_dir = os.path.dirname(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(data_dir, ADDRESS_FILE))
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def read_address(data_dir: str) -> str | None:
    try:
        with open(os.path.join(data_dir, ADDRESS_FILE)) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None
