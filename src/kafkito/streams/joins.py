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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.records import Record, encode_key
from kafkito.streams.topology import Node

if TYPE_CHECKING:
    from kafkito.streams.app import StreamsApp

__all__ = ["Table"]


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
