"""B2: power loss, simulated by FaultyFileSystem under an in-process broker.

SIGKILL cannot test power loss (the page cache survives it), so the broker runs on an in-memory
disk that forgets every byte not fsynced. A confluent-kafka producer (acks=all, unique values)
sends from a thread; at a seeded random moment the power is cut (`crash()`: unsynced bytes are
dropped, zeroed, replaced by garbage, or partly kept), the old broker is stopped on its dead disk,
and a new broker starts on the disk as it came back. The partition is then read back and judged
with `checker.History`:

* durability=always: every acknowledged value is there, at its offset (nothing acked is lost);
* durability=interval: acknowledged values may be lost, but only a tail: what survives is a
  prefix of the log and passes every other rule.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from checker import History, read_partition
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker
from kafkito.storage.checkpoint import decode_checkpoint
from kafkito.testing.faulty_fs import CrashMode, FaultyFileSystem

SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))
MODES: list[CrashMode] = ["drop", "zeros", "garbage", "partial"]


def _run_until_power_loss(
    tmp_path: Path,
    topic: str,
    durability: str,
    mode: CrashMode,
    seed: int,
    topic_config: dict[str, str] | None = None,
) -> tuple[History, list[tuple[int, bytes]]]:
    rng = random.Random(seed)
    fs = FaultyFileSystem(seed=seed)
    data_dir = str(tmp_path / "data")
    settings: dict[str, Any] = {"durability": durability, "flush_interval_ms": 200}
    broker = Broker(port=0, data_dir=data_dir, fs=fs, **settings)
    bootstrap = broker.start()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"segment.bytes": str(32 * 1024), **(topic_config or {})}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
    history, stop = History(), threading.Event()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 5000,
            "retries": 0,
        }
    )

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        error = None if err is None else str(err)
        history.on_delivery(msg.value(), msg.offset() if err is None else None, error)

    def produce(producer: Producer) -> None:
        i = 0
        while not stop.is_set():
            value = f"{seed}-{i:07d}".encode() + b"p" * rng.randrange(200)
            history.on_send(value)
            try:
                producer.produce(topic, value, on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)
            i += 1
            if i % 20 == 0:
                time.sleep(0.002)

    thread = threading.Thread(target=produce, args=(producer,), daemon=True)
    thread.start()
    time.sleep(rng.uniform(0.5, 1.5))
    after = fs.crash(mode)  # the power goes; whatever the broker does next hits a dead disk
    stop.set()
    thread.join(10)
    producer.purge()
    producer.flush(5)
    del producer  # disconnect before stopping (see the report: stop waits on busy connections)
    gc.collect()
    broker.stop()
    with Broker(port=0, data_dir=data_dir, fs=after, **settings) as bootstrap2:
        read = read_partition(bootstrap2, topic)
    return history, read


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["drop", "zeros", "garbage", "partial"])
def test_power_loss_with_durability_always_loses_nothing_acknowledged(
    tmp_path: Path, topic_name: str, mode: CrashMode
) -> None:
    seed = SEED + MODES.index(mode)
    history, read = _run_until_power_loss(tmp_path, topic_name, "always", mode, seed)
    assert len(history.acked) > 50, history.summary()
    problems = history.check(read, idempotent=True)
    assert not problems, f"seed {seed} ({history.summary()}):\n" + "\n".join(problems[:20])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["drop", "garbage"])
def test_power_loss_with_durability_interval_loses_only_a_tail(
    tmp_path: Path, topic_name: str, mode: CrashMode
) -> None:
    seed = SEED + MODES.index(mode)
    history, read = _run_until_power_loss(tmp_path, topic_name, "interval", mode, seed)
    end = read[-1][0] + 1 if read else 0
    lost = {v: o for v, o in history.acked.items() if o >= end}
    history.acked = {v: o for v, o in history.acked.items() if o < end}
    problems = history.check(read, idempotent=True)
    assert not problems, f"seed {seed} ({history.summary()}):\n" + "\n".join(problems[:20])
    assert len(history.acked) > 0, f"seed {seed}: nothing survived ({len(lost)} lost)"


@pytest.mark.timeout(60)
def test_topic_flush_messages_1_makes_an_interval_broker_lose_nothing_acknowledged(
    tmp_path: Path, topic_name: str
) -> None:
    """Kafka's topic `flush.messages=1`: this topic acks after fsync on an interval broker."""
    seed = SEED + 10
    history, read = _run_until_power_loss(
        tmp_path, topic_name, "interval", "garbage", seed, {"flush.messages": "1"}
    )
    assert len(history.acked) > 50, history.summary()
    problems = history.check(read, idempotent=True)
    assert not problems, f"seed {seed} ({history.summary()}):\n" + "\n".join(problems[:20])


@pytest.mark.timeout(30)
def test_running_broker_checkpoints_its_recovery_point_and_idles_quietly(
    tmp_path: Path, topic_name: str
) -> None:
    fs = FaultyFileSystem(seed=SEED)
    settings: dict[str, Any] = {"recovery_checkpoint_interval_ms": 100}
    with Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs, **settings) as bootstrap:
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(30):
            producer.produce(topic_name, f"{i}".encode())
        assert producer.flush(10) == 0
        del producer
        time.sleep(0.5)
        path = str(tmp_path / "data" / "logs" / "recovery-point-offset-checkpoint")
        points = decode_checkpoint(fs.read_file(path))
        assert [p for name, p in points.items() if name.startswith(f"{topic_name}-0.")] == [30]
        quiet_from = fs.fsyncs
        time.sleep(0.5)
        assert fs.fsyncs == quiet_from, "an idle broker keeps writing"
