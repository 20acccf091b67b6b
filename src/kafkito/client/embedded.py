"""Where the brokers are when none are configured: the local broker, shared by every process.

Resolution order for a Writer's or Reader's bootstrap address:

1. `brokers` in the config (a list, or "host:port,host:port");
2. the `KAFKITO_BROKERS` environment variable;
3. the local embedded broker of `kafkito.broker.local`: its data directory is
   `$KAFKITO_DATA_DIR`, default `./.kafkito/data` (per project, like `.git`).

For (3) the broker holds an exclusive `flock` on `<data dir>/broker.lock` and publishes its
address in `<data dir>/broker.addr`. The first process that needs it starts it in-process on a
background thread (port 0, loopback only); any other process (a second script, `kafkito
consume`, a test) reads the address file and connects. The lock dies with its holder, so a
crashed process never leaves a stale lock; the broker lives as long as the process that started
it, which suits scripts, notebooks and tests. For a broker that outlives them, run
`kafkito broker` and set `KAFKITO_BROKERS=127.0.0.1:9092`. The CLI follows the same rule, so
`kafkito consume` sees what a script wrote.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures.thread import _worker as _pool_worker

log = logging.getLogger(__name__)

__all__ = ["embedded_bootstrap", "resolve_bootstrap"]

ENV_BROKERS = "KAFKITO_BROKERS"

_lock = threading.Lock()
_known: dict[str, str] = {}


def resolve_bootstrap(brokers: list[str] | None) -> str:
    """The bootstrap address: configured brokers, then KAFKITO_BROKERS, then the local one."""
    if brokers:
        return ",".join(brokers)
    from_env = os.environ.get(ENV_BROKERS, "").strip()
    if from_env:
        return from_env
    return embedded_bootstrap()


def _at_exit(close: Callable[[], None]) -> None:
    """Stop the broker at interpreter exit, while thread pools still take work.

    Plain `atexit` runs after concurrent.futures has shut its executors down, and the broker's
    clean shutdown uses `asyncio.to_thread` (fsync off the loop): it would fail and leave an
    unclean stop. `threading._register_atexit` hooks run earlier, newest first, so ours runs
    before the executors close. It runs before Python joins the program's own non-daemon
    threads, so it joins them first (they may still be using the broker); pool workers are
    left alone, they end when their pool shuts down. Falls back to atexit if the hook is gone.
    """

    def stop() -> None:
        me = threading.current_thread()
        for thread in threading.enumerate():
            is_pool_worker = getattr(thread, "_target", None) is _pool_worker
            if thread is not me and not thread.daemon and not is_pool_worker:
                thread.join()
        close()

    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(close)
        return
    try:
        register(stop)
    except RuntimeError:  # already shutting down
        atexit.register(close)


def embedded_bootstrap(data_dir: str | None = None) -> str:
    """Start (or attach to) the local broker for `data_dir` and return its address."""
    from kafkito.broker.embedded import attach_or_start
    from kafkito.broker.local import default_data_dir

    directory = os.path.abspath(data_dir) if data_dir else default_data_dir()
    with _lock:
        bootstrap = _known.get(directory)
        if bootstrap is None:
            bootstrap, close = attach_or_start(directory)
            _at_exit(close)
            _known[directory] = bootstrap
            log.info("local broker for %s at %s", directory, bootstrap)
        return bootstrap
