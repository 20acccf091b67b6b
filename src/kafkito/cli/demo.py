"""`kafkito demo`: the main job, run by the README's first command.

Until the full user-activity demo (dashboard, analytics, data lake) lands, it starts the embedded
broker, produces a burst of simulated page views and clicks with a real Kafka client
(confluent-kafka), reads every one back from the log, checks them, and prints what it did.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter

import click

PAGES = ["/", "/pricing", "/docs", "/blog/kafka-in-python", "/signup", "/login", "/cart"]


def _events(count: int, seed: int) -> list[tuple[bytes, bytes, str]]:
    rng = random.Random(seed)
    events = []
    for i in range(count):
        user = f"user-{rng.randrange(300):03d}"
        kind = "page_views" if rng.random() < 0.8 else "clicks"
        body = {"id": i, "user": user, "page": rng.choice(PAGES), "ts_ms": int(time.time() * 1000)}
        events.append((user.encode(), json.dumps(body).encode(), kind))
    return events


@click.command()
@click.option(
    "--brokers",
    default=None,
    envvar="KAFKITO_BROKERS",
    help="Use this Kafka cluster instead of starting the embedded broker.",
)
@click.option("--count", default=2000, show_default=True, help="Events to produce.")
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Data directory of the embedded broker (default: a temporary one).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed of the simulated users.")
def demo(brokers: str | None, count: int, data_dir: str | None, seed: int) -> None:
    """Produce simulated user activity and read it back.

    \b
    Example:
      kafkito demo --count 5000
    """
    from kafkito import Broker

    if brokers:
        _run(brokers, count, seed)
        return
    with tempfile.TemporaryDirectory(prefix="kafkito-demo-") as tmp:
        directory = data_dir or tmp
        with Broker(port=0, data_dir=directory, num_partitions=3) as bootstrap:
            click.echo(f"embedded kafkito broker on {bootstrap} (data in {directory})")
            _run(bootstrap, count, seed)


def _run(bootstrap: str, count: int, seed: int) -> None:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    run_id = f"{int(time.time())}"
    topics = {"page_views": f"page_views.{run_id}", "clicks": f"clicks.{run_id}"}
    events = _events(count, seed)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "acks": "all"}
    )
    acked: Counter[str] = Counter()
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            acked[msg.topic()] += 1  # type: ignore[attr-defined]

    started = time.perf_counter()
    for key, value, kind in events:
        producer.produce(
            topics[kind], key=key, value=value, headers={"source": b"demo"}, on_delivery=on_delivery
        )
        producer.poll(0)
    producer.flush(30)
    produce_s = time.perf_counter() - started
    if failures:
        raise click.ClickException(f"{len(failures)} events were not delivered: {failures[0]}")
    click.echo(
        f"produced {sum(acked.values())} events in {produce_s:.2f}s "
        f"({sum(acked.values()) / produce_s:,.0f}/s): "
        + ", ".join(f"{k}={v}" for k, v in sorted(acked.items()))
    )

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"demo-{run_id}", "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(timeout=10)
    assignment = [
        TopicPartition(t, p, 0) for t in topics.values() for p in metadata.topics[t].partitions
    ]
    consumer.assign(assignment)
    pages: Counter[str] = Counter()
    read = 0
    deadline = time.monotonic() + 30
    while read < count and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=1.0):
            if msg.error() is not None:
                continue
            read += 1
            pages[json.loads(msg.value() or b"{}").get("page", "?")] += 1
    consumer.close()
    if read != count:
        raise click.ClickException(f"read back {read} of {count} events")
    click.echo(
        f"read back all {read} events; top pages: "
        + ", ".join(f"{p} ({n})" for p, n in pages.most_common(3))
    )
