"""Admin operations and InitProducerId fsync the metadata log off the event loop.

Each fsync of the metadata log is recorded with the thread it ran on (a FileSystem that wraps
the real one); a CreateTopics, an AlterConfigs, a DeleteTopics and an idempotent producer's
InitProducerId, sent by real clients over TCP, must leave the broker's event-loop thread
(`kafkito-broker`) without any, while their effects are there: the topic exists, the config
holds, the records arrive.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.client import Admin, Writer
from kafkito.storage.fs import OsFileSystem

LOOP_THREAD = "kafkito-broker"


class RecordingFs(OsFileSystem):
    """The real file system; remembers which thread fsynced the metadata log."""

    def __init__(self) -> None:
        super().__init__()
        self.metalog_fds: set[int] = set()
        self.metalog_syncs: list[str] = []
        self._lock = threading.Lock()

    def open(self, path: str, *, create: bool) -> int:
        fd = super().open(path, create=create)
        with self._lock:
            if path.endswith("metadata.log"):
                self.metalog_fds.add(fd)
            else:
                self.metalog_fds.discard(fd)  # a number reused by another file
        return fd

    def fsync(self, fd: int) -> None:
        with self._lock:
            if fd in self.metalog_fds:
                self.metalog_syncs.append(threading.current_thread().name)
        super().fsync(fd)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[str, RecordingFs]:  # type: ignore[misc]
    fs = RecordingFs()
    with Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs) as bootstrap:
        yield bootstrap, fs


def test_admin_and_init_producer_id_fsync_off_the_loop(
    recorded: tuple[str, RecordingFs], topic_name: str
) -> None:
    bootstrap, fs = recorded
    before = len(fs.metalog_syncs)
    with Admin(brokers=bootstrap, timeout_s=15) as admin:
        assert admin.create_topic(topic_name, partitions=1)
        admin.create_partitions(topic_name, 2)
        assert admin.partitions(topic_name) == [0, 1]
        admin.alter_configs(topic_name, set={"retention.ms": "3600000"})
        assert admin.describe_configs(topic_name)["retention.ms"].value == "3600000"
        with Writer(topic_name, brokers=bootstrap) as writer:  # idempotent: InitProducerId
            deliveries = [writer.write(f"v{i}".encode()) for i in range(10)]
            writer.flush(15)
        assert all(d.offset >= 0 for d in deliveries)
        marks = admin.watermarks([(topic_name, 0), (topic_name, 1)])
        assert sum(high for _, high in marks.values()) == 10
        admin.delete_topics(topic_name)
        assert topic_name not in {t.name for t in admin.list_topics()}
    synced = fs.metalog_syncs[before:]
    assert synced, "the operations wrote no metadata record: the test no longer tests anything"
    on_loop = [name for name in synced if name == LOOP_THREAD]
    assert not on_loop, f"{len(on_loop)} of {len(synced)} metadata-log fsyncs on the event loop"
