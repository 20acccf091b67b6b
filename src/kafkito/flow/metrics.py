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

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class FlowMetrics:
    """The flow's metric families in one registry."""

    received: Counter
    processed: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    in_flight: Gauge
    handler_seconds: Histogram
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
            handler_seconds=Histogram(
                prefix + "handler_seconds",
                "time from decode to resolution",
                labels,
                registry=registry,
            ),
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
    handler_seconds: Any
