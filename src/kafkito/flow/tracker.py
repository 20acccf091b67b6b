"""Which offsets of a partition may be committed: never past the lowest unresolved record.

Records of one partition finish out of order when different keys run in parallel. The
committable offset is the lowest offset still unresolved (received, not yet done, retried into a
retry topic, or dead-lettered), or one past the highest resolved offset when nothing is pending.
Pure and synchronous: the flow calls it from its event loop.
"""

from __future__ import annotations

import heapq


class PartitionTracker:
    """Received-but-unresolved offsets of one partition."""

    __slots__ = ("_heap", "_next", "_pending", "committed")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._pending: set[int] = set()
        self._next = -1  # one past the highest offset received
        self.committed = -1
        """The last offset committed (what the group stores: the next offset to read)."""

    def received(self, offset: int) -> None:
        if offset in self._pending:
            return
        self._pending.add(offset)
        heapq.heappush(self._heap, offset)
        self._next = max(self._next, offset + 1)

    def resolved(self, offset: int) -> None:
        self._pending.discard(offset)
        while self._heap and self._heap[0] not in self._pending:
            heapq.heappop(self._heap)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit (next to read), or None if nothing was received yet."""
        if self._heap:
            return self._heap[0]
        return self._next if self._next >= 0 else None

    def needs_commit(self) -> int | None:
        """The committable offset if it moved past the last commit, else None."""
        offset = self.committable()
        if offset is None or offset <= self.committed:
            return None
        return offset
