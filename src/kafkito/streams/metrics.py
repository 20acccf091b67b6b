"""Prometheus metrics of streams apps (prometheus-client), like the consume flow's.

One set of metric objects per registry, shared by every app in the process and told apart by
the `app` label (Prometheus refuses two metrics of one name in a registry):

    kafkito_streams_records_processed_total{app,topic}    records taken from sources
    kafkito_streams_records_dead_lettered_total{app}      records that did not decode
    kafkito_streams_commits_total{app}                    commits (transactions) made
    kafkito_streams_aborts_total{app}                     transactions aborted and redone
    kafkito_streams_commit_seconds{app}                   the last commit's duration
    kafkito_streams_lag{app,topic,partition}              end offset - position (cached
                                                          watermarks, refreshed each commit)
    kafkito_streams_restore_records{app,store,partition}  records restored so far
    kafkito_streams_restore_total{app,store,partition}    records to restore (about)
    kafkito_streams_restore_done{app,store,partition}     1 once restored

`prometheus_client.start_http_server(port)` serves them, as does the web console.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["StreamsMetrics"]


@dataclass(frozen=True)
class StreamsMetrics:
    """The streams metric families in one registry."""

    processed: Counter
    dead_lettered: Counter
    commits: Counter
    aborts: Counter
    commit_seconds: Gauge
    lag: Gauge
    restore_records: Gauge
    restore_total: Gauge
    restore_done: Gauge

    _by_registry: ClassVar[dict[int, StreamsMetrics]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def default(cls) -> StreamsMetrics:
        return cls.for_registry(REGISTRY)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> StreamsMetrics:
        with cls._lock:
            found = cls._by_registry.get(id(registry))
            if found is None:
                found = cls._by_registry[id(registry)] = cls._create(registry)
            return found

    @classmethod
    def _create(cls, registry: CollectorRegistry) -> StreamsMetrics:
        p = "kafkito_streams_"
        store = ["app", "store", "partition"]
        return cls(
            processed=Counter(
                p + "records_processed",
                "records taken from sources",
                ["app", "topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                p + "records_dead_lettered",
                "records that did not decode",
                ["app"],
                registry=registry,
            ),
            commits=Counter(p + "commits", "commits made", ["app"], registry=registry),
            aborts=Counter(p + "aborts", "transactions aborted", ["app"], registry=registry),
            commit_seconds=Gauge(
                p + "commit_seconds", "the last commit's duration", ["app"], registry=registry
            ),
            lag=Gauge(
                p + "lag",
                "end offset minus position",
                ["app", "topic", "partition"],
                registry=registry,
            ),
            restore_records=Gauge(
                p + "restore_records", "changelog records restored", store, registry=registry
            ),
            restore_total=Gauge(
                p + "restore_total", "changelog records to restore", store, registry=registry
            ),
            restore_done=Gauge(
                p + "restore_done",
                "1 once the store partition is restored",
                store,
                registry=registry,
            ),
        )
