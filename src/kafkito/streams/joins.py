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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.records import Record, encode_key, pack, unpack
from kafkito.streams.state import PartitionStore
from kafkito.streams.topology import Node

if TYPE_CHECKING:
    from kafkito.streams.app import StreamsApp

__all__ = ["JoinSide", "Table"]

_META = b"\xc1"  # the stream time's store key, as in windows.py


class _TableStore(StatefulNode):
    """Upserts the table topic's records (raw bytes) into the table's store."""

    __slots__ = ()

    def push(self, rec: Record) -> None:
        store = self.spec.partitions[rec.partition]
        if rec.key is None:
            return  # a table row needs a key
        if rec.value is None:
            store.delete(rec.key)
        else:
            store.put(rec.key, rec.value)

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
        self.node = _TableStore(spec)

    def get(self, key: Any, partition: int) -> Any:
        """The row of `key` in the table's `partition` (decoded), or None."""
        store = self.spec.partitions.get(partition)
        if store is None:
            from kafkito.streams.app import StreamsError

            raise StreamsError(
                f"table {self.topic!r} partition {partition} is not assigned here: the stream "
                "joined to it must have as many partitions (co-partitioned)"
            )
        raw = store.get(encode_key(key) or b"")
        return None if raw is None else self.decode(raw)


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


class JoinSide(StatefulNode):
    """One side of a windowed stream-stream join: keeps its own records per key for
    `within + grace` of stream time and pairs each new record with the other side's.

    Rules (the same shape as windows.py's): stream time is the greatest event time either
    side has seen in the partition; a record is late, and dropped, when ts + grace < stream
    time; a kept record pairs with every record of the other side with the same key and
    |ts - ts'| <= within, and is forgotten once ts + within + grace < stream time (no record
    that is not late can pair with it any more).
    """

    __slots__ = ("fn", "grace", "heaps", "is_left", "other", "out", "stream_time", "within")

    def __init__(
        self,
        spec: StoreSpec,
        fn: Callable[[Any, Any], Any],
        *,
        is_left: bool,
        within_ms: int,
        grace_ms: int,
        out: Node,
    ) -> None:
        super().__init__(spec)
        self.fn = fn
        self.is_left = is_left
        self.within = within_ms
        self.grace = grace_ms
        self.out = out
        self.children = [out]
        self.other: JoinSide | None = None
        self.stream_time: dict[int, int] = {}
        self.heaps: dict[int, list[tuple[int, bytes]]] = {}

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        heap: list[tuple[int, bytes]] = []
        st = -1
        for skey, value in store.items():
            if skey == _META:
                st = int(unpack(value))
            else:
                heap += [(int(ts) + self.within + self.grace + 1, skey) for ts, _ in unpack(value)]
        heapq.heapify(heap)
        self.heaps[partition] = heap
        self.stream_time[partition] = st

    def close_partition(self, partition: int) -> None:
        self.heaps.pop(partition, None)
        self.stream_time.pop(partition, None)

    def _pairs(self, rec: Record) -> list[Record]:
        other = self.other
        assert other is not None
        p, ts = rec.partition, rec.timestamp_ms
        mine = self.spec.partitions[p]
        theirs = other.spec.partitions.get(p)
        if theirs is None:
            from kafkito.streams.app import StreamsError

            raise StreamsError(
                f"join: partition {p} of {other.spec.topic!r} is not assigned here: the joined "
                "streams must have as many partitions (co-partitioned)"
            )
        st = max(self.stream_time[p], other.stream_time.get(p, -1))
        if ts > st:
            st = ts
            mine.put(_META, pack(st))
        self.stream_time[p] = st
        self._expire(p, mine, st)
        other._expire(p, theirs, st)
        if ts + self.grace < st:
            return []  # late
        skey = pack(rec.key)
        raw = mine.get(skey)
        events = [] if raw is None else unpack(raw)
        events.append([ts, rec.value])
        mine.put(skey, pack(events))
        heapq.heappush(self.heaps[p], (ts + self.within + self.grace + 1, skey))
        raw = theirs.get(skey)
        out = []
        for ts2, value2 in [] if raw is None else unpack(raw):
            if abs(ts - ts2) <= self.within:
                pair = (rec.value, value2) if self.is_left else (value2, rec.value)
                out.append(Record(rec.key, self.fn(*pair), max(ts, ts2), rec.topic, p, rec.offset))
        return out

    def _expire(self, p: int, store: PartitionStore, st: int) -> None:
        heap = self.heaps[p]
        while heap and heap[0][0] <= st:
            _, skey = heapq.heappop(heap)
            raw = store.get(skey)
            if raw is None:
                continue
            horizon = st - self.within - self.grace
            events = [e for e in unpack(raw) if e[0] >= horizon]
            if events:
                store.put(skey, pack(events))
            else:
                store.delete(skey)

    def push(self, rec: Record) -> None:
        for result in self._pairs(rec):
            self.out.push(result)

    async def apush(self, rec: Record) -> None:
        for result in self._pairs(rec):
            await self.out.apush(result)
