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
* glibc's malloc thresholds (`tune_malloc`). Every large request body is a large allocation
  (and so was every 256 KiB socket read, until reads went into the listener's one shared
  buffer: broker/server.py RequestStream). By default glibc serves blocks from
  128 KiB up with fresh `mmap`s (a threshold it raises as such blocks are freed) and hands the
  top of its heap back to the OS beyond twice that, so under a stream of large Produce
  requests the broker kept mapping, faulting in and unmapping the same memory: with 1 KiB
  records (1 MiB requests) copying request bytes (then `StreamReader.feed_data` and the body's
  join) was 40% of the loop's samples. The broker process serves blocks up to 8 MiB from its heap
  and keeps up to 32 MiB of free heap: 10% less broker CPU per produced record at 100 B and
  at 1 KiB, for 2-11 MB more RSS after load; throughput is the same within the noise
  (docs/benchmarks.md). Set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ yourself and the
  broker leaves both alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
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


MMAP_THRESHOLD_BYTES = 8 << 20
TRIM_THRESHOLD_BYTES = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds for the broker process (module docstring);
    whether it did. Nothing on another C library, or when the environment sets either."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on the chosen loop with the broker's GIL switch interval and malloc
    thresholds."""
    name, factory = loop_factory()
    tune_malloc()
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
