"""B3-B5, B7 end to end: damage the files of a stopped broker, restart it, read with real clients.

The "crash image" is taken the way kill -9 leaves a disk: while the broker runs, after its acks
(durability=always, so every acked byte is in the file), the data directory is copied; the
running broker is then stopped and its directory replaced by the copy. The copy has no
clean-shutdown marker and a recovery point from the previous clean stop (the checkpoint interval
is set beyond the test), so the records of the second phase lie above the recovery point, the
first phase's below it. Then one kind of damage, a restart, and confluent-kafka reads:

* torn tail / random garbage / a flipped bit in the last batch (above the recovery point):
  the broker starts, the log ends at the last good batch, older records are intact, and the next
  produce gets the next offset (B3, B4a);
* deleted, zeroed or garbled `.index` / `.timeindex`: rebuilt; every record readable and
  ListOffsets by timestamp exact (B5);
* a flipped bit below the recovery point: that batch is never served (the fetch fails with
  KAFKA_STORAGE_ERROR); and if its index is gone too, so that the broker must rebuild from the
  damaged bytes, the broker refuses to start with CorruptLog naming the file (B4b).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest
from checker import read_partition
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker
from kafkito.errors import CorruptLog, ErrorCode
from kafkito.protocol.records import iter_batch_headers
from kafkito.storage.segment import index_paths
from kafkito.testing.wire import WireClient

SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))
SETTINGS = {"recovery_checkpoint_interval_ms": 10**9}
TS0 = (int(time.time()) - 3600) * 1000  # recent: retention.ms must not delete them


def _produce(bootstrap: str, topic: str, values: list[bytes], ts_start: int) -> list[int]:
    offsets: dict[bytes, int] = {}
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "batch.num.messages": 7}
    )

    def on_delivery(err: object, msg: object) -> None:
        assert err is None, err
        offsets[msg.value()] = msg.offset()  # type: ignore[attr-defined]

    for i, value in enumerate(values):
        # timestamps go up and down inside batches: lookups must look at records
        ts = ts_start + i * 10 + (7 if i % 3 == 0 else 0)
        producer.produce(topic, value, timestamp=ts, on_delivery=on_delivery)
    assert producer.flush(20) == 0
    return [offsets[v] for v in values]


@pytest.fixture
def crash_image(tmp_path: Path, topic_name: str) -> tuple[Path, list[bytes], int]:
    """(data dir holding a kill -9 image, every acked value in offset order, first unflushed)."""
    data = tmp_path / "data"
    rng = random.Random(SEED)
    values = [f"v{i:05d}-".encode() + rng.randbytes(rng.randrange(20, 300)) for i in range(600)]
    with Broker(port=0, data_dir=str(data), **SETTINGS) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        config = {"segment.bytes": str(16 * 1024)}
        admin.create_topics([NewTopic(topic_name, 1, 1, config=config)])[topic_name].result(10)
        assert _produce(bootstrap, topic_name, values[:400], TS0) == list(range(400))
    snapshot = tmp_path / "image"
    with Broker(port=0, data_dir=str(data), **SETTINGS) as bootstrap:
        assert _produce(bootstrap, topic_name, values[400:], TS0 + 4000) == list(range(400, 600))
        shutil.copytree(data, snapshot, ignore=shutil.ignore_patterns("broker.*"))
    shutil.rmtree(data)
    snapshot.rename(data)
    assert not (data / ".kafkito_cleanshutdown").exists()
    return data, values, 400


def _segments(data: Path) -> list[Path]:
    (partition_dir,) = [p for p in (data / "logs").iterdir() if p.is_dir()]
    return sorted(partition_dir.glob("*.log"))


def _batch_positions(path: Path) -> list[int]:
    return [pos for pos, _ in iter_batch_headers(path.read_bytes())]


def _flip(path: Path, position: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[position] ^= 0x10
    path.write_bytes(bytes(raw))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["torn_tail", "garbage", "flip_last_batch"])
def test_damaged_tail_above_the_recovery_point_is_cut(
    crash_image: tuple[Path, list[bytes], int], topic_name: str, damage: str
) -> None:
    data, values, _ = crash_image
    rng = random.Random(SEED)
    active = _segments(data)[-1]
    last = _batch_positions(active)[-1]
    if damage == "torn_tail":
        os.truncate(active, rng.randrange(last + 1, active.stat().st_size))
    elif damage == "garbage":
        with open(active, "ab") as f:
            f.write(rng.randbytes(rng.randrange(1, 1025)))
    else:
        _flip(active, rng.randrange(last + 61, active.stat().st_size))
    with Broker(port=0, data_dir=str(data), **SETTINGS) as bootstrap:
        read = read_partition(bootstrap, topic_name)
        kept = len(read)
        expected_kept = len(values) if damage == "garbage" else kept
        assert kept == expected_kept
        assert kept >= 400, f"seed {SEED}: records below the recovery point went"
        assert read == list(enumerate(values[:kept])), f"seed {SEED}"
        if damage != "garbage":
            assert kept < len(values)
        assert _produce(bootstrap, topic_name, [b"after"], TS0 + 10**6) == [kept]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["delete", "zero", "garble"])
def test_damaged_indexes_are_rebuilt_and_lookups_stay_exact(
    crash_image: tuple[Path, list[bytes], int], topic_name: str, damage: str
) -> None:
    data, values, _ = crash_image
    rng = random.Random(SEED)
    for segment in _segments(data):
        for path in map(Path, index_paths(str(segment))):
            if damage == "delete":
                path.unlink()
            elif damage == "zero":
                path.write_bytes(bytes(path.stat().st_size + 96))
            else:
                path.write_bytes(rng.randbytes(max(path.stat().st_size, 12)))
    with Broker(port=0, data_dir=str(data), **SETTINGS) as bootstrap:
        assert read_partition(bootstrap, topic_name) == list(enumerate(values))
        timestamps = [TS0 + i * 10 + (7 if i % 3 == 0 else 0) for i in range(400)]
        timestamps += [TS0 + 4000 + i * 10 + (7 if i % 3 == 0 else 0) for i in range(200)]
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lookup"})
        try:
            for target in [TS0, *(TS0 + rng.randrange(0, 6100) for _ in range(15))]:
                expected = next((o for o, ts in enumerate(timestamps) if ts >= target), -1)
                (found,) = consumer.offsets_for_times(
                    [TopicPartition(topic_name, 0, target)], timeout=10
                )
                assert found.offset == expected, f"target {target}, seed {SEED}"
        finally:
            consumer.close()


@pytest.mark.timeout(60)
def test_bit_flip_below_the_recovery_point_is_never_served(
    crash_image: tuple[Path, list[bytes], int], topic_name: str
) -> None:
    data, _, _ = crash_image
    older = _segments(data)[1]
    _flip(older, 70)  # inside the first batch's records
    base = int(older.stem)
    broker = Broker(port=0, data_dir=str(data), **SETTINGS)
    try:
        bootstrap = broker.start()
    except CorruptLog as exc:
        # Refusing to start is one of the two answers B4b allows: the producer-state rebuild
        # read the damaged batch while loading. The message must say where and what to do.
        message = str(exc)
        assert str(older) in message
        assert "restore" in message
        return
    try:
        with WireClient(bootstrap) as wire:
            answer = wire.request(
                1,
                11,
                {
                    "replica_id": -1,
                    "max_wait": 0,
                    "min_bytes": 1,
                    "max_bytes": 1 << 20,
                    "isolation_level": 0,
                    "session_id": 0,
                    "session_epoch": -1,
                    "topics": [
                        {
                            "topic": topic_name,
                            "partitions": [
                                {
                                    "partition": 0,
                                    "current_leader_epoch": -1,
                                    "fetch_offset": base,
                                    "log_start_offset": -1,
                                    "partition_max_bytes": 1 << 20,
                                }
                            ],
                        }
                    ],
                    "forgotten_topics_data": [],
                    "rack_id": "",
                },
            )
        (partition,) = answer.responses[0].partitions
        assert partition.error_code == ErrorCode.kafka_storage_error
        assert not partition.records
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "flip"})
        try:
            consumer.assign([TopicPartition(topic_name, 0, base)])
            for _ in range(6):
                msg = consumer.poll(0.5)
                assert msg is None or msg.error(), f"damaged batch served: offset {msg.offset()}"
        finally:
            consumer.close()
    finally:
        broker.stop()
    for path in map(Path, index_paths(str(older))):
        path.unlink()
    with pytest.raises(CorruptLog, match=str(older)):
        Broker(port=0, data_dir=str(data), **SETTINGS).start()
