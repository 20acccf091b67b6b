"""Transaction scenarios driven by real clients, returning what a user would observe.

Each scenario runs against any bootstrap (the embedded broker or Apache Kafka) and returns
plain data (values read at each isolation level, watermarks, error codes), so that a test can
assert the expected result *and* that both brokers gave the same one.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 30.0


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=20)
    futures[topic].result(30)
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:  # the leader may take a moment on Apache Kafka
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == partitions
            and all(p.leader >= 0 for p in t.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} has no leader after {DEADLINE_S} s")


def read_all(bootstrap: str, topic: str, isolation: str, partition: int = 0) -> list[str]:
    """Every value a consumer at `isolation` reads from the start up to the partition's end
    (the LSO for read_committed), as librdkafka reports it with its end-of-partition event."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "txnkit-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    values: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            assert time.monotonic() < deadline, f"no end of partition after {values}"
            msg = consumer.poll(1)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return values
                raise AssertionError(str(msg.error()))
            values.append(msg.value().decode())
    finally:
        consumer.close()


def watermarks(bootstrap: str, topic: str, isolation: str, partition: int = 0) -> tuple[int, int]:
    """(low, high) as a consumer at `isolation` asks them (ListOffsets; high is the LSO for
    read_committed)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "txnkit-wm", "isolation.level": isolation}
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10, cached=False
        )
        return int(low), int(high)
    finally:
        consumer.close()


def kcat_read(bootstrap: str, topic: str, isolation: str) -> list[str] | None:
    """kcat's values at `isolation` (None if kcat is not installed)."""
    kcat = shutil.which("kcat")
    if kcat is None:
        return None
    done = subprocess.run(
        [
            kcat,
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\\n",
            "-X",
            f"isolation.level={isolation}",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return [line for line in done.stdout.decode().split("\n") if line]


def observe(bootstrap: str, topic: str, *, kcat: bool = True) -> dict[str, Any]:
    """What every reader sees of `topic` partition 0 (kcat too, unless told not to)."""
    seen = {
        "committed": read_all(bootstrap, topic, "read_committed"),
        "uncommitted": read_all(bootstrap, topic, "read_uncommitted"),
        "hw": watermarks(bootstrap, topic, "read_uncommitted")[1],
        "lso": watermarks(bootstrap, topic, "read_committed")[1],
    }
    if kcat:
        seen["kcat_committed"] = kcat_read(bootstrap, topic, "read_committed")
        seen["kcat_uncommitted"] = kcat_read(bootstrap, topic, "read_uncommitted")
    return seen


# -- producers of each client: commit A, abort B, commit C ------------------------------------

PLAN = [("A", 3, True), ("B", 3, False), ("C", 1, True)]
EXPECTED_COMMITTED = ["A0", "A1", "A2", "C0"]
EXPECTED_ALL = ["A0", "A1", "A2", "B0", "B1", "B2", "C0"]


def ck_commit_abort(bootstrap: str, topic: str, txn_id: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(DEADLINE_S)
    for prefix, count, commit in PLAN:
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, f"{prefix}{i}".encode(), partition=0)
        if commit:
            producer.commit_transaction(DEADLINE_S)
        else:
            producer.flush(DEADLINE_S)  # the records are in the log before the abort
            producer.abort_transaction(DEADLINE_S)


def kp_commit_abort(bootstrap: str, topic: str, txn_id: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    try:
        producer.init_transactions()
        for prefix, count, commit in PLAN:
            producer.begin_transaction()
            for i in range(count):
                producer.send(topic, f"{prefix}{i}".encode(), partition=0)
            producer.flush(DEADLINE_S)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(5)


def aio_commit_abort(bootstrap: str, topic: str, txn_id: str) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await asyncio.wait_for(producer.start(), DEADLINE_S)
        try:
            for prefix, count, commit in PLAN:
                await producer.begin_transaction()
                for i in range(count):
                    await producer.send_and_wait(topic, f"{prefix}{i}".encode(), partition=0)
                if commit:
                    await asyncio.wait_for(producer.commit_transaction(), DEADLINE_S)
                else:
                    await asyncio.wait_for(producer.abort_transaction(), DEADLINE_S)
        finally:
            await producer.stop()

    asyncio.run(run())


def aio_read_committed(bootstrap: str, topic: str, count: int) -> list[str]:
    """aiokafka's own read_committed consumer: the first `count` values, then nothing more."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTP

    async def run() -> list[str]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tp = AioTP(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            values: list[str] = []
            deadline = time.monotonic() + DEADLINE_S
            while len(values) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500)
                values.extend(m.value.decode() for m in batch.get(tp, []))
            more = await consumer.getmany(tp, timeout_ms=300)
            values.extend(m.value.decode() for m in more.get(tp, []))
            return values
        finally:
            await consumer.stop()

    return asyncio.run(run())


def kp_read_committed(bootstrap: str, topic: str, count: int) -> list[str]:
    """kafka-python's own read_committed consumer."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTP

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tp = KpTP(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(values) < count and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                values.extend(r.value.decode() for r in records)
        for records in consumer.poll(300).values():
            values.extend(r.value.decode() for r in records)
        return values
    finally:
        consumer.close()


# -- scenarios with confluent-kafka -------------------------------------------------------------


def error_of(exc: KafkaException) -> tuple[str, bool, bool]:
    err = exc.args[0]
    return err.name(), bool(err.fatal()), bool(err.txn_requires_abort())


def lso_scenario(bootstrap: str, topic: str, txn_id: str) -> list[Any]:
    """An open transaction holds read_committed readers back; its commit releases them."""
    seen: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    plain = Producer({"bootstrap.servers": bootstrap})
    producer.init_transactions(DEADLINE_S)
    plain.produce(topic, b"before", partition=0)
    plain.flush(DEADLINE_S)
    producer.begin_transaction()
    producer.produce(topic, b"open0", partition=0)
    producer.flush(DEADLINE_S)
    plain.produce(topic, b"after", partition=0)
    plain.flush(DEADLINE_S)
    seen.append(("open", observe(bootstrap, topic)))
    producer.commit_transaction(DEADLINE_S)
    seen.append(("committed", observe(bootstrap, topic)))
    return seen


def fencing_scenario(bootstrap: str, topic: str, txn_id: str) -> dict[str, Any]:
    """A second producer with the same transactional id fences the first and aborts its
    open transaction."""
    first = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    first.init_transactions(DEADLINE_S)
    first.begin_transaction()
    first.produce(topic, b"zombie", partition=0)
    first.flush(DEADLINE_S)
    second = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    second.init_transactions(DEADLINE_S)
    second.begin_transaction()
    second.produce(topic, b"winner", partition=0)
    second.commit_transaction(DEADLINE_S)
    try:
        first.commit_transaction(10)
        zombie: Any = "committed"
    except KafkaException as exc:
        zombie = error_of(exc)
    return {"zombie_commit": zombie, **observe(bootstrap, topic, kcat=False)}


def timeout_scenario(bootstrap: str, topic: str, txn_id: str) -> dict[str, Any]:
    """A transaction open past transaction.timeout.ms is aborted by the broker."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": 1500,
        }
    )
    producer.init_transactions(DEADLINE_S)
    producer.begin_transaction()
    producer.produce(topic, b"late", partition=0)
    producer.flush(DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    while True:  # the broker's abort writes a marker: the LSO reaches the high watermark
        hw = watermarks(bootstrap, topic, "read_uncommitted")[1]
        if hw == 2 and watermarks(bootstrap, topic, "read_committed")[1] == 2:
            break
        assert time.monotonic() < deadline, f"the transaction was not aborted (hw {hw})"
        time.sleep(0.2)
    try:
        producer.commit_transaction(10)
        outcome: Any = "committed"
    except KafkaException as exc:
        outcome = error_of(exc)
    return {"late_commit": outcome, **observe(bootstrap, topic, kcat=False)}


def offsets_scenario(bootstrap: str, topic: str, txn_id: str, group: str) -> list[Any]:
    """Offsets sent in a transaction reach the group only when it commits."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(DEADLINE_S)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    seen: list[Any] = []
    try:
        metadata = consumer.consumer_group_metadata()
        for offset, commit in ((5, False), (7, True)):
            producer.begin_transaction()
            producer.produce(topic, f"o{offset}".encode(), partition=0)
            producer.send_offsets_to_transaction(
                [TopicPartition(topic, 0, offset)], metadata, DEADLINE_S
            )
            if commit:
                producer.commit_transaction(DEADLINE_S)
            else:
                producer.abort_transaction(DEADLINE_S)
            (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
            seen.append((commit, tp.offset))
    finally:
        consumer.close()
    seen.append(read_all(bootstrap, topic, "read_committed"))
    return seen


def _committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def kp_offsets_scenario(bootstrap: str, topic: str, txn_id: str, group: str) -> list[Any]:
    """kafka-python's send_offsets_to_transaction (AddOffsetsToTxn v3, TxnOffsetCommit v3)."""
    from kafka import KafkaProducer
    from kafka import TopicPartition as KpTP
    from kafka.structs import OffsetAndMetadata

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    seen: list[Any] = []
    try:
        producer.init_transactions()
        for offset, commit in ((5, False), (7, True)):
            producer.begin_transaction()
            producer.send(topic, f"o{offset}".encode(), partition=0)
            producer.send_offsets_to_transaction(
                {KpTP(topic, 0): OffsetAndMetadata(offset, "", -1)}, group
            )
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
            seen.append((commit, _committed(bootstrap, topic, group)))
    finally:
        producer.close(5)
    seen.append(read_all(bootstrap, topic, "read_committed"))
    return seen


def aio_offsets_scenario(bootstrap: str, topic: str, txn_id: str, group: str) -> list[Any]:
    """aiokafka's send_offsets_to_transaction (AddOffsetsToTxn v0, TxnOffsetCommit v0)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTP

    async def run() -> list[Any]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await asyncio.wait_for(producer.start(), DEADLINE_S)
        out: list[Any] = []
        try:
            for offset, commit in ((5, False), (7, True)):
                await producer.begin_transaction()
                await producer.send_and_wait(topic, f"o{offset}".encode(), partition=0)
                await producer.send_offsets_to_transaction({AioTP(topic, 0): offset}, group)
                if commit:
                    await asyncio.wait_for(producer.commit_transaction(), DEADLINE_S)
                else:
                    await asyncio.wait_for(producer.abort_transaction(), DEADLINE_S)
                out.append((commit, await asyncio.to_thread(_committed, bootstrap, topic, group)))
        finally:
            await producer.stop()
        return out

    seen = asyncio.run(run())
    seen.append(read_all(bootstrap, topic, "read_committed"))
    return seen


def kp_fencing_scenario(bootstrap: str, topic: str, txn_id: str) -> dict[str, Any]:
    """kafka-python: a second producer with the same id fences the first (see
    fencing_scenario); the zombie's commit raises, and what it raises is the observation."""
    from kafka import KafkaProducer

    first = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    second = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    try:
        first.init_transactions()
        first.begin_transaction()
        first.send(topic, b"zombie", partition=0)
        first.flush(DEADLINE_S)
        second.init_transactions()
        second.begin_transaction()
        second.send(topic, b"winner", partition=0)
        second.commit_transaction()
        try:
            first.commit_transaction()
            zombie = "committed"
        except Exception as exc:  # the exception type is the observation
            zombie = type(exc).__name__
    finally:
        first.close(5)
        second.close(5)
    return {"zombie_commit": zombie, **observe(bootstrap, topic, kcat=False)}


def aio_fencing_scenario(bootstrap: str, topic: str, txn_id: str) -> dict[str, Any]:
    """aiokafka: the same, with InitProducerId v0, AddPartitionsToTxn v0 and EndTxn v0."""
    from aiokafka import AIOKafkaProducer

    async def run() -> str:
        first = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        second = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await asyncio.wait_for(first.start(), DEADLINE_S)
        try:
            await first.begin_transaction()
            await first.send_and_wait(topic, b"zombie", partition=0)
            await asyncio.wait_for(second.start(), DEADLINE_S)
            await second.begin_transaction()
            await second.send_and_wait(topic, b"winner", partition=0)
            await asyncio.wait_for(second.commit_transaction(), DEADLINE_S)
            try:
                await asyncio.wait_for(first.commit_transaction(), DEADLINE_S)
                return "committed"
            except Exception as exc:  # the exception type is the observation
                return type(exc).__name__
        finally:
            await first.stop()
            await second.stop()

    zombie = asyncio.run(run())
    return {"zombie_commit": zombie, **observe(bootstrap, topic, kcat=False)}


def member_offsets_scenario(
    bootstrap: str, topic: str, txn_id: str, group: str, protocol: str
) -> list[Any]:
    """Consume-transform-produce as applications do it: a subscribed consumer (classic or
    KIP-848 `consumer` protocol) hands its group metadata (member id, generation or member
    epoch) to send_offsets_to_transaction, which the broker checks against the group."""
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        plain.produce(topic, f"in{i}".encode(), partition=0)
    plain.flush(DEADLINE_S)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": protocol,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(DEADLINE_S)
    seen: list[Any] = []
    try:
        consumer.subscribe([topic])
        got: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < 3:
            assert time.monotonic() < deadline, f"consumed only {got}"
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value().decode())
        producer.begin_transaction()
        producer.produce(topic, b"out", partition=0)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 20
        )
        producer.commit_transaction(DEADLINE_S)
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        seen.append((got, tp.offset))
    finally:
        consumer.close()
    seen.append(read_all(bootstrap, topic, "read_committed"))
    return seen
