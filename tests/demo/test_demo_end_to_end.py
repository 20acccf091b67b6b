"""The demo end to end: every valid event counted and stored, every malformed one dead-lettered.

Runs `kafkito demo`'s engine for a few seconds on an embedded broker, then checks the consumers
against the producers' ground truth; DuckDB reads the data lake back."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from kafkito.demo import Demo, DemoOptions
from kafkito.demo.events import TOPICS
from kafkito.demo.lake import query


def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in metadata.partitions
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    values: list[bytes] = []
    seen = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + 30
    while any(seen[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is None:
                values.append(msg.value())
                seen[msg.partition()] = msg.offset() + 1
    consumer.close()
    return values


def test_demo_counts_stores_and_dead_letters_everything(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    demo = Demo(
        DemoOptions(
            rate=400,
            duration_s=None,
            port=0,
            lake_dir=str(lake),
            data_dir=str(tmp_path / "data"),
            malformed_share=0.05,
            seed=11,
        )
    )
    report = demo.start()
    try:
        with urllib.request.urlopen(report.url + "api/dashboard", timeout=10) as answer:
            assert answer.status == 200
        time.sleep(6)
    finally:
        report = demo.stop()
    assert report.drained, "the consumers did not catch up"
    produced = set(report.produced)
    assert len(produced) > 1000 and len(report.malformed) > 20
    assert report.counted_ids == produced, "analytics counted exactly the valid events"
    # the streams app's windows: every page view is in a bucket (the run is under 60 s)
    views = sum(1 for topic in report.produced.values() if topic == "page_views")
    windowed = demo.analytics._pages.values()
    assert sum(counts[0] for pages in windowed for counts in pages.values()) == views
    assert sum(demo.analytics._seen_buckets.values()) > 0, "no closed bucket was judged"
    stored = query(lake, "").fetchall()
    columns = [d[0] for d in query(lake, "LIMIT 0").description]
    ids = Counter(row[columns.index("event_id")] for row in stored)
    assert set(ids) == produced, "the lake holds every valid event"
    assert max(ids.values()) == 1, "no crash, no rebalance: no event stored twice"
    by_topic = dict(query(lake, "").aggregate("topic, count(*)").fetchall())
    assert set(by_topic) == set(TOPICS)

    from kafkito import Broker

    # the demo stopped its broker; start one on the same data to read the dead-letter topics
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        dead = Counter(value for topic in TOPICS for value in read_topic(bootstrap, f"{topic}.dlq"))
    malformed = Counter(value for _, value in report.malformed)
    assert set(dead) == set(malformed), "every malformed event is in a dead-letter topic"


def test_demo_command_against_a_given_cluster(broker: str, tmp_path: Path) -> None:
    """`kafkito --brokers ... demo` uses that cluster (here a separate broker) for everything."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kafkito",
            "--brokers",
            broker,
            "demo",
            "--duration",
            "4",
            "--port",
            "0",
            "--rate",
            "200",
            "--lake-dir",
            str(tmp_path / "lake"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"on the Kafka at {broker}" in done.stdout
    assert "analytics counted" in done.stdout and "warning" not in done.stderr
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"c-{uuid.uuid4().hex}"})
    topics = consumer.list_topics(timeout=10).topics
    consumer.close()
    assert {"page_views", "clicks", "page_views.dlq"} <= set(topics)
