"""`kafkito consume`: read records from a topic, from any position, in the format you want.

Without `--group` the partitions are assigned directly (nothing is committed); with `--group`
the consumer joins that group and commits what it has printed. Without `--follow` it stops at
the end of every partition (the high watermark seen when it got there); with `--follow` it waits
for more until Ctrl-C. A closed stdout (`kafkito consume t | head -1`) ends it quietly.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import sys
import uuid
from typing import Any

import click
from click.core import ParameterSource

from kafkito.cli.context import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliContext,
    CliError,
    handle_errors,
    topic_partitions,
)
from kafkito.cli.produce import ENCODINGS

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


def encode_field(data: bytes | None, encoding: str) -> str | None:
    """A key or value as text in `encoding` (see produce.ENCODINGS); raw is UTF-8 with
    replacement characters (the `value`/`kv` formats write raw bytes without this)."""
    if data is None:
        return None
    match encoding:
        case "base64":
            return base64.b64encode(data).decode("ascii")
        case "hex":
            return data.hex()
        case _:
            return data.decode("utf-8", errors="replace")


def json_field(data: bytes | None, encoding: str) -> tuple[Any, str | None]:
    """(JSON value, encoding name or None) of a key or value in the json record format.

    raw: parsed JSON when it is JSON, else the UTF-8 text; bytes that are not UTF-8 are given
    in base64 and the encoding says so (`"value_encoding": "base64"`), never replaced.
    json: the document itself (not JSON: base64 again, named). base64, hex: encoded, named.
    """
    if data is None:
        return None, None
    if encoding in ("base64", "hex"):
        return encode_field(data, encoding), encoding
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
    try:
        return json.loads(text), None
    except ValueError:
        if encoding == "json":
            return base64.b64encode(data).decode("ascii"), "base64"
        return text, None


def render(
    msg: Any, fmt: str, template: str | None, value_enc: str = "raw", key_enc: str = "raw"
) -> bytes:
    """One output line (without its newline) as bytes: `value` and `kv` with raw encoding
    write the record's bytes exactly."""
    if fmt == "value":
        return _field_bytes(msg.value(), value_enc)
    if fmt == "kv":
        return _field_bytes(msg.key(), key_enc) + b"\t" + _field_bytes(msg.value(), value_enc)
    _, ts = msg.timestamp()
    headers = {k: encode_field(v, "raw") for k, v in (msg.headers() or [])}
    if fmt == "json":
        value, value_encoding = json_field(msg.value(), value_enc)
        key, key_encoding = json_field(msg.key(), key_enc)
        if key_enc == "raw" and key_encoding is None and msg.key() is not None:
            key = encode_field(msg.key(), "raw")  # keys stay text unless they are binary
        record: dict[str, Any] = {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "timestamp": ts,
            "key": key,
            "value": value,
            "headers": headers,
        }
        if key_encoding:
            record["key_encoding"] = key_encoding
        if value_encoding:
            record["value_encoding"] = value_encoding
        return json.dumps(record).encode()
    assert template is not None
    return template.format(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp=ts,
        key=encode_field(msg.key(), key_enc) or "",
        value=encode_field(msg.value(), value_enc) or "",
        headers=headers,
    ).encode()


def _field_bytes(data: bytes | None, encoding: str) -> bytes:
    if data is None:
        return b""
    match encoding:
        case "raw":
            return data
        case "json":
            value, named = json_field(data, "json")
            return json.dumps(value if named is None else {named: value}).encode()
        case _:
            return (encode_field(data, encoding) or "").encode()


TEMPLATE_FIELDS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")


def check_template(template: str) -> None:
    """Try the template on a sample record: an unknown field fails before anything is read."""
    sample: dict[str, Any] = dict.fromkeys(TEMPLATE_FIELDS, "")
    sample.update(partition=0, offset=0, timestamp=0, headers={})
    try:
        template.format(**sample)
    except KeyError as exc:
        raise CliError(
            f"--template: unknown field {{{exc.args[0]}}}; the fields are "
            + " ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS),
            EXIT_USAGE,
        ) from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise CliError(
            f"--template {template!r} is not a format string: {exc}", EXIT_USAGE
        ) from None


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
    type=click.IntRange(min=0),
    multiple=True,
    help="Only these partitions (repeatable; not with --group).",
)
@click.option(
    "--count", "-n", type=click.IntRange(min=1), default=None, help="Stop after N records."
)
@click.option(
    "--follow/--no-follow", "-F", default=False, help="Keep waiting for new records (until Ctrl-C)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="value", show_default=True)
@click.option(
    "--output-format",
    "value_enc",
    type=click.Choice(ENCODINGS),
    default="raw",
    show_default=True,
    help="How values are written: raw bytes, base64, hex, or JSON.",
)
@click.option(
    "--key-output-format",
    "key_enc",
    type=click.Choice(ENCODINGS),
    default="raw",
    show_default=True,
    help="How keys are written.",
)
@click.option(
    "--template",
    default=None,
    help="Python format string with {topic} {partition} {offset} {timestamp} {key} "
    "{value} {headers}; implies --format template.",
)
@click.option(
    "--pubsub-project",
    default=None,
    help="Read TOPIC of this Google Pub/Sub project instead of Kafka; --group names the "
    "subscription (docs/pubsub.md).",
)
@click.option(
    "--pubsub-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read from Google Pub/Sub, configured by this file of the seed's pubsub keys.",
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
    value_enc: str,
    key_enc: str,
    template: str | None,
    pubsub_project: str | None = None,
    pubsub_config: str | None = None,
) -> None:
    """Print records of TOPIC.

    Values are written as they are (raw bytes); --output-format base64 or hex keeps binary
    values apart line by line, and --format json gives values that are not UTF-8 in base64
    with "value_encoding": "base64".

    \b
    Examples:
      kafkito consume clicks --from beginning --count 10
      kafkito consume clicks --from -5 --format json        # the last 5 of each partition
      kafkito consume clicks --group audit --follow
      kafkito consume clicks --template '{partition}:{offset} {key}={value}'
      kafkito consume images --output-format base64
      kafkito consume clicks --pubsub-project demo --group clicks-sub   # Google Pub/Sub
    """
    if template is not None:
        fmt = "template"
    if fmt == "template" and template is None:
        raise CliError("--format template needs --template", EXIT_USAGE)
    if template is not None:
        check_template(template)
    if obj.json_output and fmt == "value":
        fmt = "json"  # --json: one JSON object per record, as every command's --json
    if group and partitions:
        raise CliError("--partition cannot be combined with --group", EXIT_USAGE)
    if pubsub_project or pubsub_config:
        from kafkito.cli.pubsub import consume_pubsub, refuse

        if click.get_current_context().get_parameter_source("start") is ParameterSource.COMMANDLINE:
            refuse("--from", "a subscription has no offsets to start from")
        if partitions:
            refuse("--partition", "a topic has no partitions")
        with handle_errors(obj):
            consume_pubsub(
                obj,
                topic,
                project=pubsub_project,
                config_path=pubsub_config,
                group=group,
                count=count,
                follow=follow,
                formats=(fmt, value_enc, key_enc),
                template=template,
            )
        return
    kind, value = parse_start(start)
    # An explicit --output-format raw asks for the records' exact bytes: newlines go between
    # records, none after the last, so `-n 1 --output-format raw > photo.jpg` is the value.
    source = click.get_current_context().get_parameter_source("value_enc")
    exact = fmt == "value" and value_enc == "raw" and source is ParameterSource.COMMANDLINE
    with handle_errors(obj):
        _consume(
            obj,
            topic,
            kind,
            value,
            group,
            partitions,
            count,
            follow,
            (fmt, value_enc, key_enc),
            template,
            exact=exact,
        )


def _consume(
    obj: CliContext,
    topic: str,
    kind: str,
    value: int,
    group: str | None,
    partitions: tuple[int, ...],
    count: int | None,
    follow: bool,
    formats: tuple[str, str, str],
    template: str | None,
    *,
    exact: bool = False,
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
        available = topic_partitions(consumer, topic, obj.wait_s)
        wanted = sorted(partitions) if partitions else sorted(available)
        missing = [p for p in wanted if p not in available]
        if missing:
            raise CliError(
                f"topic {topic!r} has no partition {missing[0]} (it has {len(available)}: "
                f"0..{len(available) - 1})",
                EXIT_NOT_FOUND,
            )
        if kind == "offset":
            _check_offset_in_range(consumer, topic, wanted, value, obj.wait_s)
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
        fmt, value_enc, key_enc = formats
        out = sys.stdout.buffer
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
            rendered = render(msg, fmt, template, value_enc, key_enc)
            if exact:
                out.write(b"\n" + rendered if printed else rendered)
            else:
                out.write(rendered + b"\n")
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


def _check_offset_in_range(
    consumer: Any, topic: str, partitions: list[int], offset: int, wait_s: float
) -> None:
    """--from OFFSET past the end of every partition is a mistake: say where the end is,
    instead of starting from offset 0 (librdkafka's reset of an out-of-range offset)."""
    from kafkito.client.raw_consumer import TopicPartition

    ends = {}
    for p in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s=wait_s)
        ends[p] = high
    if all(offset > high for high in ends.values()):
        where = ", ".join(f"[{p}] {high}" for p, high in sorted(ends.items()))
        raise CliError(
            f"--from {offset} is past the end of {topic!r} (next offsets: {where}); "
            "use --from end to wait for new records, or -N for the last N",
            EXIT_USAGE,
        )


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
        # Past the end of this partition (but not of all): start at its end, not at 0.
        result = []
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout_s=10)
            result.append(TopicPartition(topic, p, value if value <= high else OFFSET_END))
        return result
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
