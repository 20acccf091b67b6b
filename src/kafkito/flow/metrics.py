"""Prometheus metrics of the consume flow (prometheus-client).

One set of metric objects per registry, shared by every flow in the process and told apart by
labels (topic, group): Prometheus refuses two metrics of one name in a registry.

    kafkito_flow_records_received_total{topic,group}
    kafkito_flow_records_processed_total{topic,group}
    kafkito_flow_records_failed_total{topic,group,kind}      kind = transient | permanent
    kafkito_flow_records_retried_total{topic,group}
    kafkito_flow_records_dead_lettered_total{topic,group}
    kafkito_flow_in_flight{flow}
    kafkito_flow_handler_seconds{topic,group}                 a histogram
    kafkito_flow_committed_offset{topic,partition,group}      with the end offset: commit lag

`start_http_server(port)` from prometheus_client serves them; so does the web console.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Shard:
    """One thread's bucket counts and sum (only that thread writes them)."""

    __slots__ = ("counts", "owner", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.owner = weakref.ref(threading.current_thread())

    def add_to(self, other: _Shard) -> None:
        for i, n in enumerate(self.counts):
            other.counts[i] += n
        other.sum += self.sum


class Timings:
    """Handler durations of one (topic, group): bucket counts and a sum, updated in bulk.

    prometheus_client's Histogram takes a lock per observation, and one lock shared by the
    flow's handler threads becomes a convoy (a thread that loses the GIL while holding it stalls
    the others). Each thread counts in its own shard instead, without a lock; a scrape adds the
    shards up. The shards of threads that ended are folded into one (nothing counted is lost,
    and flows that come and go do not pile shards up).
    """

    __slots__ = ("_local", "_lock", "_retired", "_shards")

    def __init__(self) -> None:
        self._local = threading.local()
        self._shards: list[_Shard] = []
        self._retired = _Shard()
        """The counts of threads that ended."""
        self._lock = threading.Lock()  # guards the list of shards and the retired counts

    def _shard(self) -> _Shard:
        shard: _Shard | None = getattr(self._local, "shard", None)
        if shard is None:
            shard = self._local.shard = _Shard()
            with self._lock:
                self._fold_ended()
                self._shards.append(shard)
        return shard

    def _fold_ended(self) -> None:
        """Under the lock: fold the shards of threads that ended into the retired counts."""
        live = []
        for shard in self._shards:
            thread = shard.owner()
            if thread is None or not thread.is_alive():
                shard.add_to(self._retired)  # it will not be written again
            else:
                live.append(shard)
        self._shards = live

    def observe(self, seconds: float) -> None:
        self.observe_many((seconds,))

    def observe_many(self, durations: Sequence[float]) -> None:
        """Count a batch of durations: a few one by one, many sorted once and then bisected
        once per bucket bound (the per-record work stays in C)."""
        shard = self._shard()
        counts = shard.counts
        if len(durations) <= 8:
            for seconds in durations:
                counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
            shard.sum += sum(durations)
            return
        ordered = sorted(durations)
        previous = 0
        for i, bound in enumerate(BUCKETS_S):
            cumulative = bisect.bisect_right(ordered, bound)  # le = "<="
            counts[i] += cumulative - previous
            previous = cumulative
        counts[-1] += len(ordered) - previous
        shard.sum += sum(ordered)

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative buckets as Prometheus wants them, and the sum."""
        total = _Shard()
        with self._lock:
            self._fold_ended()
            live = list(self._shards)
            self._retired.add_to(total)
        for shard in live:
            shard.add_to(total)
        buckets, running = [], 0
        for bound, n in zip([*map(str, BUCKETS_S), "+Inf"], total.counts, strict=True):
            running += n
            buckets.append((bound, float(running)))
        return buckets, total.sum


class TimingsFamily(Collector):
    """`kafkito_flow_handler_seconds{topic,group}`: the Timings of every (topic, group)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], Timings] = {}
        self._lock = threading.Lock()

    def labels(self, topic: str, group: str) -> Timings:
        with self._lock:
            found = self._children.get((topic, group))
            if found is None:
                found = self._children[(topic, group)] = Timings()
            return found

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "kafkito_flow_handler_seconds",
            "time from decode to resolution",
            labels=["topic", "group"],
        )
        with self._lock:
            children = list(self._children.items())
        for (topic, group), timings in children:
            buckets, total = timings.snapshot()
            family.add_metric([topic, group], buckets, total)
        yield family


@dataclass(frozen=True)
class FlowMetrics:
    """The flow's metric families in one registry."""

    received: Counter
    processed: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    in_flight: Gauge
    handler_seconds: TimingsFamily
    committed_offset: Gauge

    _children: dict[tuple[str, str], TopicMetrics] = field(default_factory=dict, compare=False)
    _by_registry: ClassVar[dict[int, FlowMetrics]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def for_topic(self, topic: str, group: str) -> TopicMetrics:
        """The labelled children for one (topic, group), looked up once (hot path)."""
        found = self._children.get((topic, group))
        if found is None:
            found = self._children[(topic, group)] = TopicMetrics(
                received=self.received.labels(topic, group),
                processed=self.processed.labels(topic, group),
                failed_transient=self.failed.labels(topic, group, "transient"),
                failed_permanent=self.failed.labels(topic, group, "permanent"),
                retried=self.retried.labels(topic, group),
                dead_lettered=self.dead_lettered.labels(topic, group),
                handler_seconds=self.handler_seconds.labels(topic, group),
            )
        return found

    @classmethod
    def default(cls) -> FlowMetrics:
        return cls.for_registry(REGISTRY)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> FlowMetrics:
        with cls._lock:
            found = cls._by_registry.get(id(registry))
            if found is None:
                found = cls._by_registry[id(registry)] = cls._create(registry)
            return found

    @classmethod
    def _create(cls, registry: CollectorRegistry) -> FlowMetrics:
        labels = ["topic", "group"]
        prefix = "kafkito_flow_"
        return cls(
            received=Counter(
                prefix + "records_received", "records polled", labels, registry=registry
            ),
            processed=Counter(
                prefix + "records_processed",
                "records the handler accepted",
                labels,
                registry=registry,
            ),
            failed=Counter(
                prefix + "records_failed",
                "handler, decode or validation failures",
                [*labels, "kind"],
                registry=registry,
            ),
            retried=Counter(
                prefix + "records_retried", "retries scheduled", labels, registry=registry
            ),
            dead_lettered=Counter(
                prefix + "records_dead_lettered",
                "records written to a dead-letter topic",
                labels,
                registry=registry,
            ),
            in_flight=Gauge(
                prefix + "in_flight",
                "records polled and not yet resolved",
                ["flow"],
                registry=registry,
            ),
            handler_seconds=_registered(registry, TimingsFamily()),
            committed_offset=Gauge(
                prefix + "committed_offset",
                "last committed offset",
                ["topic", "partition", "group"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class TopicMetrics:
    """Children of the flow's metric families for one topic and group."""

    received: Any
    processed: Any
    failed_transient: Any
    failed_permanent: Any
    retried: Any
    dead_lettered: Any
    handler_seconds: Timings


def _registered(registry: CollectorRegistry, collector: TimingsFamily) -> TimingsFamily:
    registry.register(collector)
    return collector
