"""`kafkito produce` / `kafkito consume` on Google Pub/Sub (`--pubsub-project`, `--pubsub-config`).

The Kafka commands hand over to this module when either option is given, so the input and
output formats are the same code (split_line, decode_field, parse_headers, render):

    kafkito produce clicks --pubsub-project demo -K : -H source=cli < events.txt
    kafkito consume clicks --pubsub-project demo --group clicks-sub --count 10 --format json

What maps to what: a line's key (-K) is the message's ordering key, headers (-H) are its
attributes, and `--group` names the subscription (a subscription is Pub/Sub's consumer group;
created on TOPIC when missing). Without `--group` a temporary subscription is made on TOPIC and
deleted at the end: it sees only messages published after it exists (Pub/Sub keeps no log to
read from the beginning), so it is for `--follow`. Messages printed are acked; `consume` without
`--follow` ends when nothing arrived for IDLE_S. `--from` and `--partition` have no Pub/Sub
meaning and are refused.

Where: `--pubsub-config FILE` (the seed's pubsub keys, docs/pubsub.md) and/or
`--pubsub-project`; `PUBSUB_EMULATOR_HOST` points every Google client at an emulator;
credentials come from `client.credentials` or the usual Google places. Errors are the CLI's
exit codes: 3 Pub/Sub unreachable (within --timeout), 4 unknown topic or subscription,
5 refused credentials, 2 bad input.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE, CliContext, CliError, handle_errors
from kafkito.cli.produce import decode_field, parse_headers, split_line

IDLE_S = 3.0
"""Without --follow, consume ends once no message arrived for this long."""


def _config(
    obj: CliContext, kind: str, project: str | None, config_path: str | None, **keys: Any
) -> Any:
    """A Pub/Sub WriterConfig/ReaderConfig: the file's keys, then the options."""
    from kafkito.pubsub.config import ReaderConfig, WriterConfig

    cls = WriterConfig if kind == "writer" else ReaderConfig
    base = cls.from_yaml(config_path) if config_path else cls.from_dict({})
    client = base.client.model_dump()
    if project:
        client["project_id"] = project
    if not config_path or obj.timeout_s is not None:
        client["timeout"] = obj.wait_s  # a mistake ends within --timeout
    return base.merged(client=client, **keys)


@contextmanager
def _errors(obj: CliContext) -> Iterator[None]:
    """The CLI's error mapping, plus the one Pub/Sub error it does not know."""
    from kafkito.pubsub.errors import UnknownSubscriptionError

    with handle_errors(obj):
        try:
            yield
        except UnknownSubscriptionError as exc:
            raise CliError(str(exc), EXIT_NOT_FOUND) from exc


def refuse(option: str, why: str) -> None:
    raise CliError(f"{option} has no meaning on Pub/Sub: {why}", EXIT_USAGE)


def produce_pubsub(
    obj: CliContext,
    topic: str,
    source: IO[bytes],
    *,
    project: str | None,
    config_path: str | None,
    key_separator: str | None,
    headers: tuple[str, ...],
    value_format: str,
    key_format: str,
    rate: float | None,
    verbose: bool,
) -> None:
    """One message per input line; each one confirmed by Pub/Sub (its message id)."""
    separator = key_separator.encode() if key_separator is not None else None
    try:
        attributes = {name: value.decode() for name, value in parse_headers(headers)}
    except UnicodeDecodeError:
        raise CliError("header values must be UTF-8 text on Pub/Sub", EXIT_USAGE) from None
    with _errors(obj):
        from kafkito.pubsub.writer import Record, Writer

        config = _config(obj, "writer", project, config_path, create_if_missing=True)
        interval = 1.0 / rate if rate else 0.0
        next_at = time.monotonic()
        count = 0
        batch: list[Record] = []
        with Writer(topic, config) as writer:

            def send() -> None:
                for delivery in writer.write_many(batch):
                    if verbose and not obj.json_output:
                        click.echo(f"{delivery.topic}@{delivery.message_id}", err=True)
                batch.clear()

            for number, raw in enumerate(source, start=1):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                key, value = split_line(line, separator)
                value = decode_field(value, value_format, what="value", line=number)
                if key is not None:
                    key = decode_field(key, key_format, what="key", line=number)
                    try:
                        key.decode()
                    except UnicodeDecodeError:
                        raise CliError(
                            f"line {number}: a Pub/Sub ordering key is text: the key is not UTF-8",
                            EXIT_USAGE,
                        ) from None
                batch.append(Record(value, key=key, headers=attributes or None))
                count += 1
                if interval:
                    send()
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                elif len(batch) >= 500:
                    send()
            if batch:
                send()
            project_id = writer.project_id
    summary = {"topic": topic, "project": project_id, "records": count}
    if obj.json_output:
        click.echo(json.dumps(summary))
    else:
        noun = "message" if count == 1 else "messages"
        click.echo(
            f"produced {count} {noun} to Pub/Sub topic {topic} (project {project_id})",
            err=sys.stdout.isatty(),
        )


class _AsRecord:
    """A Pub/Sub message with the accessors `kafkito consume`'s renderer reads (partition -1;
    the offset is the message id)."""

    def __init__(self, topic: str, message: Any) -> None:
        self._topic = topic
        self.message = message

    def value(self) -> bytes:
        return bytes(self.message.value)

    def key(self) -> bytes | None:
        return self.message.key  # type: ignore[no-any-return]

    def headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.message.headers.items()]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return -1

    def offset(self) -> str:
        return str(self.message.message_id)

    def timestamp(self) -> tuple[int, int]:
        return (1, self.message.publish_time_ms or -1)


def consume_pubsub(
    obj: CliContext,
    topic: str,
    *,
    project: str | None,
    config_path: str | None,
    group: str | None,
    count: int | None,
    follow: bool,
    formats: tuple[str, str, str],
    template: str | None,
) -> None:
    """Print the messages of a subscription on TOPIC (acked once printed)."""
    from kafkito.cli.consume import json_field, render

    fmt, value_enc, key_enc = formats
    temporary = group is None
    subscription = group or f"kafkito-cli-{uuid.uuid4().hex[:8]}"
    printed = 0
    with _errors(obj):
        from kafkito.pubsub.reader import Message, Reader

        config = _config(
            obj,
            "reader",
            project,
            config_path,
            topic_id=topic,
            subscription_id=subscription,
            create_if_missing=True,
        )
        _check_topic(config, topic)
        reader = Reader(config=config)
        if temporary and not obj.json_output:
            click.echo(
                f"reading messages published from now on (temporary subscription "
                f"{subscription}; give --group SUBSCRIPTION to keep one)",
                err=True,
            )
        out = sys.stdout.buffer
        last = time.monotonic()

        def show(message: Message) -> None:
            nonlocal printed, last
            if fmt == "json":
                value, value_encoding = json_field(message.value, value_enc)
                record: dict[str, Any] = {
                    "topic": topic,
                    "subscription": subscription,
                    "message_id": message.message_id,
                    "publish_time": message.publish_time_ms,
                    "key": message.key.decode() if message.key else None,
                    "value": value,
                    "headers": message.headers,
                }
                if value_encoding:
                    record["value_encoding"] = value_encoding
                line = json.dumps(record).encode()
            else:
                line = render(_AsRecord(topic, message), fmt, template, value_enc, key_enc)
            out.write(line + b"\n")
            out.flush()
            printed += 1
            last = time.monotonic()

        stop = threading.Event()

        def idle_watch() -> None:
            while not stop.wait(0.2):
                if not follow and time.monotonic() - last > IDLE_S:
                    reader.stop()
                    return

        watcher = threading.Thread(target=idle_watch, daemon=True)
        watcher.start()
        try:
            reader.read_message(show, limit=count)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            reader.close()
            if temporary:
                _delete_subscription(config)
    if not obj.json_output and sys.stderr.isatty():
        click.echo(f"{printed} messages", err=True)


def _check_topic(config: Any, topic: str) -> None:
    """A missing topic is exit 4 (the Reader would create a subscription, not a topic)."""
    from kafkito.pubsub import _google

    g = _google.pubsub()
    project = config.client.resolved_project_id()
    path = topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"
    publisher = g.PublisherClient(credentials=_google.credentials(config.client))
    try:
        _google.call_with_retry(
            lambda: publisher.get_topic(topic=path, timeout=config.client.timeout, retry=None),
            delays_s=config.retry_delays_s,
            topic=topic,
        )
    finally:
        publisher.stop()


def _delete_subscription(config: Any) -> None:
    """Remove the temporary subscription (best effort: it expires unused anyway)."""
    from kafkito.pubsub import _google

    g = _google.pubsub()
    project = config.client.resolved_project_id()
    with g.SubscriberClient(credentials=_google.credentials(config.client)) as subscriber:
        try:
            subscriber.delete_subscription(
                subscription=f"projects/{project}/subscriptions/{config.subscription_id}",
                timeout=config.client.timeout,
            )
        except Exception as exc:  # a leftover subscription is not worth failing the command
            click.echo(f"kafkito: could not delete {config.subscription_id}: {exc}", err=True)
