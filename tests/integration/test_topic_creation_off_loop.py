"""Creating partitions happens off the event loop, with one descriptor per partition.

A CreateTopics and a CreatePartitions, sent by a real client over TCP, create their partitions'
files in a worker thread (the loop thread, `kafkito-broker`, opens none of their `.log` files)
and leave one descriptor open per partition: the log file (index files are opened per use,
also by the loop's recovery-point checkpoints, and closed at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.client import Admin, Writer
from kafkito.storage.fs import OsFileSystem

LOOP_THREAD = "kafkito-broker"


class OpenRecordingFs(OsFileSystem):
    """The real file system; remembers which thread opened partition files, and which of
    those descriptors are still open."""

    def __init__(self) -> None:
        super().__init__()
        self.openers: list[str] = []
        self.held: dict[int, str] = {}
        self._lock = threading.Lock()

    def open(self, path: str, *, create: bool) -> int:
        fd = super().open(path, create=create)
        if f"{Path('logs')}/" in path:
            with self._lock:
                if path.endswith(".log"):  # index files are also opened by checkpoints
                    self.openers.append(threading.current_thread().name)
                self.held[fd] = path
        return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self.held.pop(fd, None)
        super().close(fd)


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[str, OpenRecordingFs]]:
    fs = OpenRecordingFs()
    with Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs) as bootstrap:
        yield bootstrap, fs


def test_partitions_are_created_off_the_loop_with_one_descriptor_each(
    recorded: tuple[str, OpenRecordingFs], topic_name: str
) -> None:
    bootstrap, fs = recorded
    with Admin(brokers=bootstrap, timeout_s=30) as admin:
        assert admin.create_topic(topic_name, partitions=200)
        admin.create_partitions(topic_name, 250)
        assert admin.partitions(topic_name) == list(range(250))
        with Writer(topic_name, brokers=bootstrap) as writer:
            deliveries = [writer.write(b"v", key=f"k{i}".encode()) for i in range(20)]
        assert all(d.offset >= 0 for d in deliveries)
    assert len(fs.openers) >= 250, "no partition file opened: the test tests nothing"
    on_loop = [name for name in fs.openers if name == LOOP_THREAD]
    assert not on_loop, f"{len(on_loop)} of {len(fs.openers)} partition files opened on the loop"
    deadline = time.monotonic() + 5
    while True:  # a checkpoint may hold an index file open for a moment: never for long
        with fs._lock:
            held = sorted(fs.held.values())
        if len(held) == 250 and all(path.endswith(".log") for path in held):
            break
        assert time.monotonic() < deadline, (len(held), held[:6])
        time.sleep(0.05)
