"""The data path on the wire, kafkito vs Apache Kafka: what clients hide, compared exactly.

Clients turn most answers into "worked" or an exception; what they decide next depends on the
exact error code, the leader epoch, the last stable offset and the log start offset. These
scenarios speak the protocol with `WireClient` at the versions the four clients use (KAFKA-NOTES
§1) and compare every field of the answers with Apache Kafka's, with hand-made batches so that
the stored bytes can be compared too.
"""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
from typing import Any

import pytest

from compat.differential import (
    Brokers,
    Observations,
    create_topic,
    node_index,
    plain,
    run_differential,
    unique,
)
from kafkito.testing.wire import WireClient, record_batch

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
BASE_TS = 1_700_000_000_000
_BATCH_HEAD = struct.Struct(">qiibIhiqqqhii")


def metadata_shape(client: WireClient, version: int, topics: list[str] | None) -> Observations:
    """Metadata as a client uses it: node ids as ranks, topic ids only as present or not,
    topics by their place in the request (their names are unique per run)."""
    body = {
        "topics": None if topics is None else [{"name": t, "topic_id": None} for t in topics],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }
    answer = client.request(METADATA, version, body)
    # node ids are deployment choices (ours 0, the reference launcher's 1..N): ranks instead
    rank = node_index([b.node_id for b in answer.brokers])
    wanted = set(topics or ())
    return {
        "brokers": [(rank[b.node_id], b.host, b.rack) for b in answer.brokers],
        "controller": rank.get(answer.controller_id, "not a broker"),
        # cluster ids are random per cluster; clients only check that one is there
        "cluster_id_present": getattr(answer, "cluster_id", "v0") is not None,
        "topics": [
            {
                "asked": (topics or []).index(t.name),
                "error": plain(t.error_code),
                "internal": t.is_internal,
                # topic ids are random per topic; present (non-zero) is what clients need
                "topic_id_present": t.topic_id is not None if version >= 10 else "<v10",
                "authorized_operations": getattr(t, "topic_authorized_operations", "<v8"),
                "partitions": [
                    {
                        "index": p.partition_index,
                        "error": plain(p.error_code),
                        "leader": rank.get(p.leader_id, "not a broker"),
                        "leader_epoch": getattr(p, "leader_epoch", "<v7"),
                        "replicas": [rank.get(r, r) for r in p.replica_nodes],
                        "isr": [rank.get(r, r) for r in p.isr_nodes],
                        "offline": list(getattr(p, "offline_replicas", ())),
                    }
                    for p in sorted(t.partitions, key=lambda p: p.partition_index)
                ],
            }
            for t in answer.topics
            if t.name in wanted
        ],
    }


@pytest.mark.parametrize("version", [1, 4, 5, 9, 12])
def test_metadata(brokers: Brokers, version: int) -> None:
    """Versions of Metadata: kcat 4, aiokafka 5, librdkafka and kafka-python 12."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("md")
        create_topic(bootstrap, topic, 3)
        with WireClient(bootstrap) as client:
            by_id: Any = "<v10"
            if version >= 10:
                answer = client.request(
                    METADATA,
                    version,
                    {
                        "topics": [{"name": None, "topic_id": _topic_id(client, topic)}],
                        "allow_auto_topic_creation": False,
                        "include_topic_authorized_operations": False,
                    },
                )
                by_id = [(t.name == topic, plain(t.error_code)) for t in answer.topics]
            return {
                "by topic id": by_id,
                "existing": metadata_shape(client, version, [topic]),
                "unknown": metadata_shape(client, version, [unique("md-absent")]),
                "invalid name": metadata_shape(client, version, ["bad/name"]),
            }

    # Before v4 a Metadata request implies auto-creation: kafkito creates the topic before it
    # answers, Apache Kafka asks its controller and answers UNKNOWN_TOPIC_OR_PARTITION until
    # the topic exists (clients retry; docs/broker.md, Differences from Apache Kafka).
    allowed = {"unknown.topics[0]": "auto-creation is synchronous"} if version < 4 else {}
    run_differential(scenario, brokers, allowed=allowed)


def _produce(
    client: WireClient, version: int, topic: str, partition: int, batch: bytes, acks: int = -1
) -> Any:
    body = {
        "transactional_id": None,
        "acks": acks,
        "timeout": 10_000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}],
    }
    answer = client.request(PRODUCE, version, body)
    (topic_answer,) = answer.responses
    (part,) = topic_answer.partition_responses
    seen = plain(part)
    seen.pop("index")
    seen.pop("current_leader", None)  # v10+ only, filled on NOT_LEADER errors
    seen.pop("error_message", None)  # free text, Java's wording
    # each record error: its index; the message is free text (and names the broker's clock)
    seen["record_errors"] = [e["batch_index"] for e in seen.get("record_errors") or []]
    return seen


def _batch(n: int, *, ts: int = BASE_TS, **kw: Any) -> bytes:
    return record_batch(
        [(f"k{i}".encode(), f"v{i}".encode(), [("h", b"x")]) for i in range(n)],
        base_timestamp_ms=ts,
        **kw,
    )


@pytest.mark.parametrize("version", [3, 7, 9, 11])
def test_produce_answers_and_errors(brokers: Brokers, version: int) -> None:
    """Produce v7 (aiokafka, kcat), v9 (kafka-python), v10-11 (librdkafka)."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("pr")
        create_topic(bootstrap, topic, 2)
        with WireClient(bootstrap) as client:
            seen = {
                "first": _produce(client, version, topic, 0, _batch(3)),
                "second": _produce(client, version, topic, 0, _batch(2)),
                "acks=1": _produce(client, version, topic, 0, _batch(1), acks=1),
                "unknown partition": _produce(client, version, topic, 7, _batch(1)),
                "unknown topic": _produce(client, version, unique("pr-absent"), 0, _batch(1)),
                "acks=2": _produce(client, version, topic, 0, _batch(1), acks=2),
                "bad crc": _produce(client, version, topic, 0, _batch(1, crc=12345)),
                "count lies": _produce(client, version, topic, 0, _batch(2, record_count=3)),
                "control bit": _produce(client, version, topic, 1, _batch(1, attributes=0x20)),
                "base offset 5": _produce(client, version, topic, 1, _batch(1, base_offset=5)),
                "too large": _produce(
                    client, version, topic, 1, record_batch([(None, b"x" * 1_100_000, [])])
                ),
                "after the refusals": _produce(client, version, topic, 0, _batch(1)),
            }
            return seen

    run_differential(scenario, brokers)


def _batches(records: bytes) -> list[dict[str, Any]]:
    """Each batch's header fields and a digest of its bytes after the base offset and length."""
    out, pos = [], 0
    while pos + 12 <= len(records):
        (length,) = struct.unpack_from(">i", records, pos + 8)
        if pos + 12 + length > len(records):
            break  # a partial batch at the end, as Fetch may send
        head = _BATCH_HEAD.unpack_from(records, pos)
        names = "base_offset length leader_epoch magic crc attributes last_offset_delta"
        names += " first_ts max_ts producer_id producer_epoch base_sequence count"
        fields = dict(zip(names.split(), head, strict=True))
        # everything a consumer decodes, byte for byte, except the two fields patched above
        body = records[pos + 12 + 4 : pos + 12 + length]
        fields["digest"] = hashlib.sha256(body).hexdigest()[:16]
        out.append(fields)
        pos += 12 + length
    return out


def _fetch(
    client: WireClient,
    version: int,
    topic: str,
    topic_id: Any,
    offset: int,
    *,
    epoch: int = -1,
    partition: int = 0,
    isolation: int = 0,
    max_bytes: int = 10_000_000,
    partition_max_bytes: int = 1_000_000,
) -> dict[str, Any]:
    body = {
        "replica_id": -1,
        "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait": 50,
        "min_bytes": 0,
        "max_bytes": max_bytes,
        "isolation_level": isolation,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": epoch,
                        "fetch_offset": offset,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": partition_max_bytes,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    answer = client.request(FETCH, version, body)
    seen: dict[str, Any] = {"error": plain(getattr(answer, "error_code", "<v7"))}
    # a fetch session id is a random handle when sessions are used; this sends session_id 0
    # and epoch -1 (no session), so the answer's must be 0 on both brokers: kept as is
    seen["session_id"] = getattr(answer, "session_id", "<v7")
    seen["topics"] = []
    for t in answer.responses:
        for p in t.partitions:
            part = plain(p)
            records = part.pop("records")
            part["batches"] = _batches(records or b"")
            # 'diverging_epoch', 'current_leader', 'snapshot_id' are tagged, default-valued here
            seen["topics"].append(part)
    return seen


def _topic_id(client: WireClient, topic: str) -> Any:
    answer = client.request(
        METADATA,
        12,
        {
            "topics": [{"name": topic, "topic_id": None}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    return answer.topics[0].topic_id


@pytest.mark.parametrize("version", [4, 11, 12, 16])
def test_fetch_answers_and_errors(brokers: Brokers, version: int) -> None:
    """Fetch v11 (aiokafka, kcat), v12 (kafka-python), v16 (librdkafka, topic ids)."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("fe")
        create_topic(bootstrap, topic, 1)
        with WireClient(bootstrap) as client:
            topic_id = _topic_id(client, topic)
            for n in (3, 2):
                assert _produce(client, 9, topic, 0, _batch(n))["error_code"] == "none"
            seen = {
                "from 0": _fetch(client, version, topic, topic_id, 0),
                "mid batch": _fetch(client, version, topic, topic_id, 4),
                "at end": _fetch(client, version, topic, topic_id, 5),
                "past end": _fetch(client, version, topic, topic_id, 6),
                "negative": _fetch(client, version, topic, topic_id, -1),
                "epoch 0": _fetch(client, version, topic, topic_id, 0, epoch=0),
                "epoch above": _fetch(client, version, topic, topic_id, 0, epoch=7),
                "read_committed": _fetch(client, version, topic, topic_id, 0, isolation=1),
                "unknown partition": _fetch(client, version, topic, topic_id, 0, partition=3),
                "unknown topic": _fetch(client, version, unique("fe-absent"), uuid.uuid4(), 0),
                # KIP-74: at least one whole batch, however small the limits
                "one byte allowed": _fetch(
                    client, version, topic, topic_id, 0, max_bytes=1, partition_max_bytes=1
                ),
                "room for one batch": _fetch(
                    client, version, topic, topic_id, 0, partition_max_bytes=100
                ),
            }
            return seen

    run_differential(scenario, brokers)


def _list_offsets(
    client: WireClient,
    version: int,
    topic: str,
    timestamp: int,
    partition: int = 0,
    *,
    epoch: int = -1,
    isolation: int = 0,
) -> Any:
    body = {
        "replica_id": -1,
        "isolation_level": isolation,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": partition,
                        "current_leader_epoch": epoch,
                        "timestamp": timestamp,
                    }
                ],
            }
        ],
    }
    answer = client.request(LIST_OFFSETS, version, body)
    seen = plain(answer.topics[0].partitions[0])
    seen.pop("partition_index")
    return seen


@pytest.mark.parametrize("version", [1, 2, 3, 7, 9])
def test_list_offsets_answers(brokers: Brokers, version: int) -> None:
    """ListOffsets v2 (kcat), v3 (aiokafka), v7 (librdkafka), v9 (kafka-python)."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("lo")
        create_topic(bootstrap, topic, 1)
        with WireClient(bootstrap) as client:
            # three batches: ts base.., base+1000.., and one whose max timestamp is inside it
            _produce(client, 9, topic, 0, _batch(2, ts=BASE_TS))
            _produce(client, 9, topic, 0, _batch(2, ts=BASE_TS + 1000))
            _produce(client, 9, topic, 0, _batch(1, ts=BASE_TS + 500))
            wanted = {
                "latest -1": -1,
                "earliest -2": -2,
                "max timestamp -3": -3,
                "earliest local -4": -4,
                "before all": BASE_TS - 10_000,
                "exact base": BASE_TS,
                "between batches": BASE_TS + 2,
                "inside the last batch": BASE_TS + 500,
                "last record": BASE_TS + 1000,
                "after all": BASE_TS + 999_999,
                "latest tiered -5": -5,
                "unknown special -7": -7,
            }
            seen = {name: _list_offsets(client, version, topic, ts) for name, ts in wanted.items()}
            seen["unknown partition"] = _list_offsets(client, version, topic, -1, partition=4)
            seen["epoch 0"] = _list_offsets(client, version, topic, -1, epoch=0)
            seen["epoch above"] = _list_offsets(client, version, topic, -1, epoch=5)
            seen["read_committed latest"] = _list_offsets(client, version, topic, -1, isolation=1)
            seen["unknown topic"] = _list_offsets(client, version, unique("lo-absent"), -1)
            return seen

    run_differential(scenario, brokers)


INIT_PRODUCER_ID = 22
_RETRIABLE = {"coordinator_load_in_progress", "coordinator_not_available", "not_coordinator"}


def _init_producer_id(
    client: WireClient,
    version: int,
    *,
    transactional_id: str | None = None,
    pid: int = -1,
    epoch: int = -1,
) -> Any:
    answer = client.request(
        INIT_PRODUCER_ID,
        version,
        {
            "transactional_id": transactional_id,
            "transaction_timeout": 60_000,
            "producer_id": pid,
            "producer_epoch": epoch,
        },
    )
    return plain(answer.error_code), int(answer.producer_id), int(answer.producer_epoch)


@pytest.mark.parametrize("version", [0, 4])
def test_idempotent_producer(brokers: Brokers, version: int) -> None:
    """InitProducerId v0 (aiokafka) and v4 (librdkafka, kafka-python), then sequences: a
    duplicate gets its original offset, a gap, an old epoch and a new epoch are each answered
    as Kafka answers them."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("idem")
        create_topic(bootstrap, topic, 1)
        with WireClient(bootstrap) as client:
            # Apache Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its transaction
            # coordinator is up, which clients retry: the answer after that is the observation
            deadline = time.monotonic() + 30
            while (answer := _init_producer_id(client, version))[0] in _RETRIABLE:
                assert time.monotonic() < deadline, f"InitProducerId still answers {answer}"
                time.sleep(0.1)
            error, pid, epoch = answer
            # producer ids come from a cluster-wide allocator (Kafka hands out blocks of them
            # from its controller): what a client relies on is a valid id and epoch 0
            seen: Observations = {"init": [error, pid >= 0, epoch]}

            def send(seq: int, n: int = 2, *, ep: int = epoch, producer: int = pid) -> Any:
                batch = _batch(n, producer_id=producer, producer_epoch=ep, base_sequence=seq)
                return _produce(client, 9, topic, 0, batch)

            seen["seq 0"] = send(0)
            seen["seq 0 again"] = send(0)
            seen["seq 2"] = send(2)
            seen["seq 0 again, no longer last"] = send(0)
            seen["gap: seq 7"] = send(7)
            seen["seq 4"] = send(4)
            seen["next epoch, seq 0"] = send(0, ep=epoch + 1)
            seen["old epoch"] = send(6, ep=epoch)
            seen["unknown pid, seq 3"] = send(3, producer=pid + 1000)
            seen["unknown pid, seq 0"] = send(0, producer=pid + 1001)
            if version >= 3:
                bumped = _init_producer_id(client, version, pid=pid, epoch=epoch + 1)
                seen["KIP-360 bump"] = [bumped[0], bumped[1] == pid, bumped[2]]
                stale = _init_producer_id(client, version, pid=pid, epoch=epoch)
                seen["KIP-360 stale epoch"] = [stale[0], stale[1] == pid, stale[2]]
            # a transactional id: FindCoordinator first, as clients do (it makes Apache Kafka
            # create its __transaction_state topic), then retry while that comes up
            txn_id = unique("tx")
            deadline = time.monotonic() + 30
            while True:
                client.request(10, 2, {"key": txn_id, "key_type": 1})
                txn = _init_producer_id(client, version, transactional_id=txn_id)
                if txn[0] not in _RETRIABLE:
                    break
                assert time.monotonic() < deadline, f"InitProducerId still answers {txn}"
                time.sleep(0.1)
            seen["transactional"] = [txn[0], txn[1] >= 0, txn[2]]
        return seen

    run_differential(scenario, brokers)


def test_produce_acks_0(brokers: Brokers) -> None:
    """acks=0 gets no answer; a refused acks=0 batch closes the connection (the only way the
    producer can learn of it), as Kafka does; a valid one leaves it open."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("a0")
        create_topic(bootstrap, topic, 1)
        body = {
            "transactional_id": None,
            "acks": 0,
            "timeout": 10_000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": _batch(1)}]}],
        }
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            client.send(PRODUCE, 9, body)
            seen["no answer, still open"] = not client.closed_by_peer(timeout_s=0.5)
            # the record becomes visible once written (kafkito: once fsynced, in the background)
            deadline = time.monotonic() + 10
            while (end := _list_offsets(client, 9, topic, -1))["offset"] < 1:
                assert time.monotonic() < deadline, f"the acks=0 record never showed: {end}"
                time.sleep(0.05)
            seen["end offset"] = end
        with WireClient(bootstrap) as client:
            unknown_partition = [{"index": 3, "records": _batch(1)}]
            bad = {**body, "topic_data": [{"name": topic, "partition_data": unknown_partition}]}
            client.send(PRODUCE, 9, bad)
            seen["after a refused acks=0: closed"] = client.closed_by_peer(timeout_s=5)
        return seen

    run_differential(scenario, brokers)


def _read_timestamps(bootstrap: str, topic: str, stamps: list[Any]) -> list[Any]:
    """(timestamp type, which stamp) of each record as confluent-kafka reads it."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("lat-read")})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: list[Any] = []
        deadline = time.monotonic() + 15
        while len(seen) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                ts_type, ts = msg.timestamp()
                seen.append((ts_type, stamps.index(ts) if ts in stamps else ts))
        return seen
    finally:
        consumer.close()


def test_log_append_time_topic(brokers: Brokers) -> None:
    """A topic with message.timestamp.type=LogAppendTime: the broker stamps each batch; the
    Produce answer carries that time, Fetch returns the batch with the timestamp-type bit set
    and max_timestamp rewritten (its CRC recomputed), and ListOffsets by time uses it."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("lat")
        create_topic(bootstrap, topic, 1, **{"message.timestamp.type": "LogAppendTime"})
        with WireClient(bootstrap) as client:
            before = int(time.time() * 1000)
            answers = [_produce(client, 9, topic, 0, _batch(n)) for n in (2, 1)]
            after = int(time.time() * 1000)
            topic_id = _topic_id(client, topic)
            fetched = _fetch(client, 12, topic, topic_id, 0)
            (part,) = fetched["topics"]
            stamps = [a.pop("log_append_time") for a in answers]
            # the broker's clock: compared as "within the produce calls" and as relations
            seen: Observations = {
                "answers": answers,
                "stamped now": [isinstance(s, int) and before <= s <= after for s in stamps],
                "confluent-kafka reads": _read_timestamps(bootstrap, topic, stamps),
                "batches": [
                    {
                        "attributes": b["attributes"],
                        "first_ts": b["first_ts"],
                        "max_ts is the stamp": b["max_ts"] == stamps[i],
                        "count": b["count"],
                    }
                    for i, b in enumerate(part["batches"])
                ],
                "by stamp": _list_offsets(client, 9, topic, stamps[1])["offset"],
                "by the producer's time": _list_offsets(client, 9, topic, BASE_TS)["offset"],
                "max timestamp": _list_offsets(client, 9, topic, -3)["offset"],
            }
        return seen

    run_differential(scenario, brokers)


def test_topic_limits_on_produce(brokers: Brokers) -> None:
    """Per-topic limits a Produce must respect: max.message.bytes and the timestamp bounds
    (message.timestamp.before/after.max.ms), with the error codes and record errors Kafka
    answers."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("lim")
        create_topic(
            bootstrap,
            topic,
            1,
            **{
                "max.message.bytes": "1000",
                "message.timestamp.before.max.ms": "3600000",
                "message.timestamp.after.max.ms": "3600000",
            },
        )
        now = int(time.time() * 1000)
        big = record_batch([(None, b"x" * 2000, [])], base_timestamp_ms=now)
        with WireClient(bootstrap) as client:
            return {
                "fits": _produce(client, 9, topic, 0, _batch(1, ts=now)),
                "above max.message.bytes": _produce(client, 9, topic, 0, big),
                "a day old": _produce(client, 9, topic, 0, _batch(2, ts=now - 86_400_000)),
                "a day ahead": _produce(client, 9, topic, 0, _batch(1, ts=now + 86_400_000)),
                "after the refusals": _produce(client, 9, topic, 0, _batch(1, ts=now)),
            }

    run_differential(scenario, brokers)
