"""OffsetDelete, OffsetForLeaderEpoch and DescribeLogDirs, kafkito vs Apache Kafka on the wire.

These answers decide what tools do next (`kafka-consumer-groups --delete-offsets` reports each
partition's error; librdkafka truncates or resets from an OffsetForLeaderEpoch answer; monitors
read log-dir sizes), and clients hide them behind one "worked": so each scenario speaks the
protocol with `WireClient` and compares every field with Apache Kafka's answer, then checks that
a client's admin call built on the API gives the same result on both brokers.
"""

from __future__ import annotations

from compat.differential import Brokers, Observations, create_topic, plain, run_differential, unique
from compat.test_differential_groups import (
    CLIENTS,
    Member,
    Names,
    assignment,
    find_coordinator,
    offset_fetch,
    wait_state,
)
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
