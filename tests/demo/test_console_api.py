"""The console's pages and JSON API against a real broker (starlette's TestClient over ASGI)."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition
from starlette.testclient import TestClient

from kafkito.console.app import create_app


def test_console_pages_and_api(broker: str, topic_name: str) -> None:
    producer = Producer({"bootstrap.servers": broker})
    for i in range(30):
        value = b'{"n": %d}' % i if i % 2 == 0 else b"plain text %d" % i
        producer.produce(topic_name, key=f"k{i}", value=value, headers={"h": b"v"})
    assert producer.flush(10) == 0
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "console-group", "enable.auto.commit": False}
    )
    consumer.commit(offsets=[TopicPartition(topic_name, 0, 12)], asynchronous=False)
    consumer.close()

    client = TestClient(create_app({"bootstrap.servers": broker}))
    topics = {t["name"]: t for t in client.get("/api/topics").json()}
    assert topics[topic_name]["records"] == 30
    detail = client.get(f"/api/topics/{topic_name}").json()
    assert detail["partitions"][0]["end_offset"] == 30
    assert detail["configs"]["cleanup.policy"] == "delete"
    messages = client.get(f"/api/topics/{topic_name}/messages?partition=0&limit=5").json()
    assert [m["offset"] for m in messages] == [25, 26, 27, 28, 29]
    assert messages[1]["is_json"] and messages[1]["value_json"] == {"n": 26}
    assert not messages[0]["is_json"] and messages[0]["value"] == "plain text 25"
    assert messages[0]["headers"] == {"h": "v"} and messages[0]["key"] == "k25"
    assert client.get("/api/topics/no-such-topic").status_code == 404
    groups = client.get("/api/groups").json()
    assert {"group": "console-group", "state": "EMPTY"} in groups
    group = client.get("/api/groups/console-group").json()
    assert group["lag"] == 18
    assert group["partitions"][0]["committed"] == 12
    for path in (
        "/console",
        f"/console/topics/{topic_name}",
        "/console/groups",
        "/console/groups/console-group",
    ):
        page = client.get(path)
        assert page.status_code == 200 and "kafkito" in page.text, path
    assert "plain text 29" in client.get(f"/console/topics/{topic_name}").text
    home = client.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/console"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
