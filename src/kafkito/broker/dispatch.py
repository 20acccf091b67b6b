"""(api_key, version) -> handler, and ApiVersions built from the same registry.

Handler modules register with `@handler(API_KEY, versions=range(lo, hi + 1))`. A handler gets the
kio-decoded request body (or the raw frame, for hot paths registered with `raw=True`) and a
RequestContext, and returns one of:

* a dict (version-independent plain data, turned into the right kio dataclass by codec.build),
* a kio response dataclass,
* `RawBody(chunks)`: an already-encoded body (hand-written hot-path encoders),
* `NO_RESPONSE` (Produce with acks=0).

Only what is registered is advertised (KAFKA-NOTES §6 P2: clients use whatever is advertised).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawBody:
    """A response body already encoded by a hand-written encoder, as chunks to write."""

    chunks: list[bytes | memoryview]


class _NoResponse:
    def __repr__(self) -> str:
        return "NO_RESPONSE"


NO_RESPONSE: Any = _NoResponse()


@dataclass(slots=True)
class RequestContext:
    """What a handler may know about the request beyond its body."""

    broker: BrokerCore
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    peer: str
    frame: bytes | memoryview | None = None
    connection: Any = None


HandlerFn = Callable[[Any, RequestContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    versions: range
    fn: HandlerFn
    raw: bool = False


ROUTES: dict[int, Route] = {}


def handler(
    api_key: int, *, versions: range, raw: bool = False
) -> Callable[[HandlerFn], HandlerFn]:
    """Register `fn` as the handler of `api_key` for `versions` (a contiguous range)."""
    assert versions.step == 1 and len(versions) > 0

    def register(fn: HandlerFn) -> HandlerFn:
        assert api_key not in ROUTES, f"api key {api_key} registered twice"
        ROUTES[api_key] = Route(api_key, versions, fn, raw)
        return fn

    return register


def advertised_versions() -> list[tuple[int, int, int]]:
    """(api_key, min, max) for every registered API, sorted by key."""
    load_handlers()
    return sorted((r.api_key, r.versions.start, r.versions.stop - 1) for r in ROUTES.values())


_loaded = False


def load_handlers() -> None:
    """Import every handler module so that their decorators register them."""
    global _loaded
    if _loaded:
        return
    import importlib
    import pkgutil

    from kafkito.broker import handlers

    for module in pkgutil.iter_modules(handlers.__path__):
        importlib.import_module(f"{handlers.__name__}.{module.name}")
    _loaded = True
