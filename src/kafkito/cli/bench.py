"""`kafkito bench`: produce then consume a burst of records and print the rates."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from kafkito.cli.context import CliContext, CliError, handle_errors


@click.command()
@click.option("--count", "-n", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option(
    "--size", "-s", type=click.IntRange(min=0), default=100, show_default=True, help="Value bytes."
)
@click.option("--topic", default=None, help="Default: a new topic per run.")
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True)
@click.option("--linger-ms", type=click.IntRange(min=0), default=5, show_default=True)
@click.pass_obj
def bench(
    obj: CliContext, count: int, size: int, topic: str | None, acks: str, linger_ms: int
) -> None:
    """Measure producer and consumer throughput against the cluster.

    \b
    Example:
      kafkito bench --count 200000 --size 1024
    """
    from kafkito.client.raw_consumer import TopicPartition
    from kafkito.client.raw_producer import delivery_error

    topic = topic or f"kafkito-bench-{uuid.uuid4().hex[:8]}"
    payload = os.urandom(size)
    with handle_errors(obj):
        producer = obj.producer(
            **{
                "acks": acks,
                "linger.ms": linger_ms,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "allow.auto.create.topics": True,
                "message.timeout.ms": 120_000,  # a burst queued at once: not the --timeout
            }
        )
        failures: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        show = not obj.json_output
        with Progress(transient=True, disable=not show, console=Console(stderr=True)) as progress:
            task = progress.add_task("producing", total=count)
            started = time.perf_counter()
            for i in range(count):
                # waits (serving delivery reports) while the local queue is full
                producer.produce(topic, payload, partition=0, on_delivery=on_delivery)
                if i % 5000 == 0:
                    producer.poll(0)
                    progress.update(task, completed=i)
            if producer.flush(120):
                raise CliError("producer did not finish within 120 s")
            produce_s = time.perf_counter() - started
        if failures:
            first = delivery_error(failures[0], topic=topic)
            raise CliError(f"{len(failures)} records failed: {first}")
        consumer = obj.consumer(
            **{
                "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "fetch.max.bytes": 50 * 1024 * 1024,
            }
        )
        consumer.assign([TopicPartition(topic, 0, 0)])
        got, first_at = 0, None
        with Progress(transient=True, disable=not show, console=Console(stderr=True)) as progress:
            task = progress.add_task("consuming", total=count)
            deadline = time.monotonic() + 120
            while got < count and time.monotonic() < deadline:
                batch = consumer.consume(10_000, timeout=1.0)
                if batch and first_at is None:
                    first_at = time.perf_counter()
                got += sum(1 for m in batch if m.error() is None)
                progress.update(task, completed=got)
            consume_s = time.perf_counter() - (first_at or time.perf_counter())
        consumer.close()
        report = {
            "topic": topic,
            "count": count,
            "size": size,
            "produce_msgs_per_s": round(count / produce_s),
            "produce_mb_per_s": round(count * size / produce_s / 1e6, 2),
            "consume_msgs_per_s": round(got / consume_s) if consume_s > 0 else None,
            "consume_mb_per_s": round(got * size / consume_s / 1e6, 2) if consume_s > 0 else None,
            "consumed": got,
        }
        obj.emit_object(report)
