"""OpenTelemetry for the flow: a consumer span per record, parented by its headers.

OpenTelemetry is imported lazily; without an SDK and without a `traceparent` header the hot
path skips all of it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkito.flow.records import Work

TRACEPARENT = "traceparent"


@functools.cache
def recording_tracer() -> bool:
    """Whether an OpenTelemetry SDK records spans in this process (asked once)."""
    from opentelemetry import trace

    with trace.get_tracer("kafkito.flow").start_as_current_span("kafkito.probe") as span:
        return bool(span.is_recording())


def has_traceparent(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    return any(k == TRACEPARENT for k, _ in headers)


@contextlib.contextmanager
def trace_span(name: str, work: Work) -> Iterator[None]:
    """An OpenTelemetry consumer span whose parent comes from the record's headers.

    Without an SDK and without a `traceparent` header there is nothing to propagate or record,
    and the hot path skips the work.
    """
    if not recording_tracer() and not has_traceparent(work.headers):
        yield
        return
    from opentelemetry import propagate, trace

    carrier = {k: v.decode(errors="replace") for k, v in work.headers if v is not None}
    parent = propagate.extract(carrier)
    tracer = trace.get_tracer("kafkito.flow")
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": work.tp[0],
        "messaging.kafka.partition": work.tp[1],
        "messaging.kafka.offset": work.offset,
        "kafkito.flow": name,
    }
    with tracer.start_as_current_span(
        f"{work.source_topic} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ):
        yield


def inject_trace(carrier: dict[str, str]) -> None:
    try:
        from opentelemetry import propagate
    except ImportError:  # pragma: no cover
        return
    propagate.inject(carrier)
