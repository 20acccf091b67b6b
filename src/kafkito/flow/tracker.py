"""Which offsets of a partition may be committed: never past the lowest unresolved record.

The flow hands records around in *chunks*: the records of one partition, polled together, that
share an ordering key (with `ordering="partition"`, and with `ordering="key"` while a sync handler
is fast: all of the partition's records of one poll; `split` regroups such a chunk's rest by key).
A chunk's records are handled one after another, so a chunk's progress is one number, `done`:
its records `[0, done)` are resolved (handled, retried into a retry topic, or dead-lettered),
the others are not. Tracking costs O(1) per chunk, not per record.

Chunks of one partition finish out of order when different keys run in parallel. The
committable offset is the lowest offset still unresolved in any of the partition's chunks, or
one past the highest offset received when nothing is pending. Pure and synchronous: the flow
calls it from its event loop only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

TP = tuple[str, int]


class HasOffset(Protocol):
    """What the tracker needs of a record (confluent_kafka.Message has it)."""

    def offset(self) -> int | None: ...


@dataclass(slots=True, eq=False)
class Chunk:
    """Records of one partition, in offset order, handled in that order."""

    tp: TP
    generation: int
    """The partition's assignment the records were polled under (stale after a rebalance)."""
    key: Hashable
    """The scheduler's ordering key (a key, the partition, or a key of its own)."""
    source: str
    """The flow's own topic the records belong to (for retry records: the original topic)."""
    messages: list[Any]
    """confluent_kafka.Message objects (anything with offset())."""
    attempt: int = 1
    coarse: bool = False
    """All the partition's records of a poll under ordering="key": run in offset order (which
    keeps every key's order) until a record fails or the chunk runs long; then the rest is
    split by key (`PartitionTracker.split`)."""
    done: int = 0
    """Records [0, done) are resolved (moved by the tracker, on the event loop)."""
    cursor: int = 0
    """Where handling goes on: owned by whoever runs the chunk (a handler thread, or the loop
    while a failed record of it is retried)."""

    @property
    def finished(self) -> bool:
        return self.done >= len(self.messages)

    def next_offset(self) -> int:
        """The offset of the first unresolved record (only while not finished)."""
        offset: int | None = self.messages[self.done].offset()
        assert offset is not None
        return offset


class PartitionTracker:
    """Received-but-unresolved records of one partition."""

    __slots__ = ("_chunks", "_next", "committed", "pending")

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._next = -1  # one past the highest offset received
        self.pending = 0
        """Records received and not resolved."""
        self.committed = -1
        """The last offset committed (what the group stores: the next offset to read)."""

    @property
    def next(self) -> int:
        """One past the highest offset received (-1 before the first record)."""
        return self._next

    def received(self, chunk: Chunk) -> None:
        """Track a chunk. Its offsets ascend and none was received before (the caller drops
        records delivered again after a seek back: those below `next` as it was before the
        poll)."""
        if not chunk.messages:
            return
        self._chunks.append(chunk)
        self.pending += len(chunk.messages) - chunk.done
        last: int | None = chunk.messages[-1].offset()
        assert last is not None
        self._next = max(self._next, last + 1)

    def resolved(self, chunk: Chunk, count: int = 1) -> None:
        """The chunk's next `count` records are resolved."""
        chunk.done += count
        self.pending -= count
        chunks = self._chunks
        while chunks and chunks[0].finished:
            chunks.popleft()  # let finished records go now: kept, they cost the GC dearly

    def split(self, chunks: list[Chunk], parts: list[Chunk]) -> None:
        """The unresolved records of `chunks` go on as `parts` (the same records, regrouped):
        the chunks count as finished, the parts are tracked instead. Pending stays the same
        and no offset is unresolved in neither, so the committable offset does not move."""
        for chunk in chunks:
            self.pending -= len(chunk.messages) - chunk.done
            chunk.done = len(chunk.messages)
        for part in parts:
            self._chunks.append(part)
            self.pending += len(part.messages) - part.done
        chunks_left = self._chunks
        while chunks_left and chunks_left[0].finished:
            chunks_left.popleft()

    def committable(self) -> int | None:
        """The offset to commit (next to read), or None if nothing was received yet."""
        chunks = self._chunks
        while chunks and chunks[0].finished:
            chunks.popleft()
        if not chunks:
            return self._next if self._next >= 0 else None
        return min(chunk.next_offset() for chunk in chunks if not chunk.finished)

    def needs_commit(self) -> int | None:
        """The committable offset if it moved past the last commit, else None."""
        offset = self.committable()
        if offset is None or offset <= self.committed:
            return None
        return offset
