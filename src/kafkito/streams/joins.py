"""Tables from compacted topics, and stream-table joins.

`app.table("users", value=User)` reads a (compacted) topic as a table: the latest value per
key, a null value deleting the key. The table's store needs no changelog of its own: **the
topic is its changelog**. Its LMDB file holds each key's latest raw value bytes, and its
checkpoint is the consumed offset of the topic partition; on assignment the app restores
the partition from that checkpoint to the end of the topic before any stream record of the
same partition number is processed, so a join sees the whole table as of start-up, then
every update as it is consumed.

`stream.join(table, fn)` looks each record's key up in the table partition of the same
number: the stream and the table topic must be **co-partitioned**, i.e. have as many
partitions and be keyed alike (text keys partitioned by the same partitioner: librdkafka's
default for producers of kafkito and confluent-kafka; a table written by Java clients uses
murmur2). A stream re-keyed with `rekey` is repartitioned first into as many partitions as
the table has. `fn(value, row)` makes the joined value; an inner join drops records whose
key has no row, `left=True` calls `fn(value, None)` for them.

`left.join_window(right, fn, within_ms=...)` pairs the records of two streams with the same
key whose event times are at most `within_ms` apart (an inner join): `fn(left, right)` per
pair, once, whichever side arrives second. Each side keeps its records in a store of its
own (changelogged) for `within_ms + grace_ms` of stream time (JoinSide).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.errors import StreamsError
from kafkito.streams.records import Record, encode_key, pack, unpack
from kafkito.streams.state import PartitionStore
from kafkito.streams.topology import Node

if TYPE_CHECKING:
    from kafkito.streams.app import StreamsApp
    from kafkito.streams.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["JoinClock", "JoinSide", "Table"]

_META = b"\xc1"  # the stream time's store key, as in windows.py


class _TableStore(StatefulNode):
    """Upserts the table topic's records (raw bytes) into the table's store.

    A value that does not decode as the table's `value=` says is bad input: it goes to the
    app's dead-letter topic (with the error, topic, partition and offset in its headers)
    and the key has no row from then on, as after a restore, which reads the same bytes
    from the topic and `Table.get` finds undecodable: the same answer either way."""

    __slots__ = ("produce", "table")

    def __init__(self, spec: StoreSpec, table: Table) -> None:
        super().__init__(spec)
        self.table = table

    def bind(self, runtime: Runtime) -> None:
        self.produce = runtime.produce

    def push(self, rec: Record) -> None:
        store = self.spec.partitions[rec.partition]
        if rec.key is None:
            return  # a table row needs a key
        if rec.value is None:
            store.delete(rec.key)
            return
        try:
            self.table.decode(rec.value)
        except Exception as exc:  # bad input: dead-letter it, the key has no row
            store.delete(rec.key)
            self._dead_letter(rec, exc)
            return
        store.put(rec.key, rec.value)

    def _dead_letter(self, rec: Record, exc: Exception) -> None:
        app = self.table.app
        log.warning(
            "streams app %s: table %s[%d]@%d cannot be decoded (%s); sent to %s",
            app.name,
            rec.topic,
            rec.partition,
            rec.offset,
            exc,
            app.dead_letter_topic,
        )
        app.metrics.dead_lettered.labels(app.name).inc()
        headers = [
            ("kafkito-error", str(exc).encode()[:1000]),
            ("kafkito-topic", rec.topic.encode()),
            ("kafkito-partition", str(rec.partition).encode()),
            ("kafkito-offset", str(rec.offset).encode()),
        ]
        self.produce(app.dead_letter_topic, rec.key, rec.value, rec.timestamp_ms, headers)

    async def apush(self, rec: Record) -> None:
        self.push(rec)


class Table:
    """A table read from a compacted topic; join streams to it with `Stream.join`."""

    def __init__(
        self,
        app: StreamsApp,
        topic: str,
        spec: StoreSpec,
        decode: Callable[[bytes | None], Any],
    ) -> None:
        self.app = app
        self.topic = topic
        self.spec = spec
        self.decode = decode
        self.node = _TableStore(spec, self)

    def get(self, key: Any, partition: int) -> Any:
        """The row of `key` in the table's `partition` (decoded), or None."""
        store = self.spec.partitions.get(partition)
        if store is None:
            raise StreamsError(
                f"table {self.topic!r} partition {partition} is not assigned here: the stream "
                "joined to it must have as many partitions (co-partitioned)"
            )
        raw = store.get(encode_key(key) or b"")
        if raw is None:
            return None
        try:
            return self.decode(raw)
        except Exception:  # restored from the topic: dead-lettered when first consumed
            return None


class JoinNode(Node):
    """Each record's value joined with its key's row: `fn(value, row)`."""

    __slots__ = ("fn", "left", "table")

    def __init__(self, table: Table, fn: Callable[[Any, Any], Any], left: bool) -> None:
        super().__init__()
        self.table = table
        self.fn = fn
        self.left = left

    def _join(self, rec: Record) -> Record | None:
        row = self.table.get(rec.key, rec.partition)
        if row is None and not self.left:
            return None
        return rec.with_value(self.fn(rec.value, row))

    def push(self, rec: Record) -> None:
        out = self._join(rec)
        if out is not None:
            for child in self.children:
                child.push(out)

    async def apush(self, rec: Record) -> None:
        out = self._join(rec)
        if out is not None:
            for child in self.children:
                await child.apush(out)


class JoinClock:
    """Stream time of a windowed join, shared by its two sides, per partition.

    `stream_time` is the greatest event time either side has seen in the partition (or where
    the wall clock took it: `idle_ms`); `base` and `wall` are the stream time and the wall
    clock at the partition's last record, from which wall-clock closing counts."""

    __slots__ = ("base", "idle_ms", "sides", "stream_time", "wall")

    def __init__(self, idle_ms: int | None) -> None:
        self.idle_ms = idle_ms
        self.stream_time: dict[int, int] = {}
        self.base: dict[int, int] = {}
        self.wall: dict[int, int] = {}
        self.sides: dict[int, dict[bool, int]] = {}
        """Per partition, the open sides (is_left) and the stream time each kept on disk."""

    def open(self, partition: int, is_left: bool, st: int) -> None:
        """A side's store of the partition is open, with the stream time it kept; the
        partition's stream time is the greater of what the open sides kept (each side stores
        it when one of its records moves it), so it survives restarts and aborts."""
        kept = self.sides.setdefault(partition, {})
        kept[is_left] = st
        self.stream_time[partition] = self.base[partition] = max(kept.values())
        self.wall[partition] = _now_ms()

    def close(self, partition: int, is_left: bool) -> None:
        kept = self.sides.get(partition, {})
        kept.pop(is_left, None)
        if not kept:
            for table in (self.stream_time, self.base, self.wall, self.sides):
                table.pop(partition, None)

    def both_open(self, partition: int) -> bool:
        return len(self.sides.get(partition, ())) == 2


class JoinSide(StatefulNode):
    """One side of a windowed stream-stream join: keeps its own records per key for
    `within + grace` of stream time and pairs each new record with the other side's.

    Rules (the same shape as windows.py's): stream time is the greatest event time either
    side has seen in the partition (JoinClock); a record is late, and dropped, when
    ts + grace < stream time; a kept record pairs with every record of the other side with
    the same key and |ts - ts'| <= within, and expires once ts + within + grace < stream
    time (no record that is not late can pair with it any more: a record that is not late
    has ts' >= stream time - grace, so |ts - ts'| > within).

    Left and outer joins: a side whose unmatched records are emitted (the left side of a
    left join, both sides of an outer join) keeps a `matched` flag per record; a record that
    expires without ever having been paired goes out as `fn(value, None)` (left side) or
    `fn(None, value)` (right side), with its own timestamp, when it expires: when stream time
    passes ts + within + grace, or, with `close_after_idle_ms`, when the wall clock takes
    a quiet partition's stream time there.
    """

    __slots__ = (
        "clock",
        "emit_unmatched",
        "fn",
        "grace",
        "heaps",
        "is_left",
        "other",
        "out",
        "within",
    )

    def __init__(
        self,
        spec: StoreSpec,
        fn: Callable[[Any, Any], Any],
        *,
        is_left: bool,
        within_ms: int,
        grace_ms: int,
        out: Node,
        clock: JoinClock,
        emit_unmatched: bool = False,
    ) -> None:
        super().__init__(spec)
        self.fn = fn
        self.is_left = is_left
        self.within = within_ms
        self.grace = grace_ms
        self.out = out
        self.children = [out]
        self.clock = clock
        self.emit_unmatched = emit_unmatched
        self.other: JoinSide | None = None
        self.heaps: dict[int, list[tuple[int, bytes]]] = {}

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        heap: list[tuple[int, bytes]] = []
        st = -1
        for skey, value in store.items():
            if skey == _META:
                st = int(unpack(value))
            else:
                heap += [(int(e[0]) + self.within + self.grace + 1, skey) for e in unpack(value)]
        heapq.heapify(heap)
        self.heaps[partition] = heap
        self.clock.open(partition, self.is_left, st)

    def close_partition(self, partition: int) -> None:
        self.heaps.pop(partition, None)
        self.clock.close(partition, self.is_left)

    def _theirs(self, p: int) -> tuple[JoinSide, PartitionStore]:
        other = self.other
        assert other is not None
        theirs = other.spec.partitions.get(p)
        if theirs is None:
            raise StreamsError(
                f"join: partition {p} of {other.spec.topic!r} is not assigned here: the joined "
                "streams must have as many partitions (co-partitioned)"
            )
        return other, theirs

    def _process(self, rec: Record) -> list[Record]:
        p, ts = rec.partition, rec.timestamp_ms
        mine = self.spec.partitions[p]
        other, theirs = self._theirs(p)
        clock = self.clock
        st = clock.stream_time[p]
        if ts > st:
            st = clock.stream_time[p] = ts
            mine.put(_META, pack(st))
        clock.base[p] = st
        clock.wall[p] = mine.clock_ms or _now_ms()
        out = self._expire(p, mine, st) + other._expire(p, theirs, st)
        if ts + self.grace < st:
            return out  # late
        skey = pack(rec.key)
        raw = theirs.get(skey)
        their_events = [] if raw is None else unpack(raw)
        matched = changed = False
        for event in their_events:
            if abs(ts - event[0]) <= self.within:
                pair = (rec.value, event[1]) if self.is_left else (event[1], rec.value)
                ts_out = max(ts, event[0])
                out.append(Record(rec.key, self.fn(*pair), ts_out, rec.topic, p, rec.offset))
                matched = True
                if other.emit_unmatched and not (len(event) > 2 and event[2]):
                    event[2:] = [True]
                    changed = True
        if changed:
            theirs.put(skey, pack(their_events))
        raw = mine.get(skey)
        events = [] if raw is None else unpack(raw)
        events.append([ts, rec.value, matched] if self.emit_unmatched else [ts, rec.value])
        mine.put(skey, pack(events))
        heapq.heappush(self.heaps[p], (ts + self.within + self.grace + 1, skey))
        return out

    def _expire(self, p: int, store: PartitionStore, st: int) -> list[Record]:
        """Forget the records that expired at stream time `st`; the unmatched ones of a side
        that emits them are returned as results."""
        heap = self.heaps[p]
        out: list[Record] = []
        while heap and heap[0][0] <= st:
            _, skey = heapq.heappop(heap)
            raw = store.get(skey)
            if raw is None:
                continue
            horizon = st - self.within - self.grace
            events = unpack(raw)
            kept = [e for e in events if e[0] >= horizon]
            if self.emit_unmatched:
                key = unpack(skey)
                for e in events:
                    if e[0] < horizon and not (len(e) > 2 and e[2]):
                        value = self.fn(e[1], None) if self.is_left else self.fn(None, e[1])
                        out.append(Record(key, value, e[0], self.spec.topic, p))
            if len(kept) == len(events):
                continue
            if kept:
                store.put(skey, pack(kept))
            else:
                store.delete(skey)
        return out

    def punctuate(self, now_ms: int) -> list[tuple[Node, Record]]:
        """With `close_after_idle_ms`: a partition quiet for that long has its stream time
        follow the wall clock, and both sides expire (emitting unmatched records). The left
        side does it for both."""
        idle_ms = self.clock.idle_ms
        if idle_ms is None or not self.is_left:
            return []
        clock = self.clock
        out: list[tuple[Node, Record]] = []
        for p, wall in clock.wall.items():
            idle = now_ms - wall
            if idle < idle_ms or clock.base[p] < 0 or not clock.both_open(p):
                continue
            st = clock.base[p] + idle
            if st <= clock.stream_time[p]:
                continue
            mine = self.spec.partitions[p]
            other, theirs = self._theirs(p)
            clock.stream_time[p] = st
            mine.put(_META, pack(st))
            done = self._expire(p, mine, st) + other._expire(p, theirs, st)
            out += [(self.out, r) for r in done]
        return out

    def push(self, rec: Record) -> None:
        for result in self._process(rec):
            self.out.push(result)

    async def apush(self, rec: Record) -> None:
        for result in self._process(rec):
            await self.out.apush(result)


def _now_ms() -> int:
    return int(time.time() * 1000)
