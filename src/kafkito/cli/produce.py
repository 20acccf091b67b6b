"""`kafkito produce`: lines from stdin or a file become records; offsets are reported."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import time
from typing import IO, Any

import click

from kafkito.cli.context import (
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliContext,
    CliError,
    classify,
    handle_errors,
    topic_partitions,
)

ENCODINGS = ("raw", "base64", "hex", "json")
"""How a key or value is written in the input (produce) or output (consume):
raw: the bytes as they are · base64, hex: the bytes encoded (any bytes, newlines included) ·
json: a JSON document, checked."""

DELIVERY_TIMEOUT_MS = 60_000
"""How long a queued record may wait for its acknowledgement once the brokers answered."""

_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def check_topic_name(topic: str) -> None:
    """Kafka's rule for topic names (Topic.validate): 1-249 of [a-zA-Z0-9._-], not . or .."""
    if topic in (".", "..") or not _LEGAL_TOPIC.fullmatch(topic):
        raise CliError(
            f"invalid topic name {topic!r}: use 1 to 249 letters, digits, '.', '_' or '-' "
            "(and not '.' or '..')",
            EXIT_USAGE,
        )


def parse_headers(values: tuple[str, ...]) -> list[tuple[str, bytes]]:
    headers = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"header {item!r} is not NAME=VALUE", EXIT_USAGE)
        headers.append((name, value.encode()))
    return headers


def split_line(line: bytes, key_separator: bytes | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line; without a separator the key is None."""
    if key_separator is None:
        return None, line
    key, sep, value = line.partition(key_separator)
    if not sep:
        return None, line
    return key, value


def decode_field(data: bytes, encoding: str, *, what: str, line: int) -> bytes:
    """The record bytes a field of the input stands for (see ENCODINGS); a field that is not
    in its encoding fails the command naming the line."""
    try:
        match encoding:
            case "raw":
                return data
            case "base64":
                return base64.b64decode(data, validate=True)
            case "hex":
                return bytes.fromhex(data.decode("ascii"))
            case "json":
                json.loads(data)
                return data
    except (ValueError, binascii.Error) as exc:
        name = "JSON" if encoding == "json" else encoding
        raise CliError(f"line {line}: the {what} is not {name}: {exc}", EXIT_USAGE) from None
    raise AssertionError(encoding)


@click.command()
@click.argument("topic")
@click.option(
    "--file",
    "-f",
    "source",
    type=click.File("rb"),
    default="-",
    show_default=True,
    help="Read lines from this file ('-' for stdin).",
)
@click.option(
    "--key-separator",
    "-K",
    default=None,
    help="Split each line at the first SEPARATOR into key and value.",
)
@click.option("--header", "-H", "headers", multiple=True, help="Header NAME=VALUE (repeatable).")
@click.option(
    "--input-format",
    "value_format",
    type=click.Choice(ENCODINGS),
    default="raw",
    show_default=True,
    help="How values are written in the input: raw bytes, base64, hex, or JSON (checked).",
)
@click.option(
    "--key-input-format",
    "key_format",
    type=click.Choice(ENCODINGS),
    default="raw",
    show_default=True,
    help="How keys are written in the input (with --key-separator).",
)
@click.option(
    "--json-values",
    is_flag=True,
    help="Same as --input-format json: lines that are not JSON fail the command.",
)
@click.option(
    "--partition",
    "-p",
    type=click.IntRange(min=0),
    default=None,
    help="Write to this partition.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="At most this many records per second.",
)
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]),
    default="none",
    show_default=True,
)
@click.option("--verbose", "-v", is_flag=True, help="Print partition and offset of every record.")
@click.option(
    "--pubsub-project",
    default=None,
    help="Write to this Google Pub/Sub project's TOPIC instead of Kafka (docs/pubsub.md).",
)
@click.option(
    "--pubsub-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Write to Google Pub/Sub, configured by this file of the seed's pubsub keys.",
)
@click.pass_obj
def produce(
    obj: CliContext,
    topic: str,
    source: IO[bytes],
    key_separator: str | None,
    headers: tuple[str, ...],
    value_format: str,
    key_format: str,
    json_values: bool,
    partition: int | None,
    rate: float | None,
    acks: str,
    compression: str,
    verbose: bool,
    pubsub_project: str | None = None,
    pubsub_config: str | None = None,
) -> None:
    """Write one record per input line to TOPIC and report where they landed.

    Lines are bytes: any input is sent as it is (--input-format raw); to send values that
    hold newlines, write them in base64 or hex (--input-format base64).

    \b
    Examples:
      echo 'hello' | kafkito produce greetings
      kafkito produce clicks -K : -H source=cli < events.txt     # "user-1:{...}" lines
      base64 -w0 image.png | kafkito produce images --input-format base64
      kafkito produce clicks --pubsub-project demo -K : < events.txt   # Google Pub/Sub
    """
    if json_values:
        value_format = "json"
    if pubsub_project or pubsub_config:
        from kafkito.cli.pubsub import produce_pubsub, refuse

        if partition is not None:
            refuse("--partition", "a topic has no partitions (use -K for ordering keys)")
        produce_pubsub(
            obj,
            topic,
            source,
            project=pubsub_project,
            config_path=pubsub_config,
            key_separator=key_separator,
            headers=headers,
            value_format=value_format,
            key_format=key_format,
            rate=rate,
            verbose=verbose,
        )
        return
    check_topic_name(topic)
    header_list = parse_headers(headers)
    separator = key_separator.encode() if key_separator is not None else None
    with handle_errors(obj):
        from kafkito.client.raw_producer import delivery_error

        producer = obj.producer(
            **{
                "acks": acks,
                "compression.type": compression,
                "linger.ms": 5,
                "enable.idempotence": acks == "all",
                "allow.auto.create.topics": True,
                # The brokers answered the metadata check below within --timeout; after it a
                # large input may queue for longer than that without anything being wrong.
                "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            }
        )
        # One metadata round trip first: no broker, refused credentials, a missing topic
        # (auto-creation off) or partition end the command here, each with its own exit code,
        # instead of as failed deliveries after the message timeout.
        partitions = topic_partitions(producer, topic, obj.wait_s, creating_grace_s=2.0)
        if partition is not None and partition not in partitions:
            raise CliError(
                f"topic {topic!r} has no partition {partition} (it has {len(partitions)}: "
                f"0..{len(partitions) - 1})",
                EXIT_NOT_FOUND,
            )
        results: list[dict[str, Any]] = []
        errors: list[Exception] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                size = len(msg.value() or b"")
                errors.append(delivery_error(err, topic=msg.topic(), size_bytes=size))
                return
            results.append({"partition": msg.partition(), "offset": msg.offset()})
            if verbose and not obj.json_output:
                click.echo(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", err=True)

        interval = 1.0 / rate if rate else 0.0
        next_at = time.monotonic()
        count = 0
        progress = _progress_for(source, quiet=obj.json_output)
        for number, raw in enumerate(source, start=1):
            if progress is not None:
                progress.advance(len(raw))
            line = raw[:-1] if raw.endswith(b"\n") else raw
            key, value = split_line(line, separator)
            value = decode_field(value, value_format, what="value", line=number)
            if key is not None:
                key = decode_field(key, key_format, what="key", line=number)
            producer.produce(
                topic,
                value,
                key,
                partition=partition,
                headers=header_list,
                on_delivery=on_delivery,
            )  # waits for room when the local queue is full
            count += 1
            producer.poll(0)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        if progress is not None:
            progress.close()
        wait_s = DELIVERY_TIMEOUT_MS / 1000 + 5  # every report has come by then
        remaining = producer.flush(wait_s)
        if errors:
            # The first failure decides the exit code (too large: 2, unknown topic: 4, ...)
            first = classify(errors[0])
            raise CliError(
                f"{len(errors)} of {count} records failed: {first.format_message()}",
                first.exit_code,
            )
        if remaining:
            raise CliError(
                f"{remaining} of {count} records not confirmed after {wait_s:g}s",
                EXIT_UNREACHABLE,
            )
        summary = _summarize(topic, results)
        if obj.json_output:
            click.echo(json.dumps(summary))
        else:
            parts = ", ".join(
                f"[{p}] {r['first']}..{r['last']}" for p, r in sorted(summary["partitions"].items())
            )
            noun = "record" if len(results) == 1 else "records"
            click.echo(
                f"produced {len(results)} {noun} to {topic}" + (f": {parts}" if parts else ""),
                err=sys.stdout.isatty(),
            )


def _summarize(topic: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    partitions: dict[int, dict[str, int]] = {}
    for r in results:
        entry = partitions.setdefault(
            r["partition"], {"first": r["offset"], "last": r["offset"], "count": 0}
        )
        entry["first"] = min(entry["first"], r["offset"])
        entry["last"] = max(entry["last"], r["offset"])
        entry["count"] += 1
    return {"topic": topic, "records": len(results), "partitions": partitions}


class _FileProgress:
    """A progress bar on stderr (a terminal only) over the bytes of an input file."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(transient=True, console=Console(stderr=True))
        self._task = self._progress.add_task("producing", total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


def _progress_for(source: IO[bytes], *, quiet: bool) -> _FileProgress | None:
    """A progress bar when reading a regular file (not stdin) with a terminal on stderr."""
    import os

    if quiet or not sys.stderr.isatty():
        return None
    try:
        stat = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    import stat as stat_mod

    if not stat_mod.S_ISREG(stat.st_mode) or stat.st_size < 1 << 20:
        return None  # small inputs finish before a bar would help
    return _FileProgress(stat.st_size)
