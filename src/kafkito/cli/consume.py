"""`kafkito consume`: read records from a topic, from any position, in the format you want.

Without `--group` the partitions are assigned directly (nothing is committed); with `--group`
the consumer joins that group and commits what it has printed. Without `--follow` it stops at
the end of every partition (the high watermark seen when it got there); with `--follow` it waits
for more until Ctrl-C. A closed stdout (`kafkito consume t | head -1`) ends it quietly.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import uuid
from typing import Any

import click

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE, CliContext, CliError, handle_errors

FORMATS = ("value", "kv", "json", "template")


def parse_start(text: str) -> tuple[str, int]:
    """('beginning'|'end'|'stored'|'offset'|'timestamp', value) from a --from argument."""
    lowered = text.lower()
    if lowered in ("beginning", "earliest", "start"):
        return "beginning", 0
    if lowered in ("end", "latest"):
        return "end", 0
    if lowered in ("stored", "committed"):
        return "stored", 0
    if lowered.lstrip("-").isdigit():
        offset = int(lowered)
        return ("offset", offset) if offset >= 0 else ("relative", offset)
    if lowered.startswith("@") and lowered[1:].isdigit():
        return "timestamp", int(lowered[1:])
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"--from {text!r}: use beginning, end, stored, an offset, -N (last N), "
            "@<ms since epoch> or an ISO date-time",
            EXIT_USAGE,
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return "timestamp", int(when.timestamp() * 1000)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def render(msg: Any, fmt: str, template: str | None) -> str:
    key, value = _text(msg.key()), _text(msg.value())
    if fmt == "value":
        return value or ""
    if fmt == "kv":
        return f"{key or ''}\t{value or ''}"
    _, ts = msg.timestamp()
    headers = {k: _text(v) for k, v in (msg.headers() or [])}
    if fmt == "json":
        rendered_value: Any = value
        if value is not None:
            with contextlib.suppress(ValueError):
                rendered_value = json.loads(value)
        return json.dumps(
            {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": ts,
                "key": key,
                "value": rendered_value,
                "headers": headers,
            }
        )
    assert template is not None
    return template.format(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp=ts,
        key=key or "",
        value=value or "",
        headers=headers,
    )


@click.command()
@click.argument("topic")
@click.option(
    "--from",
    "start",
    default="beginning",
    show_default=True,
    help="beginning | end | stored | OFFSET | -N (last N) | @MS | ISO date-time.",
)
@click.option("--group", "-g", default=None, help="Join this consumer group and commit.")
@click.option(
    "--partition",
    "-p",
    "partitions",
    type=int,
    multiple=True,
    help="Only these partitions (repeatable; not with --group).",
)
@click.option("--count", "-n", type=int, default=None, help="Stop after N records.")
@click.option(
    "--follow/--no-follow", "-F", default=False, help="Keep waiting for new records (until Ctrl-C)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="value", show_default=True)
@click.option(
    "--template",
    default=None,
    help="Python format string with {topic} {partition} {offset} {timestamp} {key} "
    "{value} {headers}; implies --format template.",
)
@click.pass_obj
def consume(
    obj: CliContext,
    topic: str,
    start: str,
    group: str | None,
    partitions: tuple[int, ...],
    count: int | None,
    follow: bool,
    fmt: str,
    template: str | None,
) -> None:
    r"""Print records of TOPIC.

    \b
    Examples:
      kafkito consume clicks --from beginning --count 10
      kafkito consume clicks --from -5 --format json        # the last 5 of each partition
      kafkito consume clicks --group audit --follow
      kafkito consume clicks --template '{partition}:{offset} {key}={value}'
    """
    if template is not None:
        fmt = "template"
    if fmt == "template" and template is None:
        raise CliError("--format template needs --template", EXIT_USAGE)
    if group and partitions:
        raise CliError("--partition cannot be combined with --group", EXIT_USAGE)
    kind, value = parse_start(start)
    with handle_errors(obj):
        _consume(obj, topic, kind, value, group, partitions, count, follow, fmt, template)


def _consume(
    obj: CliContext,
    topic: str,
    kind: str,
    value: int,
    group: str | None,
    partitions: tuple[int, ...],
    count: int | None,
    follow: bool,
    fmt: str,
    template: str | None,
) -> None:
    from kafkito.client.raw_consumer import is_partition_eof, message_error

    reset = "latest" if kind == "end" else "earliest"
    consumer = obj.consumer(
        **{
            "group.id": group or f"kafkito-cli-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": bool(group),
            "enable.auto.offset.store": False,
            "auto.offset.reset": reset,
            "enable.partition.eof": True,
        }
    )
    printed = 0
    try:
        metadata = consumer.list_topics(topic, timeout_s=10)
        tmeta = metadata.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise CliError(f"unknown topic {topic!r}", EXIT_NOT_FOUND)
        wanted = sorted(partitions) if partitions else sorted(tmeta.partitions)
        missing = [p for p in wanted if p not in tmeta.partitions]
        if missing:
            raise CliError(f"topic {topic!r} has no partition {missing[0]}", EXIT_NOT_FOUND)
        if group:

            def on_assign(c: Any, assigned: list[Any]) -> None:
                if kind in ("stored",):
                    return
                c.assign(_positions(c, topic, [tp.partition for tp in assigned], kind, value))

            consumer.subscribe([topic], on_assign=on_assign)
            eof_needed: set[int] | None = None
        else:
            consumer.assign(_positions(consumer, topic, wanted, kind, value))
            eof_needed = set(wanted)
        eof_seen: set[int] = set()
        out = sys.stdout
        while count is None or printed < count:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if is_partition_eof(err):
                    eof_seen.add(msg.partition() or 0)
                    if not follow and (
                        (
                            eof_needed is None
                            and group is not None
                            and _all_assigned_eof(consumer, eof_seen)
                        )
                        or (eof_needed is not None and eof_seen >= eof_needed)
                    ):
                        break
                    continue
                if err.fatal() or not err.retriable():
                    raise message_error(err, bootstrap=consumer.bootstrap, topic=topic)
                continue
            eof_seen.discard(msg.partition())
            out.write(render(msg, fmt, template) + "\n")
            out.flush()
            printed += 1
            if group:
                consumer.store_offsets(message=msg)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends: close cleanly below
    finally:
        with contextlib.suppress(Exception):  # closing after an error must not hide it
            consumer.close()
    if not obj.json_output and sys.stderr.isatty():
        click.echo(f"{printed} records", err=True)


def _all_assigned_eof(consumer: Any, eof_seen: set[int]) -> bool:
    assigned = {tp.partition for tp in consumer.assignment()}
    return bool(assigned) and assigned <= eof_seen


def _positions(
    consumer: Any, topic: str, partitions: list[int], kind: str, value: int
) -> list[Any]:
    from kafkito.client.raw_consumer import (
        OFFSET_BEGINNING,
        OFFSET_END,
        OFFSET_STORED,
        TopicPartition,
    )

    if kind == "beginning":
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    if kind == "end":
        return [TopicPartition(topic, p, OFFSET_END) for p in partitions]
    if kind == "stored":
        return [TopicPartition(topic, p, OFFSET_STORED) for p in partitions]
    if kind == "offset":
        return [TopicPartition(topic, p, value) for p in partitions]
    if kind == "relative":
        result = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s=10)
            result.append(TopicPartition(topic, p, max(low, high + value)))
        return result
    wanted = [TopicPartition(topic, p, value) for p in partitions]
    found = consumer.offsets_for_times(wanted, timeout_s=10)
    return [
        TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
        for tp in found
    ]
