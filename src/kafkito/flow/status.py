"""The flow's health report, answered from state (no network call on the caller's path).

Liveness and readiness come from the poll loop; the last commit and retry/dead-letter write
failures (cleared by the next success), librdkafka's last client error, and a view of the
cluster that a watcher task refreshes every `Flow.CLUSTER_CHECK_S` from metadata
(`kafkito.client.health.replica_health`): a broker that holds replicas of the flow's topics but
is no longer listed is down. On a replicated cluster that is degradation, not failure: the flow
goes on and says why in `degraded`, which empties again when the broker is back.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kafkito.flow.records import (
    log,
)

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def health(self: Flow) -> dict[str, Any]:
    """Liveness (the poll loop makes progress) and readiness (partitions assigned)."""
    age = self._clock.monotonic() - self._last_poll if self._last_poll else None
    live = self._fatal is None and age is not None and age < self.liveness_timeout_s
    assigned = len(self._partitions)
    return {
        "name": self.name,
        "live": live,
        "ready": live and assigned > 0 and not self._dead_letter_failing,
        "assigned_partitions": assigned,
        "in_flight": self._in_flight(),
        "dead_letter_failing": sorted(f"{t}-{p}" for t, p in self._dead_letter_failing),
        "last_poll_age_s": None if age is None else round(age, 3),
        **self._degradation(),
    }


def degradation(self: Flow) -> dict[str, Any]:
    """The health report's cluster and error part; `degraded` lists the reasons."""
    cluster = self._cluster
    degraded = list(cluster.get("degraded", ()))
    if "error" in cluster:
        degraded.append(f"cluster metadata unavailable: {cluster['error']}")
    if self._commit_error is not None:
        degraded.append(f"commits failing: {self._commit_error}")
    write_error = next(iter(self._writes_failing.values()), None)
    if write_error is not None:
        degraded.append(f"retry/dead-letter writes failing: {write_error}")
    last = self._client_error
    return {
        "brokers_down": cluster.get("brokers_down", []),
        "offline_partitions": cluster.get("offline_partitions", []),
        "commit_error": self._commit_error,
        "write_error": write_error,
        "last_client_error": None
        if last is None
        else {"error": last[0], "age_s": round(self._clock.monotonic() - last[1], 3)},
        "degraded": degraded,
    }


def on_client_error(self: Flow, error: Any) -> None:
    """librdkafka's error_cb (its threads): remember the last client-level error for
    health, and log it (once per kind at WARNING: a lost broker repeats it many times)."""
    name = str(error.name())
    self._client_error = (f"{name}: {error.str()}", self._clock.monotonic())
    level = logging.DEBUG if name in self._client_errors_seen else logging.WARNING
    self._client_errors_seen.add(name)
    log.log(level, "flow %s: kafka client error %s: %s", self.name, name, error.str())


async def watch_cluster(self: Flow) -> None:
    """Refresh the cluster view every CLUSTER_CHECK_S from the producer's metadata."""
    from kafkito.client.health import replica_health

    while True:
        producer = self._producer
        if producer is None:
            return
        try:
            # Every topic, not ours by name: asking a producer about a missing topic by
            # name makes a broker with auto.create.topics.enable create it.
            meta = await asyncio.to_thread(producer.list_topics, None, self.CLUSTER_CHECK_S)
            self._cluster = replica_health(meta, self.topics)
        except Exception as exc:  # KafkaException: no broker answered in time
            self._cluster = {"error": str(exc)}
        await self._clock.sleep(self.CLUSTER_CHECK_S)
