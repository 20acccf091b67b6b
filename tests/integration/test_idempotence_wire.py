"""Idempotent produce checks over raw requests (KAFKA-NOTES §4 step 4; RELIABILITY B2, B12, B13).

Real clients never send a sequence gap or a stale epoch on purpose, so these batches are made by
hand (kafkito.testing.wire: struct + CRC-32C, requests encoded by kio) and sent over TCP to a
real broker. Each test checks the error code *and* the log end offset, so that a refused or
deduplicated batch is proven not to have been appended.

Sections: InitProducerId (every version, KIP-360 bumps, transactional ids); the
sequence checks (B12); restarts with the snapshot intact, deleted, garbled, truncated or beyond
the log (B13); a duplicate answered only once its original is fsynced; power loss on the
FaultyFileSystem (B2) and periodic snapshots; expiry by producer.id.expiration.ms.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkito import Broker
from kafkito.broker import producers
from kafkito.broker.producers import SNAPSHOT_NAME, decode_snapshot
from kafkito.errors import ErrorCode
from kafkito.storage.fs import OsFileSystem
from kafkito.testing.faulty_fs import FaultyFileSystem
from kafkito.testing.wire import WireClient, record_batch

PRODUCE, LIST_OFFSETS, METADATA, INIT_PRODUCER_ID = 0, 2, 3, 22


class Wire:
    """A raw connection with helpers for one topic."""

    def __init__(self, client: WireClient, topic: str) -> None:
        self.client = client
        self.topic = topic

    def create_topic(self) -> None:
        metadata = self.client.request(
            METADATA, 4, {"topics": [{"name": self.topic}], "allow_auto_topic_creation": True}
        )
        assert metadata.topics[0].error_code == ErrorCode.none

    def init_pid(self, version: int = 4, producer_id: int = -1, epoch: int = -1) -> Any:
        return self.client.request(
            INIT_PRODUCER_ID,
            version,
            {
                "transactional_id": None,
                "transaction_timeout": 60000,
                "producer_id": producer_id,
                "producer_epoch": epoch,
            },
        )

    def new_pid(self) -> int:
        answer = self.init_pid()
        assert (answer.error_code, answer.producer_epoch) == (ErrorCode.none, 0)
        return int(answer.producer_id)

    def _produce_body(
        self, pid: int, epoch: int, seq: int, count: int, timestamp_ms: int | None = None
    ) -> dict[str, Any]:
        records = [(b"k", f"{pid}-{epoch}-{seq + i}".encode(), []) for i in range(count)]
        batch = record_batch(
            records,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=seq,
            base_timestamp_ms=timestamp_ms,
        )
        return {
            "transactional_id": None,
            "acks": -1,
            "timeout": 5000,
            "topic_data": [
                {"name": self.topic, "partition_data": [{"index": 0, "records": batch}]}
            ],
        }

    def send_produce(self, pid: int, epoch: int, seq: int, count: int = 1) -> int:
        """Send a Produce v9 without waiting; returns its correlation id."""
        return self.client.send(PRODUCE, 9, self._produce_body(pid, epoch, seq, count))

    def read_produce(self, correlation_id: int, version: int = 9) -> tuple[ErrorCode, int]:
        answered, response = self.client.read_response(PRODUCE, version)
        assert answered == correlation_id
        answer = response.responses[0].partition_responses[0]
        return ErrorCode(answer.error_code), int(answer.base_offset)

    def produce(
        self,
        pid: int,
        epoch: int,
        seq: int,
        count: int = 1,
        *,
        version: int = 9,
        timestamp_ms: int | None = None,
    ) -> tuple[ErrorCode, int]:
        correlation_id = self.client.send(
            PRODUCE, version, self._produce_body(pid, epoch, seq, count, timestamp_ms)
        )
        return self.read_produce(correlation_id, version)

    def end_offset(self) -> int:
        response = self.client.request(
            LIST_OFFSETS,
            1,
            {
                "replica_id": -1,
                "topics": [
                    {"name": self.topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}
                ],
            },
        )
        answer = response.topics[0].partitions[0]
        assert answer.error_code == ErrorCode.none
        return int(answer.offset)


@pytest.fixture
def wire(broker: str, topic_name: str) -> Iterator[Wire]:
    with WireClient(broker, timeout_s=10) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        yield w


OK = ErrorCode.none
OOS = ErrorCode.out_of_order_sequence_number
STALE = ErrorCode.invalid_producer_epoch


# -- InitProducerId ------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(5))
def test_init_producer_id_every_version_gives_a_fresh_pid_at_epoch_0(
    wire: Wire, version: int
) -> None:
    first = wire.init_pid(version)
    second = wire.init_pid(version)
    for answer in (first, second):
        assert answer.error_code == OK
        assert answer.producer_id >= 0
        assert answer.producer_epoch == 0
    assert first.producer_id != second.producer_id


@pytest.mark.parametrize("version", [3, 4])
def test_kip360_fields_without_transactional_id_get_a_new_pid(wire: Wire, version: int) -> None:
    """Apache Kafka ignores producer_id/epoch when there is no transactional id and hands out a
    new pid at epoch 0 (its TransactionCoordinator; tests/compat/test_differential_wire.py
    compares the two brokers): so does kafkito, for a current, a stale or an unknown pid."""
    pid = wire.new_pid()
    issued = {pid}
    for sent_pid, sent_epoch in ((pid, 0), (pid, 1), (pid, 0), (pid + 10**9, 0)):
        answer = wire.init_pid(version, sent_pid, sent_epoch)
        assert (answer.error_code, answer.producer_epoch) == (OK, 0)
        assert answer.producer_id >= 0 and answer.producer_id not in issued
        issued.add(answer.producer_id)
    # the producer may still bump its own epoch: sequences restart at 0 under the new epoch
    assert wire.produce(pid, 0, 0) == (OK, 0)
    assert wire.produce(pid, 2, 0) == (OK, 1)


@pytest.mark.parametrize("version", range(5))
def test_transactional_id_gets_a_pid_and_each_init_bumps_its_epoch(
    wire: Wire, version: int
) -> None:
    """Every version the clients send (aiokafka v0, librdkafka and kafka-python v4): a new
    transactional id gets a fresh pid at epoch 0, and each later InitProducerId bumps the epoch
    of the same pid (fencing the previous producer; tests/integration/test_transactions_*)."""

    def init() -> Any:
        return wire.client.request(
            INIT_PRODUCER_ID,
            version,
            {
                "transactional_id": f"txn-{version}",
                "transaction_timeout": 60000,
                "producer_id": -1,
                "producer_epoch": -1,
            },
        )

    first = init()
    assert (first.error_code, first.producer_epoch) == (ErrorCode.none, 0)
    again = init()
    assert (again.error_code, again.producer_id, again.producer_epoch) == (
        ErrorCode.none,
        first.producer_id,
        1,
    )
    assert wire.new_pid() != first.producer_id  # idempotent producers get other pids


# -- sequence checks -----------------------------------------------------------------------


def test_duplicate_of_each_of_the_last_five_batches_gets_its_original_offset(wire: Wire) -> None:
    pid = wire.new_pid()
    offsets = []
    seq = 0
    for count in (1, 3, 2, 4, 1, 2):  # six batches: the first falls out of the window
        code, base = wire.produce(pid, 0, seq, count)
        assert code == OK
        offsets.append((seq, count, base))
        seq += count
    end = wire.end_offset()
    assert end == 13
    for batch_seq, count, base in offsets[1:]:
        assert wire.produce(pid, 0, batch_seq, count) == (OK, base)
    assert wire.end_offset() == end, "a duplicate was appended"
    # the oldest batch is no longer remembered: its retry is out of order, not a duplicate
    first_seq, first_count, _ = offsets[0]
    assert wire.produce(pid, 0, first_seq, first_count)[0] == OOS
    assert wire.end_offset() == end
    # and the producer carries on where it was
    assert wire.produce(pid, 0, seq) == (OK, end)


@pytest.mark.parametrize("version", [3, 7, 9, 11])
def test_sequence_gap_is_out_of_order(wire: Wire, version: int) -> None:
    pid = wire.new_pid()
    assert wire.produce(pid, 0, 0, 2, version=version) == (OK, 0)
    assert wire.produce(pid, 0, 3, version=version)[0] == OOS  # 2 expected
    assert wire.produce(pid, 0, 1, version=version)[0] == OOS  # overlaps, not a duplicate
    assert wire.end_offset() == 2
    assert wire.produce(pid, 0, 2, version=version) == (OK, 2)


def test_stale_epoch_is_invalid_producer_epoch(wire: Wire) -> None:
    pid = wire.new_pid()
    assert wire.produce(pid, 0, 0) == (OK, 0)
    assert wire.produce(pid, 1, 0) == (OK, 1)  # epoch bumped by the producer (librdkafka)
    assert wire.produce(pid, 0, 1)[0] == STALE
    assert wire.produce(pid, 0, 0)[0] == STALE  # a retry from the old epoch is no duplicate
    assert wire.end_offset() == 2


def test_new_epoch_must_start_at_sequence_zero(wire: Wire) -> None:
    pid = wire.new_pid()
    assert wire.produce(pid, 0, 0, 3) == (OK, 0)
    assert wire.produce(pid, 1, 3)[0] == OOS
    assert wire.produce(pid, 1, 1)[0] == OOS
    assert wire.end_offset() == 3
    assert wire.produce(pid, 1, 0) == (OK, 3)
    # the new epoch starts a new window: a retry of the old epoch's batch is stale
    assert wire.produce(pid, 0, 0, 3)[0] == STALE


def test_unknown_producer_id_is_accepted_with_any_sequence(wire: Wire) -> None:
    pid = wire.new_pid()
    assert wire.produce(pid + 5000, 3, 12345) == (OK, 0)
    assert wire.produce(pid + 5000, 3, 12346) == (OK, 1)
    assert wire.produce(pid + 5000, 3, 12345)[0] == OK  # its duplicate
    assert wire.end_offset() == 2


def test_sequence_wraps_at_int32_max(wire: Wire) -> None:
    pid = wire.new_pid()
    top = 2**31 - 1
    assert wire.produce(pid + 7000, 0, top - 1, 2) == (OK, 0)  # unknown pid: any sequence
    assert wire.produce(pid + 7000, 0, 0, 2) == (OK, 2)
    assert wire.produce(pid + 7000, 0, top - 1, 2) == (OK, 0)  # duplicate across the wrap
    assert wire.end_offset() == 4


def test_negative_sequence_from_an_idempotent_producer_is_invalid_record(wire: Wire) -> None:
    pid = wire.new_pid()
    assert wire.produce(pid, 0, -1)[0] == ErrorCode.invalid_record
    assert wire.end_offset() == 0


# -- restarts (B13) ------------------------------------------------------------------------


def _fill(w: Wire) -> tuple[int, list[tuple[int, int, int]]]:
    pid = w.new_pid()
    batches = []
    seq = 0
    for count in (2, 1, 3, 1, 2, 1):
        code, base = w.produce(pid, 0, seq, count)
        assert code == OK
        batches.append((seq, count, base))
        seq += count
    return pid, batches


def _check_after_restart(w: Wire, pid: int, batches: list[tuple[int, int, int]]) -> None:
    end = w.end_offset()
    for seq, count, base in batches[1:]:
        assert w.produce(pid, 0, seq, count) == (OK, base)
    assert w.end_offset() == end
    next_seq = batches[-1][0] + batches[-1][1]
    assert w.produce(pid, 0, next_seq + 1)[0] == OOS  # a gap is still a gap
    assert w.produce(pid, 0, next_seq) == (OK, end)
    # pids are never reused across a restart
    assert w.new_pid() > pid


def _snapshot_files(data: Path) -> list[Path]:
    return sorted(data.rglob(SNAPSHOT_NAME))


@pytest.mark.parametrize("damage", ["none", "deleted", "garbled", "truncated", "too new"])
def test_producer_state_survives_a_restart_whatever_happened_to_the_snapshot(
    tmp_path: Path, topic_name: str, damage: str
) -> None:
    data = tmp_path / "data"
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        pid, batches = _fill(w)
    snapshots = _snapshot_files(data)
    assert len(snapshots) == 1, "a clean shutdown writes the snapshot"
    snapshot = snapshots[0]
    if damage == "deleted":
        snapshot.unlink()
    elif damage == "garbled":
        raw = bytearray(snapshot.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        snapshot.write_bytes(bytes(raw))
    elif damage == "truncated":
        snapshot.write_bytes(snapshot.read_bytes()[:7])
    elif damage == "too new":
        # a snapshot that claims more than the log holds (the log lost an unsynced tail)
        from kafkito.broker.producers import PartitionProducers, encode_snapshot

        snapshot.write_bytes(encode_snapshot(PartitionProducers(), 10**6))
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        _check_after_restart(Wire(client, topic_name), pid, batches)


def test_batches_after_the_snapshot_are_replayed(tmp_path: Path, topic_name: str) -> None:
    """An old snapshot plus the batches appended after it (what a crash leaves behind)."""
    data = tmp_path / "data"
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        pid = w.new_pid()
        assert w.produce(pid, 0, 0, 2) == (OK, 0)
    snapshot = _snapshot_files(data)[0]
    old = snapshot.read_bytes()
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        assert w.produce(pid, 0, 2, 3) == (OK, 2)
        assert w.produce(pid, 0, 5, 1) == (OK, 5)
    os.replace(snapshot, snapshot.with_suffix(".newer"))
    snapshot.write_bytes(old)  # the snapshot from before the last two batches
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        assert w.produce(pid, 0, 2, 3) == (OK, 2)
        assert w.produce(pid, 0, 5, 1) == (OK, 5)
        assert w.produce(pid, 0, 0, 2) == (OK, 0)
        assert w.end_offset() == 6
        assert w.produce(pid, 0, 6) == (OK, 6)


# -- a duplicate is answered only once its original is durable ------------------------------


class GatedFileSystem(OsFileSystem):
    """The real disk, with fsync held back while `gate` is clear (a slow disk on demand)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def fsync(self, fd: int) -> None:
        assert self.gate.wait(20), "the test never opened the gate"
        super().fsync(fd)


def test_duplicate_waits_for_the_original_fsync(tmp_path: Path, topic_name: str) -> None:
    """durability=always: a retry that races the original's fsync must not be acked first.
    The fsyncs run in the worker thread (a gate held on the loop's thread would stop the
    broker from reading the retry at all)."""
    fs = GatedFileSystem()
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs, fsync_on_loop=False)
    bootstrap = broker.start()
    try:
        with WireClient(bootstrap) as c1, WireClient(bootstrap, timeout_s=1) as c2:
            w1, w2 = Wire(c1, topic_name), Wire(c2, topic_name)
            w1.create_topic()
            pid = w1.new_pid()
            assert broker.core is not None
            plog = broker.core.topics.partition(topic_name, 0)
            assert plog is not None
            fs.gate.clear()
            original = w1.send_produce(pid, 0, 0)
            deadline = time.monotonic() + 10
            while plog.log_end_offset < 1:  # appended, its fsync held at the gate
                assert time.monotonic() < deadline
                time.sleep(0.01)
            retry = w2.send_produce(pid, 0, 0)
            with pytest.raises(TimeoutError):
                c2.read_frame()  # no answer while the original is not durable
            fs.gate.set()
            assert w1.read_produce(original) == (OK, 0)
            c2.sock.settimeout(10)
            assert w2.read_produce(retry) == (OK, 0)
            assert plog.log_end_offset == 1
    finally:
        fs.gate.set()
        broker.stop()


# -- power loss (FaultyFileSystem) ---------------------------------------------------------
#
# A periodic snapshot is fsynced, but with durability=interval the batches it describes may not
# be: after a power loss the snapshot can describe offsets the log no longer has. Trusting it
# would answer a retry of a lost batch as a "duplicate" with an offset that does not exist, an
# acknowledged write that is nowhere: silent loss. The broker must see that the snapshot is
# beyond the log end, rebuild from the log, and append the retry.


def _wait_for_snapshot(fs: FaultyFileSystem, path: str, offset: int) -> None:
    """Until the periodic snapshot at `path` covers `offset` (bounded)."""
    deadline = time.monotonic() + 15
    while True:
        if fs.exists(path):
            with contextlib.suppress(ValueError):
                if decode_snapshot(fs.read_file(path))[1] == offset:
                    return
        assert time.monotonic() < deadline, f"no snapshot at offset {offset} in {path}"
        time.sleep(0.02)


def test_snapshot_beyond_the_log_after_power_loss_is_not_trusted(
    tmp_path: Path, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producers.manager, "SNAPSHOT_INTERVAL_S", 0.05)
    data_dir = str(tmp_path / "data")
    fs = FaultyFileSystem(seed=11)
    settings = {"durability": "interval", "flush_interval_ms": 600_000}
    broker = Broker(port=0, data_dir=data_dir, fs=fs, **settings)
    bootstrap = broker.start()
    try:
        with WireClient(bootstrap) as client:
            w = Wire(client, topic_name)
            w.create_topic()
            pid = w.new_pid()
            for seq in range(3):
                assert w.produce(pid, 0, seq) == (OK, seq)
            assert broker.core is not None
            plog = broker.core.topics.partition(topic_name, 0)
            assert plog is not None
            path = os.path.join(plog.directory, SNAPSHOT_NAME)
            _wait_for_snapshot(fs, path, 3)  # fsynced; the three batches are not
            after = fs.crash("drop")
    finally:
        with contextlib.suppress(Exception):
            broker.stop()  # on a dead disk: every call fails
    assert decode_snapshot(after.read_file(path))[1] == 3, "the snapshot survived the crash"

    broker = Broker(port=0, data_dir=data_dir, fs=after, **settings)
    bootstrap = broker.start()
    try:
        with WireClient(bootstrap) as client:
            w = Wire(client, topic_name)
            assert w.end_offset() == 0, "the unsynced batches were expected to be lost"
            # the producer retries: every batch must be appended again, never answered with
            # an offset that is gone
            for seq in range(3):
                assert w.produce(pid, 0, seq) == (OK, seq)
            assert w.end_offset() == 3
            assert w.produce(pid, 0, 1) == (OK, 1)  # a real duplicate again
            assert w.produce(pid, 0, 5)[0] == OOS
    finally:
        broker.stop()


def test_periodic_snapshot_covers_the_log_end(
    tmp_path: Path, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producers.manager, "SNAPSHOT_INTERVAL_S", 0.05)
    fs = FaultyFileSystem(seed=3)
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs)
    with broker as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        pid = w.new_pid()
        assert w.produce(pid, 0, 0, 4) == (OK, 0)
        assert broker.core is not None
        plog = broker.core.topics.partition(topic_name, 0)
        assert plog is not None
        path = os.path.join(plog.directory, SNAPSHOT_NAME)
        _wait_for_snapshot(fs, path, 4)
        state, _ = decode_snapshot(fs.read_file(path))
        entry = state.entries[pid]
        assert (entry.epoch, entry.last_seq, entry.last_offset) == (0, 3, 3)


def test_idle_producer_expires_by_its_batch_timestamps(tmp_path: Path, topic_name: str) -> None:
    """producer.id.expiration.ms: a producer whose last batch is 2 days old is forgotten (at the
    next load here), so its next batch is taken with any sequence; a recent one is not."""
    data = tmp_path / "data"
    two_days_ago = int(time.time() * 1000) - 2 * producers.PRODUCER_ID_EXPIRATION_MS
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        old, recent = w.new_pid(), w.new_pid()
        assert w.produce(old, 0, 0, timestamp_ms=two_days_ago) == (OK, 0)
        assert w.produce(recent, 0, 0) == (OK, 1)
    with Broker(port=0, data_dir=str(data)) as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        assert w.produce(old, 0, 9) == (OK, 2)  # unknown again: any sequence
        assert w.produce(recent, 0, 9)[0] == OOS


def test_periodic_snapshot_follows_a_log_without_idempotent_producers(
    tmp_path: Path, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeps the replay after a crash short even when no producer is idempotent."""
    monkeypatch.setattr(producers.manager, "SNAPSHOT_INTERVAL_S", 0.05)
    monkeypatch.setattr(producers.manager, "SNAPSHOT_MAX_LAG_OFFSETS", 3)
    fs = FaultyFileSystem(seed=5)
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs)
    with broker as bootstrap, WireClient(bootstrap) as client:
        w = Wire(client, topic_name)
        w.create_topic()
        plain = record_batch([(None, b"v", [])] * 4)  # producer id -1
        body = {
            "transactional_id": None,
            "acks": -1,
            "timeout": 5000,
            "topic_data": [
                {"name": topic_name, "partition_data": [{"index": 0, "records": plain}]}
            ],
        }
        answer = client.request(PRODUCE, 9, body).responses[0].partition_responses[0]
        assert (answer.error_code, answer.base_offset) == (OK, 0)
        assert broker.core is not None
        plog = broker.core.topics.partition(topic_name, 0)
        assert plog is not None
        _wait_for_snapshot(fs, os.path.join(plog.directory, SNAPSHOT_NAME), 4)
