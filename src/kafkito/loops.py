"""Which event loop kafkito starts when it starts one: asyncio's own, or uvloop.

`kafkito broker` and `Flow.run()` start their own loop. Both take asyncio's unless told
otherwise: by an argument, or by `KAFKITO_LOOP` (`asyncio`, `uvloop`, or `auto`, which takes
uvloop when it can be imported). uvloop (libuv, from PyPI) is an optional speed-up, never a
requirement: when it is asked for and missing, kafkito warns and uses asyncio's loop.

What it changes, measured (docs/benchmarks.md): asyncio's selector waits in whole
milliseconds, rounded up, so a timer that falls due between two others fires up to 1 ms late;
an async handler that sleeps or times out often, over keys whose timers fall due apart, loses
about 0.5 ms per wait. uvloop's timers do not lose it. For the broker it measured no better.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

LOOPS = ("asyncio", "uvloop", "auto")


def loop_factory(choice: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """(name, factory) of the event loop for `choice` (default: $KAFKITO_LOOP or asyncio)."""
    choice = (choice or os.environ.get("KAFKITO_LOOP") or "asyncio").strip().lower()
    if choice in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                log.warning("uvloop was asked for but is not installed; using asyncio")
        else:
            return "uvloop", uvloop.new_event_loop
    elif choice != "asyncio":
        log.warning("unknown event loop %r (one of %s); using asyncio", choice, LOOPS)
    return "asyncio", asyncio.new_event_loop
