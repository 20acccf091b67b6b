"""Windowed aggregations: tumbling, hopping, sliding and session windows on event time.

Theory of operation
-------------------
**Stream time** is kept per input partition: the greatest event timestamp seen there (it is
stored in the partition's state, so a restart or another instance continues from it). A
window *closes* when stream time reaches its close time; then its result is emitted (with
`emit="close"`) and its state deleted. A record all of whose windows are closed is **late**:
it goes to the `late` side stream and changes nothing. The rules, per kind (`g` = grace):

    kind                 windows of a record at ts          closes when stream time >=
    Tumbling(size)       [s, s+size), s = ts - ts % size    s + size + g
    Hopping(size, adv)   every [s, s+size) holding ts,      s + size + g
                           s a multiple of adv, s >= 0
    Session(gap)         merged with every session of the    end + gap + g + 1
                           key within gap of ts               (late: ts + g < stream time)
    Sliding(size)        one window per distinct record      t + g + 1
                           timestamp t: [t - size, t]         (late: ts + g < stream time)

For sessions and sliding windows the two rules fit: a record that is not late can only touch
windows that are still open, so no result already emitted would have needed it. Sliding
windows keep the key's raw values within `size + grace` of stream time and aggregate them
when a window closes; the others keep one aggregate per window (sessions merge aggregates
with the aggregator's `merge`).

**Closing on the wall clock** (`close_after_idle_ms`): once a partition has received no record
for that long, its stream time advances with the wall clock from where it was, so the last
windows of a quiet partition (or of idle keys) still close and emit. Each round of the app's
loop calls `punctuate`, which applies it.

Open windows are found through an in-memory heap of (close time, store key) per partition,
rebuilt from the store when the partition is opened; entries can be stale (a session that grew
or merged) and are checked against the store when popped.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.records import Record, WindowResult, pack, unpack
from kafkito.streams.state import PartitionStore
from kafkito.streams.topology import Aggregator, Node, Stream, _count, _reduce, _sum

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Hopping", "Session", "Sliding", "Tumbling", "WindowSpec", "Windowed"]

_META = b"\xc1"  # the store key of the stream time: 0xc1 is the one byte msgpack never uses


@dataclass(frozen=True, slots=True)
class Tumbling:
    """Back-to-back windows of `size_ms`: [0, size), [size, 2*size), ..."""

    size_ms: int


@dataclass(frozen=True, slots=True)
class Hopping:
    """Windows of `size_ms` starting every `advance_ms` (overlapping when advance < size)."""

    size_ms: int
    advance_ms: int


@dataclass(frozen=True, slots=True)
class Sliding:
    """For each record, the window of the `size_ms` before it (both ends included)."""

    size_ms: int


@dataclass(frozen=True, slots=True)
class Session:
    """Records of a key closer than `gap_ms` to each other form one session."""

    gap_ms: int


WindowSpec = Tumbling | Hopping | Sliding | Session


def _check(spec: WindowSpec) -> None:
    sizes = {
        Tumbling: ("size_ms",),
        Hopping: ("size_ms", "advance_ms"),
        Sliding: ("size_ms",),
        Session: ("gap_ms",),
    }[type(spec)]
    for attr in sizes:
        if getattr(spec, attr) <= 0:
            raise ValueError(f"{type(spec).__name__}.{attr} must be > 0, not {getattr(spec, attr)}")
    if isinstance(spec, Hopping) and spec.advance_ms > spec.size_ms:
        raise ValueError(f"Hopping.advance_ms {spec.advance_ms} exceeds size_ms {spec.size_ms}")


class Windowed:
    """A grouped stream cut into windows: pick the aggregation; `.late` has late records."""

    def __init__(
        self,
        stream: Stream,
        spec: WindowSpec,
        grace_ms: int,
        emit: str,
        close_after_idle_ms: int | None,
    ) -> None:
        _check(spec)
        self.stream = stream
        self.spec = spec
        self.grace_ms = grace_ms
        self.emit = emit
        self.close_after_idle_ms = close_after_idle_ms
        self._late = Node()
        self._used = False

    @property
    def late(self) -> Stream:
        """The records that arrived after all their windows had closed (as they came)."""
        return Stream(self.stream.app, self._late, topics=self.stream.topics)

    def count(self, *, name: str | None = None) -> Stream:
        return self._aggregate(_count(), name)

    def sum(self, fn: Callable[[Any], Any] | None = None, *, name: str | None = None) -> Stream:
        return self._aggregate(_sum(fn), name)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> Stream:
        return self._aggregate(_reduce(fn), name)

    def aggregate(
        self,
        initial: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
        *,
        name: str | None = None,
    ) -> Stream:
        """`add(aggregate, value)` from `initial()` per window; Session windows also need
        `merge(a, b)` for when a record joins two sessions."""
        if isinstance(self.spec, Session) and merge is None:
            raise ValueError("Session windows need merge= (two sessions can become one)")
        return self._aggregate(Aggregator(initial, add, merge), name)

    def _aggregate(self, agg: Aggregator, name: str | None) -> Stream:
        if self._used:
            raise ValueError("one aggregation per window(...): call window() again for another")
        self._used = True
        kind = type(self.spec).__name__.lower()
        app = self.stream.app
        spec = app._store(name, kind, topic=self.stream.topics[0], ttl_ms=None)
        node_class: type[_WindowNode] = {
            Tumbling: _FixedNode,
            Hopping: _FixedNode,
            Session: _SessionNode,
            Sliding: _SlidingNode,
        }[type(self.spec)]
        node = node_class(spec, agg, self)
        return self.stream._then(node)


class _WindowNode(StatefulNode):
    """Stream time, the close heap, late records and wall-clock closing; the kinds below
    say how a record updates windows and how a due heap entry closes them."""

    __slots__ = (
        "agg",
        "emit_update",
        "grace",
        "heaps",
        "idle_ms",
        "late",
        "stream_time",
        "topic",
        "wall_base",
        "window_base",
    )

    def __init__(self, spec: StoreSpec, agg: Aggregator, windowed: Windowed) -> None:
        super().__init__(spec)
        self.agg = agg
        self.grace = windowed.grace_ms
        self.emit_update = windowed.emit == "update"
        self.idle_ms = windowed.close_after_idle_ms
        self.late = windowed._late
        self.topic = spec.topic
        self.stream_time: dict[int, int] = {}
        self.window_base: dict[int, int] = {}  # stream time at the last record
        self.wall_base: dict[int, int] = {}  # wall clock at the last record
        self.heaps: dict[int, list[tuple[int, bytes]]] = {}

    # -- per kind --------------------------------------------------------------------------

    def update(self, store: PartitionStore, rec: Record, st: int) -> list[Record] | None:
        """Add the record to its windows; the update results, or None if it is late."""
        raise NotImplementedError

    def close_due(self, store: PartitionStore, skey: bytes, st: int, p: int) -> list[Record]:
        """Close what is due under this store key at stream time `st`."""
        raise NotImplementedError

    def index(self, skey: bytes, value: bytes) -> list[int]:
        """Close times of the windows held under a store key (to rebuild the heap)."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------

    def outputs(self) -> list[Node]:
        return [*self.children, self.late]

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        heap: list[tuple[int, bytes]] = []
        st = -1
        for skey, value in store.items():
            if skey == _META:
                st = int(unpack(value))
                continue
            heap.extend((close_at, skey) for close_at in self.index(skey, value))
        heapq.heapify(heap)
        self.heaps[partition] = heap
        self.stream_time[partition] = st
        self.window_base[partition] = st
        self.wall_base[partition] = _now_ms()

    def close_partition(self, partition: int) -> None:
        for table in (self.heaps, self.stream_time, self.window_base, self.wall_base):
            table.pop(partition, None)

    def _process(self, rec: Record) -> tuple[list[Record], bool]:
        p = rec.partition
        store = self.spec.partitions[p]
        st = self.stream_time[p]
        if rec.timestamp_ms > st:
            st = self.stream_time[p] = rec.timestamp_ms
            store.put(_META, pack(st))
        self.window_base[p] = st
        self.wall_base[p] = store.clock_ms or _now_ms()
        out = self.update(store, rec, st)
        if out is None:
            return [], True
        if not self.emit_update:
            out = []
        out += self._close(p, store, st)
        return out, False

    def _close(self, p: int, store: PartitionStore, st: int) -> list[Record]:
        heap = self.heaps[p]
        out: list[Record] = []
        while heap and heap[0][0] <= st:
            _, skey = heapq.heappop(heap)
            out += self.close_due(store, skey, st, p)
        return out if not self.emit_update else []

    def push(self, rec: Record) -> None:
        out, late = self._process(rec)
        if late:
            self.late.push(rec)
        for result in out:
            for child in self.children:
                child.push(result)

    async def apush(self, rec: Record) -> None:
        out, late = self._process(rec)
        if late:
            await self.late.apush(rec)
        for result in out:
            for child in self.children:
                await child.apush(result)

    def punctuate(self, now_ms: int) -> list[tuple[Node, Record]]:
        if self.idle_ms is None:
            return []
        out: list[tuple[Node, Record]] = []
        for p, wall in self.wall_base.items():
            idle = now_ms - wall
            if idle < self.idle_ms or self.window_base[p] < 0:
                continue
            st = self.window_base[p] + idle
            if st <= self.stream_time[p]:
                continue
            store = self.spec.partitions[p]
            self.stream_time[p] = st
            store.put(_META, pack(st))
            out += [(child, r) for r in self._close(p, store, st) for child in self.children]
        return out

    def _result(self, key: Any, start: int, end: int, value: Any, ts: int, p: int) -> Record:
        return Record(key, WindowResult(key, start, end, value), ts, self.topic, p)


class _FixedNode(_WindowNode):
    """Tumbling and hopping windows: one aggregate per (key, window start)."""

    __slots__ = ("advance", "size")

    def __init__(self, spec: StoreSpec, agg: Aggregator, windowed: Windowed) -> None:
        super().__init__(spec, agg, windowed)
        w = windowed.spec
        assert isinstance(w, Tumbling | Hopping)
        self.size = w.size_ms
        self.advance = w.advance_ms if isinstance(w, Hopping) else w.size_ms

    def update(self, store: PartitionStore, rec: Record, st: int) -> list[Record] | None:
        ts, size, grace = rec.timestamp_ms, self.size, self.grace
        start = ts - ts % self.advance
        out: list[Record] = []
        hit = False
        while start > ts - size and start >= 0:
            end = start + size
            if end + grace > st:  # still open
                hit = True
                skey = pack((rec.key, start))
                raw = store.get(skey)
                if raw is None:
                    current = self.agg.initial()
                    heapq.heappush(self.heaps[rec.partition], (end + grace, skey))
                else:
                    current = unpack(raw)
                current = self.agg.add(current, rec.value)
                store.put(skey, pack(current))
                if self.emit_update:
                    out.append(self._result(rec.key, start, end, current, end - 1, rec.partition))
            start -= self.advance
        return out if hit else None

    def close_due(self, store: PartitionStore, skey: bytes, st: int, p: int) -> list[Record]:
        raw = store.get(skey)
        if raw is None:
            return []
        store.delete(skey)
        key, start = unpack(skey)
        end = start + self.size
        return [self._result(key, start, end, unpack(raw), end - 1, p)]

    def index(self, skey: bytes, value: bytes) -> list[int]:
        _, start = unpack(skey)
        return [int(start) + self.size + self.grace]


class _SessionNode(_WindowNode):
    """Sessions: per key a list of [start, end, aggregate], merged as records bridge gaps."""

    __slots__ = ("gap",)

    def __init__(self, spec: StoreSpec, agg: Aggregator, windowed: Windowed) -> None:
        super().__init__(spec, agg, windowed)
        assert isinstance(windowed.spec, Session)
        self.gap = windowed.spec.gap_ms

    def update(self, store: PartitionStore, rec: Record, st: int) -> list[Record] | None:
        ts, gap = rec.timestamp_ms, self.gap
        if ts + self.grace < st:
            return None
        skey = pack(rec.key)
        raw = store.get(skey)
        sessions: list[list[Any]] = [] if raw is None else unpack(raw)
        keep: list[list[Any]] = []
        joined: list[list[Any]] = []
        for s in sessions:
            (joined if s[0] - gap <= ts <= s[1] + gap else keep).append(s)
        merge = self.agg.merge
        assert merge is not None
        current = self.agg.initial()
        start, end = ts, ts
        for s in joined:
            current = merge(current, s[2])
            start, end = min(start, s[0]), max(end, s[1])
        current = self.agg.add(current, rec.value)
        keep.append([start, end, current])
        keep.sort(key=lambda s: s[0])
        store.put(skey, pack(keep))
        heapq.heappush(self.heaps[rec.partition], (end + gap + self.grace + 1, skey))
        if self.emit_update:
            return [self._result(rec.key, start, end, current, end, rec.partition)]
        return []

    def close_due(self, store: PartitionStore, skey: bytes, st: int, p: int) -> list[Record]:
        raw = store.get(skey)
        if raw is None:
            return []
        key = unpack(skey)
        out, keep = [], []
        for start, end, value in unpack(raw):
            if end + self.gap + self.grace + 1 <= st:
                out.append(self._result(key, start, end, value, end, p))
            else:
                keep.append([start, end, value])
        if keep:
            store.put(skey, pack(keep))
        else:
            store.delete(skey)
        return out

    def index(self, skey: bytes, value: bytes) -> list[int]:
        return [int(s[1]) + self.gap + self.grace + 1 for s in unpack(value)]


class _SlidingNode(_WindowNode):
    """Sliding windows: per key [[events as [ts, value]], [pending window ends]]."""

    __slots__ = ("size",)

    def __init__(self, spec: StoreSpec, agg: Aggregator, windowed: Windowed) -> None:
        super().__init__(spec, agg, windowed)
        assert isinstance(windowed.spec, Sliding)
        self.size = windowed.spec.size_ms

    def _aggregate(self, events: list[list[Any]], end: int) -> Any:
        current = self.agg.initial()
        for ts, value in events:
            if end - self.size <= ts <= end:
                current = self.agg.add(current, value)
        return current

    def _horizon(self, st: int, pending: list[int]) -> int:
        """The oldest event time a window still to be emitted can hold: windows to come end
        at or after st - grace; pending ones (maybe due, not closed yet) at their end."""
        return (
            min(st - self.grace, *pending) - self.size if pending else st - self.grace - self.size
        )

    def update(self, store: PartitionStore, rec: Record, st: int) -> list[Record] | None:
        ts = rec.timestamp_ms
        if ts + self.grace < st:
            return None
        skey = pack(rec.key)
        raw = store.get(skey)
        events, pending = ([], []) if raw is None else unpack(raw)
        # Sorted by time, arrival order among equal times (insertion after the last equal).
        i = len(events)
        while i and events[i - 1][0] > ts:
            i -= 1
        events.insert(i, [ts, rec.value])
        if ts not in pending:
            pending.append(ts)
            heapq.heappush(self.heaps[rec.partition], (ts + self.grace + 1, skey))
        events = [e for e in events if e[0] >= self._horizon(st, pending)]
        store.put(skey, pack((events, pending)))
        if self.emit_update:
            value = self._aggregate(events, ts)
            return [self._result(rec.key, ts - self.size, ts, value, ts, rec.partition)]
        return []

    def close_due(self, store: PartitionStore, skey: bytes, st: int, p: int) -> list[Record]:
        raw = store.get(skey)
        if raw is None:
            return []
        key = unpack(skey)
        events, pending = unpack(raw)
        out = []
        for end in sorted(pending):
            if end + self.grace + 1 <= st:
                value = self._aggregate(events, end)
                out.append(self._result(key, end - self.size, end, value, end, p))
        pending = [end for end in pending if end + self.grace + 1 > st]
        events = [e for e in events if e[0] >= self._horizon(st, pending)]
        if pending or events:
            store.put(skey, pack((events, pending)))
            if not pending:  # keep the values until no window to come can hold them
                last = max(e[0] for e in events)
                heapq.heappush(self.heaps[p], (last + self.size + self.grace + 1, skey))
        else:
            store.delete(skey)
        return out

    def index(self, skey: bytes, value: bytes) -> list[int]:
        events, pending = unpack(value)
        if not pending and events:
            return [max(int(e[0]) for e in events) + self.size + self.grace + 1]
        return [int(end) + self.grace + 1 for end in pending]


def _now_ms() -> int:
    return int(time.time() * 1000)
