"""B11: the broker dies after appending a batch but before answering; the client retries.

The broker runs as a child process with the test fault point KAFKITO_TEST_CRASH_AFTER_APPENDS=N
(kafkito.broker.producers): right after the N-th idempotent batch is appended, before its
answer and before any fsync, the process exits (os._exit, like kill -9: the page cache keeps the
bytes, no snapshot, no clean-shutdown marker). It is restarted without the fault point on the
same port and data directory. librdkafka reconnects and resends the unanswered batches with
their original sequences; the broker, which rebuilt its producer state from the log, must answer
each one already appended with its original offset and append the others once.

Pass criteria (RELIABILITY B11, §1.8): every record delivered without error, no fatal producer
error, each value stored exactly once and in order, and the offsets in the delivery reports are
the offsets where the values are stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kafkito.broker.producers import CRASH_ENV, CRASH_EXIT_CODE, PID_BLOCK
from kafkito.errors import ErrorCode
from kafkito.testing.brokers import BrokerProcess, kafkito_process
from kafkito.testing.wire import WireClient


def _producer(bootstrap: str, errors: list[str], **extra: Any) -> Producer:
    def on_error(err: KafkaError) -> None:
        if err.fatal() or err.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            errors.append(str(err))

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "message.timeout.ms": 60000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300,
            "error_cb": on_error,
            **extra,
        }
    )


def _stored(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "b11", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    out: list[tuple[int, bytes]] = []
    try:
        while len(out) < high:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(out)} of {high} records"
            assert msg.error() is None, msg.error()
            out.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return out


def _new_pid(bootstrap: str) -> int:
    with WireClient(bootstrap) as client:
        answer = client.request(
            22,
            4,
            {
                "transactional_id": None,
                "transaction_timeout": 60000,
                "producer_id": -1,
                "producer_epoch": -1,
            },
        )
    assert answer.error_code == ErrorCode.none
    return int(answer.producer_id)


def _log_tail(proc: BrokerProcess) -> str:
    """The end of the broker's log and whether it still runs, for failure messages."""
    running = proc.proc is not None and proc.proc.poll() is None
    tail = proc.log_path.read_text(errors="replace")[-3000:] if proc.log_path.exists() else ""
    return f"broker running={running}; log tail:\n{tail}"


def _wait_for_crash(proc: BrokerProcess) -> None:
    assert proc.proc is not None
    code = proc.proc.wait(timeout=30)
    assert code == CRASH_EXIT_CODE, f"broker exited with {code}, not at the fault point"
    proc.proc = None


def test_retry_of_an_appended_but_unanswered_batch_gets_the_original_offset(
    tmp_path: Path,
) -> None:
    topic = "b11-single"
    proc = kafkito_process(tmp_path / "data", env={CRASH_ENV: "3"}).start()
    try:
        errors: list[str] = []
        reports: list[tuple[bytes, int]] = []

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                reports.append((msg.value(), msg.offset()))

        producer = _producer(proc.bootstrap, errors, on_delivery=on_delivery)
        for i in range(2):
            producer.produce(topic, f"v{i}".encode(), partition=0)
            assert producer.flush(20) == 0
        producer.produce(topic, b"v2", partition=0)  # the third append kills the broker
        producer.poll(0)
        _wait_for_crash(proc)
        assert reports == [(b"v0", 0), (b"v1", 1)], "v2 must not have been acknowledged"

        proc.env = None
        proc.start()
        assert producer.flush(30) == 0, f"the retry was not delivered; {_log_tail(proc)}"
        for i in range(3, 6):
            producer.produce(topic, f"v{i}".encode(), partition=0)
        assert producer.flush(20) == 0
        assert errors == []
        assert reports == [(f"v{i}".encode(), i) for i in range(6)]
        assert _stored(proc.bootstrap, topic) == [(i, f"v{i}".encode()) for i in range(6)]
        # the producer id block in use at the crash is never handed out again
        assert _new_pid(proc.bootstrap) >= PID_BLOCK
    finally:
        proc.kill()


def test_pipelined_batches_around_a_crash_are_stored_once_in_order(tmp_path: Path) -> None:
    """Up to 5 requests in flight when the broker dies: some appended, some not even read."""
    topic = "b11-pipelined"
    count = 400
    proc = kafkito_process(tmp_path / "data", env={CRASH_ENV: "6"}).start()
    try:
        errors: list[str] = []
        reports: dict[bytes, int] = {}

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                reports[msg.value()] = msg.offset()

        producer = _producer(
            proc.bootstrap,
            errors,
            on_delivery=on_delivery,
            **{"linger.ms": 1, "batch.num.messages": 10, "max.in.flight": 5},
        )
        for i in range(count):
            producer.produce(topic, f"p{i:04d}".encode(), partition=0)
        producer.poll(0)
        _wait_for_crash(proc)
        proc.env = None
        proc.start()
        assert producer.flush(40) == 0, _log_tail(proc)
        assert errors == []
        stored = _stored(proc.bootstrap, topic)
        values = [v for _, v in stored]
        assert values == [f"p{i:04d}".encode() for i in range(count)], "lost or duplicated"
        assert {v: o for o, v in stored} == reports
    finally:
        proc.kill()
