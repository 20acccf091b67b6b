"""Compaction and transactions: an aborted record never makes the cleaner drop the committed
record of its key, and no segment above the last stable offset is cleaned (Kafka's rules)."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from txnkit import DEADLINE_S

from kafkito import Broker
from kafkito.storage.cleaner import CleanerState, plan_cleaning

CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
}


def _committed_keys(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compaction-reader",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[str, str]] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                return out
            out.append((msg.key().decode(), msg.value().decode()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition after {out}")


def test_aborted_records_never_shadow_committed_ones(tmp_path: Path, topic_name: str) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "data"), log_cleaner_backoff_ms=100) as bs:
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(topic_name, 1, 1, config=CONFIGS)])[topic_name].result(30)
        txn = Producer({"bootstrap.servers": bs, "transactional.id": f"c-{topic_name}"})
        txn.init_transactions(DEADLINE_S)
        plain = Producer({"bootstrap.servers": bs, "linger.ms": 0})
        for value, commit in (("v1", True), ("v2", False)):
            txn.begin_transaction()
            txn.produce(topic_name, key=b"k", value=value.encode(), partition=0)
            txn.flush(DEADLINE_S)
            (txn.commit_transaction if commit else txn.abort_transaction)(DEADLINE_S)
            time.sleep(0.15)  # past segment.ms: the next write rolls the segment
        deadline = time.monotonic() + 60
        written = 2 + 2  # two records, two markers
        while True:  # fillers of one key roll segments and give the cleaner work
            plain.produce(topic_name, key=b"f", value=str(written).encode(), partition=0)
            plain.flush(DEADLINE_S)
            written += 1
            time.sleep(0.12)
            seen = _committed_keys(bs, topic_name)
            if len([k for k, _ in seen if k == "f"]) < written - 5:
                break  # older fillers were cleaned away: passes have run over the txn range
            assert time.monotonic() < deadline, f"never compacted: {seen}"
        assert ("k", "v1") in seen, seen
        assert ("k", "v2") not in seen


def test_no_segment_above_the_lso_is_planned(tmp_path: Path, topic_name: str) -> None:
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), log_cleaner_enable=False)
    broker.start()
    try:
        bs = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(topic_name, 1, 1, config=CONFIGS)])[topic_name].result(30)
        txn = Producer({"bootstrap.servers": bs, "transactional.id": f"l-{topic_name}"})
        txn.init_transactions(DEADLINE_S)
        plain = Producer({"bootstrap.servers": bs, "linger.ms": 0})
        txn.begin_transaction()
        txn.produce(topic_name, key=b"k", value=b"open", partition=0)
        txn.flush(DEADLINE_S)
        for i in range(4):
            time.sleep(0.15)
            plain.produce(topic_name, key=b"f", value=str(i).encode(), partition=0)
            plain.flush(DEADLINE_S)
        assert broker.core is not None
        plog = broker.core.topics.partition(topic_name, 0)
        assert plog is not None and len(plog.segments) >= 3
        txns = broker.core.transactions
        lso = txns.last_stable_offset(plog)
        assert lso == 0
        now = plog._clock_ms()
        assert plan_cleaning(plog, CleanerState(), now, force=True) is not None
        assert plan_cleaning(plog, CleanerState(), now, force=True, stable_offset=lso) is None
        txn.commit_transaction(DEADLINE_S)
        lso = txns.last_stable_offset(plog)
        assert lso == plog.high_watermark
        assert plan_cleaning(plog, CleanerState(), now, force=True, stable_offset=lso) is not None
    finally:
        broker.stop()


def test_deleted_records_take_their_abort_entries_and_index_files(
    tmp_path: Path, topic_name: str
) -> None:
    """An aborted transaction's `.txnindex` entry lives in the segment of its marker; once
    DeleteRecords (or retention) removes that segment, the entry and the file go too, and
    read_committed readers of what is left are unaffected."""
    import asyncio

    from confluent_kafka import TopicPartition

    broker = Broker(port=0, data_dir=str(tmp_path / "data"))
    bs = broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": bs})
        configs = {"segment.ms": "100"}
        admin.create_topics([NewTopic(topic_name, 1, 1, config=configs)])[topic_name].result(30)
        txn = Producer({"bootstrap.servers": bs, "transactional.id": f"d-{topic_name}"})
        txn.init_transactions(DEADLINE_S)
        for value, commit in (("a", False), ("b", True)):
            txn.begin_transaction()
            txn.produce(topic_name, value.encode(), partition=0)
            txn.flush(DEADLINE_S)
            (txn.commit_transaction if commit else txn.abort_transaction)(DEADLINE_S)
            time.sleep(0.15)  # past segment.ms: the next write rolls the segment
        assert broker.core is not None and broker._loop is not None
        core, loop = broker.core, broker._loop
        txns = core.transactions

        def sync() -> int:
            future = asyncio.run_coroutine_threadsafe(txns.sync_indexes_off_loop(), loop)
            return int(future.result(DEADLINE_S))

        sync()
        files = sorted((tmp_path / "data").rglob("*.txnindex"))
        assert [f.stat().st_size for f in files] == [34]  # "a" aborted: one entry
        assert [v for v in _values(bs, topic_name)] == ["b"]
        # delete everything before "b" (offset 2): the segments of "a" and its marker go
        future = admin.delete_records([TopicPartition(topic_name, 0, 2)])
        next(iter(future.values())).result(30)
        sync()
        assert sorted((tmp_path / "data").rglob("*.txnindex")) == []
        plog = core.topics.partition(topic_name, 0)
        assert plog is not None and txns.aborted_ranges(plog) == []
        assert [v for v in _values(bs, topic_name)] == ["b"]
    finally:
        broker.stop()


def _values(bootstrap: str, topic: str) -> list[str]:
    from txnkit import read_all

    return read_all(bootstrap, topic, "read_committed")
