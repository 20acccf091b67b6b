"""The console's actions through its JSON API against a real broker (starlette's TestClient
over ASGI, the console's own Kafka clients over TCP): search and paging, produce, topic
create / config edit / delete, offset reset with a dry run, dead-letter re-publish; and
`read_only`, which refuses every one of them.

Every test runs twice: on a fresh kafkito broker and on Apache Kafka (the session's
`kafka_reference` node), with the same assertions."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from starlette.testclient import TestClient

from kafkito import Broker
from kafkito.console.app import create_app
from kafkito.flow import letters

JSON = {"content-type": "application/json"}


@pytest.fixture(params=["kafkito", "apache-kafka"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh kafkito broker, or the session's Apache Kafka node."""
    if request.param == "apache-kafka":
        yield request.getfixturevalue("kafka_reference").bootstrap
        return
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        yield bootstrap


def fill(broker: str, topic: str) -> None:
    """60 records over 2 partitions: keys user-0..5, JSON or text values, a header on some."""
    producer = Producer({"bootstrap.servers": broker})
    for i in range(60):
        value = b'{"n": %d, "kind": "%s"}' % (i, b"click" if i % 3 == 0 else b"view")
        headers = {"source": b"web" if i % 2 else b"app"}
        producer.produce(topic, key=f"user-{i % 6}", value=value, headers=headers, partition=i % 2)
    producer.produce(topic, key=b"bin", value=bytes(range(256)), partition=0)
    assert producer.flush(10) == 0


@pytest.fixture
def console(broker: str) -> Iterator[TestClient]:
    with TestClient(create_app({"bootstrap.servers": broker})) as client:
        yield client


def test_search_filters_and_pages_without_gaps(
    console: TestClient, broker: str, topic_name: str
) -> None:
    assert (
        console.post("/api/topics", json={"name": topic_name, "partitions": 2}).status_code == 200
    )
    fill(broker, topic_name)
    url = f"/api/topics/{topic_name}/search"
    everything = console.get(url, params={"offset_from": 0, "limit": 500}).json()
    assert len(everything["messages"]) == 61 and everything["cursor"] is None
    binary = next(m for m in everything["messages"] if m["key"] == "bin")
    assert binary["binary"] and base64.b64decode(binary["value"]) == bytes(range(256))

    clicks = console.get(url, params={"value": '"click"', "offset_from": 0}).json()["messages"]
    assert sorted(m["value_json"]["n"] for m in clicks) == list(range(0, 60, 3))
    regex = console.get(url, params={"key": "^user-[12]$", "regex": "1", "offset_from": 0})
    assert {m["key"] for m in regex.json()["messages"]} == {"user-1", "user-2"}
    web = console.get(url, params={"header": "source=web", "offset_from": 0}).json()["messages"]
    assert len(web) == 30 and all(m["partition"] == 1 for m in web)
    has_header = console.get(url, params={"header": "source", "offset_from": 0, "limit": 100})
    has_header = has_header.json()
    assert len(has_header["messages"]) == 60
    window = console.get(url, params={"partition": 1, "offset_from": 5, "offset_to": 8}).json()
    assert [(m["partition"], m["offset"]) for m in window["messages"]] == [(1, 5), (1, 6), (1, 7)]
    future = console.get(url, params={"time_from": str(int(time.time() * 1000) + 60_000)})
    assert future.json()["messages"] == []
    bad = console.get(url, params={"key": "([", "regex": "1"})
    assert bad.status_code == 400 and "regular expression" in bad.json()["error"]

    # pages of 13 cover every record once, in order
    seen: list[tuple[int, int]] = []
    params: dict[str, str | int] = {"offset_from": 0, "limit": 13}
    while True:
        page = console.get(url, params=params).json()
        seen += [(m["partition"], m["offset"]) for m in page["messages"]]
        if page["cursor"] is None:
            break
        params = {"cursor": page["cursor"], "limit": 13}
    assert sorted(seen) == sorted({(m["partition"], m["offset"]) for m in everything["messages"]})
    assert len(seen) == 61
    assert console.get("/api/topics/no-such-topic/search").status_code == 404
    assert console.get("/console/topics/no-such-topic").status_code == 404
    assert console.get("/console/groups/no-such-group").status_code == 404
    icon = console.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


def test_produce_create_edit_delete(console: TestClient, broker: str, topic_name: str) -> None:
    created = console.post(
        "/api/topics",
        json={"name": topic_name, "partitions": 3, "configs": {"retention.ms": "3600000"}},
    )
    assert created.status_code == 200, created.text
    again = console.post("/api/topics", json={"name": topic_name})
    assert again.status_code == 409
    payload = random.Random(5).randbytes(64)
    written = console.post(
        f"/api/topics/{topic_name}/produce",
        json={
            "key": base64.b64encode(b"k\x00").decode(),
            "value": base64.b64encode(payload).decode(),
            "encoding": "base64",
            "partition": 2,
            "headers": {"h": "v"},
        },
    ).json()
    assert (written["partition"], written["offset"]) == (2, 0)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "check-produce"})
    consumer.assign([TopicPartition(topic_name, 2, 0)])
    msg = consumer.poll(10)
    consumer.close()
    assert msg is not None and msg.error() is None
    assert (msg.key(), msg.value(), msg.headers()) == (b"k\x00", payload, [("h", b"v")])
    no_partition = console.post(
        f"/api/topics/{topic_name}/produce", json={"value": "x", "partition": 9}
    )
    assert no_partition.status_code in (400, 404) and no_partition.json()["error"]

    edited = console.post(
        f"/api/topics/{topic_name}/configs", json={"set": {"retention.ms": "60000"}}
    )
    assert edited.status_code == 200, edited.text
    assert console.get(f"/api/topics/{topic_name}").json()["configs"]["retention.ms"] == "60000"
    refused = console.post(f"/api/topics/{topic_name}/configs", json={"set": {"no.such": "1"}})
    assert refused.status_code == 400

    unconfirmed = console.request("DELETE", f"/api/topics/{topic_name}", json={"confirm": "x"})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["error"]
    assert console.get(f"/api/topics/{topic_name}").status_code == 200
    deleted = console.request("DELETE", f"/api/topics/{topic_name}", json={"confirm": topic_name})
    assert deleted.status_code == 200
    deadline = time.monotonic() + 10
    while console.get(f"/api/topics/{topic_name}").status_code != 404:
        assert time.monotonic() < deadline, "the topic is still there"
        time.sleep(0.1)


def test_offset_reset_dry_run_then_execute_and_lag_history(
    console: TestClient, broker: str, topic_name: str
) -> None:
    assert (
        console.post("/api/topics", json={"name": topic_name, "partitions": 2}).status_code == 200
    )
    fill(broker, topic_name)
    group_id = f"resetters-{topic_name}"
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group_id})
    consumer.commit(
        offsets=[TopicPartition(topic_name, 0, 20), TopicPartition(topic_name, 1, 25)],
        asynchronous=False,
    )
    consumer.close()
    group = console.get(f"/api/groups/{group_id}").json()
    assert group["lag"] == (31 - 20) + (30 - 25)
    url = f"/api/groups/{group_id}/reset-offsets"
    plan = console.post(url, json={"topic": topic_name, "to": "offset", "value": "3"}).json()
    assert not plan["executed"]
    assert [(r["partition"], r["new_offset"]) for r in plan["plan"]] == [(0, 3), (1, 3)]
    assert console.get(f"/api/groups/{group_id}").json()["lag"] == 16  # a dry run changes nothing
    done = console.post(url, json={"topic": topic_name, "to": "earliest", "execute": True})
    assert done.status_code == 200 and done.json()["executed"]
    assert console.get(f"/api/groups/{group_id}").json()["lag"] == 61
    history = console.get(f"/api/groups/{group_id}/lag-history").json()
    assert [sum(s["lag"].values()) for s in history] == [16, 16, 61]
    assert set(history[-1]["lag"]) == {f"{topic_name}[0]", f"{topic_name}[1]"}
    bad = console.post(url, json={"topic": topic_name, "to": "offset", "value": "soon"})
    assert bad.status_code == 400


def dead_letter(producer: Producer, origin: str, i: int) -> None:
    headers = letters.dead_letter_headers(
        [("trace", b"t%d" % i)],
        letters.Origin(origin, 0, i, 1_700_000_000_000 + i),
        group="billing",
        attempts=3,
        exc=ValueError(f"bad amount in record {i}"),
        key=b"k%d" % i,
        value=b"v%d\xff" % i,
        max_record_bytes=1_000_000,
    )
    producer.produce(
        letters.dead_letter_topic(origin), key=b"k%d" % i, value=b"v%d\xff" % i, headers=headers
    )


def test_dead_letters_show_origin_and_error_and_republish(
    console: TestClient, broker: str, topic_name: str
) -> None:
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(topic_name, b"first")
    for i in range(3):
        dead_letter(producer, topic_name, i)
    assert producer.flush(10) == 0
    rows = [r for r in console.get("/api/dead-letters").json() if r["origin_topic"] == topic_name]
    assert len(rows) == 3
    row = next(r for r in rows if r["origin_offset"] == 1)
    assert (row["group"], row["attempts"], row["error_type"]) == (
        "billing",
        "3",
        "builtins.ValueError",
    )
    assert row["error_message"] == "bad amount in record 1"
    dlq = letters.dead_letter_topic(topic_name)
    done = console.post(f"/api/dead-letters/{dlq}/republish", json={"records": [[0, 1], [0, 2]]})
    assert done.status_code == 200, done.text
    assert [(r["topic"], r["offset"]) for r in done.json()["republished"]] == [
        (topic_name, 1),
        (topic_name, 2),
    ]
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "check-republish"})
    consumer.assign([TopicPartition(topic_name, 0, 1)])
    got = [consumer.poll(10) for _ in range(2)]
    consumer.close()
    assert [(m.key(), m.value(), m.headers()) for m in got] == [
        (b"k1", b"v1\xff", [("trace", b"t1")]),
        (b"k2", b"v2\xff", [("trace", b"t2")]),
    ]  # byte for byte, kafkito's headers removed
    missing = console.post(f"/api/dead-letters/{dlq}/republish", json={"records": [[0, 99]]})
    assert missing.status_code == 404


def test_read_only_refuses_every_change(broker: str, topic_name: str) -> None:
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(topic_name, b"keep")
    dead_letter(producer, topic_name, 0)
    assert producer.flush(10) == 0
    dlq = letters.dead_letter_topic(topic_name)
    with TestClient(create_app({"bootstrap.servers": broker}, read_only=True)) as client:
        for method, path, body in (
            ("POST", "/api/topics", {"name": "nope-" + topic_name}),
            ("POST", f"/api/topics/{topic_name}/produce", {"value": "x"}),
            ("POST", f"/api/topics/{topic_name}/configs", {"set": {"retention.ms": "1"}}),
            ("DELETE", f"/api/topics/{topic_name}", {"confirm": topic_name}),
            ("POST", "/api/groups/g/reset-offsets", {"topic": topic_name, "to": "earliest"}),
            ("POST", f"/api/dead-letters/{dlq}/republish", {"records": [[0, 0]]}),
        ):
            answer = client.request(method, path, json=body)
            assert answer.status_code == 403, (path, answer.text)
            assert "read-only" in answer.json()["error"]
        page = client.get(f"/console/topics/{topic_name}").text
        assert (
            "id='produce'" not in page and "delete-topic" not in page and "edit-config" not in page
        )
        assert "read-only" in page
        assert client.get(f"/api/topics/{topic_name}/search").status_code == 200  # reading works
        names = {t["name"] for t in client.get("/api/topics").json()}
        assert topic_name in names and "nope-" + topic_name not in names
        assert client.get(f"/api/topics/{topic_name}").json()["partitions"][0]["end_offset"] == 1


def test_changes_must_be_json_from_the_same_origin(console: TestClient, topic_name: str) -> None:
    form = console.post("/api/topics", data={"name": topic_name})
    assert form.status_code == 415
    cross = console.post(
        "/api/topics", json={"name": topic_name}, headers={"origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert console.get(f"/api/topics/{topic_name}").status_code == 404
