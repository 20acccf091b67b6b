"""RawProducer's transactional calls resume themselves after a retriable error.

librdkafka leaves a commit that timed out in progress: the same call resumes it, and every
other transactional call fails with _CONFLICT until it is made. A flow that gave up on such a
commit and aborted could never begin another transaction (seen in a full test run under load).
Here the broker is stopped (SIGSTOP) through the first attempts of a commit and let go before
the last: the one call to `commit_transaction` must succeed, and a read_committed reader must
see the record.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from kafkito.client import Admin
from kafkito.client.raw_consumer import RawConsumer, TopicPartition
from kafkito.client.raw_producer import RawProducer
from kafkito.client.transaction import TXN_ATTEMPTS
from kafkito.testing.brokers import kafkito_process

ATTEMPT_S = 0.5
STOPPED_S = 1.2
"""The broker is stopped for more than two attempts and less than all of them."""


def test_a_commit_that_times_out_is_resumed_not_abandoned(tmp_path: Path) -> None:
    assert STOPPED_S < ATTEMPT_S * (TXN_ATTEMPTS - 1)
    broker = kafkito_process(tmp_path / "data").start()
    try:
        topic = f"resume-{uuid.uuid4().hex[:8]}"
        with Admin(brokers=broker.bootstrap, timeout_s=30) as admin:
            admin.create_topics([topic], 1)
        settings = {"transactional.id": f"resume-{uuid.uuid4().hex[:8]}", "linger.ms": 0}
        with RawProducer(brokers=broker.bootstrap, settings=settings) as producer:
            producer.init_transactions()
            producer.begin_transaction()
            producer.produce(topic, b"kept", b"k")
            producer.flush(10)  # the record is in; the commit's EndTxn meets the stopped broker
            assert broker.proc is not None
            os.kill(broker.proc.pid, signal.SIGSTOP)
            resume = threading.Timer(STOPPED_S, os.kill, (broker.proc.pid, signal.SIGCONT))
            resume.start()
            try:
                producer.commit_transaction(ATTEMPT_S)
            finally:
                resume.join()
            producer.begin_transaction()  # no _CONFLICT: the commit ended
            producer.abort_transaction()
        assert read_committed(broker.bootstrap, topic) == [b"kept"]
    finally:
        if broker.proc is not None:
            os.kill(broker.proc.pid, signal.SIGCONT)
        broker.kill()


def read_committed(bootstrap: str, topic: str) -> list[bytes | None]:
    """The values a read_committed consumer reads from partition 0 until its end."""
    settings = {"group.id": f"check-{uuid.uuid4().hex[:8]}", "enable.partition.eof": True}
    values: list[bytes | None] = []
    with RawConsumer(brokers=bootstrap, settings=settings) as consumer:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                if message.error() is None:
                    values.append(message.value())
                elif values or message.offset() > 0:  # end of the partition, past the data
                    return values
    return values
