"""As-of joins: each record of a stream joined with the latest record of another stream (same
key) at or before its timestamp, within a tolerance.

    quotes = app.stream("quotes", timestamp=lambda q: q["ts"])
    trades = app.stream("trades", timestamp=lambda t: t["ts"])
    trades.join_asof(quotes, lambda t, q: {**t, "bid": q["bid"]}, tolerance_ms=5_000,
                     grace_ms=1_000)

**Determinism without ordering the two topics.** The two topics are consumed in whatever
order librdkafka hands out their records, so a join that looked the right side up at once
would depend on that order (a backlog of trades read before the quotes of the same seconds
would find no quote). Kafka Streams orders the records of a task by timestamp across its
partitions (PartitionGroup, `max.task.idle.ms`); this join does not need that, because it
waits on the right side's own clock instead:

* each side has its own **stream time** per partition (the greatest event time it has
  seen), and a record is **late**, and dropped, when ts + grace < its own side's stream
  time: lateness depends only on the order of records within one topic partition;
* a left record L is **held** (in its side's changelogged store) until the right side's
  stream time passes L.ts + grace. From then on every right record with ts <= L.ts that has
  not arrived yet would be late, so the candidates are final: the right records of the key
  with L.ts - tolerance <= ts <= L.ts that were not late. The one with the greatest
  timestamp (the last consumed among equal ones) is the match: `fn(L, R)`, with L's key and
  timestamp; with no match the record is dropped, or `fn(L, None)` with `left=True`.

So the output depends on each topic's own order and never on how the two interleave. The
price is latency: a left record waits until the right side moves grace_ms past it. A right
side that goes quiet would hold left records forever: `close_after_idle_ms=N` lets the wall
clock move the right side's stream time of a partition that has had no right record for N
ms (as windows do), at the price of that determinism.

**State.** The right store keeps, per key, the right records a future match may need: a
record is forgotten once a newer one of the key is at or below the horizon (left stream time
minus grace, and no held left record older), or once it is older than horizon - tolerance.
The horizon only grows, and no left record that is not late (nor any held one) can have a
timestamp below it, so forgetting never changes a result. The left store holds the waiting
left records. Both streams must be co-partitioned (as for the other joins).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.errors import StreamsError
from kafkito.streams.records import Record, pack, unpack
from kafkito.streams.state import PartitionStore
from kafkito.streams.topology import Node

__all__ = ["AsofJoin", "AsofLeft", "AsofRight"]

_META = b"\xc1"  # the side's stream time, as in windows.py and joins.py


class AsofJoin:
    """What the two sides share: the parameters, each side's stream time per partition,
    the held left records' heap and the right side's wall-clock base."""

    def __init__(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        tolerance_ms: int | None,
        grace_ms: int,
        left: bool,
        idle_ms: int | None,
        topic: str,
    ) -> None:
        self.fn = fn
        self.tolerance = tolerance_ms
        self.grace = grace_ms
        self.left_join = left
        self.idle_ms = idle_ms
        self.topic = topic
        self.left_st: dict[int, int] = {}
        self.right_st: dict[int, int] = {}
        self.right_base: dict[int, int] = {}
        self.right_wall: dict[int, int] = {}
        self.held: dict[int, list[tuple[int, bytes]]] = {}
        """Per partition, (ts, store key) of the held left records (a heap; may hold stale
        entries for records already emitted, skipped when popped)."""
        self.left_store: dict[int, PartitionStore] = {}
        self.right_store: dict[int, PartitionStore] = {}

    def horizon(self, p: int) -> int:
        """No left record still to be matched in `p` has a timestamp below this."""
        h = self.left_st.get(p, -1) - self.grace
        heap = self.held.get(p)
        if heap:
            h = min(h, heap[0][0])
        return h

    def release(self, p: int) -> list[Record]:
        """The held left records the right side's stream time has passed, matched."""
        heap = self.held.get(p)
        left, right = self.left_store.get(p), self.right_store.get(p)
        if not heap or left is None or right is None:
            return []
        st = self.right_st[p]
        out: list[Record] = []
        while heap and heap[0][0] + self.grace < st:
            _, skey = heapq.heappop(heap)
            raw = left.get(skey)
            if raw is None:
                continue  # emitted with an earlier entry of the same key
            waiting = unpack(raw)
            due = [e for e in waiting if e[0] + self.grace < st]
            if not due:
                continue
            rest = [e for e in waiting if e[0] + self.grace >= st]
            if rest:
                left.put(skey, pack(rest))
            else:
                left.delete(skey)
            raw_right = right.get(skey)
            candidates = [] if raw_right is None else unpack(raw_right)
            key = unpack(skey)
            for ts, value in due:
                match = self._match(candidates, ts)
                if match is None and not self.left_join:
                    continue
                out.append(Record(key, self.fn(value, match), ts, self.topic, p))
        return out

    def _match(self, candidates: list[list[Any]], ts: int) -> Any:
        best: list[Any] | None = None
        low = None if self.tolerance is None else ts - self.tolerance
        for event in candidates:  # in arrival order: the last of equal timestamps wins
            in_range = event[0] <= ts and (low is None or event[0] >= low)
            if in_range and (best is None or event[0] >= best[0]):
                best = event
        return None if best is None else best[1]


class _AsofSide(StatefulNode):
    __slots__ = ("join", "out")

    def __init__(self, spec: StoreSpec, join: AsofJoin, out: Node) -> None:
        super().__init__(spec)
        self.join = join
        self.out = out
        self.children = [out]

    def push(self, rec: Record) -> None:
        for result in self._process(rec):
            self.out.push(result)

    async def apush(self, rec: Record) -> None:
        for result in self._process(rec):
            await self.out.apush(result)

    def _process(self, rec: Record) -> list[Record]:
        raise NotImplementedError

    @staticmethod
    def _advance(st: dict[int, int], store: PartitionStore, p: int, ts: int) -> int:
        current = st[p]
        if ts > current:
            current = st[p] = ts
            store.put(_META, pack(ts))
        return current


class AsofLeft(_AsofSide):
    """The left side: holds its records until the right side's stream time passes them."""

    __slots__ = ()

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        join = self.join
        heap: list[tuple[int, bytes]] = []
        st = -1
        for skey, value in store.items():
            if skey == _META:
                st = int(unpack(value))
            else:
                heap += [(int(e[0]), skey) for e in unpack(value)]
        heapq.heapify(heap)
        join.held[partition] = heap
        join.left_st[partition] = st
        join.left_store[partition] = store

    def close_partition(self, partition: int) -> None:
        for table in (self.join.held, self.join.left_st, self.join.left_store):
            table.pop(partition, None)

    def _process(self, rec: Record) -> list[Record]:
        join, p, ts = self.join, rec.partition, rec.timestamp_ms
        store = self.spec.partitions[p]
        _right_open(join, p)
        st = self._advance(join.left_st, store, p, ts)
        if ts + join.grace < st:
            return []  # late
        skey = pack(rec.key)
        raw = store.get(skey)
        waiting = [] if raw is None else unpack(raw)
        waiting.append([ts, rec.value])
        store.put(skey, pack(waiting))
        heapq.heappush(join.held[p], (ts, skey))
        return join.release(p)

    def punctuate(self, now_ms: int) -> list[tuple[Node, Record]]:
        """With `close_after_idle_ms`: a partition whose right side has had no record for
        that long has its right stream time follow the wall clock; held records go out."""
        join = self.join
        if join.idle_ms is None:
            return []
        out: list[tuple[Node, Record]] = []
        for p, wall in list(join.right_wall.items()):
            idle = now_ms - wall
            if idle < join.idle_ms or join.right_base[p] < 0 or p not in join.left_store:
                continue
            st = join.right_base[p] + idle
            if st <= join.right_st[p]:
                continue
            join.right_st[p] = st
            join.right_store[p].put(_META, pack(st))
            out += [(self.out, r) for r in join.release(p)]
        return out


class AsofRight(_AsofSide):
    """The right side: keeps per key the records a left record may still be matched with."""

    __slots__ = ()

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        raw = store.get(_META)
        join = self.join
        st = -1 if raw is None else int(unpack(raw))
        join.right_st[partition] = join.right_base[partition] = st
        join.right_wall[partition] = _now_ms()
        join.right_store[partition] = store

    def close_partition(self, partition: int) -> None:
        join = self.join
        for table in (join.right_st, join.right_base, join.right_wall, join.right_store):
            table.pop(partition, None)

    def _process(self, rec: Record) -> list[Record]:
        join, p, ts = self.join, rec.partition, rec.timestamp_ms
        store = self.spec.partitions[p]
        _left_open(join, p)
        st = self._advance(join.right_st, store, p, ts)
        join.right_base[p] = st
        join.right_wall[p] = store.clock_ms or _now_ms()
        if ts + join.grace < st:
            return join.release(p)  # late: dropped (its stream time still counts)
        skey = pack(rec.key)
        raw = store.get(skey)
        events = [] if raw is None else unpack(raw)
        events.append([ts, rec.value])
        store.put(skey, pack(self._prune(events, join.horizon(p))))
        return join.release(p)

    def _prune(self, events: list[list[Any]], horizon: int) -> list[list[Any]]:
        """Drop what no left record at or above `horizon` can match: all but the newest at
        or below the horizon, and with a tolerance what is older than horizon - tolerance."""
        below = [e for e in events if e[0] <= horizon]
        if len(below) <= 1 and self.join.tolerance is None:
            return events
        newest: list[Any] | None = None
        for e in below:  # the last of equal timestamps, as _match picks
            if newest is None or e[0] >= newest[0]:
                newest = e
        kept = [e for e in events if e[0] > horizon or e is newest]
        if self.join.tolerance is not None:
            kept = [e for e in kept if e[0] >= horizon - self.join.tolerance]
        return kept


def _right_open(join: AsofJoin, p: int) -> None:
    if p not in join.right_store:
        _not_copartitioned(p)


def _left_open(join: AsofJoin, p: int) -> None:
    if p not in join.left_store:
        _not_copartitioned(p)


def _not_copartitioned(p: int) -> None:
    raise StreamsError(
        f"as-of join: partition {p} of the other stream is not assigned here: the joined "
        "streams must have as many partitions (co-partitioned)"
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
