"""The console's streams page and its JSON twin (/console/streams, /api/streams) over a real
streams app: found by its group and internal topics, with stores, repartition topics, dead
letters, lag, and its health while it runs in this process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.client.raw_consumer import RawConsumer, TopicPartition
from kafkito.console.app import create_app
from kafkito.streams import StreamsApp


def _commit_plain_group(bootstrap: str, group: str, topic: str) -> None:
    """A consumer group that is no streams app, named like the prefix of one."""
    consumer = RawConsumer(brokers=bootstrap, settings={"group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()


def test_streams_page_and_api(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    views = f"{kafkito_topic}-views"
    create_topic(kafkito_bootstrap, views, 2)
    pages = ["/", "/docs", "/pricing"]
    produce(
        kafkito_bootstrap,
        views,
        ((f"u{i}", {"page": pages[i % 3]}, None, None) for i in range(30)),
    )
    produce(kafkito_bootstrap, views, [("bad", b"not json", 0, None)])
    # The group `kafkito_topic` is a prefix of the app's topics but not the app (the longest
    # group name a topic starts with owns it).
    _commit_plain_group(kafkito_bootstrap, kafkito_topic, views)
    name = f"{kafkito_topic}-app"
    app = StreamsApp(name, brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(views).group_by(lambda v: v["page"]).count(name="per-page").to(
        f"{kafkito_topic}-out"
    )
    running = start_app(app)
    read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=30)
    client = TestClient(create_app({"bootstrap.servers": kafkito_bootstrap}))

    def described() -> dict:  # type: ignore[type-arg]
        found = client.get(f"/api/streams/{name}")
        assert found.status_code == 200, found.text
        body: dict = found.json()  # type: ignore[type-arg]
        return body

    wait_for(
        lambda: (d := described())["total_lag"] == 0 and len(d["lag"]) == 4,
        what="the app's offsets committed, no lag",
    )
    listed = client.get("/api/streams").json()["apps"]
    names = [a["app"] for a in listed]
    assert name in names and kafkito_topic not in names
    seen = next(a for a in listed if a["app"] == name)
    (repartition,) = sorted(app._repartitions)
    assert seen["repartition_topics"] == [repartition]
    (store,) = seen["stores"]
    assert (store["store"], store["changelog"]) == ("per-page", f"{name}-per-page-changelog")
    assert [p["partition"] for p in store["partitions"]] == [0, 1]
    assert sum(p["records"] for p in store["partitions"]) >= len(pages)
    assert seen["dead_letters"] == {"topic": f"{name}-dead-letters", "records": 1}
    assert {(r["topic"], r["partition"]) for r in seen["lag"]} == {
        (views, 0),
        (views, 1),
        (repartition, 0),
        (repartition, 1),
    }
    assert len(seen["members"]) == 1
    health = seen["health"]  # the app runs in this process
    assert health["live"] and health["ready"] and health["processed"] >= 31

    page = client.get("/console/streams")
    assert page.status_code == 200
    assert f"data-app='{name}'" in page.text and f"data-app='{kafkito_topic}'" not in page.text
    assert "per-page" in page.text and f"{name}-dead-letters</a>: 1 records" in page.text
    assert "<span class='badge'>live</span>" in page.text
    assert 'href="/console/streams"' in client.get("/console").text
    assert client.get("/api/streams/no-such-app").status_code == 404

    running.stop()
    after = described()
    assert after["health"] is None  # stopped: its state stays on the cluster
    assert after["stores"][0]["store"] == "per-page"
    assert "not running in this process" in client.get("/console/streams").text
