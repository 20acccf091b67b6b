"""Which offsets of a partition may be committed: never past the lowest unresolved record.

Records of one partition finish out of order when different keys run in parallel. The
committable offset is the lowest offset still unresolved (received, not yet done, retried into a
retry topic, or dead-lettered), or one past the highest offset received when nothing is pending.

A partition's records arrive in offset order, so the pending offsets are kept in a deque in
that order; a record resolved ahead of the oldest waits in a set until the oldest is resolved.
Both operations are O(1) amortized. Pure and synchronous: the flow calls it from its event loop.
"""

from __future__ import annotations

from collections import deque


class PartitionTracker:
    """Received-but-unresolved offsets of one partition."""

    __slots__ = ("_done_early", "_next", "_pending", "committed")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done_early: set[int] = set()
        self._next = -1  # one past the highest offset received
        self.committed = -1
        """The last offset committed (what the group stores: the next offset to read)."""

    def received(self, offset: int) -> None:
        if offset < self._next:
            return  # delivered again (a seek back): already tracked or already resolved
        self._pending.append(offset)
        self._next = offset + 1

    def resolved(self, offset: int) -> None:
        pending = self._pending
        if not pending or offset < pending[0]:
            return  # not tracked: resolved before, or received before a reassignment
        if offset != pending[0]:
            self._done_early.add(offset)
            return
        pending.popleft()
        early = self._done_early
        while pending and pending[0] in early:
            early.discard(pending.popleft())

    @property
    def pending(self) -> int:
        return len(self._pending) - len(self._done_early)

    def committable(self) -> int | None:
        """The offset to commit (next to read), or None if nothing was received yet."""
        if self._pending:
            return self._pending[0]
        return self._next if self._next >= 0 else None

    def needs_commit(self) -> int | None:
        """The committable offset if it moved past the last commit, else None."""
        offset = self.committable()
        if offset is None or offset <= self.committed:
            return None
        return offset
