"""The client library (sync) on a 3-node Apache Kafka: what a user wrote against kafkito runs
unchanged, configured from YAML with the cluster's bootstrap list."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from gradkit import (
    FAST_GROUP,
    committed,
    create_topic,
    end_offsets,
    known_to_every_broker,
    read_all,
)

from kafkito.client import (
    Admin,
    HealthChecker,
    Reader,
    ReaderConfig,
    Record,
    TopicWriter,
    Writer,
    WriterConfig,
    current_message,
    serve_health,
)
from kafkito.testing.apache_kafka import ApacheKafka


class Boom(Exception):
    pass


def yaml_config(kafka: ApacheKafka, topic: str, group: str | None = None) -> str:
    """A config file as a user writes it: the brokers as a YAML list of the three nodes."""
    brokers = "".join(f"\n  - {address}" for address in kafka.bootstrap.split(","))
    text = f"brokers:{brokers}\ntopic: {topic}\nclient:\n  client_id: grad\n  timeout: 20s\n"
    if group is not None:
        text += f"group_id: {group}\ncommit_interval: 200ms\n"
    return text


def test_write_read_commit_after_success_and_a_failed_handler_reads_again(
    kafka: ApacheKafka, topic: str, group: str
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=3)
    wconfig = WriterConfig.from_yaml(yaml_config(kafka, topic))
    assert wconfig.brokers == kafka.bootstrap.split(",")
    with Writer(config=wconfig) as writer:
        first = writer.write(b"v0", headers={"h": "1", "bin": b"\x00\xff"}, key=b"alice")
        second = writer.write_with_key(b"v1", b"alice", headers=[("h", "2")])
        assert first.partition == second.partition  # one key, one partition
        assert second.offset == first.offset + 1
        batch = writer.write_many(
            [Record(f"v{i}".encode(), key=f"k{i % 5}", headers={"i": str(i)}) for i in range(2, 40)]
        )
        assert len(batch) == 38
        assert writer.write_value(b"v40").offset >= 0
    rconfig = ReaderConfig.from_yaml(yaml_config(kafka, topic, group)).merged(settings=FAST_GROUP)

    seen: list[tuple[Any, ...]] = []
    failed_once: list[int] = []

    def handle(value: bytes | None, headers: dict[str, str]) -> None:
        message = current_message.get()
        assert message is not None
        if value == b"v7" and not failed_once:
            failed_once.append(message.offset)
            raise Boom("first try of v7")
        seen.append((value, message.key, message.partition, dict(message.headers)))

    with Reader(config=rconfig) as reader:
        with pytest.raises(Boom):
            reader.read_message(lambda m: handle(m.value, m.headers), limit=41)
        before_failure = len(seen)
    # A new member of the group starts at the failed record: nothing after it was committed
    # past it in its partition, and everything handled was committed on close.
    with Reader(config=rconfig) as reader:
        reader.read_message(lambda m: handle(m.value, m.headers), limit=41 - before_failure)
        reader.commit()
    values = sorted(int(v[0][1:]) for v in seen)
    assert sorted(set(values)) == list(range(41)), values
    again = [v for v in seen[before_failure:] if v[0] == b"v7"]
    assert again, "the record whose handler raised was not read again"
    by_value = {v[0]: v for v in seen}
    assert by_value[b"v0"][1] == b"alice" and by_value[b"v0"][3] == {"h": "1", "bin": "\x00\ufffd"}
    assert by_value[b"v1"][3] == {"h": "2"}
    assert by_value[b"v9"][1] == b"k4" and by_value[b"v9"][3] == {"i": "9"}
    # commit after success: the group's committed offsets reach the end of every partition
    assert committed(kafka.bootstrap, group, topic, 3) == end_offsets(kafka.bootstrap, topic, 3)


def test_topic_writer_and_raw_bytes_on_the_wire(kafka: ApacheKafka, topic: str) -> None:
    other = topic + "-b"
    for name in (topic, other):
        create_topic(kafka.bootstrap, name)
    with TopicWriter({"brokers": kafka.bootstrap}) as writer:
        writer.write(topic, b"\x00raw\xff", key=b"k", headers=[("h", b"\x01")])
        writer.write_many(other, [Record(b"a", key="x"), Record(b"b", key="x")])
    (msg,) = read_all(kafka.bootstrap, topic, expect=1)
    assert (msg.key(), msg.value(), msg.headers()) == (b"k", b"\x00raw\xff", [("h", b"\x01")])
    assert [m.value() for m in read_all(kafka.bootstrap, other, expect=2)] == [b"a", b"b"]


def test_created_topics_are_known_to_every_broker_when_create_returns(
    kafka: ApacheKafka, topic: str
) -> None:
    """A consumer subscribing right after create_topics asks any one broker; one that has not
    learned of the topic yet makes librdkafka wait for its periodic refresh (5 minutes)."""
    names = [f"{topic}-{i}" for i in range(6)]
    with Admin(brokers=kafka.bootstrap) as admin:
        assert admin.create_topics(names, partitions=3) == names
        answers = known_to_every_broker(kafka.bootstrap, names)
    assert len(answers) == 3 and all(answers.values()), answers


def test_topics_found_existing_are_known_to_every_broker_when_create_returns(
    kafka: ApacheKafka, topic: str
) -> None:
    """Two instances start together: one creates the topics (here a bare AdminClient, which
    does not wait), the other finds them existing with if_not_exists and subscribes at once;
    it must not ask a broker that has not learned of them yet."""
    from confluent_kafka.admin import AdminClient, NewTopic

    names = [f"{topic}-{i}" for i in range(6)]
    other = AdminClient({"bootstrap.servers": kafka.bootstrap})
    futures = other.create_topics([NewTopic(n, num_partitions=3) for n in names])
    for future in futures.values():
        future.result(30)
    with Admin(brokers=kafka.bootstrap) as admin:
        assert admin.create_topics(names, partitions=3, if_not_exists=True) == []
        # the brokers mostly learn of a topic within milliseconds, so the outcome alone
        # rarely shows a missing wait: Admin keeps the client it steered to each broker it
        # checked, the two that did not answer the create
        assert len(admin._steered) == 2, admin._steered
        answers = known_to_every_broker(kafka.bootstrap, names)
    assert len(answers) == 3 and all(answers.values()), answers


def test_health_checker_answers_on_the_cluster(kafka: ApacheKafka, topic: str, group: str) -> None:
    create_topic(kafka.bootstrap, topic, partitions=2)
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        writer.write_many([b"x"] * 10)
        data = HealthChecker("writer", writer=writer).check()
        assert data["unconfirmed"] == 0 and data["brokers_down"] == [], data
        assert data["under_replicated_partitions"] == 0, data
    with Reader(topic, brokers=kafka.bootstrap, group_id=group, settings=FAST_GROUP) as reader:
        reader.read_value(lambda v: None, limit=10)
        checker = HealthChecker("orders", reader=reader)
        data = checker.check()
        assert data["brokers"] == 3
        assert data["brokers_down"] == [] and data["degraded"] == []
        assert data["handled"] == 10 and sum(data["lag"].values()) == 0
        plain = HealthChecker("cluster", brokers=kafka.bootstrap.split(","), topics=[topic])
        with (
            serve_health([checker, plain]) as server,
            urllib.request.urlopen(server.url, timeout=30) as answer,
        ):
            document = json.loads(answer.read())
        assert document["status"] == "UP", document
        assert document["details"]["cluster"]["data"]["brokers"] == 3


def test_health_checker_is_down_when_no_broker_answers() -> None:
    from kafkito.testing.brokers import free_port

    checker = HealthChecker("nothing", brokers=f"127.0.0.1:{free_port()}", timeout_s=1.0)
    assert checker.health()["status"] == "DOWN"
    with serve_health(checker) as server:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(server.url, timeout=30)
        assert failed.value.code == 500
