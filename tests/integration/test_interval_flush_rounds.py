"""durability=interval: the housekeeping fsyncs every partition that is due in one group-commit
round (its fsyncs in parallel), not a round per partition one after another."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker

PARTITIONS = 12


def test_due_partitions_share_one_round(tmp_path: Path, topic_name: str) -> None:
    broker = Broker(
        port=0, data_dir=str(tmp_path / "data"), durability="interval", flush_interval_ms=300
    )
    with broker as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic_name, PARTITIONS)])[topic_name].result(15)
        assert broker.core is not None
        committer = broker.core.committer
        logs = [broker.core.topics.partition(topic_name, i) for i in range(PARTITIONS)]
        assert all(plog is not None for plog in logs)
        time.sleep(1.0)  # the new partitions' first flushes (directories) are behind us
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        for i in range(PARTITIONS):
            producer.produce(topic_name, b"v", partition=i)
        assert producer.flush(15) == 0
        before = committer.inline_rounds + committer.thread_rounds
        deadline = time.monotonic() + 10
        while not all(p.durable_offset == p.log_end_offset == 1 for p in logs if p):
            assert time.monotonic() < deadline, [p.durable_offset for p in logs if p]
            time.sleep(0.02)
        rounds = committer.inline_rounds + committer.thread_rounds - before
        # the writes may straddle a flush (300 ms apart) on a loaded machine: a few rounds at
        # most, where a round per partition made twelve
        assert 1 <= rounds <= 3, rounds
