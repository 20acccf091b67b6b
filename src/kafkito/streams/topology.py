"""The DSL: a Stream is a node in a tree of steps; records are pushed from sources to sinks.

    app = StreamsApp("clicks-app", brokers="localhost:9092")
    clicks = app.stream("clicks", value=Click)
    clicks.filter(lambda c: c.page != "/health").map(lambda c: c.user).to("users")

Each step method adds a node under the stream's node and returns a new Stream for it;
nothing runs until `app.run()`. A record is pushed depth-first through the tree: a step that
makes one value calls its children once, `flat_map` once per item, `filter` zero or one time.
`push` is the sync path (no Python frame beyond the step's own call); `apush` is the same
with `await` for steps given as `async def` functions, used by `run_async` (the app picks the
async path whenever a step is a coroutine function).

Step functions take the record's value (`map_record` takes and returns the whole Record).
Key changes (`rekey`) only mark the stream: the first stateful step after it (or an explicit
`repartition()`) writes the records to an internal repartition topic keyed by the new key and
reads them back, so every record of a key reaches the same partition, hence the same
instance and state store.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkito.streams.records import (
    KEY_HEADER,
    Record,
    encode_key,
    encode_value,
    key_to_repartition,
    pack,
)

if TYPE_CHECKING:
    from kafkito.streams.app import Runtime, StreamsApp
    from kafkito.streams.joins import Table
    from kafkito.streams.windows import Windowed, WindowSpec

__all__ = ["Aggregator", "Grouped", "Node", "Stream"]


class Node:
    """A step in the tree; the base class forwards records to its children unchanged."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: list[Node] = []

    def bind(self, runtime: Runtime) -> None:
        """Called once before the first record, with the app's runtime (producer, stores)."""

    def push(self, rec: Record) -> None:
        for child in self.children:
            child.push(rec)

    async def apush(self, rec: Record) -> None:
        for child in self.children:
            await child.apush(rec)

    def walk(self) -> Iterable[Node]:
        """This node and every node under it, each once (merges join branches)."""
        seen: set[int] = set()
        todo: list[Node] = [self]
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            todo.extend(node.outputs())

    def outputs(self) -> list[Node]:
        """The nodes this one pushes to (children, and side outputs such as late records)."""
        return self.children


class _Map(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        out = rec.with_value(self.fn(rec.value))
        for child in self.children:
            child.push(out)

    async def apush(self, rec: Record) -> None:
        value = self.fn(rec.value)
        if inspect.isawaitable(value):
            value = await value
        out = rec.with_value(value)
        for child in self.children:
            await child.apush(out)


class _MapRecord(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Record], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        out = self.fn(rec)
        if out is not None:
            for child in self.children:
                child.push(out)

    async def apush(self, rec: Record) -> None:
        out = self.fn(rec)
        if inspect.isawaitable(out):
            out = await out
        if out is not None:
            for child in self.children:
                await child.apush(out)


class _Rekey(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        out = rec.with_key(self.fn(rec.value))
        for child in self.children:
            child.push(out)

    async def apush(self, rec: Record) -> None:
        key = self.fn(rec.value)
        if inspect.isawaitable(key):
            key = await key
        out = rec.with_key(key)
        for child in self.children:
            await child.apush(out)


class _Filter(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        if self.fn(rec.value):
            for child in self.children:
                child.push(rec)

    async def apush(self, rec: Record) -> None:
        keep = self.fn(rec.value)
        if inspect.isawaitable(keep):
            keep = await keep
        if keep:
            for child in self.children:
                await child.apush(rec)


class _FlatMap(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        for value in self.fn(rec.value):
            out = rec.with_value(value)
            for child in self.children:
                child.push(out)

    async def apush(self, rec: Record) -> None:
        values = self.fn(rec.value)
        if inspect.isawaitable(values):
            values = await values
        for value in values:
            out = rec.with_value(value)
            for child in self.children:
                await child.apush(out)


class _Foreach(Node):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def push(self, rec: Record) -> None:
        self.fn(rec.value)
        for child in self.children:
            child.push(rec)

    async def apush(self, rec: Record) -> None:
        done = self.fn(rec.value)
        if inspect.isawaitable(done):
            await done
        for child in self.children:
            await child.apush(rec)


class _Branch(Node):
    """First matching predicate wins; records matching none go to the last output."""

    __slots__ = ("outs", "preds")

    def __init__(self, preds: list[Callable[[Any], Any]]) -> None:
        super().__init__()
        self.preds = preds
        self.outs = [Node() for _ in range(len(preds) + 1)]
        self.children = list(self.outs)

    def push(self, rec: Record) -> None:
        for pred, out in zip(self.preds, self.outs, strict=False):
            if pred(rec.value):
                out.push(rec)
                return
        self.outs[-1].push(rec)

    async def apush(self, rec: Record) -> None:
        for pred, out in zip(self.preds, self.outs, strict=False):
            hit = pred(rec.value)
            if inspect.isawaitable(hit):
                hit = await hit
            if hit:
                await out.apush(rec)
                return
        await self.outs[-1].apush(rec)


class _ToTopic(Node):
    """A sink: the record's key and value encoded for users (JSON, text, bytes)."""

    __slots__ = ("produce", "topic")

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic

    def bind(self, runtime: Runtime) -> None:
        self.produce = runtime.produce

    def push(self, rec: Record) -> None:
        self.produce(
            self.topic,
            encode_key(rec.key),
            encode_value(rec.value),
            rec.timestamp_ms,
            rec.headers,
        )

    async def apush(self, rec: Record) -> None:
        self.push(rec)


class _ToRepartition(_ToTopic):
    """The sink half of a repartition: the key as records.key_to_repartition says, the value
    packed (msgpack) for our own source."""

    __slots__ = ()

    def push(self, rec: Record) -> None:
        key, flag = key_to_repartition(rec.key)
        headers = rec.headers
        if flag is not None:
            headers = [*(headers or ()), (KEY_HEADER, flag.encode())]
        self.produce(self.topic, key, pack(rec.value), rec.timestamp_ms, headers)


@dataclass(frozen=True, slots=True)
class Aggregator:
    """How an aggregate grows: `initial()` for a new key or window, `add(aggregate, value)`
    per record, and `merge(a, b)` when two session windows join (sessions only).

    Aggregates are stored and changelogged with msgpack: keep them to None, bool, int,
    float, str, bytes, lists and dicts of those."""

    initial: Callable[[], Any]
    add: Callable[[Any, Any], Any]
    merge: Callable[[Any, Any], Any] | None = None


def _count() -> Aggregator:
    return Aggregator(lambda: 0, lambda agg, _value: agg + 1, lambda a, b: a + b)


def _sum(fn: Callable[[Any], Any] | None) -> Aggregator:
    if fn is None:
        return Aggregator(lambda: 0, lambda agg, value: agg + value, lambda a, b: a + b)
    get = fn
    return Aggregator(lambda: 0, lambda agg, value: agg + get(value), lambda a, b: a + b)


def _reduce(fn: Callable[[Any, Any], Any]) -> Aggregator:
    # None is the "no value yet" aggregate: the first value is taken as it is.
    return Aggregator(
        lambda: None,
        lambda agg, value: value if agg is None else fn(agg, value),
        lambda a, b: b if a is None else a if b is None else fn(a, b),
    )


class Stream:
    """A stream of records: the handle the DSL methods are called on."""

    def __init__(
        self,
        app: StreamsApp,
        node: Node,
        *,
        topics: tuple[str, ...],
        needs_repartition: bool = False,
    ) -> None:
        self.app = app
        self.node = node
        self.topics = topics
        """The source topics whose partitions these records are in (state is kept per
        partition of the first; the others must have as many partitions)."""
        self.needs_repartition = needs_repartition

    def _then(self, node: Node, *, rekeyed: bool | None = None) -> Stream:
        self.app._check_open()
        self.node.children.append(node)
        repartition = self.needs_repartition if rekeyed is None else rekeyed
        return Stream(self.app, node, topics=self.topics, needs_repartition=repartition)

    # -- stateless steps -------------------------------------------------------------------

    def map(self, fn: Callable[[Any], Any]) -> Stream:
        """Each value through `fn` (sync or async)."""
        return self._then(_Map(fn))

    def map_record(self, fn: Callable[[Record], Any]) -> Stream:
        """Each Record through `fn`, which returns a Record (`rec.with_value(...)`,
        `rec.with_key(...)`) or None to drop it. A changed key is not repartitioned unless
        `repartition()` follows."""
        return self._then(_MapRecord(fn))

    def filter(self, fn: Callable[[Any], Any]) -> Stream:
        """Keep the values for which `fn` is true."""
        return self._then(_Filter(fn))

    def flat_map(self, fn: Callable[[Any], Iterable[Any]]) -> Stream:
        """Each value to zero or more values (`fn` returns an iterable)."""
        return self._then(_FlatMap(fn))

    def peek(self, fn: Callable[[Any], Any]) -> Stream:
        """Call `fn` with each value and pass the record on unchanged."""
        return self._then(_Foreach(fn))

    def rekey(self, fn: Callable[[Any], Any]) -> Stream:
        """The key becomes `fn(value)`; a stateful step after this repartitions first."""
        return self._then(_Rekey(fn), rekeyed=True)

    def branch(self, *predicates: Callable[[Any], Any]) -> list[Stream]:
        """One stream per predicate (the first true one takes the record) plus a last stream
        for the records that matched none."""
        if not predicates:
            raise ValueError("branch needs at least one predicate")
        node = _Branch(list(predicates))
        self.app._check_open()
        self.node.children.append(node)
        return [
            Stream(self.app, out, topics=self.topics, needs_repartition=self.needs_repartition)
            for out in node.outs
        ]

    def merge(self, *others: Stream) -> Stream:
        """One stream of this one's records and the others'."""
        node = Node()
        topics = list(self.topics)
        for stream in (self, *others):
            if stream.app is not self.app:
                raise ValueError("merge: the streams belong to different apps")
            stream.node.children.append(node)
            topics += [t for t in stream.topics if t not in topics]
        repartition = any(s.needs_repartition for s in (self, *others))
        return Stream(self.app, node, topics=tuple(topics), needs_repartition=repartition)

    def repartition(
        self,
        name: str | None = None,
        *,
        value: Any = None,
        partitions: int | None = None,
        like: str | None = None,
    ) -> Stream:
        """Write the records to `<app>-<name>-repartition` keyed by their key and read them
        back: afterwards every record of one key is in one partition. `value` is the type
        values are rebuilt as (a pydantic model or msgspec Struct); `partitions` defaults
        to the source topic's count (`like`: another topic's count)."""
        source = like or self.topics[0]
        topic = self.app._repartition_topic(name, source=source, partitions=partitions)
        self._then(_ToRepartition(topic))
        return self.app._internal_source(topic, value=value)

    def join(self, table: Table, fn: Callable[[Any, Any], Any], *, left: bool = False) -> Stream:
        """Each value joined with the table row of its key: `fn(value, row)` (joins.py).
        Without a row the record is dropped, or with `left=True` joined with None."""
        from kafkito.streams.joins import JoinNode

        stream = self.repartition(like=table.topic) if self.needs_repartition else self
        self.app._joins.append((stream.topics[0], table.topic))
        return stream._then(JoinNode(table, fn, left))

    def join_window(
        self,
        other: Stream,
        fn: Callable[[Any, Any], Any],
        *,
        within_ms: int,
        grace_ms: int = 0,
        how: str = "inner",
        close_after_idle_ms: int | None = None,
        name: str | None = None,
    ) -> Stream:
        """Pair this stream's records with `other`'s of the same key at most `within_ms`
        apart in event time: `fn(mine, theirs)` per pair (joins.JoinSide has the rules; late
        records, ts + grace_ms < stream time, are dropped). Co-partitioned, as for tables.

        `how="left"` also emits `fn(mine, None)` for each record of this stream that found no
        pair by the time it expires (stream time past ts + within_ms + grace_ms);
        `how="outer"` both that and `fn(None, theirs)`. `close_after_idle_ms` lets the wall
        clock move a quiet partition's stream time, as for windows."""
        from kafkito.streams.joins import JoinClock, JoinSide

        if within_ms < 0 or grace_ms < 0:
            raise ValueError("within_ms and grace_ms must be >= 0")
        if how not in ("inner", "left", "outer"):
            raise ValueError(f"how={how!r}: 'inner', 'left' or 'outer'")
        if close_after_idle_ms is not None and close_after_idle_ms <= 0:
            raise ValueError("close_after_idle_ms must be > 0 (or None: data time only)")
        left = self.repartition() if self.needs_repartition else self
        right = other.repartition(like=left.topics[0]) if other.needs_repartition else other
        base = self.app._name(name, "join")
        out = Node()
        clock = JoinClock(close_after_idle_ms)
        sides = []
        for stream, suffix, is_left in ((left, "left", True), (right, "right", False)):
            spec = self.app._store(f"{base}-{suffix}", "join", topic=stream.topics[0], ttl_ms=None)
            side = JoinSide(
                spec,
                fn,
                is_left=is_left,
                within_ms=within_ms,
                grace_ms=grace_ms,
                out=out,
                clock=clock,
                emit_unmatched=how == "outer" or (how == "left" and is_left),
            )
            stream._then(side)
            sides.append(side)
        sides[0].other, sides[1].other = sides[1], sides[0]
        self.app._joins.append((left.topics[0], right.topics[0]))
        return Stream(self.app, out, topics=left.topics)

    def join_asof(
        self,
        other: Stream,
        fn: Callable[[Any, Any], Any],
        *,
        tolerance_ms: int | None = None,
        grace_ms: int = 0,
        left: bool = False,
        close_after_idle_ms: int | None = None,
        name: str | None = None,
    ) -> Stream:
        """Each record joined with the latest record of `other` with the same key at or
        before its timestamp (and at most `tolerance_ms` before it): `fn(mine, theirs)`.
        A record waits until `other`'s stream time passes its timestamp + `grace_ms`, which
        makes the result independent of how the two topics' consumption interleaves
        (asof.py). Without a match it is dropped, or `fn(mine, None)` with `left=True`.
        Late records (ts + grace_ms < their own stream's stream time) are dropped."""
        from kafkito.streams.asof import AsofJoin, AsofLeft, AsofRight

        if grace_ms < 0 or (tolerance_ms is not None and tolerance_ms < 0):
            raise ValueError("tolerance_ms and grace_ms must be >= 0")
        if close_after_idle_ms is not None and close_after_idle_ms <= 0:
            raise ValueError("close_after_idle_ms must be > 0 (or None: data time only)")
        mine = self.repartition() if self.needs_repartition else self
        theirs = other.repartition(like=mine.topics[0]) if other.needs_repartition else other
        base = self.app._name(name, "asof")
        out = Node()
        join = AsofJoin(
            fn,
            tolerance_ms=tolerance_ms,
            grace_ms=grace_ms,
            left=left,
            idle_ms=close_after_idle_ms,
            topic=mine.topics[0],
        )
        for stream, suffix, side in ((mine, "left", AsofLeft), (theirs, "right", AsofRight)):
            spec = self.app._store(f"{base}-{suffix}", "asof", topic=stream.topics[0], ttl_ms=None)
            stream._then(side(spec, join, out))
        self.app._joins.append((mine.topics[0], theirs.topics[0]))
        return Stream(self.app, out, topics=mine.topics)

    # -- sinks -----------------------------------------------------------------------------

    def to(self, topic: str) -> Stream:
        """Write each record to `topic` (key and value as JSON, text or bytes); returns this
        stream so more steps can hang off it."""
        self._then(_ToTopic(topic))
        self.app._output_topics.add(topic)
        return self

    def to_parquet(self, directory: str | Path) -> Stream:
        """Write the records as rows of Parquet files in `directory`, one file per commit
        interval (sinks.py: at-least-once, DuckDB reads them); returns this stream."""
        from kafkito.streams.sinks import ParquetSink

        self._then(ParquetSink(directory))
        return self

    def foreach(self, fn: Callable[[Any], Any]) -> Stream:
        """Call `fn` (sync or async) with each value: a sink for side effects. In
        exactly-once mode the call itself is at-least-once (a retried batch calls again)."""
        self._then(_Foreach(fn))
        return self

    # -- stateful steps --------------------------------------------------------------------

    def group_by(
        self, fn: Callable[[Any], Any] | None = None, *, name: str | None = None, value: Any = None
    ) -> Grouped:
        """Group by `fn(value)` (repartitioned) or, without `fn`, by the current key (
        repartitioned only after a `rekey`): then count, sum, aggregate or window."""
        stream = self.rekey(fn) if fn is not None else self
        if stream.needs_repartition:
            stream = stream.repartition(name, value=value)
        return Grouped(stream)

    def with_state(
        self,
        fn: Callable[[Any, KeyState], Any],
        *,
        name: str | None = None,
        ttl_ms: int | None = None,
    ) -> Stream:
        """`fn(value, state)` with the record key's own state (`state.get()`, `state.set(x)`,
        `state.delete()`), persisted and changelogged; its return value goes on (None drops
        the record). `ttl_ms` forgets keys not written for that long (wall-clock)."""
        stream = self.repartition() if self.needs_repartition else self
        from kafkito.streams.aggregate import KeyedStateNode

        store = self.app._store(name, "state", topic=stream.topics[0], ttl_ms=ttl_ms)
        return stream._then(KeyedStateNode(store, fn))


class KeyState:
    """The state of the current record's key, given to a `with_state` step."""

    __slots__ = ("_node",)

    def __init__(self, node: Any) -> None:
        self._node = node

    def get(self, default: Any = None) -> Any:
        return self._node.state_get(default)

    def set(self, value: Any) -> None:
        self._node.state_set(value)

    def delete(self) -> None:
        self._node.state_delete()


class Grouped:
    """A stream grouped by key: aggregate it as a whole (a table of the latest aggregate per
    key, each update emitted) or per window (`window(...)`)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def aggregate(
        self,
        initial: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        ttl_ms: int | None = None,
    ) -> Stream:
        """Per key: `add(aggregate, value)` from `initial()`; emits (key, new aggregate)."""
        return self._aggregate(Aggregator(initial, add), name, ttl_ms)

    def count(self, *, name: str | None = None, ttl_ms: int | None = None) -> Stream:
        return self._aggregate(_count(), name, ttl_ms)

    def sum(
        self,
        fn: Callable[[Any], Any] | None = None,
        *,
        name: str | None = None,
        ttl_ms: int | None = None,
    ) -> Stream:
        return self._aggregate(_sum(fn), name, ttl_ms)

    def reduce(
        self, fn: Callable[[Any, Any], Any], *, name: str | None = None, ttl_ms: int | None = None
    ) -> Stream:
        return self._aggregate(_reduce(fn), name, ttl_ms)

    def _aggregate(self, agg: Aggregator, name: str | None, ttl_ms: int | None) -> Stream:
        from kafkito.streams.aggregate import AggregateNode

        stream = self.stream
        store = stream.app._store(name, "aggregate", topic=stream.topics[0], ttl_ms=ttl_ms)
        return stream._then(AggregateNode(store, agg))

    def window(
        self,
        spec: WindowSpec,
        *,
        grace_ms: int = 0,
        emit: str = "close",
        close_after_idle_ms: int | None = None,
    ) -> Windowed:
        """Aggregate per window (`Tumbling`, `Hopping`, `Sliding`, `Session`).

        Event time is the record's timestamp (or the source's `timestamp=` extractor).
        A window closes once stream time (the greatest timestamp seen in its partition)
        passes its end plus `grace_ms`; records for closed windows go to `.late`.
        `emit="close"` emits each window once when it closes, `"update"` on every record.
        `close_after_idle_ms`: once a partition has had no record for that long, its stream
        time follows the wall clock, so windows of idle keys and partitions still close.
        """
        from kafkito.streams.windows import Windowed

        if emit not in ("close", "update"):
            raise ValueError(f"emit must be 'close' or 'update', not {emit!r}")
        if grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, not {grace_ms}")
        return Windowed(self.stream, spec, grace_ms, emit, close_after_idle_ms)
