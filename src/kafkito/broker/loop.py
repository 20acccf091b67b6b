"""How the broker process runs its event loop: which loop, and how the GIL is shared.

Two process-wide choices, both made once before the loop starts (`run`):

* the loop: asyncio's own, or uvloop (libuv, from PyPI) when `KAFKITO_LOOP=uvloop` and it is
  installed; `auto` takes uvloop when it can be imported. Anything else, or a failed import,
  is asyncio's loop: uvloop is an optional speed-up, never a requirement (kafkito.loops,
  shared with `Flow.run`).
* the GIL switch interval. Large rounds of fsyncs, and every round while the disk is slow, run
  in worker threads (storage.durability; small ones run on the loop's own thread); when one
  ends, its thread needs the GIL to hand the result to the loop. While the loop runs Python code
  it keeps the GIL for up to `sys.getswitchinterval()` (5 ms by default) before the waiting
  thread gets a turn, so on a busy loop every fsync completion could wait up to 5 ms more,
  straight into the produce and end-to-end latency. The broker sets a shorter interval
  (`KAFKITO_SWITCH_INTERVAL_MS`, default 0.5 ms); the loop pays for it with a few more GIL
  hand-overs per second, which only happen while another thread wants the GIL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from kafkito.loops import loop_factory

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_SWITCH_INTERVAL_MS = 0.5


def switch_interval_s() -> float:
    """The GIL switch interval for the broker: $KAFKITO_SWITCH_INTERVAL_MS, default 0.5 ms."""
    raw = os.environ.get("KAFKITO_SWITCH_INTERVAL_MS")
    try:
        ms = float(raw) if raw else DEFAULT_SWITCH_INTERVAL_MS
    except ValueError:
        log.warning("KAFKITO_SWITCH_INTERVAL_MS=%r is not a number; using the default", raw)
        ms = DEFAULT_SWITCH_INTERVAL_MS
    return max(ms, 0.05) / 1000


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on the chosen loop with the broker's GIL switch interval."""
    name, factory = loop_factory()
    sys.setswitchinterval(switch_interval_s())
    log.debug("event loop: %s, switch interval %.2f ms", name, sys.getswitchinterval() * 1000)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def skip_test_only_imports() -> None:
    """Keep hypothesis out of the broker process (call before kio is imported).

    kio's phantom types import hypothesis when it is installed, only to register test
    strategies; in a development environment that is most of kio's import time (measured
    0.3-0.65 s of the broker's start). The broker never uses hypothesis, so `kafkito broker`
    marks it absent; an import of it in this process then raises ImportError, which kio
    expects. Nothing changes where hypothesis is already imported (tests in-process).
    """
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
