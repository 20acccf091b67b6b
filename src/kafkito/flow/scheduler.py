"""Ordered per key, parallel across keys, with a bound on concurrency.

Each item has an ordering key. Items with the same key run one after another in submission
order; different keys run at the same time, at most `concurrency` at once. A key whose item
waits (a retry backoff) holds only its own queue: the others go on.

Work is handed out in runs: a worker that gets a key takes up to `max_chunk` of the key's queued
items at once, and keeps taking them while nobody else waits for a turn, so a busy key costs
one task (or one thread wake-up), not one per item.

`KeyedQueues` is the bookkeeping; two drivers run it:

* `KeyedScheduler`: asyncio tasks (async handlers, batch handlers);
* `ThreadedKeyedScheduler`: `concurrency` threads (sync handlers). Its work function runs in
  a thread and returns something (not None) to *hold* its key: the item stays at the front of
  the key's queue and the key runs nothing until `release` (the flow retries the failed
  record meanwhile on its event loop, and the handler threads go on with other keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
H = TypeVar("H")
log = logging.getLogger(__name__)


class KeyedQueues(Generic[T]):
    """FIFO queues per key, and which keys may be taken. Not thread-safe: callers lock."""

    __slots__ = ("_busy", "_max_chunk", "_queues", "_ready", "size")

    def __init__(self, max_chunk: int) -> None:
        self._max_chunk = max_chunk
        self._queues: dict[Hashable, deque[T]] = {}
        self._ready: deque[Hashable] = deque()
        self._busy: set[Hashable] = set()
        self.size = 0
        """Items submitted and not completed (queued, running or held)."""

    def add(self, key: Hashable, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            if key not in self._busy:
                self._ready.append(key)
        queue.append(item)
        self.size += 1

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)

    @property
    def ready_count(self) -> int:
        """Keys waiting to be taken (an upper bound: some may have emptied meanwhile)."""
        return len(self._ready)

    def pop_ready(self) -> Hashable | None:
        """A key with queued items that nobody runs; it is busy until `free`."""
        while self._ready:
            key = self._ready.popleft()
            if key in self._busy:
                # A stale entry (its queue was discarded, then the key came back): `free`
                # puts the key in line again. Handing it out would run one key twice at once.
                continue
            if self._queues.get(key):
                self._busy.add(key)
                return key
            self._queues.pop(key, None)
        return None

    def take(self, key: Hashable) -> list[T]:
        """Up to max_chunk of a busy key's items, in order."""
        queue = self._queues.get(key)
        if not queue:
            self._queues.pop(key, None)
            return []
        run = [queue.popleft() for _ in range(min(len(queue), self._max_chunk))]
        if not queue:
            del self._queues[key]
        return run

    def hold(self, key: Hashable) -> None:
        """Mark a key nobody runs busy (it is not handed out until `free`)."""
        assert key not in self._busy, "hold: the key is taken"
        self._busy.add(key)

    def put_back(self, key: Hashable, items: list[T]) -> None:
        """Items taken and not run go back to the front of their key's queue, in order."""
        if items:
            queue = self._queues.setdefault(key, deque())
            queue.extendleft(reversed(items))

    def completed(self, count: int) -> None:
        self.size -= count

    def free(self, key: Hashable) -> None:
        """The key's worker is done with it: it may be taken again (at the back of the line)."""
        self._busy.discard(key)
        if self._queues.get(key):
            self._ready.append(key)
        else:
            self._queues.pop(key, None)

    def drop_front(self, key: Hashable, item: T) -> None:
        """Remove `item` if it is first in its key's queue (a held item given up)."""
        queue = self._queues.get(key)
        if queue and queue[0] is item:
            queue.popleft()
            self.size -= 1

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
        return dropped


class KeyedScheduler(Generic[T]):
    """Runs `await work(items)` for submitted items on asyncio tasks: FIFO per key,
    `concurrency` keys at once."""

    def __init__(
        self, concurrency: int, work: Callable[[list[T]], Awaitable[None]], *, max_chunk: int = 256
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._limit = concurrency
        self._work = work
        self._queues: KeyedQueues[T] = KeyedQueues(max_chunk)
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def size(self) -> int:
        """Items submitted and not finished (queued or running)."""
        return self._queues.size

    @property
    def saturated(self) -> bool:
        """Every slot runs a key and more keys wait: more keys to choose from gain nothing."""
        return len(self._running) >= self._limit and self._queues.has_ready

    def submit(self, key: Hashable, item: T) -> None:
        self.submit_many(((key, item),))

    def submit_many(self, pairs: Iterable[tuple[Hashable, T]]) -> None:
        """Queue (key, item) pairs in order, then start what the concurrency allows."""
        queues = self._queues
        for key, item in pairs:
            queues.add(key, item)
        if queues.size:
            self._idle.clear()
            self._fill()

    def _fill(self) -> None:
        while len(self._running) < self._limit:
            key = self._queues.pop_ready()
            if key is None:
                return
            self._running[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: Hashable) -> None:
        queues = self._queues
        try:
            while run := queues.take(key):
                try:
                    await self._work(run)
                finally:
                    queues.completed(len(run))
                if queues.has_ready and len(self._running) >= self._limit:
                    break  # others are waiting for a slot: take turns
        finally:
            del self._running[key]
            queues.free(key)
            self._fill()
            if queues.size == 0:
                self._idle.set()

    def discard(self, keep: Callable[[T], bool]) -> list[T]:
        """Remove queued (not running) items for which `keep` is False; returns them."""
        dropped = self._queues.discard(keep)
        if self._queues.size == 0:
            self._idle.set()
        return dropped

    def running_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._running.values())

    async def wait_idle(self) -> None:
        await self._idle.wait()


class ThreadedKeyedScheduler(Generic[T, H]):
    """Runs `work(item)` for submitted items on `concurrency` threads: FIFO per key.

    `work` returns None when the item is complete, or anything else to hold its key: the item
    goes back to the front of the key's queue, nothing of the key runs until `release`, and
    `on_hold(item, what work returned)` is called (after the hold, so `release` may follow at
    once). `after_batch()` is called in the thread after each batch of keys, before its keys
    are freed and `running` and `size` drop (so what it reports is out before anyone sees the
    work as done), and before the batch's `on_hold` calls.

    A thread takes several ready keys at once when the work is fast: as many as fit in about
    `target_s` of work at the measured speed (`size_of(item)` units per item), and no more than
    its fair share of the keys waiting. Slow work (a unit takes longer than `target_s`) is
    taken one key at a time, so a slow key holds up no other; fast work costs one lock and
    one wake-up per batch of keys instead of per key. The price: in a fast stream, an item
    that suddenly takes long delays the keys taken in the same batch by as much (they are not
    handed to idle threads meanwhile); the speed estimate then drops to one key per take.
    """

    def __init__(
        self,
        concurrency: int,
        work: Callable[[T], H | None],
        on_hold: Callable[[T, H], None],
        *,
        size_of: Callable[[T], int] = lambda item: 1,
        after_batch: Callable[[], None] | None = None,
        target_s: float = 0.001,
        max_chunk: int = 64,
        name: str = "kafkito-handler",
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._work = work
        self._on_hold = on_hold
        self._size_of = size_of
        self._after_batch = after_batch
        self._target_s = target_s
        self._unit_s = target_s  # seconds per unit, measured; until then one key per take
        self._measured = False
        self._concurrency = concurrency
        self._queues: KeyedQueues[T] = KeyedQueues(max_chunk)
        self._lock = threading.Condition(threading.Lock())
        self._closed = False
        self._waiting = 0  # threads waiting for work
        self._idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.running = 0
        """Keys being run by a thread right now."""
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        """Items submitted and not finished (queued, running or held)."""
        return self._queues.size

    @property
    def saturated(self) -> bool:
        """Every thread runs a key and more keys wait (read without the lock: a hint)."""
        return self.running >= self._concurrency and self._queues.has_ready

    @property
    def seconds_per_unit(self) -> float | None:
        """The work's measured speed (a moving average), None before the first batch."""
        return self._unit_s if self._measured else None

    def submit_many(self, pairs: Iterable[tuple[Hashable, T]]) -> None:
        with self._lock:
            for key, item in pairs:
                self._queues.add(key, item)
            self._wake()

    def submit_held(self, key: Hashable, item: T) -> None:
        """Queue `item` under a key that is new, held from the start: nothing of it runs until
        `release(key)` (the flow retries the item's first record on its loop meanwhile)."""
        with self._lock:
            self._queues.hold(key)
            self._queues.add(key, item)

    def _wake(self) -> None:
        if self._waiting and self._queues.has_ready:
            self._lock.notify()

    def release(self, key: Hashable, drop: T | None = None) -> None:
        """A held key may run again; `drop` (its held item) is given up first if given."""
        with self._lock:
            if drop is not None:
                self._queues.drop_front(key, drop)
            self._queues.free(key)
            self._wake()
            self._check_idle()

    def discard(self, keep: Callable[[T], bool]) -> list[T]:
        """Remove queued (and held) items for which `keep` is False; returns them."""
        with self._lock:
            dropped = self._queues.discard(keep)
            self._check_idle()
            return dropped

    async def wait_idle(self) -> None:
        """Until nothing is queued, running or held."""
        idle = asyncio.Event()
        with self._lock:
            if self._queues.size == 0:
                return
            self._idle_waiters.append((asyncio.get_running_loop(), idle))
        await idle.wait()

    def _check_idle(self) -> None:
        """Under the lock: wake who waits for idleness if it is reached."""
        if self._queues.size == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for loop, idle in waiters:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(idle.set)

    def close(self) -> None:
        """Let the threads end once they are between items (they are daemons)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _take_batch(self) -> list[tuple[Hashable, list[T]]]:
        """Under the lock: ready keys and their items, as many as the measured speed allows."""
        queues = self._queues
        share = -(-queues.ready_count // self._concurrency)  # ceil: this thread's fair share
        budget = self._target_s / max(self._unit_s, 1e-9)
        batch: list[tuple[Hashable, list[T]]] = []
        units = 0
        while len(batch) < share and (not batch or units < budget):
            key = queues.pop_ready()
            if key is None:
                break
            run = queues.take(key)
            batch.append((key, run))
            units += sum(map(self._size_of, run))
        return batch

    def _serve(self) -> None:
        lock, work, size_of, clock = self._lock, self._work, self._size_of, time.perf_counter
        while True:
            with lock:
                batch = self._take_batch()
                while not batch:
                    if self._closed:
                        return
                    self._waiting += 1
                    lock.wait()
                    self._waiting -= 1
                    batch = self._take_batch()
                self.running += len(batch)
                self._wake()  # more keys ready: another thread may take some
            outcomes: list[tuple[Hashable, list[T], int, H | None]] = []
            units = 0
            began = clock()
            for key, run in batch:
                finished = 0
                held: H | None = None
                try:
                    for item in run:
                        units += size_of(item)
                        held = work(item)
                        if held is not None:
                            break
                        finished += 1
                except Exception:  # work() reports failures itself: this is a bug, not one
                    log.exception("handler thread: unexpected error; key %r held", key)
                outcomes.append((key, run, finished, held))
            if units:
                unit_s = (clock() - began) / units
                self._unit_s = 0.8 * self._unit_s + 0.2 * unit_s if self._measured else unit_s
                self._measured = True
            if self._after_batch is not None:  # before the keys are freed: see the class doc
                try:
                    self._after_batch()
                except Exception:
                    log.exception("handler thread: after_batch failed")
            with lock:
                for key, run, finished, _ in outcomes:
                    self.running -= 1
                    self._queues.completed(finished)
                    if finished < len(run):
                        self._queues.put_back(key, run[finished:])  # held: not freed
                    else:
                        self._queues.free(key)
                self._wake()
                self._check_idle()
            for key, run, finished, held in outcomes:
                if held is not None:
                    try:
                        self._on_hold(run[finished], held)
                    except Exception:
                        log.exception("handler thread: on_hold failed; key %r held", key)
