"""B8, B9: a full disk and a failing fsync are never acknowledged; older data stays readable.

* A real full disk: the data directory on a 1 MiB tmpfs (needs root; skipped where mount is
  not permitted). Produce 1 KiB values until the disk fills.
* Injected ENOSPC (FaultyFileSystem: the segment write that crosses the budget is partial, as
  on a real full disk) and injected EIO from fsync.

In each case: the failing produce gets KAFKA_STORAGE_ERROR and no later produce to that log
succeeds (fail-stop, never a retried fsync); every value acknowledged before is read back at its
offset from the same broker (reads keep working); after a restart with the fault gone every
acknowledged value is still there and the log takes writes again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checker import History, read_partition
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker
from kafkito.storage.fs import FileSystem
from kafkito.testing.faulty_fs import FaultyFileSystem


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "retries": 0,
            "linger.ms": 1,
            "message.timeout.ms": 10000,
        }
    )


def _produce(producer: Producer, topic: str, history: History, values: list[bytes]) -> None:
    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        history.on_delivery(
            msg.value(), msg.offset() if err is None else None, None if err is None else err.name()
        )

    for value in values:
        history.on_send(value)
        producer.produce(topic, value, on_delivery=on_delivery)
        producer.flush(10)


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)


def _check_fail_stop(history: History, values: list[bytes]) -> None:
    """Errors are storage errors, and once one came, nothing after it was acknowledged."""
    assert history.errors, "the fault never reached the producer"
    assert set(history.errors.values()) == {"KAFKA_STORAGE_ERROR"}, history.errors
    first_error = min(values.index(v) for v in history.errors)
    assert all(v not in history.acked for v in values[first_error:])


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.timeout(90)
def test_real_full_disk_is_never_acknowledged(tmp_path: Path, topic_name: str) -> None:
    disk = tmp_path / "small"
    with _tmpfs(disk, "1m"):
        data = str(disk / "data")
        history = History()
        values = [f"{i:06d}".encode() + b"f" * 1024 for i in range(1400)]
        with Broker(port=0, data_dir=data) as bootstrap:
            _create(bootstrap, topic_name)
            producer = _producer(bootstrap)
            _produce(producer, topic_name, history, values)
            _check_fail_stop(history, values)
            assert len(history.acked) > 100
            assert not history.check(read_partition(bootstrap, topic_name), idempotent=True)
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        with Broker(port=0, data_dir=data) as bootstrap:
            assert not history.check(read_partition(bootstrap, topic_name), idempotent=True)
            after = History()
            _produce(_producer(bootstrap), topic_name, after, [b"space again"])
            assert list(after.acked) == [b"space again"]


def _fault_run(
    tmp_path: Path, topic: str, inject: Any
) -> tuple[History, FileSystem, str, list[bytes]]:
    fs = FaultyFileSystem()
    data = str(tmp_path / "data")
    history = History()
    values = [f"{i:05d}".encode() + b"e" * 300 for i in range(120)]
    with Broker(port=0, data_dir=data, fs=fs) as bootstrap:
        _create(bootstrap, topic)
        producer = _producer(bootstrap)
        _produce(producer, topic, history, values[:60])
        inject(fs)
        _produce(producer, topic, history, values[60:])
        _check_fail_stop(history, values)
        assert len(history.acked) >= 60
        assert not history.check(read_partition(bootstrap, topic), idempotent=True)
        del producer
    fs.clear_faults()
    return history, fs, data, values


@pytest.mark.timeout(60)
def test_injected_enospc_on_a_segment_write(tmp_path: Path, topic_name: str) -> None:
    def inject(fs: FaultyFileSystem) -> None:
        fs.fail_writes_after(5000, lambda path: path.endswith(".log") and "/logs/" in path)

    history, fs, data, _ = _fault_run(tmp_path, topic_name, inject)
    with Broker(port=0, data_dir=data, fs=fs) as bootstrap:
        assert not history.check(read_partition(bootstrap, topic_name), idempotent=True)
        after = History()
        _produce(_producer(bootstrap), topic_name, after, [b"space again"])
        assert list(after.acked) == [b"space again"]


@pytest.mark.timeout(60)
def test_injected_fsync_eio_stops_the_log(tmp_path: Path, topic_name: str) -> None:
    def inject(fs: FaultyFileSystem) -> None:
        fs.fail_fsyncs(lambda path: path.endswith(".log") and "/logs/" in path)

    history, fs, data, _ = _fault_run(tmp_path, topic_name, inject)
    # The broker stopped with a failed log: no clean-shutdown marker, so the next start recovers.
    assert not fs.exists(os.path.join(data, ".kafkito_cleanshutdown"))
    with Broker(port=0, data_dir=data, fs=fs) as bootstrap:
        assert not history.check(read_partition(bootstrap, topic_name), idempotent=True)


@pytest.mark.timeout(60)
def test_clean_stop_flushes_every_partition_and_an_fsync_failing_there_is_not_clean(
    tmp_path: Path, topic_name: str
) -> None:
    """A clean stop flushes the logs and writes the producer-state snapshots several at a time
    (storage.fs.parallel_map): every written partition gets its snapshot, and an fsync that
    fails at the stop for one partition leaves no clean-shutdown marker, so the next start
    recovers, and loses nothing."""
    fs = FaultyFileSystem()
    data = str(tmp_path / "data")
    partitions = 24
    with Broker(port=0, data_dir=data, fs=fs) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic_name, partitions, 1)])[topic_name].result(30)
        producer = _producer(bootstrap)
        for partition in range(partitions):
            producer.produce(topic_name, f"v{partition}".encode(), partition=partition)
        assert producer.flush(30) == 0
        failing = f"/{topic_name}-7."  # a partition's directory: <topic>-<n>.<topic id>
        fs.fail_fsyncs(lambda path: failing in path)
    marker = os.path.join(data, ".kafkito_cleanshutdown")
    assert not fs.exists(marker)
    logs = os.path.join(data, "logs")
    snapshots = {
        name.split(".")[0]
        for name in fs.listdir(logs)
        if name.startswith(f"{topic_name}-")
        and fs.exists(os.path.join(logs, name, "producer-state.snapshot"))
    }
    expected = {f"{topic_name}-{p}" for p in range(partitions) if p != 7}
    assert expected <= snapshots  # 7's own snapshot write may have failed too
    fs.clear_faults()
    with Broker(port=0, data_dir=data, fs=fs) as bootstrap:
        for partition in range(partitions):
            assert read_partition(bootstrap, topic_name, partition) == [
                (0, f"v{partition}".encode())
            ]
    assert fs.exists(marker)  # this stop was clean
