"""OffsetDelete, OffsetForLeaderEpoch and DescribeLogDirs, kafkito vs Apache Kafka on the wire.

These answers decide what tools do next (`kafka-consumer-groups --delete-offsets` reports each
partition's error; librdkafka truncates or resets from an OffsetForLeaderEpoch answer; monitors
read log-dir sizes), and clients hide them behind one "worked": so each scenario speaks the
protocol with `WireClient` and compares every field with Apache Kafka's answer, then checks that
a client's admin call built on the API gives the same result on both brokers.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from compat.differential import (
    Brokers,
    Observations,
    create_topic,
    plain,
    run_differential,
    scrub,
    unique,
)
from compat.test_differential_groups import (
    CLIENTS,
    Member,
    Names,
    assignment,
    find_coordinator,
    offset_fetch,
    wait_state,
)
from compat.test_groups_worker import unstick_kafka_python
from kafkito.testing.wire import WireClient

OFFSET_DELETE = 47


def offset_delete(client: WireClient, group: str, topics: dict[str, list[int]]) -> Observations:
    body = {
        "group_id": group,
        "topics": [
            {"name": t, "partitions": [{"partition_index": p} for p in parts]}
            for t, parts in topics.items()
        ],
    }
    answer = client.request(OFFSET_DELETE, 0, body)
    return {
        "error": plain(answer.error_code),
        "throttle": answer.throttle_time,
        "topics": [
            (t.name, [(p.partition_index, plain(p.error_code)) for p in t.partitions])
            for t in answer.topics
        ],
    }


def test_offset_delete(brokers: Brokers) -> None:
    """Every answer of OffsetDelete: simple group, unknown topic and partition, no such group,
    empty group id, a live consumer group (subscribed topic refused, other topic deleted), a
    live group of another protocol type (NON_EMPTY_GROUP); then kafka-python's
    delete_group_offsets on both brokers."""
    from kafka import TopicPartition as KafkaTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    v = CLIENTS["librdkafka"]

    def scenario(bootstrap: str) -> Observations:
        topic, other, absent = unique("od"), unique("od-other"), unique("od-absent")
        simple, live, connect = unique("g-simple"), unique("g-live"), unique("g-connect")
        names = {topic: "T", other: "O", absent: "A"}
        create_topic(bootstrap, topic, 2)
        create_topic(bootstrap, other, 1)
        seen: Observations = {"coordinator": find_coordinator(bootstrap, v.find, simple)["error"]}
        group_names = Names()
        a = Member(bootstrap, simple, "A", group_names, v)  # commits as no member: a simple group
        member = Member(bootstrap, live, "L", group_names, v, topics=(topic,))
        stranger = Member(
            bootstrap, connect, "C", group_names, v, protocol_type="connect", topics=(topic,)
        )

        def rename(answer: Observations) -> Observations:
            answer["topics"] = [(names.get(t, t), rows) for t, rows in answer["topics"]]
            return answer

        admin = WireClient(bootstrap)
        try:
            seen["commit"] = a.commit(topic, {0: 5, 1: 7}, generation=-1)
            seen["commit other"] = a.commit(other, {0: 3}, generation=-1)
            seen["delete"] = rename(
                offset_delete(admin, simple, {topic: [0, 5], absent: [0, 1], other: [0]})
            )
            seen["again"] = rename(offset_delete(admin, simple, {topic: [0]}))
            seen["offsets after"] = offset_fetch(admin, v.fetch, simple, topic, [0, 1])
            seen["other after"] = offset_fetch(admin, v.fetch, simple, other, [0])
            seen["no such group"] = rename(offset_delete(admin, unique("g-none"), {topic: [0]}))
            seen["empty group id"] = rename(offset_delete(admin, "", {topic: [0]}))
            # a live consumer group: member L subscribes to `topic`
            find_coordinator(bootstrap, v.find, live)
            member.join()
            member.join()
            member.sync({member: assignment({topic: [0, 1]}, b"")})
            wait_state(admin, live, "Stable", group_names, 20)
            seen["live commit"] = member.commit(topic, {0: 2})
            seen["live commit other"] = member.commit(other, {0: 4})
            seen["live delete"] = rename(offset_delete(admin, live, {topic: [0, 1], other: [0]}))
            seen["live offsets"] = offset_fetch(admin, v.fetch, live, topic, [0])
            seen["live other"] = offset_fetch(admin, v.fetch, live, other, [0])
            # a live group whose members are not consumers
            find_coordinator(bootstrap, v.find, connect)
            stranger.join()
            stranger.join()
            stranger.sync({stranger: b"x"})
            wait_state(admin, connect, "Stable", group_names, 20)
            seen["not a consumer group"] = rename(offset_delete(admin, connect, {other: [0]}))
            member.leave()
            stranger.leave()
            wait_state(admin, live, "Empty", group_names, 20)
            seen["after leave"] = rename(offset_delete(admin, live, {topic: [0]}))
            seen["after leave offsets"] = offset_fetch(admin, v.fetch, live, topic, [0])
        finally:
            for m in (a, member, stranger):
                m.close()
            admin.close()
        # kafka-python's admin call on the same API (confluent-kafka 2.16 has none: librdkafka's
        # DeleteConsumerGroupOffsets is not exposed by its Python binding)
        a2 = Member(bootstrap, simple, "A", group_names, v)
        try:
            a2.commit(topic, {0: 9, 1: 9}, generation=-1)
        finally:
            a2.close()
        client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
        try:
            result = client.delete_group_offsets(simple, [KafkaTopicPartition(topic, 1)])
            seen["kafka-python delete"] = sorted(
                (names[tp.topic], tp.partition, error.__name__) for tp, error in result.items()
            )
            listed = client.list_group_offsets(simple)
            seen["kafka-python list"] = sorted(
                (names.get(tp.topic, tp.topic), tp.partition, o.offset)
                for tp, o in listed[simple].items()
            )
            try:
                client.delete_group_offsets(unique("g-none"), [KafkaTopicPartition(topic, 0)])
                seen["kafka-python no such group"] = "worked"
            except KafkaError as exc:
                seen["kafka-python no such group"] = type(exc).__name__
        finally:
            client.close()
        return seen

    run_differential(scenario, brokers)


OFFSET_FOR_LEADER_EPOCH, DELETE_RECORDS = 23, 21


def _produce(bootstrap: str, topic: str, partition: int, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, partition=partition)
    assert producer.flush(20) == 0


def epoch_end(
    client: WireClient, version: int, topic: str, partition: int, epoch: int, current: int
) -> Observations:
    body = {
        "replica_id": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {"partition": partition, "current_leader_epoch": current, "leader_epoch": epoch}
                ],
            }
        ],
    }
    answer = client.request(OFFSET_FOR_LEADER_EPOCH, version, body)
    (t,) = answer.topics
    (p,) = t.partitions
    return {
        "throttle": plain(answer.throttle_time),
        "partition": p.partition,
        "error": plain(p.error_code),
        "epoch": p.leader_epoch,
        "end": p.end_offset,
    }


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch(brokers: Brokers, version: int) -> None:
    """v2 (librdkafka), v3-4 (kafka-python): each rule of LeaderEpochFileCache.endOffsetFor on a
    partition with data, an empty one, and one whose start moved (DeleteRecords), plus fencing."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("ofle")
        create_topic(bootstrap, topic, 3)
        _produce(bootstrap, topic, 0, 5)
        _produce(bootstrap, topic, 2, 4)
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            deleted = client.request(
                DELETE_RECORDS,
                2,
                {
                    "topics": [
                        {"name": topic, "partitions": [{"partition_index": 2, "offset": 3}]}
                    ],
                    "timeout": 10_000,
                },
            )
            seen["delete records"] = plain(deleted.topics[0].partitions[0].error_code)
            cases = {
                "epoch 0": (0, 0, -1),
                "epoch 0 current 0": (0, 0, 0),
                "empty partition": (1, 0, 0),
                "moved start": (2, 0, 0),
                "moved start epoch -3": (2, -3, -1),
                "epoch 1 (above)": (0, 1, 0),
                "epoch 7 (above)": (0, 7, -1),
                "epoch -1": (0, -1, 0),
                "epoch -2": (0, -2, -1),
                "current 1 (unknown)": (0, 0, 1),
                "current -2 (fenced)": (0, 0, -2),
                "unknown partition": (9, 0, -1),
            }
            for name, (partition, epoch, current) in cases.items():
                seen[name] = epoch_end(client, version, topic, partition, epoch, current)
            seen["unknown topic"] = epoch_end(client, version, unique("ofle-absent"), 0, 0, -1)
        return seen

    run_differential(scenario, brokers)


OFFSET_COMMIT = 8
TRUNCATION_SETTLE_S = 4.0
"""How long a consumer polls before one more record is produced. A client that detected the
truncation waits at the end of the log (it sees only the new record); one that reset reads from
the start at once. Only the order of events matters, not the time: a slow machine that needs
longer only shifts records from the first list to the same final list."""


def _commit(bootstrap: str, group: str, topic: str, offset: int, epoch: int) -> None:
    """Commit as an admin does (generation -1): the offset and the leader epoch it came from."""
    body = {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "retention_time": -1,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": 0,
                        "committed_offset": offset,
                        "committed_leader_epoch": epoch,
                        "committed_metadata": "",
                    }
                ],
            }
        ],
    }
    find_coordinator(bootstrap, 2, group)
    with WireClient(bootstrap) as client:
        answer = client.request(OFFSET_COMMIT, 9, body)
    assert answer.topics[0].partitions[0].error_code == 0, answer


def _read_until(poll: Any, last: int, deadline_s: float) -> list[int]:
    """Offsets from `poll()` (a list of offsets per call) until `last` arrives or the deadline."""
    seen: list[int] = []
    deadline = time.monotonic() + deadline_s
    while last not in seen and time.monotonic() < deadline:
        seen.extend(poll())
    return seen


class Reading:
    """One consumer of one client, reduced to what the scenario needs: poll offsets, seek."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str) -> None:
        self.client, self.topic = client, topic
        self._stuck: float | None = None  # kafka-python's lost join result (unstick_kafka_python)
        if client == "confluent-kafka":
            from confluent_kafka import Consumer

            self.ck = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                }
            )
        else:
            from kafka import KafkaConsumer

            self.kp = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )

    def subscribe(self) -> None:
        if self.client == "confluent-kafka":
            self.ck.subscribe([self.topic])
        else:
            self.kp.subscribe([self.topic])

    def assign(self) -> None:
        if self.client == "confluent-kafka":
            from confluent_kafka import TopicPartition

            self.ck.assign([TopicPartition(self.topic, 0, 0)])
        else:
            from kafka import TopicPartition as KafkaTopicPartition

            self.kp.assign([KafkaTopicPartition(self.topic, 0)])

    def seek(self, offset: int, epoch: int) -> None:
        """librdkafka seeks to an offset with its leader epoch (and validates it when the epoch
        is set); kafka-python's seek takes no epoch (it validates nothing then)."""
        if self.client == "confluent-kafka":
            from confluent_kafka import TopicPartition

            self.ck.seek(TopicPartition(self.topic, 0, offset, leader_epoch=epoch))
        else:
            from kafka import TopicPartition as KafkaTopicPartition

            self.kp.seek(KafkaTopicPartition(self.topic, 0), offset)

    def poll(self) -> list[int]:
        if self.client == "confluent-kafka":
            message = self.ck.poll(0.2)
            if message is None or message.error():
                return []
            return [message.offset()]
        batches = self.kp.poll(timeout_ms=200)
        self._stuck = unstick_kafka_python(self.kp, self._stuck)
        return [m.offset for records in batches.values() for m in records]

    def close(self) -> None:
        if self.client == "confluent-kafka":
            self.ck.close()
        else:
            self.kp.close()


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_truncation_detection_by_clients(brokers: Brokers, client: str) -> None:
    """What a consumer reads now that OffsetForLeaderEpoch is served: from committed offsets
    that carry a leader epoch (inside the log, past its end, from an epoch the broker never
    had), and after seeks with an epoch, which librdkafka validates (KIP-320): inside the log,
    past the end of epoch 0 (truncation), and from epoch 1, for which Kafka answers "no such
    epoch" (the seeks are what tells whether the broker serves the API at all: without it
    librdkafka fetches from the seek position as asked)."""

    def scenario(bootstrap: str) -> Observations:
        topic = unique("trunc")
        inside, past, later = unique("g-inside"), unique("g-past"), unique("g-later")
        create_topic(bootstrap, topic, 1)
        _produce(bootstrap, topic, 0, 10)
        _commit(bootstrap, inside, topic, 6, 0)
        _commit(bootstrap, past, topic, 50, 0)
        _commit(bootstrap, later, topic, 5, 1)
        seen: Observations = {}
        next_offset = 10
        cases: list[tuple[str, str, tuple[int, int] | None]] = [
            ("committed inside", inside, None),
            ("committed past the end", past, None),
            ("committed with a later epoch", later, None),
            ("seek inside epoch 0", unique("g-seek"), (3, 0)),
            ("seek past the end epoch 0", unique("g-seek"), (50, 0)),
            ("seek inside epoch 1", unique("g-seek"), (4, 1)),
        ]
        for name, group, seek in cases:
            consumer = Reading(client, bootstrap, topic, group)
            try:
                if seek is None:
                    consumer.subscribe()
                else:
                    consumer.assign()
                    assert next_offset - 1 in _read_until(consumer.poll, next_offset - 1, 30)
                    consumer.seek(*seek)
                first = _read_until(consumer.poll, next_offset - 1, TRUNCATION_SETTLE_S)
                _produce(bootstrap, topic, 0, 1)
                seen[name] = sorted(set(first + _read_until(consumer.poll, next_offset, 30)))
                assert next_offset in seen[name], f"{name}: {next_offset} never came: {seen[name]}"
                next_offset += 1
            finally:
                consumer.close()
        return seen

    run_differential(scenario, brokers)


DESCRIBE_LOG_DIRS = 35


def log_dirs(
    client: WireClient, version: int, topics: dict[str, list[int]] | None, names: dict[str, str]
) -> Observations:
    body = {
        "topics": None
        if topics is None
        else [{"topic": t, "partitions": p} for t, p in topics.items()]
    }
    answer = client.request(DESCRIBE_LOG_DIRS, version, body)
    (result,) = answer.results  # one log directory on both brokers
    seen: Observations = {
        "error": plain(getattr(answer, "error_code", "<v3")),
        "dir error": plain(result.error_code),
        # the path is the deployment's; clients show it as a name
        "dir is absolute": result.log_dir.startswith("/"),
        # the reference node is shared by the session: only this scenario's topics are looked at
        "topics": sorted(
            (
                names[t.name],
                sorted(
                    (p.partition_index, p.partition_size, p.offset_lag, p.is_future_key)
                    for p in t.partitions
                ),
            )
            for t in result.topics
            if t.name in names
        ),
    }
    if version >= 4:
        # the disk's figures are the machine's: both brokers share it, but its free space moves
        seen["disk"] = 0 < result.usable_bytes <= result.total_bytes
    return seen


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_describe_log_dirs(brokers: Brokers, version: int) -> None:
    """Sizes of partitions holding the same hand-made batches (stored as received, so the
    byte counts must agree), an empty partition, a partition emptied by DeleteRecords, every
    partition (null topics), some partitions, and unknown ones (left out without an error)."""
    from kafkito.testing.wire import record_batch

    def scenario(bootstrap: str) -> Observations:
        topic, other = unique("ld"), unique("ld-other")
        absent = unique("ld-absent")
        names = {topic: "T", other: "O", absent: "A"}
        create_topic(bootstrap, topic, 3)
        create_topic(bootstrap, other, 1)
        with WireClient(bootstrap) as client:
            for partition, count in ((0, 3), (0, 1), (2, 5)):
                batch = record_batch(
                    [(b"k%d" % i, b"value-%d" % i, [("h", b"x")]) for i in range(count)],
                    base_timestamp_ms=1_700_000_000_000,
                )
                body = {
                    "transactional_id": None,
                    "acks": -1,
                    "timeout": 10_000,
                    "topic_data": [
                        {"name": topic, "partition_data": [{"index": partition, "records": batch}]}
                    ],
                }
                produced = client.request(0, 9, body)
                assert produced.responses[0].partition_responses[0].error_code == 0
            seen = {
                "all": log_dirs(client, version, None, names),
                "some": log_dirs(client, version, {topic: [0, 1]}, names),
                "unknown": log_dirs(client, version, {topic: [7], absent: [0]}, names),
                "none": log_dirs(client, version, {}, names),
            }
        if version == 4:  # kafka-python's admin call (confluent-kafka 2.16 has none)
            from kafka.admin import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                (broker,) = admin.describe_log_dirs({topic: [0, 2]})
            finally:
                admin.close()
            seen["kafka-python"] = sorted(
                (names[t["name"]], p["partition_index"], p["partition_size"])
                for d in broker["log_dirs"]
                for t in d["topics"]
                for p in t["partitions"]
            )
        return seen

    run_differential(scenario, brokers)


DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49
Ops = list[tuple[str, float | None]]


def alter_quotas(
    client: WireClient,
    version: int,
    entries: list[tuple[list[tuple[str, str | None]], Ops]],
    *,
    validate_only: bool = False,
) -> list[Any]:
    body = {
        "entries": [
            {
                "entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
                "ops": [
                    {"key": k, "value": 0.0 if v is None else v, "remove": v is None}
                    for k, v in ops
                ],
            }
            for entity, ops in entries
        ],
        "validate_only": validate_only,
    }
    answer = client.request(ALTER_CLIENT_QUOTAS, version, body)
    # Kafka answers from a map keyed by entity: the order means nothing, the pairing does
    return sorted(
        (
            sorted((e.entity_type, e.entity_name or "<default>") for e in entry.entity),
            plain(entry.error_code),
            entry.error_message,
        )
        for entry in answer.entries
    )


def describe_quotas(
    client: WireClient,
    version: int,
    components: list[tuple[str, int, str | None]],
    *,
    strict: bool = False,
    ours: set[str] | None = None,
) -> Observations:
    """DescribeClientQuotas; with `ours`, only entities naming one of them, or only defaults
    (the reference node is shared by the session: other tests' entities are not looked at)."""
    body = {
        "components": [
            {"entity_type": t, "match_type": m, "match": match} for t, m, match in components
        ],
        "strict": strict,
    }
    answer = client.request(DESCRIBE_CLIENT_QUOTAS, version, body)
    entries = None
    if answer.entries is not None:
        entries = sorted(
            (
                sorted((e.entity_type, e.entity_name or "<default>") for e in entry.entity),
                sorted((v.key, v.value) for v in entry.values),
            )
            for entry in answer.entries
            if ours is None
            or any(e.entity_name in ours or e.entity_name is None for e in entry.entity)
        )
    return {
        "error": plain(answer.error_code),
        "message": answer.error_message,
        "entries": entries,
    }


def await_quotas(client: WireClient, entity: list[tuple[str, str | None]], values: Any) -> None:
    """Wait until DescribeClientQuotas shows `entity` with `values` ({} once removed).

    Apache Kafka's brokers serve quotas from their metadata image, which follows the
    controller's commit a moment after AlterClientQuotas answers; kafkito's answer comes after
    the change. The wait removes that timing, and only that, from the observations."""
    components = [(t, 0 if n is not None else 1, n) for t, n in entity]
    want = sorted(values.items())
    deadline = time.monotonic() + 20
    while True:
        seen = describe_quotas(client, 1, components, strict=True)["entries"] or []
        got = seen[0][1] if seen else []
        if got == want:
            return
        assert time.monotonic() < deadline, f"quotas of {entity} still {got}, want {want}"
        time.sleep(0.05)


@pytest.mark.parametrize("version", [0, 1])
def test_client_quotas_alter_and_describe(brokers: Brokers, version: int) -> None:
    """AlterClientQuotas' checks and DescribeClientQuotas' filters, answer by answer. The
    default entity set here holds a key that throttles nothing (controller_mutation_rate is
    not enforced on these requests), and everything is removed at the end: the reference
    node is shared by the session."""

    def scenario(bootstrap: str) -> Observations:
        u1, c1, c2, c3 = unique("u1"), unique("c1"), unique("c2"), unique("c3")
        names = {u1: "U1", c1: "C1", c2: "C2", c3: "C3"}
        ours = set(names)
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            try:
                seen["validate only"] = alter_quotas(
                    client,
                    version,
                    [([("client-id", c3)], [("producer_byte_rate", 100.0)])],
                    validate_only=True,
                )
                seen["alter"] = alter_quotas(
                    client,
                    version,
                    [
                        (
                            [("client-id", c1)],
                            [("producer_byte_rate", 1024.0), ("consumer_byte_rate", 2048.0)],
                        ),
                        ([("user", u1), ("client-id", c1)], [("request_percentage", 50.5)]),
                        ([("user", u1)], [("producer_byte_rate", 4096.0)]),
                        ([("client-id", None)], [("controller_mutation_rate", 1e9)]),
                        ([("ip", "127.0.0.2")], [("connection_creation_rate", 1000.0)]),
                        ([("client-id", c3)], [("producer_byte_rate", None)]),
                    ],
                )
                for entity, values in (
                    (
                        [("client-id", c1)],
                        {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
                    ),
                    ([("user", u1), ("client-id", c1)], {"request_percentage": 50.5}),
                    ([("user", u1)], {"producer_byte_rate": 4096.0}),
                    ([("client-id", None)], {"controller_mutation_rate": 1e9}),
                    ([("ip", "127.0.0.2")], {"connection_creation_rate": 1000.0}),
                ):
                    await_quotas(client, entity, values)
                refusals = {
                    "not a long": ([("user", u1)], [("producer_byte_rate", 1.5)]),
                    "unknown key": ([("user", u1)], [("bogus_rate", 1.0)]),
                    "ip key on a client": (
                        [("client-id", c2)],
                        [("connection_creation_rate", 1.0)],
                    ),
                    "client key on an ip": ([("ip", "127.0.0.3")], [("producer_byte_rate", 1.0)]),
                    "bad ip": ([("ip", "300.1.1.1")], [("connection_creation_rate", 1.0)]),
                    "empty user": ([("user", "")], [("producer_byte_rate", 1.0)]),
                    "ip with user": (
                        [("ip", "127.0.0.4"), ("user", u1)],
                        [("producer_byte_rate", 1.0)],
                    ),
                    "no entity": ([], [("producer_byte_rate", 1.0)]),
                    "unknown type": ([("group", c2)], [("producer_byte_rate", 1.0)]),
                    "duplicate key": (
                        [("client-id", c2)],
                        [("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)],
                    ),
                    "negative": ([("client-id", c2)], [("producer_byte_rate", -5.0)]),
                    "zero": ([("client-id", c2)], [("producer_byte_rate", 0.0)]),
                    "negative fraction": ([("client-id", c2)], [("producer_byte_rate", -1.5)]),
                    "negative percentage": ([("client-id", c2)], [("request_percentage", -1.5)]),
                    "fraction of a percent": ([("client-id", c2)], [("request_percentage", 0.5)]),
                    "valid and invalid": (
                        [("client-id", c2)],
                        [("consumer_byte_rate", 10.0), ("producer_byte_rate", 1.5)],
                    ),
                }
                for name, entry in refusals.items():
                    seen[name] = alter_quotas(client, version, [entry])
                await_quotas(client, [("client-id", c2)], {"request_percentage": 0.5})
                filters: dict[str, tuple[list[tuple[str, int, str | None]], bool]] = {
                    "client C1": ([("client-id", 0, c1)], False),
                    "client C1 strict": ([("client-id", 0, c1)], True),
                    "user U1": ([("user", 0, u1)], False),
                    "user U1 strict": ([("user", 0, u1)], True),
                    "user U1 any client": ([("user", 0, u1), ("client-id", 2, None)], False),
                    "default client": ([("client-id", 1, None)], True),
                    "any client strict": ([("client-id", 2, None)], True),
                    "unknown client": ([("client-id", 0, unique("nobody"))], False),
                    "ip exact": ([("ip", 0, "127.0.0.2")], True),
                    "ip with user": ([("ip", 2, None), ("user", 2, None)], False),
                    "unknown type": ([("group", 2, None)], False),
                    "empty type": ([("", 2, None)], False),
                    "twice": ([("user", 2, None), ("user", 0, u1)], False),
                    "exact without name": ([("user", 0, None)], False),
                    "default with name": ([("user", 1, u1)], False),
                    "any with name": ([("user", 2, u1)], False),
                    "bad match type": ([("user", 7, None)], False),
                }
                for name, (components, strict) in filters.items():
                    seen[f"describe {name}"] = describe_quotas(
                        client, version, components, strict=strict, ours=ours
                    )
            finally:
                alter_quotas(
                    client,
                    1,
                    [
                        (
                            [("client-id", c1)],
                            [("producer_byte_rate", None), ("consumer_byte_rate", None)],
                        ),
                        ([("user", u1), ("client-id", c1)], [("request_percentage", None)]),
                        ([("user", u1)], [("producer_byte_rate", None)]),
                        ([("client-id", None)], [("controller_mutation_rate", None)]),
                        ([("ip", "127.0.0.2")], [("connection_creation_rate", None)]),
                        ([("client-id", c2)], [("request_percentage", None)]),
                    ],
                )
            await_quotas(client, [("client-id", None)], {})
            seen["after removal"] = describe_quotas(client, version, [("client-id", 0, c1)])
        return scrub(seen, names)

    run_differential(scenario, brokers)
