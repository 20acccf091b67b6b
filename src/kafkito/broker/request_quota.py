"""The request-rate quota (`request_percentage`): a client's share of the broker's time.

Kafka's ClientRequestQuotaManager measures, per user/client-id, the time request-handler
threads spend on its requests, as a percentage of one thread (`request_percentage=50`: half of
one thread's time per second), in the same windowed Rate sensors as the byte quotas
(quota.window.num x quota.window.size.seconds). Over the bound, the answer carries
throttle_time_ms and the channel is muted for it; the throttle is at most one window (1 s),
not the whole window as for bytes (ClientRequestQuotaManager.maxThrottleTimeMs).

An asyncio broker has no request-handler threads, so the honest equivalent is the CPU time of
the event-loop thread spent *in this request's own steps*: `Meter.run` awaits the handler
coroutine as a trampoline, reading `time.thread_time()` around each `send()`/`throw()`, so a
request waiting on an fsync, a long poll or a lock costs nothing while it waits (Kafka's
request time would count blocking on a lock in the handler thread; ours does not, as nothing
blocks the loop). The decode is counted before the throttle is decided; the encode after (as
Kafka records network-thread time without throttling: `recordNoThrottle`).

Cost: nothing is metered while no `request_percentage` is configured (`BrokerCore.request_meter`
is None, one attribute read per request). While one is, every request is metered (a raw
Produce's client id is known only inside its handler), and only those whose client resolves
to a request quota are recorded.

Produce and Fetch decide their throttle inside their handler (broker/quotas.py's
throttle_produce / throttle_fetch call `charge`), as Kafka takes the larger of the byte and the
request throttle there; a throttled Fetch is answered without data either way. An acks=0
Produce is not recorded (Kafka: requestThrottleTimeMs = 0 for acks=0).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import time
import types
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, cast

from kafkito.broker.dispatch import NO_RESPONSE, RawBody
from kafkito.protocol import codec

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore
    from kafkito.broker.dispatch import RequestContext, Route
    from kafkito.broker.quotas import QuotaManager, Rate
    from kafkito.protocol.framing import RequestHead

REQUEST = "request_percentage"
THROTTLE_FIELD = "throttle_time"
"""kio's name of a response's throttle_time_ms."""
PERCENT_PER_CPU_SECOND = 100.0
"""A second of one thread's time is 100 percent (Kafka's nanosToPercentage)."""
EXEMPT_API_KEYS = frozenset({4, 5, 6, 7, 17, 27, 36, 52, 53, 54, 55, 56, 58, 62, 63, 64, 67})
"""Never throttled (Kafka's cluster actions, inter-broker, and the SASL exchange, which Kafka
handles before a request reaches its quota manager). Their time is not recorded either."""

_CURRENT: contextvars.ContextVar[Meter | None] = contextvars.ContextVar(
    "kafkito_request_meter", default=None
)
"""The meter of the request being handled: each request runs in its own task (server.py)."""


class Meter:
    """The event-loop CPU time one request has cost so far, in seconds."""

    __slots__ = ("charged_s", "cpu_s", "manager", "resolved", "sensor")

    def __init__(self, manager: QuotaManager | None = None) -> None:
        self.manager = manager
        self.resolved = False
        self.sensor: tuple[float, Rate] | None = None
        """The client's bound and sensor, looked up once (`client_sensor`)."""
        self.cpu_s = 0.0
        self.charged_s: float | None = None
        """The cpu_s already recorded by `charge` (Produce/Fetch); None: not charged yet."""

    @types.coroutine
    def run(self, awaitable: Awaitable[Any]) -> Generator[Any, Any, Any]:
        """Await `awaitable`, adding the thread CPU time of each of its steps to `cpu_s`; the time
        it spends suspended (awaiting I/O, a timer, another task) is not counted."""
        coro = awaitable.__await__()
        clock = time.thread_time
        send_value: Any = None
        error: BaseException | None = None
        while True:
            start = clock()
            try:
                yielded = coro.send(send_value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self.cpu_s += clock() - start
                return stop.value
            except BaseException:
                self.cpu_s += clock() - start
                raise
            self.cpu_s += clock() - start
            try:
                send_value = yield yielded
                error = None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancel or an exception thrown into the await
                send_value, error = None, exc


def client_sensor(meter: Meter, ctx: RequestContext) -> tuple[float, Rate] | None:
    """The request's client's bound and sensor (None: no request quota), looked up once."""
    if not meter.resolved and meter.manager is not None:
        meter.sensor = meter.manager.request_sensor(ctx)
        meter.resolved = True
    return meter.sensor


def measured(coro: Awaitable[Any]) -> tuple[Meter, Any]:
    """A Meter and the awaitable that runs `coro` under it (for tests and callers)."""
    meter = Meter()
    return meter, meter.run(coro)


def charge(ctx: RequestContext) -> int:
    """The request throttle a Produce/Fetch has earned so far (0 when not metered or within
    its quota); its time is recorded now, the rest of it (the encode) later, unthrottled."""
    meter = _CURRENT.get()
    if meter is None or meter.charged_s is not None or meter.manager is None:
        return 0
    meter.charged_s = meter.cpu_s
    sensor = client_sensor(meter, ctx)
    if sensor is None:
        return 0
    return meter.manager.record_request(sensor, meter.cpu_s * PERCENT_PER_CPU_SECOND)


async def throttle_encoded(ctx: RequestContext, *, can_tell: bool) -> int:
    """For a handler that encodes its own answer (a RawBody) with a throttle_time field: the
    request throttle earned so far (`charge`), the connection muted for it, and, when this
    version has no field to tell the client (`can_tell` false), the answer delayed instead,
    as `metered_handle` does for the others. Returns the throttle_time to encode."""
    delay = charge(ctx)
    if delay <= 0:
        return 0
    mute(ctx, delay)
    if not can_tell:
        await asyncio.sleep(delay / 1000)
        return 0
    return delay


class MeteredHandle:
    """BrokerCore.request_meter while a request quota is configured (set by QuotaManager)."""

    __slots__ = ("manager",)

    def __init__(self, manager: QuotaManager) -> None:
        self.manager = manager

    async def __call__(
        self, core: BrokerCore, route: Route, head: RequestHead, frame: bytes, connection: Any
    ) -> list[bytes | memoryview] | None:
        return await metered_handle(self.manager, core, route, head, frame, connection)


async def metered_handle(
    manager: QuotaManager,
    core: BrokerCore,
    route: Route,
    head: RequestHead,
    frame: bytes,
    connection: Any,
) -> list[bytes | memoryview] | None:
    """BrokerCore.handle while a request quota is configured: the same answer, with the
    request's time recorded and, over the quota, throttle_time_ms set and the channel muted."""
    clock = time.thread_time
    meter = Meter(manager)
    start = clock()
    ctx, call = core.prepare(route, head, frame, connection)
    meter.cpu_s = clock() - start
    if head.api_key in EXEMPT_API_KEYS:
        return core.answer(head, await call)
    token = _CURRENT.set(meter)
    try:
        result = await meter.run(call)
    finally:
        _CURRENT.reset(token)
    if result is NO_RESPONSE:  # an acks=0 Produce: not charged, as Kafka
        return None
    sensor = client_sensor(meter, ctx)
    if sensor is None:  # this client has no request quota
        return core.answer(head, result)
    if meter.charged_s is None:
        delay = manager.record_request(sensor, meter.cpu_s * PERCENT_PER_CPU_SECOND)
        meter.charged_s = meter.cpu_s
        if delay > 0:
            mute(ctx, delay)
            result, told = with_throttle(result, head, delay)
            if not told and not isinstance(result, RawBody):
                # the client cannot be told: answer late, as Kafka does (KIP-219)
                await asyncio.sleep(delay / 1000)
    start = clock()
    answer = core.answer(head, result)
    rest = meter.cpu_s - meter.charged_s + clock() - start
    manager.record_request(sensor, rest * PERCENT_PER_CPU_SECOND, throttle=False)
    return answer


def mute(ctx: RequestContext, delay_ms: int) -> None:
    """Read nothing more from this connection for `delay_ms` (Kafka mutes the channel)."""
    connection = ctx.connection
    if connection is None or delay_ms <= 0:
        return
    until = asyncio.get_running_loop().time() + delay_ms / 1000
    connection.muted_until = max(getattr(connection, "muted_until", 0.0), until)


def with_throttle(result: Any, head: RequestHead, delay_ms: int) -> tuple[Any, bool]:
    """`result` with its throttle time (kio's `throttle_time` field, throttle_time_ms on the
    wire) raised to `delay_ms` if its version has the field; and whether it has it. A RawBody
    (Produce, Fetch, Metadata) set its own through `charge` (`throttle_encoded`)."""
    if isinstance(result, type | RawBody) or not (
        isinstance(result, dict) or dataclasses.is_dataclass(result)
    ):
        return result, False  # a RawBody is encoded: its handler charged it itself
    schema: type = codec.response_schema(head.api_key, head.api_version)
    if THROTTLE_FIELD not in {f.name for f in dataclasses.fields(schema)}:
        return result, False
    if isinstance(result, dict):
        before = codec.ms(result.get(THROTTLE_FIELD))
        return {**result, THROTTLE_FIELD: max(before, delay_ms)}, True
    before = codec.ms(getattr(result, THROTTLE_FIELD, 0))
    value = datetime.timedelta(milliseconds=max(before, delay_ms))
    replaced: Any = dataclasses.replace(cast(Any, result), **{THROTTLE_FIELD: value})
    return replaced, True
