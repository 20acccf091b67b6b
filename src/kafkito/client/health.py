"""Health checks (the seed's Checker: name, check, build) and an HTTP probe serving them.

`HealthChecker.check()` asks the brokers for metadata (are they reachable, do they accept our
credentials) and, given a Reader, also checks that its loop is alive: the last consume call
was less than `max_poll_age_s` ago, and reports its lag per partition. Reachability alone
(what the seed checked) misses the common failure: a consumer stuck in a handler while the
broker is fine.

On a replicated cluster the same metadata shows a lost broker: a node that holds replicas of
the topics in view but that the cluster no longer lists is down (`brokers_down`; the topics
are the Reader's, the Writer's, `topics`, or every topic). One broker of three down with
replication factor 3 is *degraded*, not down: reads and writes go on, so the check stays UP
and says why in `degraded`. A partition of those topics without a leader cannot be read or
written at all: that is DOWN. `replica_health` is the one computation, shared with the flow.

`serve_health(checkers)` runs a small HTTP server on a daemon thread: GET /health (or /)
answers the seed's JSON (`{"status": "UP"|"DOWN", "details": {name: {...}}}`), HTTP 200 when
every checker is up and 500 otherwise, as the seed's server did. It binds 127.0.0.1 unless told
otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import confluent_kafka
from confluent_kafka.admin import AdminClient

from kafkito.client.config import ClientConfig, WriterConfig
from kafkito.client.connect import RDKAFKA_LOG
from kafkito.client.embedded import resolve_bootstrap
from kafkito.client.errors import BrokerUnreachableError, ClientError
from kafkito.client.reader import Reader
from kafkito.client.writer import ProducerCore

log = logging.getLogger(__name__)


class Checker(Protocol):
    """The seed's health checker shape: a name, a check, and the document of one result.
    Kafka's HealthChecker and kafkito.pubsub's both are, so one probe serves both kinds."""

    name: str

    def check(self) -> dict[str, Any]: ...
    def build(self, data: dict[str, Any], error: BaseException | None) -> dict[str, Any]: ...


class _Writing(Protocol):
    """What HealthChecker reads of a writer: sync or asyncio, Writer or TopicWriter."""

    @property
    def bootstrap(self) -> str: ...
    @property
    def config(self) -> WriterConfig: ...
    @property
    def core(self) -> ProducerCore: ...


__all__ = [
    "Checker",
    "HealthChecker",
    "HealthServer",
    "health_of",
    "replica_health",
    "serve_health",
]


def replica_health(metadata: Any, topics: Sequence[str] | None = None) -> dict[str, Any]:
    """What cluster metadata says about the replicas of `topics` (None: every topic).

    Returns `brokers_down` (node ids holding replicas that the cluster does not list),
    `offline_partitions` ("topic[p]" without a leader), `under_replicated_partitions` (how
    many have fewer in-sync replicas than replicas) and `degraded` (the reasons, in words;
    empty when all is well). `metadata` is confluent-kafka's ClusterMetadata.
    """
    listed = set(metadata.brokers)
    names = list(metadata.topics) if topics is None else list(topics)
    down: set[int] = set()
    offline: list[str] = []
    under = 0
    for name in names:
        info = metadata.topics.get(name)
        if info is None or info.error is not None:
            continue
        for partition in info.partitions.values():
            down.update(node for node in partition.replicas if node not in listed)
            if partition.leader < 0:
                offline.append(f"{name}[{partition.id}]")
            if len(partition.isrs) < len(partition.replicas):
                under += 1
    degraded = [f"broker {node} is down" for node in sorted(down)]
    if offline:
        degraded.append(f"{len(offline)} partition(s) without a leader")
    if under:
        degraded.append(f"{under} partition(s) under-replicated")
    return {
        "brokers_down": sorted(down),
        "offline_partitions": sorted(offline),
        "under_replicated_partitions": under,
        "degraded": degraded,
    }


class HealthChecker:
    """Checks broker reachability and replicas, and, given a Reader, that its loop makes
    progress; given a Writer or TopicWriter (sync or kafkito.aio), its records still waiting
    for the brokers' confirmation.

    `topics` limits the replica check to those topics (default: the Reader's or the Writer's
    topics, else every topic).
    """

    def __init__(
        self,
        name: str = "kafka",
        *,
        brokers: Sequence[str] | str | None = None,
        client: ClientConfig | Mapping[str, Any] | None = None,
        reader: Reader | None = None,
        writer: _Writing | None = None,
        topics: Sequence[str] | None = None,
        timeout_s: float = 5.0,
        max_poll_age_s: float = 30.0,
    ) -> None:
        self.name = name
        self.reader = reader
        self.writer = writer
        self.timeout_s = timeout_s
        self.max_poll_age_s = max_poll_age_s
        self.topics: list[str] | None = list(topics) if topics is not None else None
        if reader is not None:
            self.bootstrap = reader.bootstrap
            client_config = reader.config.client
            if self.topics is None:
                self.topics = list(reader.core.topics)
        elif writer is not None:
            self.bootstrap = writer.bootstrap
            client_config = writer.config.client
            topic = getattr(writer, "topic", None)  # a Writer's; a TopicWriter has none
            if self.topics is None and isinstance(topic, str):
                self.topics = [topic]
        else:
            config = WriterConfig.from_dict({"brokers": brokers, "client": client or {}})
            self.bootstrap = resolve_bootstrap(config.brokers)
            client_config = config.client
        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        settings.update(client_config.security_settings())
        if client_config.client_id:
            settings["client.id"] = client_config.client_id
        settings["logger"] = RDKAFKA_LOG
        self._admin = AdminClient(settings)

    def check(self) -> dict[str, Any]:
        """Details when healthy; raises ClientError (with the reason) when not."""
        try:
            meta = self._admin.list_topics(timeout=self.timeout_s)
        except confluent_kafka.KafkaException as exc:
            raise BrokerUnreachableError(
                f"brokers at {self.bootstrap} did not answer within {self.timeout_s:g}s "
                f"({exc.args[0].str()})",
                brokers=self.bootstrap,
                attempts=1,
            ) from None
        data: dict[str, Any] = {"brokers": len(meta.brokers), "bootstrap": self.bootstrap}
        data.update(replica_health(meta, self.topics))
        if data["offline_partitions"]:
            raise ClientError(
                f"partitions without a leader (brokers down: {data['brokers_down']}): "
                f"{', '.join(data['offline_partitions'])}; they can be neither read nor written"
            )
        if self.writer is not None:
            data["unconfirmed"] = len(self.writer.core.producer)
        if self.reader is not None:
            data.update(self._reader_progress())
        return data

    def _reader_progress(self) -> dict[str, Any]:
        assert self.reader is not None
        core = self.reader.core
        data: dict[str, Any] = {"handled": core.handled}
        if core.last_poll_monotonic is not None:
            age_s = time.monotonic() - core.last_poll_monotonic
            data["last_poll_age_s"] = round(age_s, 3)
            if age_s > self.max_poll_age_s:
                raise ClientError(
                    f"the reader has not polled for {age_s:.1f}s (limit {self.max_poll_age_s:g}s):"
                    " a handler is stuck or the loop stopped"
                )
        lag: dict[str, int] = {}
        unhandled: dict[tuple[str, int], int] = {}
        for msg in list(core.pending):  # fetched but not handled: still lag
            where = (msg.topic(), msg.partition())
            unhandled[where] = unhandled.get(where, 0) + 1
        for topic, partition in sorted(core.assigned):
            tp = confluent_kafka.TopicPartition(topic, partition)
            try:
                # the high watermark of the last fetch response; ask only if none yet
                low, high = core.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    low, high = core.consumer.get_watermark_offsets(tp, timeout=self.timeout_s)
                (position,) = core.consumer.position([tp])
            except (confluent_kafka.KafkaException, RuntimeError):
                continue
            fetched = position.offset if position.offset >= 0 else low
            lag[f"{topic}[{partition}]"] = max(0, high - fetched) + unhandled.get(
                (topic, partition), 0
            )
        data["lag"] = lag
        return data

    def build(self, data: dict[str, Any], error: BaseException | None) -> dict[str, Any]:
        """The seed's Build: the details, plus the error text when the check failed."""
        out = dict(data)
        if error is not None:
            out["error"] = str(error)
        return out

    def health(self) -> dict[str, Any]:
        """{"status": "UP"|"DOWN", "details": {...}} for this checker alone."""
        return health_of([self])


def health_of(checkers: Sequence[Checker]) -> dict[str, Any]:
    """The seed's Health document over several checkers (Kafka's, Pub/Sub's, or both)."""
    status = "UP"
    details: dict[str, Any] = {}
    for checker in checkers:
        try:
            data, error = checker.check(), None
        except ClientError as exc:
            data, error = {}, exc
            status = "DOWN"
        details[checker.name] = {
            "status": "DOWN" if error else "UP",
            "data": checker.build(data, error),
        }
    return {"status": status, "details": details}


class HealthServer:
    """The HTTP probe: a ThreadingHTTPServer on a daemon thread; `url` is where it listens."""

    def __init__(self, checkers: Sequence[Checker], host: str, port: int) -> None:
        owner = self

        class Handle(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/", "/health"):
                    self.send_error(404)
                    return
                document = health_of(owner.checkers)
                body = json.dumps(document).encode()
                self.send_response(200 if document["status"] == "UP" else 500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health probe: " + format, *args)

        self.checkers = list(checkers)
        self._server = ThreadingHTTPServer((host, port), Handle)
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}/health"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kafkito-health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_health(
    checkers: Sequence[Checker] | Checker, *, host: str = "127.0.0.1", port: int = 0
) -> HealthServer:
    """Serve GET /health for `checkers` on host:port (port 0 picks a free one); Kafka and
    Pub/Sub checkers may be mixed."""
    if isinstance(checkers, Sequence):
        return HealthServer(list(checkers), host, port)
    return HealthServer([checkers], host, port)
