"""Stateful steps without windows: a running aggregate per key, and free-form keyed state.

A stateful node owns one store (`StoreSpec`); the app opens the store's partitions as their
input partitions are assigned (restoring them from the changelog first) and closes them on
revocation, calling the node's `open_partition` / `close_partition` so it can rebuild or drop
in-memory indexes. State is read and written through `PartitionStore` (a write cache in
front of LMDB; see state.py for when things reach disk and the changelog).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkito.streams.records import Record, pack, unpack
from kafkito.streams.state import PartitionStore
from kafkito.streams.topology import Aggregator, KeyState, Node

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AggregateNode", "KeyedStateNode", "StatefulNode", "StoreSpec"]


@dataclass(eq=False)
class StoreSpec:
    """A named store of the app: one changelog topic, one LMDB file per open partition."""

    name: str
    topic: str
    """The input topic whose partitions the store's partitions follow."""
    changelog: str
    ttl_ms: int | None = None
    source_backed: bool = False
    """The changelog is the input topic itself (a table): nothing is written to it, and the
    checkpoint is the consumed offset."""
    partitions: dict[int, PartitionStore] = field(default_factory=dict)
    """The open partitions (assigned to this instance and restored)."""


class StatefulNode(Node):
    """A node with a store; the app calls the partition hooks and `punctuate`."""

    __slots__ = ("spec",)

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__()
        self.spec = spec

    def open_partition(self, partition: int, store: PartitionStore) -> None:
        """The partition's store is restored and about to receive records."""

    def close_partition(self, partition: int) -> None:
        """The partition was revoked (or lost): drop what memory holds for it."""

    def punctuate(self, now_ms: int) -> list[tuple[Node, Record]]:
        """Called each loop round with the wall clock: records to emit (window closes)."""
        return []

    def emit_to(self, outputs: list[tuple[Node, Record]]) -> None:
        for node, rec in outputs:
            node.push(rec)

    async def aemit_to(self, outputs: list[tuple[Node, Record]]) -> None:
        for node, rec in outputs:
            await node.apush(rec)


class AggregateNode(StatefulNode):
    """The latest aggregate per key; every update goes on as (key, aggregate)."""

    __slots__ = ("agg",)

    def __init__(self, spec: StoreSpec, agg: Aggregator) -> None:
        super().__init__(spec)
        self.agg = agg

    def _update(self, rec: Record) -> Record:
        store = self.spec.partitions[rec.partition]
        key = pack(rec.key)
        raw = store.get(key)
        current = self.agg.initial() if raw is None else unpack(raw)
        current = self.agg.add(current, rec.value)
        store.put(key, pack(current))
        return rec.with_value(current)

    def push(self, rec: Record) -> None:
        out = self._update(rec)
        for child in self.children:
            child.push(out)

    async def apush(self, rec: Record) -> None:
        out = self._update(rec)
        for child in self.children:
            await child.apush(out)


class KeyedStateNode(StatefulNode):
    """`fn(value, state)` with the current key's state; the result goes on (None: dropped)."""

    __slots__ = ("_key", "_store", "fn", "state")

    def __init__(self, spec: StoreSpec, fn: Callable[[Any, KeyState], Any]) -> None:
        super().__init__(spec)
        self.fn = fn
        self.state = KeyState(self)
        self._store: PartitionStore | None = None
        self._key = b""

    def state_get(self, default: Any) -> Any:
        assert self._store is not None, "state used outside its step"
        raw = self._store.get(self._key)
        return default if raw is None else unpack(raw)

    def state_set(self, value: Any) -> None:
        assert self._store is not None, "state used outside its step"
        self._store.put(self._key, pack(value))

    def state_delete(self) -> None:
        assert self._store is not None, "state used outside its step"
        self._store.delete(self._key)

    def push(self, rec: Record) -> None:
        self._store = self.spec.partitions[rec.partition]
        self._key = pack(rec.key)
        value = self.fn(rec.value, self.state)
        if value is not None:
            out = rec.with_value(value)
            for child in self.children:
                child.push(out)

    async def apush(self, rec: Record) -> None:
        # The step function is sync (state access must not interleave across keys).
        self._store = self.spec.partitions[rec.partition]
        self._key = pack(rec.key)
        value = self.fn(rec.value, self.state)
        if value is not None:
            out = rec.with_value(value)
            for child in self.children:
                await child.apush(out)
