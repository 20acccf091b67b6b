"""Time as a collaborator: monotonic and wall time, sleeping and timers behind one seam.

Timing logic (a group member's session, a rebalance timeout, a backoff) read the time and slept
directly, so a test of it had to wait for real. Code that takes a `Clock` can be driven by
`FakeClock` instead: the test advances time and the timers and sleepers due run at once, in
time order, without sleeping.

`SystemClock` is the real one: `time.monotonic` (what asyncio's loop time is), `time.time_ns`,
`asyncio.sleep` and the running loop's `call_later`. Its timers live on the running event loop,
so use it from the loop's thread.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """What `call_later` returns: asyncio.TimerHandle has this shape."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The seam: everything time-dependent code asks of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, intervals)."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the epoch (what gets persisted or compared with timestamps)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call `callback(*args)` on the loop after `delay` seconds; cancel() to drop it."""
        ...


class SystemClock:
    """Real time (the default everywhere)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class _FakeTimer:
    __slots__ = ("cancelled", "when")

    def __init__(self, when: float) -> None:
        self.when = when
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told (`advance`); for tests of timing logic.

    Timers and sleepers due by the new time run in time order, each at its own instant (the
    clock reads its deadline while it runs), and the loop gets a few turns after each so that
    the tasks they wake can act before the next one fires.
    """

    def __init__(self, start: float = 1_000.0, wall_ms: int = 1_700_000_000_000) -> None:
        self._now = start
        self._wall_offset_ms = wall_ms - int(start * 1000)
        self._queue: list[tuple[float, int, _FakeTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall_ms(self) -> int:
        return self._wall_offset_ms + int(self._now * 1000)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        timer = _FakeTimer(self._now + max(0.0, delay))
        heapq.heappush(self._queue, (timer.when, next(self._order), timer, lambda: callback(*args)))
        return timer

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, running every timer and sleeper due on the way."""
        until = self._now + seconds
        await _turns()
        while self._queue and self._queue[0][0] <= until:
            when, _, timer, run = heapq.heappop(self._queue)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            run()
            await _turns()
        self._now = until
        await _turns()


async def _turns(count: int = 5) -> None:
    """Let ready tasks run: a woken task may need a few steps to reach its next await."""
    for _ in range(count):
        await asyncio.sleep(0)
