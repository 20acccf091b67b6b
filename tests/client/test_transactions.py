"""writer.transaction() on kafkito's broker and on Apache Kafka: what read_committed and
read_uncommitted Readers see after commits, aborts, exceptions and fencing.

Each test runs on both brokers (`txn_cluster`); the observations are asserted against the
expected values on each, so a difference between the brokers fails one leg.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.aio import TopicWriter as AsyncTopicWriter
from kafkito.aio import Writer as AsyncWriter
from kafkito.client import Admin, Reader, TopicWriter, Writer
from kafkito.client.config import ReaderConfig, WriterConfig
from kafkito.client.errors import ClientError, ConfigError, ProducerFencedError
from kafkito.testing.apache_kafka import ApacheKafka

END = b"end"


@pytest.fixture(params=["kafkito", "kafka"])
def txn_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "kafka":
        kafka: ApacheKafka = request.getfixturevalue("kafka_reference")
        yield kafka.bootstrap
        return
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic(txn_cluster: str) -> str:
    name = f"tx-{uuid.uuid4().hex[:10]}"
    with Admin(brokers=txn_cluster, timeout_s=30) as admin:
        admin.create_topics([name], 1)
    return name


def txn_id() -> str:
    return f"txn-{uuid.uuid4().hex[:10]}"


def read_until_end(
    bootstrap: str, topic: str, isolation: str, deadline_s: float = 30
) -> list[bytes]:
    """Every value a kafkito Reader at `isolation` reads, up to and including END (written
    last, committed): what such a reader sees of everything written before it."""
    seen: list[bytes] = []
    reader = Reader(topic, {"brokers": [bootstrap], "isolation_level": isolation})

    def handle(value: bytes | None) -> None:
        seen.append(value or b"")
        if value == END:
            reader.stop()

    timer = threading.Timer(deadline_s, reader.stop)
    timer.start()
    try:
        reader.read_value(handle, handle_signals=False)
    finally:
        timer.cancel()
        reader.close()
    assert seen and seen[-1] == END, f"no end marker read at {isolation}: {seen}"
    return seen[:-1]


def write_end(bootstrap: str, topic: str) -> None:
    with (
        Writer(topic, brokers=bootstrap, transactional_id=txn_id()) as writer,
        writer.transaction(),
    ):
        writer.write(END)


def test_commit_is_visible_abort_is_not(txn_cluster: str, topic: str) -> None:
    with Writer(topic, brokers=txn_cluster, transactional_id=txn_id()) as writer:
        with writer.transaction() as txn:
            first = writer.write(b"c1")
            writer.write_many([b"c2", b"c3"])
        assert (first.partition, first.offset) == (-1, -1)  # known at the commit only
        assert sorted(d.offset for d in txn.deliveries) == [0, 1, 2]

        def changed_mind() -> None:
            with writer.transaction():
                writer.write(b"a1")
                writer.write(b"a2")
                writer.flush()  # on the broker, so read_uncommitted sees them
                raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError, match="changed my mind"):
            changed_mind()
        with writer.transaction():
            writer.write(b"c4")
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == [b"c1", b"c2", b"c3", b"c4"]
    everything = [b"c1", b"c2", b"c3", b"a1", b"a2", b"c4"]
    assert read_until_end(txn_cluster, topic, "read_uncommitted") == everything


def test_a_second_writer_with_the_same_id_fences_the_first(txn_cluster: str, topic: str) -> None:
    same = txn_id()
    old = TopicWriter(brokers=txn_cluster, transactional_id=same)

    def fenced_half_way() -> None:
        with old.transaction():
            old.write(topic, b"old-zombie")
            with (
                TopicWriter(brokers=txn_cluster, transactional_id=same) as new,
                new.transaction(),
            ):
                new.write(topic, b"new-1")

    try:
        with old.transaction():
            old.write(topic, b"old-1")
        with pytest.raises(ProducerFencedError):
            fenced_half_way()
    finally:
        old.close(timeout_s=1)  # a fenced writer closes without raising
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == [b"old-1", b"new-1"]


def read_for(bootstrap: str, topic: str, isolation: str, seconds: float) -> list[bytes]:
    seen: list[bytes] = []
    reader = Reader(topic, {"brokers": [bootstrap], "isolation_level": isolation})
    stopper = threading.Timer(seconds, reader.stop)
    stopper.start()
    try:
        reader.read_value(lambda v: seen.append(v or b""), handle_signals=False)
    finally:
        stopper.cancel()
        reader.close()
    return seen


def test_an_open_transaction_holds_read_committed_back(txn_cluster: str, topic: str) -> None:
    """Until the commit, a read_committed Reader sees nothing of the block (while a
    read_uncommitted one does), and after it everything."""
    with (
        Writer(topic, brokers=txn_cluster, transactional_id=txn_id()) as writer,
        writer.transaction(),
    ):
        writer.write(b"x1")
        writer.flush()  # on the broker, still uncommitted
        assert read_for(txn_cluster, topic, "read_committed", 2.0) == []
        assert read_for(txn_cluster, topic, "read_uncommitted", 2.0) == [b"x1"]
        writer.write(b"x2")
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == [b"x1", b"x2"]


def test_transaction_needs_an_id_and_a_transactional_writer_needs_a_transaction(
    txn_cluster: str, topic: str
) -> None:
    with Writer(topic, brokers=txn_cluster) as plain, pytest.raises(ConfigError, match="_id"):
        plain.transaction().__enter__()
    with Writer(topic, brokers=txn_cluster, transactional_id=txn_id()) as writer:
        with pytest.raises(ClientError, match="outside a transaction"):
            writer.write(b"loose")
        with writer.transaction():
            with pytest.raises(ClientError, match="do not nest"):
                writer.transaction().__enter__()
            writer.write(b"kept")
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == [b"kept"]


def test_config_keys_reach_librdkafka() -> None:
    config = WriterConfig.from_dict({"transactional_id": "t-1", "transaction_timeout": "15s"})
    settings = config.to_librdkafka("127.0.0.1:1")
    assert settings["transactional.id"] == "t-1"
    assert settings["transaction.timeout.ms"] == 15000
    from_env = WriterConfig.from_env(environ={"KAFKITO_TRANSACTIONAL_ID": "007"})
    assert from_env.transactional_id == "007"  # verbatim, not the YAML integer 7
    with pytest.raises(ConfigError, match="transaction_timeout"):
        WriterConfig.from_dict({"transaction_timeout": "soon"})
    with pytest.raises(ConfigError, match="isolation_level"):
        ReaderConfig.from_dict({"isolation_level": "dirty"})
    assert ReaderConfig().to_librdkafka("h:1")["isolation.level"] == "read_committed"


def test_a_timed_out_transaction_is_aborted_by_the_broker(txn_cluster: str, topic: str) -> None:
    """transaction_timeout: the broker aborts a transaction left open longer; the writer then
    finds itself fenced at its commit, and nothing of the transaction is visible."""
    config = {"transaction_timeout": "1s"}
    with Writer(topic, config, brokers=txn_cluster, transactional_id=txn_id()) as writer:

        def slow() -> None:
            with writer.transaction():
                writer.write(b"slow")
                writer.flush()
                time.sleep(5)  # both brokers look for timed-out transactions every second

        with pytest.raises(ProducerFencedError):
            slow()
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == []


def test_async_commit_abort_and_fencing(txn_cluster: str, topic: str) -> None:
    async def scenario() -> None:
        same = txn_id()
        async with AsyncWriter(topic, brokers=txn_cluster, transactional_id=same) as writer:

            async def aborted() -> None:
                async with writer.transaction():
                    await writer.write(b"a1")
                    await writer.flush()
                    raise KeyError("abort")

            async def fenced() -> None:
                async with writer.transaction():
                    await writer.write(b"zombie")
                    await writer.flush()
                    async with (
                        AsyncTopicWriter(brokers=txn_cluster, transactional_id=same) as new,
                        new.transaction(),
                    ):
                        await new.write(topic, b"new")

            async with writer.transaction() as txn:
                await writer.write(b"c1")
                await writer.write_many([b"c2"])
            assert len(txn.deliveries) == 2
            with pytest.raises(KeyError):
                await aborted()
            with pytest.raises(ProducerFencedError):
                await fenced()

    asyncio.run(scenario())
    write_end(txn_cluster, topic)
    assert read_until_end(txn_cluster, topic, "read_committed") == [b"c1", b"c2", b"new"]
    everything = [b"c1", b"c2", b"a1", b"zombie", b"new"]
    assert read_until_end(txn_cluster, topic, "read_uncommitted") == everything
