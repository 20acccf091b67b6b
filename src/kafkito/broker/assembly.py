"""The one place a broker core is put together: BrokerCore plus its collaborators, in order.

Subsystems do not register themselves on import. `build_core` makes each one and attaches it
with its own `install(core)`, in the order their start-up replay needs:

1. the group coordinator (groups and committed offsets),
2. producer state (the pid allocator, per-partition idempotence windows),
3. the transaction coordinator, whose recovery hands pending offsets to (1) and takes
   producer ids from (2),
4. client quotas,
5. the ACL authorizer (active only with `authorizer="acl"`),

then gives the produce path its `AppendGuard` (transaction rules, then idempotence), so that a
Produce request runs listener -> dispatch -> handler -> guard and partition log -> segment
without calling back into the core. Every participant replays the metadata log in this order
and is started and stopped by BrokerCore.
"""

from __future__ import annotations

from kafkito.broker import coordinator, producers, quotas, txn
from kafkito.broker.auth import authorizer
from kafkito.broker.core import BrokerCore
from kafkito.broker.producers.guard import AppendGuard
from kafkito.broker.settings import BrokerSettings
from kafkito.clock import Clock
from kafkito.storage.fs import FileSystem

__all__ = ["build_core"]


def build_core(
    settings: BrokerSettings, fs: FileSystem | None = None, clock: Clock | None = None
) -> BrokerCore:
    """A BrokerCore with every subsystem attached, ready for `load()` / `start()`."""
    core = BrokerCore(settings, fs, clock)
    coordinator.install(core)
    producers.install(core)
    txn.install(core)
    quotas.install(core)
    authorizer.install(core)
    core.append_guard = AppendGuard(core.producers, core.transactions)
    return core
