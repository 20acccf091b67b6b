"""What the console reads and writes record by record: search, produce, dead letters.

Search scans a topic forward from a start position (an offset range, a time range, or a
cursor from the previous page) and keeps the records that pass a `Filter`; it stops at the
page size, at the end of each partition (the high watermark seen at the start), or after
`scan_limit` records, so one request is bounded however large the topic. The cursor of the
next page is the next offset to examine in every partition not finished: paging never skips
nor repeats a record.

Dead letters are the consume flow's `<topic>.dlq` records (kafkito.flow.letters): their
headers name the origin (topic, partition, offset) and the error. Re-publishing one writes its
key, value and the original headers (ours removed) to the origin topic, byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafkito.console.cluster import TIMEOUT_S, Message, NotFound
from kafkito.flow import letters

SCAN_LIMIT = 20_000
"""Records one search request examines at most (the page says when it stopped there)."""
MAX_PAGE = 500


@dataclass(frozen=True)
class Filter:
    """Which records a search keeps; every field that is set must match."""

    partitions: tuple[int, ...] = ()
    offset_from: int | None = None
    offset_to: int | None = None
    """Exclusive."""
    time_from_ms: int | None = None
    time_to_ms: int | None = None
    """Exclusive."""
    key: str | None = None
    value: str | None = None
    regex: bool = False
    """key and value are regular expressions (else substrings)."""
    header: str | None = None
    """NAME (present) or NAME=VALUE."""

    def compiled(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        """(key pattern, value pattern); raises ValueError on a bad regular expression."""

        def one(text: str | None) -> re.Pattern[str] | None:
            if not text:
                return None
            try:
                return re.compile(text if self.regex else re.escape(text))
            except re.error as exc:
                raise ValueError(f"bad regular expression {text!r}: {exc}") from None

        return one(self.key), one(self.value)


@dataclass
class Page:
    """One page of search results; `cursor` resumes after it (None: nothing left)."""

    messages: list[Message]
    cursor: dict[int, int] | None
    scanned: int
    stopped_at_scan_limit: bool = False
    partitions: list[int] = field(default_factory=list)


def encode_cursor(cursor: Mapping[int, int] | None) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted((cursor or {}).items()))


def decode_cursor(text: str) -> dict[int, int]:
    """'0:15,1:3' -> {0: 15, 1: 3}; raises ValueError on anything else."""
    out: dict[int, int] = {}
    for item in filter(None, text.split(",")):
        partition, _, offset = item.partition(":")
        out[int(partition)] = int(offset)
    return out


def to_message(msg: Any) -> Message:
    """A librdkafka message as the console shows it: text where it is UTF-8, base64 where
    not (never replacement characters), JSON values parsed."""
    raw = msg.value()
    value: str | None = None
    binary = False
    parsed, is_json = None, False
    if raw is not None:
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value, binary = base64.b64encode(raw).decode("ascii"), True
        if not binary:
            with contextlib.suppress(ValueError):
                parsed, is_json = json.loads(value), True
    key = msg.key()
    return Message(
        msg.partition(),
        msg.offset(),
        msg.timestamp()[1],
        None if key is None else key.decode("utf-8", errors="backslashreplace"),
        {
            k: None if v is None else v.decode("utf-8", errors="backslashreplace")
            for k, v in (msg.headers() or [])
        },
        value,
        parsed,
        is_json,
        binary=binary,
        size=len(raw or b""),
    )


def _consumer(settings: Mapping[str, Any]) -> Any:
    from kafkito.client.raw_consumer import RawConsumer

    return RawConsumer(
        settings={
            "group.id": f"kafkito-console-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            **settings,
        }
    )


def _partitions_of(consumer: Any, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout_s=TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise NotFound(f"unknown topic {topic!r}")
    return sorted(metadata.partitions)


def _matches(message: Message, flt: Filter, patterns: tuple[Any, Any]) -> bool:
    key_re, value_re = patterns
    if flt.time_from_ms is not None and message.timestamp < flt.time_from_ms:
        return False
    if flt.time_to_ms is not None and message.timestamp >= flt.time_to_ms:
        return False
    if key_re is not None and (message.key is None or not key_re.search(message.key)):
        return False
    if value_re is not None and (message.value is None or not value_re.search(message.value)):
        return False
    if flt.header:
        name, has_value, wanted = flt.header.partition("=")
        if name not in message.headers:
            return False
        if has_value and message.headers[name] != wanted:
            return False
    return True


def search(
    settings: Mapping[str, Any],
    topic: str,
    flt: Filter,
    *,
    limit: int = 50,
    cursor: Mapping[int, int] | None = None,
    scan_limit: int = SCAN_LIMIT,
    latest: bool = False,
) -> Page:
    """The next `limit` records of `topic` that pass `flt`, in partition and offset order;
    with `latest` (and no cursor) start `limit` records before each partition's end.

    Raises NotFound (topic or partition), ValueError (a bad regular expression).
    """
    from kafkito.client.raw_consumer import TopicPartition

    limit = max(1, min(limit, MAX_PAGE))
    patterns = flt.compiled()
    with _consumer(settings) as consumer:
        available = _partitions_of(consumer, topic)
        wanted = list(flt.partitions) or available
        for p in wanted:
            if p not in available:
                raise NotFound(f"topic {topic!r} has no partition {p}")
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        by_time: dict[int, int] = {}
        if flt.time_from_ms is not None and cursor is None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, flt.time_from_ms) for p in wanted], timeout_s=TIMEOUT_S
            )
            by_time = {tp.partition: tp.offset for tp in found if tp.offset >= 0}
        for p in wanted:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout_s=TIMEOUT_S
            )
            end = high if flt.offset_to is None else min(high, flt.offset_to)
            if cursor is not None:
                start = cursor.get(p, end)
            else:
                start = max(low, flt.offset_from or 0)
                if flt.time_from_ms is not None:
                    start = max(start, by_time.get(p, end))
                if latest:
                    start = max(start, end - max(1, limit // len(wanted)))
            if start < end:
                starts[p], ends[p] = start, end
        position = dict(starts)
        found_messages: list[Message] = []
        scanned = 0
        if starts:
            consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        deadline = time.monotonic() + TIMEOUT_S
        while (
            position
            and any(position[p] < ends[p] for p in position)
            and len(found_messages) < limit
            and scanned < scan_limit
            and time.monotonic() < deadline
        ):
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:  # end of a partition, or a passing error
                    continue
                p, offset = msg.partition(), msg.offset()
                if p not in ends or offset < position[p] or offset >= ends[p]:
                    continue
                position[p] = offset + 1
                scanned += 1
                message = to_message(msg)
                if _matches(message, flt, patterns):
                    found_messages.append(message)
                if len(found_messages) >= limit or scanned >= scan_limit:
                    break
        left = {p: o for p, o in position.items() if o < ends[p]}
    found_messages.sort(key=lambda m: (m.partition, m.offset))
    return Page(
        found_messages,
        left or None,
        scanned,
        stopped_at_scan_limit=scanned >= scan_limit and bool(left),
        partitions=available,
    )


def produce(
    settings: Mapping[str, Any],
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: Iterable[tuple[str, bytes | None]] = (),
    partition: int | None = None,
) -> tuple[int, int]:
    """Write one record and wait for the broker's answer: (partition, offset).

    Raises the client library's typed errors (UnknownTopicError, MessageTooLargeError...).
    """
    from kafkito.client.raw_producer import RawProducer, delivery_error

    result: list[Any] = []
    with RawProducer(
        settings={
            "acks": "all",
            "allow.auto.create.topics": False,
            "message.timeout.ms": int(TIMEOUT_S * 1000),
            **settings,
        }
    ) as producer:
        producer.produce(
            topic,
            value,
            key,
            partition=partition,
            headers=list(headers),
            on_delivery=lambda err, msg: result.append((err, msg)),
        )
        producer.flush(TIMEOUT_S + 2)
    if not result:
        raise TimeoutError(f"no answer from the broker for the record to {topic!r}")
    err, msg = result[0]
    if err is not None:
        raise delivery_error(err, topic=topic, size_bytes=len(value or b""))
    return int(msg.partition()), int(msg.offset())


@dataclass
class DeadLetter:
    """One record of a dead-letter topic, with where it came from and why it failed."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    origin_topic: str | None
    origin_partition: int | None
    origin_offset: int | None
    group: str | None
    attempts: str | None
    error_type: str | None
    error_message: str | None
    key: str | None
    value: str | None


def is_dead_letter_topic(name: str) -> bool:
    return name.endswith(letters.dead_letter_topic(""))


def _int(text: str | None) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(text)  # type: ignore[arg-type]
    return None


def dead_letters(settings: Mapping[str, Any], topic: str, *, limit: int = 100) -> list[DeadLetter]:
    """The last `limit` records of the dead-letter topic `topic`, newest first."""
    from kafkito.client.raw_consumer import TopicPartition

    with _consumer(settings) as consumer:
        partitions = _partitions_of(consumer, topic)
        cursor = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout_s=TIMEOUT_S
            )
            cursor[p] = max(low, high - limit)
    page = search(settings, topic, Filter(), limit=limit * len(partitions), cursor=cursor)
    rows = []
    for m in page.messages:
        h = m.headers
        rows.append(
            DeadLetter(
                topic,
                m.partition,
                m.offset,
                m.timestamp,
                h.get(letters.ORIGINAL_TOPIC),
                _int(h.get(letters.ORIGINAL_PARTITION)),
                _int(h.get(letters.ORIGINAL_OFFSET)),
                h.get(letters.GROUP),
                h.get(letters.ATTEMPTS),
                h.get(letters.EXCEPTION_TYPE),
                h.get(letters.EXCEPTION_MESSAGE),
                m.key,
                m.value,
            )
        )
    rows.sort(key=lambda r: r.timestamp, reverse=True)
    return rows[:limit]


def republish(
    settings: Mapping[str, Any], topic: str, chosen: Iterable[tuple[int, int]]
) -> list[dict[str, Any]]:
    """Write the chosen dead letters ((partition, offset) of `topic`) back to their origin
    topics: key, value and the original headers byte for byte, kafkito's headers removed.

    Returns one row per record: where it came from and where it was written. Raises NotFound
    for a record that is not there or names no origin (nothing is written then).
    """
    from kafkito.client.raw_consumer import TopicPartition

    wanted = sorted(set(chosen))
    records: list[Any] = []
    with _consumer(settings) as consumer:
        _partitions_of(consumer, topic)
        available = _partitions_of(consumer, topic)
        for partition, offset in wanted:
            low, high = (
                consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout_s=TIMEOUT_S
                )
                if partition in available
                else (0, 0)
            )
            if not low <= offset < high:  # not there: say so now, not after a timeout
                raise NotFound(f"no record at {topic}[{partition}]@{offset}")
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + TIMEOUT_S
            got = None
            while got is None and time.monotonic() < deadline:
                for msg in consumer.consume(1, 0.5):
                    if msg.error() is None and msg.offset() == offset:
                        got = msg
            if got is None:
                raise NotFound(f"no record at {topic}[{partition}]@{offset}")
            origin = dict(got.headers() or []).get(letters.ORIGINAL_TOPIC)
            if not origin:
                raise NotFound(f"{topic}[{partition}]@{offset} names no origin topic")
            records.append((partition, offset, origin.decode(), got))
    out = []
    for partition, offset, origin, msg in records:
        headers = [(k, v) for k, v in (msg.headers() or []) if k not in letters.OURS]
        written = produce(settings, origin, value=msg.value(), key=msg.key(), headers=headers)
        out.append(
            {
                "dead_letter": f"{topic}[{partition}]@{offset}",
                "topic": origin,
                "partition": written[0],
                "offset": written[1],
            }
        )
    return out
