"""Transactions survive kill -9: a decided transaction is completed, an open one aborted,
and none is ever partly visible (issue #13, Durability).

The broker runs as a child process. Crashes are made by SIGKILL, or by the test fault point
KAFKITO_TEST_TXN_CRASH (kafkito.broker.txn.coordinator): `prepared` exits right after the commit
decision is journaled, `marked` right after the first of the transaction's markers is appended
(the second partition has none yet). The broker is restarted without the fault point on the
same port and data directory; librdkafka readers then check, at read_committed and
read_uncommitted, every partition, the LSO and the group's committed offset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from kafkito.broker.txn.coordinator import CRASH_ENV, CRASH_EXIT_CODE
from kafkito.testing.brokers import kafkito_process

# the transaction readers are shared with the integration tests (tests/integration/txnkit.py)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from txnkit import create_topic, read_all, watermarks

DEADLINE_S = 30.0
RECORDS = 5


def _read(bootstrap: str, topic: str, partition: int, isolation: str) -> list[str]:
    return read_all(bootstrap, topic, isolation, partition)


def _marks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """(high watermark, LSO) of one partition."""
    return (
        watermarks(bootstrap, topic, "read_uncommitted", partition)[1],
        watermarks(bootstrap, topic, "read_committed", partition)[1],
    )


def _create(bootstrap: str, topic: str) -> None:
    create_topic(bootstrap, topic, partitions=2)


def _open_transaction(bootstrap: str, topic: str, group: str) -> Producer:
    """A producer with RECORDS values in each of two partitions and offset 42 for `group`, all
    in one open transaction."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"tid-{topic}", "linger.ms": 0}
    )
    producer.init_transactions(DEADLINE_S)
    producer.begin_transaction()
    for partition in (0, 1):
        for i in range(RECORDS):
            producer.produce(topic, f"p{partition}-{i}".encode(), partition=partition)
    producer.flush(DEADLINE_S)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        producer.send_offsets_to_transaction(
            [TopicPartition(topic, 0, 42)], consumer.consumer_group_metadata(), DEADLINE_S
        )
    finally:
        consumer.close()
    return producer


def _committed_offset(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=DEADLINE_S)
        return int(tp.offset)
    finally:
        consumer.close()


def _expected(partition: int) -> list[str]:
    return [f"p{partition}-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("fault", ["prepared", "marked"])
def test_a_decided_commit_is_completed_after_a_crash(
    tmp_path: Path, topic_name: str, fault: str
) -> None:
    proc = kafkito_process(tmp_path / "data", env={CRASH_ENV: fault}).start()
    try:
        _create(proc.bootstrap, topic_name)
        producer = _open_transaction(proc.bootstrap, topic_name, "g-crash")
        with pytest.raises(KafkaException):
            producer.commit_transaction(5)  # the broker dies before it answers
        assert proc.proc is not None
        assert proc.proc.wait(DEADLINE_S) == CRASH_EXIT_CODE
        proc.proc = None
        proc.env = None
        proc.start()
        for partition in (0, 1):
            assert _read(proc.bootstrap, topic_name, partition, "read_committed") == _expected(
                partition
            )
            # one marker per partition: RECORDS values + 1, and nothing left open
            assert _marks(proc.bootstrap, topic_name, partition) == (RECORDS + 1, RECORDS + 1)
        assert _committed_offset(proc.bootstrap, topic_name, "g-crash") == 42
    finally:
        proc.kill()


def test_an_open_transaction_is_aborted_after_kill_9(tmp_path: Path, topic_name: str) -> None:
    proc = kafkito_process(tmp_path / "data").start()
    try:
        _create(proc.bootstrap, topic_name)
        producer = _open_transaction(proc.bootstrap, topic_name, "g-open")
        proc.kill()
        proc.start()
        for partition in (0, 1):
            assert _read(proc.bootstrap, topic_name, partition, "read_committed") == []
            assert _read(proc.bootstrap, topic_name, partition, "read_uncommitted") == _expected(
                partition
            )
            assert _marks(proc.bootstrap, topic_name, partition) == (RECORDS + 1, RECORDS + 1)
        assert _committed_offset(proc.bootstrap, topic_name, "g-open") < 0
        # the producer that lived through the restart is fenced: its commit cannot succeed
        with pytest.raises(KafkaException) as caught:
            producer.commit_transaction(DEADLINE_S)
        assert caught.value.args[0].fatal() or caught.value.args[0].txn_requires_abort()
        # and a clean restart changes nothing: the markers and the abort index persist
        proc.stop()
        proc.start()
        assert _read(proc.bootstrap, topic_name, 0, "read_committed") == []
        assert _marks(proc.bootstrap, topic_name, 0) == (RECORDS + 1, RECORDS + 1)
        index = sorted((tmp_path / "data").rglob("*.txnindex"))
        # one abort entry (34 bytes) in the segment of each partition (dirs are topic-N.<id>)
        assert [p.parent.name.split(".")[0] for p in index] == [
            f"{topic_name}-0",
            f"{topic_name}-1",
        ]
        assert all(p.stat().st_size == 34 for p in index)
    finally:
        proc.kill()
