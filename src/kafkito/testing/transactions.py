"""Transactions for tests of the transaction admin views: one open, one committed, one aborted.

`three_transactions(bootstrap)` makes them with real transactional producers
(`kafkito.client.RawProducer` with a `transactional.id`) on a fresh two-partition topic and
yields what was made; on exit the open one is aborted and the producers closed. The admin API,
the CLI and the console tests look at the same scene on kafkito's broker and Apache Kafka.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from kafkito.client.admin import Admin
from kafkito.client.raw_producer import RawProducer

__all__ = ["TxnScene", "three_transactions"]

OPEN_TIMEOUT_MS = 120_000
"""The open transaction's timeout: longer than any test that looks at it."""


@dataclass
class TxnScene:
    """What `three_transactions` made: the topic (2 partitions) and the transactional ids.

    Records: `open_id` wrote one to partition 0 first (offset 0) and left it open;
    `committed_id` wrote one to partitions 0 and 1 and committed; `aborted_id` wrote one to
    partition 1 and aborted.
    """

    topic: str
    open_id: str
    committed_id: str
    aborted_id: str
    producers: dict[str, RawProducer] = field(default_factory=dict)

    @property
    def ids(self) -> tuple[str, str, str]:
        return (self.open_id, self.committed_id, self.aborted_id)


def _producer(bootstrap: str, transactional_id: str, timeout_ms: int) -> RawProducer:
    producer = RawProducer(
        brokers=bootstrap,
        settings={"transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms},
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    return producer


@contextlib.contextmanager
def three_transactions(bootstrap: str, prefix: str = "txv") -> Iterator[TxnScene]:
    """One open, one committed and one aborted transaction on a new topic (see TxnScene)."""
    suffix = uuid.uuid4().hex[:8]
    scene = TxnScene(
        f"{prefix}-{suffix}", f"open-{suffix}", f"committed-{suffix}", f"aborted-{suffix}"
    )
    with Admin(brokers=bootstrap) as admin:
        admin.create_topic(scene.topic, partitions=2)
    try:
        opened = scene.producers["open"] = _producer(bootstrap, scene.open_id, OPEN_TIMEOUT_MS)
        opened.produce(scene.topic, b"open", partition=0)
        assert opened.flush(30) == 0, "the open transaction's record was not delivered"
        done = scene.producers["committed"] = _producer(bootstrap, scene.committed_id, 60_000)
        done.produce(scene.topic, b"committed", partition=0)
        done.produce(scene.topic, b"committed", partition=1)
        done.commit_transaction(30)
        aborted = scene.producers["aborted"] = _producer(bootstrap, scene.aborted_id, 60_000)
        aborted.produce(scene.topic, b"aborted", partition=1)
        assert aborted.flush(30) == 0, "the aborted transaction's record was not delivered"
        aborted.abort_transaction(30)
        yield scene
    finally:
        if "open" in scene.producers:
            with contextlib.suppress(Exception):
                scene.producers["open"].abort_transaction(30)
        for producer in scene.producers.values():
            producer.close(10)
