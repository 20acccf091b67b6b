"""Ordered per key, parallel across keys, with a bound on concurrency.

Each record has an ordering key: its Kafka key (ordering="key"), its partition
(ordering="partition"), or nothing (ordering="none", also the fate of records with a null key
under ordering="key": they carry no order to keep). Records with the same key run one after
another in submission order; different keys run at the same time, at most `concurrency` at once.
A key whose record waits (a retry backoff) holds only its own queue: the others go on.

Work is handed out in chunks: when a key gets a worker it takes up to `max_chunk` of the key's
queued items at once, and keeps taking them until the queue is empty, so a busy partition costs
one task, not one task per record (a task per record costs more than a fast handler).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyedScheduler(Generic[T]):
    """Runs `work(items)` for submitted items: FIFO per key, `concurrency` keys at once."""

    def __init__(
        self, concurrency: int, work: Callable[[list[T]], Awaitable[None]], *, max_chunk: int = 256
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._limit = concurrency
        self._work = work
        self._max_chunk = max_chunk
        self._queues: dict[Hashable, deque[T]] = {}
        self._ready: deque[Hashable] = deque()
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.size = 0
        """Items submitted and not finished (queued or running)."""

    def submit(self, key: Hashable, item: T) -> None:
        self.submit_many(((key, item),))

    def submit_many(self, pairs: Iterable[tuple[Hashable, T]]) -> None:
        """Queue (key, item) pairs in order, then start what the concurrency allows."""
        queues, running, ready = self._queues, self._running, self._ready
        added = 0
        for key, item in pairs:
            queue = queues.get(key)
            if queue is None:
                queue = queues[key] = deque()
                if key not in running:
                    ready.append(key)
            queue.append(item)
            added += 1
        if added:
            self.size += added
            self._idle.clear()
            self._fill()

    def _fill(self) -> None:
        while self._ready and len(self._running) < self._limit:
            key = self._ready.popleft()
            if not self._queues.get(key):
                self._queues.pop(key, None)
                continue
            self._running[key] = asyncio.create_task(self._run(key))

    def _take(self, key: Hashable) -> list[T]:
        queue = self._queues.get(key)
        if not queue:
            self._queues.pop(key, None)
            return []
        chunk = [queue.popleft() for _ in range(min(len(queue), self._max_chunk))]
        if not queue:
            del self._queues[key]
        return chunk

    async def _run(self, key: Hashable) -> None:
        try:
            while chunk := self._take(key):
                try:
                    await self._work(chunk)
                finally:
                    self.size -= len(chunk)
                if self._ready and len(self._running) >= self._limit:
                    break  # others are waiting for a slot: take turns
        finally:
            del self._running[key]
            if key in self._queues:
                self._ready.append(key)
            self._fill()
            if self.size == 0:
                self._idle.set()

    def discard(self, keep: Callable[[T], bool]) -> list[T]:
        """Remove queued (not running) items for which `keep` is False; returns them."""
        dropped: list[T] = []
        for key in list(self._queues):
            queue = self._queues[key]
            kept = deque(x for x in queue if keep(x))
            dropped.extend(x for x in queue if not keep(x))
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key]
        self.size -= len(dropped)
        if self.size == 0:
            self._idle.set()
        return dropped

    def running_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._running.values())

    async def wait_idle(self) -> None:
        await self._idle.wait()
