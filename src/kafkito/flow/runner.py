"""The consume flow: receive, decode, validate, handle, retry, dead-letter, commit.

Theory of operation
-------------------
One asyncio event loop owns all the flow's state. The confluent-kafka consumer is only ever
called from one worker thread (`_kafka`, a single-thread executor), so its calls are serialized;
the loop awaits them. The loop:

1. polls the records librdkafka has ready, up to `poll_batch` and the room under
   `max_in_flight` (`consume_ready`: no waiting for a full batch; the poll thread returns every
   ~100 ms even when idle, so the group never sees a missed poll, whatever the handlers do: no
   `max.poll.interval.ms` rebalances);
2. cuts them into chunks (the records of one partition with the same ordering key, in offset
   order; `tracker.Chunk`), notes each chunk in its partition's `PartitionTracker` and submits
   it under its ordering key (same key in order, different keys in parallel, `concurrency` at
   once): sync handlers to the `ThreadedKeyedScheduler`'s handler threads, async ones to the
   `KeyedScheduler`'s tasks, batch handlers to per-partition buffers. With ordering="key" and a
   fast sync handler a partition's records of a poll are one *coarse* chunk (offset order keeps
   every key's order, and a fast handler gains nothing from parallel keys); a failing record,
   or a coarse chunk that runs long and slow, has `_split` regroup the partition's unresolved
   records by key on the loop, and the partition runs by key until nothing of it is in flight;
3. a handler thread decodes and handles a chunk's records in order; what went well is reported
   to the loop in bulk (`_apply_results`); a record that fails holds its key, and the loop
   (`_recover`) retries it in place with backoff (`blocking`) or republishes it to
   `<topic>.retry.<n>` with a due time (`topics`); when attempts run out, or on `Reject` or a
   decoding failure, it writes the record to `<topic>.dlq` and waits for the ack; then the key
   goes back to the threads. Async handlers do the same record by record in their task;
4. only then is the offset resolved (records of a chunk are resolved in order); every
   `commit_interval_s` the lowest unresolved offset of each partition is committed, so the
   committed offset never passes an unresolved record.

Backpressure: with `max_in_flight` records polled and unresolved, the loop stops polling and
waits (up to `backpressure_wait_s`) for the handlers to bring it below half; if they do not, every
partition is paused (polling goes on, so the group never waits on us) and they resume below half
of it. Pausing comes second because it is costly: librdkafka drops what it prefetched for a
paused partition and fetches it again on resume. A record from a retry topic that is not due yet
pauses its partition and seeks back to it; a timer resumes the partition when it is due.
A failing dead-letter write keeps the record unresolved (no loss), pauses its partition, turns
health red and retries with capped backoff (no hot loop).

Health (`health()`) is answered from state, without a network call: liveness and readiness
from the poll loop, the last commit and retry/dead-letter write failures (cleared by the next
success), librdkafka's last client error, and a view of the cluster that a watcher task
refreshes every `CLUSTER_CHECK_S` from metadata (`kafkito.client.health.replica_health`): a
broker that holds replicas of the flow's topics but is no longer listed is down. On a
replicated cluster that is degradation, not failure: the flow goes on and says why in
`degraded`, which empties again when the broker is back.

Rebalances: on revoke (called inside the poll thread) the loop drops queued work of the revoked
partitions, cancels their back-offs, waits up to `revoke_grace_s` for handlers already running,
and the poll thread commits what is resolved before the revoke completes. Results that arrive
later for a partition no longer owned are dropped (a generation number per assignment); a
record that fails while its partition is being revoked is not retried or split (what that
starts could outlive the revoke and run under the next owner). A record left unresolved
(revoked, or stopping) takes the queued records of its key in its partition with it
(`_abandon`): nothing overtakes it; they are all read again.

Shutdown (SIGTERM/SIGINT or `stop()`): stop fetching, let in-flight records finish within
`shutdown_grace_s`, commit, close the consumer (which leaves the group at once).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from kafkito.client.reader import POLL_TIMEOUT_S, consume_ready
from kafkito.errors import KafkitoError
from kafkito.flow import letters
from kafkito.flow.annotations import AnnotationError, FirstDecodes, handler_decoding
from kafkito.flow.codecs import DecodeError, Decoder, ValidationFailed, decoder_for, decoder_of
from kafkito.flow.exactly_once import (
    HeldOutputs,
    OutRecord,
    outputs_of,
    run_transaction,
    transactional_id_for,
)
from kafkito.flow.metrics import FlowMetrics, TopicMetrics
from kafkito.flow.outcomes import BatchFailed, Reject, RetryLater
from kafkito.flow.policy import RetryPolicy
from kafkito.flow.scheduler import KeyedScheduler, ThreadedKeyedScheduler
from kafkito.flow.tracker import TP, Chunk, PartitionTracker

log = logging.getLogger(__name__)

T = TypeVar("T")
Ordering = Literal["key", "partition", "none"]

COARSE_BELOW_S = 100e-6
"""Under ordering="key", a sync handler faster than this per record (measured) gets coarse
chunks: a fast handler holds the GIL, so running keys in parallel gains nothing and costs a
chunk, a tracker entry and a scheduler turn per key."""
SPLIT_AFTER_S = 0.05
"""A coarse chunk that has run this long, slower than COARSE_BELOW_S per record, is split by key
(its keys go on in parallel)."""


class FlowError(KafkitoError):
    """The flow cannot run as configured, or its consumer failed for good."""


@dataclass(slots=True)
class Record(Generic[T]):
    """One record as a handler sees it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: T
    headers: dict[str, bytes | None]
    raw_value: bytes | None
    attempt: int
    """1 for the first try; counts tries across retry topics too."""


@dataclass(slots=True)
class _Work:
    """One record off the fast path: a failure being retried or dead-lettered, a record of an
    async or batch handler. Built from its chunk when needed."""

    tp: TP
    generation: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw_value: bytes | None
    headers: list[tuple[str, bytes | None]]
    attempt: int
    source_topic: str
    """The flow's own topic this record belongs to (for retry records: the original topic)."""
    chunk: Chunk
    message: Any
    """The confluent_kafka.Message it came from."""
    resolved: bool = False

    @classmethod
    def of(cls, chunk: Chunk, index: int) -> _Work:
        msg = chunk.messages[index]
        return cls(
            chunk.tp,
            chunk.generation,
            msg.offset(),
            msg.timestamp()[1],
            msg.key(),
            msg.value(),
            msg.headers() or [],
            chunk.attempt,
            chunk.source,
            chunk,
            msg,
        )

    def origin(self) -> letters.Origin:
        """Where the record was first read (worked out only when it must move on)."""
        return letters.Origin.of(
            self.tp[0], self.tp[1], self.offset, self.timestamp_ms, self.headers
        )


@dataclass(slots=True)
class _PartitionState:
    generation: int
    tracker: PartitionTracker = field(default_factory=PartitionTracker)
    pause_reasons: set[str] = field(default_factory=set)
    waiting_until_ms: int | None = None
    revoking: bool = False
    """Being revoked: a failed record is left for the next owner, not retried or split (what
    that would start could outlive the revoke)."""
    held: HeldOutputs = field(default_factory=HeldOutputs)
    """Outputs of handled records, written when their offsets are committed
    (flow/exactly_once.py)."""
    origin: int | None = None
    """Where this assignment started reading (its first record, or the offset a rewind went
    back to): what a rewind seeks to while nothing is committed yet."""
    split: object | None = None
    """Sync handler, ordering="key": None while the partition's records run in coarse chunks
    (the partition's records of a poll, in offset order); else a token new at each split, and
    its records run by key under (token, key) until the partition has nothing in flight."""


class Flow:
    """Consume topics through a handler, with retries, a dead-letter topic and safe commits.

        flow = Flow("orders", handle_order, group_id="billing", model=Order,
                    retry=RetryPolicy.delays([1, 5, 30]))
        flow.run()          # until SIGTERM / Ctrl-C / flow.stop()

    The handler takes the decoded value, or a `Record` when its first parameter is annotated
    `Record[...]` (or named `record` without a type). Its annotation picks the decoder
    (flow/annotations.py, docs/flow.md): `bytes` raw, `str` UTF-8 text, `dict`/`list`/none
    JSON, a pydantic model or msgspec Struct that model; `decoder=` or `model=` overrides it.
    An annotation the flow cannot decode to is a FlowError here, not a dead letter per record.
    It may be sync or async.
    """

    def __init__(
        self,
        topics: str | Sequence[str],
        handler: Callable[..., Any],
        *,
        group_id: str,
        brokers: str | None = None,
        settings: dict[str, Any] | None = None,
        model: Any = None,
        decoder: Any = None,
        validate: Callable[[Any], Any] | None = None,
        retry: RetryPolicy | None = None,
        dead_letter: bool = True,
        dead_letter_topic: Callable[[str], str] = letters.dead_letter_topic,
        concurrency: int = 16,
        max_in_flight: int = 1000,
        backpressure_wait_s: float = 1.0,
        batch_size: int | None = None,
        batch_timeout_s: float = 0.5,
        ordering: Ordering = "key",
        commit_interval_s: float = 1.0,
        shutdown_grace_s: float = 30.0,
        revoke_grace_s: float = 10.0,
        poll_batch: int = 2000,
        liveness_timeout_s: float = 30.0,
        max_dead_letter_bytes: int = 1_000_000,
        create_topics: bool = True,
        metrics: FlowMetrics | None = None,
        name: str | None = None,
        on_rebalance: Callable[[str, list[TP]], None] | None = None,
        exactly_once: bool = False,
        transactional_id: str | None = None,
    ) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise FlowError("give at least one topic")
        if ordering not in ("key", "partition", "none"):
            raise FlowError(f"ordering must be 'key', 'partition' or 'none', got {ordering!r}")
        if concurrency < 1 or max_in_flight < 1:
            raise FlowError("concurrency and max_in_flight must be at least 1")
        self.handler = handler
        self.group_id = group_id
        self.brokers = brokers
        self.settings = dict(settings or {})
        for forbidden in ("enable.auto.commit", "enable.auto.offset.store"):
            if forbidden in self.settings:
                raise FlowError(
                    f"{forbidden} is managed by the flow (it commits after success); "
                    "remove it from settings"
                )
        if batch_size is not None and batch_size < 1:
            raise FlowError("batch_size must be at least 1")
        if exactly_once and batch_size is not None:
            raise FlowError("exactly_once does not support batch handlers (batch_size) yet")
        if exactly_once and self.settings.get("isolation.level", "read_committed") != (
            "read_committed"
        ):
            raise FlowError("exactly_once reads its inputs read_committed: drop isolation.level")
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.batch_handler = handler if batch_size else None
        try:
            decoding = handler_decoding(handler, batch=bool(batch_size))
        except AnnotationError as exc:
            raise FlowError(str(exc)) from exc
        explicit = decoder if decoder is not None else model
        if explicit is None and decoding.problem is not None:
            raise FlowError(decoding.problem)
        self.pass_record = decoding.pass_record
        # The decoder is chosen once, here; the first records go through a watch that says
        # once, loudly, if they all fail to decode (a wrong annotation), then steps aside.
        bare: Decoder = (
            decoder_for(explicit)
            if explicit is not None
            else decoder_of(decoding.target, nullable=decoding.nullable)
        )
        self.decode: Decoder = FirstDecodes(
            bare,
            how=decoding.how() if explicit is None else f"{explicit!r} (given as decoder/model)",
            fix=decoding.fix_hint() if explicit is None else "check the decoder/model given",
            done=functools.partial(self._first_decodes_done, bare),
        ).decode
        self.validate = validate
        self.retry = retry or RetryPolicy.exponential()
        self.dead_letter = dead_letter
        self.dead_letter_topic = dead_letter_topic
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.backpressure_wait_s = backpressure_wait_s
        self.ordering: Ordering = ordering
        self.commit_interval_s = commit_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self.revoke_grace_s = revoke_grace_s
        self.poll_batch = poll_batch
        self.liveness_timeout_s = liveness_timeout_s
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self.create_topics = create_topics
        self.name = name or f"flow-{'-'.join(self.topics)}"
        self.metrics = metrics or FlowMetrics.default()
        self.is_async = inspect.iscoroutinefunction(handler)
        self.on_rebalance = on_rebalance
        """Called (in the poll thread) with "assigned", "revoked" or "lost" and the partitions,
        after the flow has done its part (for logs, or to reset per-partition state)."""
        self._own_topics = frozenset(self.topics)
        self._reads_retry_topics = self.retry.mode == "topics"

        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._seek_to: dict[TP, int] = {}
        self._partitions: dict[TP, _PartitionState] = {}
        self._generation = 0
        self._scheduler: KeyedScheduler[Chunk] | None = None
        """Async handlers: one asyncio task per running key."""
        self._threads: ThreadedKeyedScheduler[Chunk, _Stop] | None = None
        """Sync handlers: `concurrency` handler threads that take keys' chunks themselves."""
        self._batch_scheduler: KeyedScheduler[list[Chunk]] | None = None
        self._buffers: dict[TP, list[Chunk]] = {}
        self._buffered: dict[TP, int] = {}
        self._buffer_started: dict[TP, float] = {}
        self._results: collections.deque[tuple[Chunk, int, _Failure | None]] = collections.deque()
        self._results_wake = False
        self._thread_local = threading.local()
        self._recovering: set[asyncio.Task[None]] = set()
        self._progressed = asyncio.Event()
        """Set when records are resolved (the poll loop waits on it under backpressure)."""
        self._kafka = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafkito-poll")
        self._handlers = concurrent.futures.ThreadPoolExecutor(
            concurrency, thread_name_prefix="kafkito-retry"
        )
        """Sync handler calls outside the handler threads: retries and batch handlers."""
        self._consumer: Any = None
        self._producer: Any = None
        self._producer_thread: threading.Thread | None = None
        self._backoffs: dict[TP, set[asyncio.Task[Any]]] = {}
        self._last_poll = 0.0
        self._dead_letter_failing: set[TP] = set()
        self._backpressured = False
        self._pause_changes: set[TP] = set()
        self._fatal: BaseException | None = None
        self._cluster: dict[str, Any] = {}
        """The last view of the cluster's replicas (`replica_health`), or {"error": ...}."""
        self._commit_error: str | None = None
        self._writes_failing: dict[int, str] = {}
        """Retry/dead-letter writes failing now (by id of their record): the last error."""
        self._client_error: tuple[str, float] | None = None
        self._client_errors_seen: set[str] = set()
        self.exactly_once = exactly_once
        """Outputs, retry/dead-letter writes and offsets in one transaction per commit."""
        self.transactional_id = (
            transactional_id or transactional_id_for(group_id, self.name, self.settings)
            if exactly_once
            else None
        )
        self._outputs: collections.deque[tuple[TP, int, int, list[OutRecord]]] = collections.deque()
        """(partition, generation, offset, records) a handler produced; the loop moves them to
        their partition's `held` (handler threads append here)."""
        self._txn_lock: asyncio.Lock | None = None
        self._txn_task: asyncio.Task[None] | None = None
        """Exactly-once: the transaction committing in the background while the loop polls."""
        self._seek_lock = threading.Lock()
        self._rewind_seeks: dict[TP, int] = {}
        """Exactly-once: where an aborted transaction's partitions go back to, not sought yet."""
        self._seek_epoch = 0
        """Bumped (on the consumer's thread) by each batch of rewind seeks."""
        self._sought_at: dict[TP, int] = {}
        """The epoch of each partition's last rewind seek: a poll that began before it holds
        records from before the seek, which are dropped (they come again)."""

    # -- public surface ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, handler: Callable[..., Any], config: str | Path | Mapping[str, Any], **overrides: Any
    ) -> Flow:
        """A flow from the client library's config (YAML path or text, or a dict).

        The Reader's keys (brokers, topic, group_id, commit_interval, client: security...) say
        where and how to connect; a `flow:` section holds the flow's own options:

            brokers: [127.0.0.1:9092]
            topic: orders
            group_id: billing
            flow:
              retry: {1: 5, 2: 10, 3: 30}      # or {initial: 1s, max: 1m, max_attempts: 5}
              concurrency: 32
              ordering: key                     # key | partition | none
              dead_letter: true
        Keywords override both. Unknown keys are errors that name them.
        """
        import yaml

        from kafkito.client.config import ReaderConfig
        from kafkito.client.embedded import resolve_bootstrap

        if isinstance(config, Mapping):
            data = dict(config)
        else:
            text = (
                config if isinstance(config, str) and "\n" in config else Path(config).read_text()
            )
            data = yaml.safe_load(text) or {}
            if not isinstance(data, dict):
                raise FlowError("a flow config must be a mapping of keys to values")
        options = dict(data.pop("flow", None) or {})
        reader = ReaderConfig.from_dict(data)
        known = {
            "retry",
            "concurrency",
            "max_in_flight",
            "ordering",
            "batch_size",
            "batch_timeout",
            "dead_letter",
            "shutdown_grace",
            "revoke_grace",
            "backpressure_wait",
            "name",
            "exactly_once",
            "transactional_id",
        }
        for key in options:
            if key not in known:
                raise FlowError(f"flow.{key}: unknown key (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        if "retry" in options:
            kw["retry"] = RetryPolicy.from_config(options["retry"])
        for key in ("concurrency", "max_in_flight", "batch_size"):
            if key in options:
                kw[key] = int(options[key])
        for key in ("ordering", "name", "transactional_id"):
            if key in options:
                kw[key] = options[key]
        if "exactly_once" in options:
            kw["exactly_once"] = bool(options["exactly_once"])
        if "dead_letter" in options:
            kw["dead_letter"] = bool(options["dead_letter"])
        for key, target in (
            ("batch_timeout", "batch_timeout_s"),
            ("shutdown_grace", "shutdown_grace_s"),
            ("revoke_grace", "revoke_grace_s"),
            ("backpressure_wait", "backpressure_wait_s"),
        ):
            if key in options:
                from kafkito.client.config import parse_duration_s

                kw[target] = parse_duration_s(options[key])
        if reader.topic is None or reader.group_id is None:
            raise FlowError("a flow config needs `topic` and `group_id`")
        bootstrap = resolve_bootstrap(reader.brokers)
        settings = {k: v for k, v in reader.base_settings(bootstrap).items()}
        settings.update(reader.settings)
        settings.setdefault("auto.offset.reset", reader.initial_offsets)
        kw.update(settings=settings, commit_interval_s=reader.commit_interval)
        kw.update(overrides)
        return cls(reader.topic, handler, group_id=reader.group_id, **kw)

    def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT in the main thread, or `stop()`)."""
        asyncio.run(self.run_async())

    def stop(self) -> None:
        """Ask the flow to finish in-flight work, commit and leave the group (thread-safe)."""
        self._stopping.set()

    def health(self) -> dict[str, Any]:
        """Liveness (the poll loop makes progress) and readiness (partitions assigned)."""
        age = time.monotonic() - self._last_poll if self._last_poll else None
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

    CLUSTER_CHECK_S = 2.0
    """How often the watcher asks the cluster's metadata for the health report."""

    def _degradation(self) -> dict[str, Any]:
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
            else {"error": last[0], "age_s": round(time.monotonic() - last[1], 3)},
            "degraded": degraded,
        }

    def _on_client_error(self, error: Any) -> None:
        """librdkafka's error_cb (its threads): remember the last client-level error for
        health, and log it (once per kind at WARNING: a lost broker repeats it many times)."""
        name = str(error.name())
        self._client_error = (f"{name}: {error.str()}", time.monotonic())
        level = logging.DEBUG if name in self._client_errors_seen else logging.WARNING
        self._client_errors_seen.add(name)
        log.log(level, "flow %s: kafka client error %s: %s", self.name, name, error.str())

    async def _watch_cluster(self) -> None:
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
            await asyncio.sleep(self.CLUSTER_CHECK_S)

    # -- lifecycle ---------------------------------------------------------------------------

    def _librdkafka(self) -> dict[str, Any]:
        """Connection settings: `brokers`, else the library's rule (env, local broker)."""
        bootstrap = self.brokers
        if bootstrap is None and "bootstrap.servers" not in self.settings:
            from kafkito.client.embedded import resolve_bootstrap

            bootstrap = resolve_bootstrap(None)
        base: dict[str, Any] = {"bootstrap.servers": bootstrap} if bootstrap else {}
        return {**base, **self.settings}

    async def run_async(self) -> None:
        """Run inside a running event loop until stopped."""
        from kafkito.client.raw_consumer import RawConsumer
        from kafkito.client.raw_producer import RawProducer

        self._loop = asyncio.get_running_loop()
        self._scheduler = KeyedScheduler(self.concurrency, self._process)
        self._batch_scheduler = KeyedScheduler(self.concurrency, self._process_batches)
        if not self.is_async and self.batch_size is None:
            self._threads = ThreadedKeyedScheduler(
                self.concurrency,
                self._run_in_thread,
                self._held,
                size_of=_unhandled,
                after_batch=self._end_thread_batch,
                name=f"{self.name}-handler",
            )
        conf = self._librdkafka()
        if self.create_topics:
            await asyncio.to_thread(self._ensure_topics, conf)
        consumer_conf = {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "client.id": self.name,
            "error_cb": self._on_client_error,
            **conf,
        }
        producer_conf = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "client.id": f"{self.name}-producer",
            "error_cb": self._on_client_error,
            **conf,
        }
        if self.exactly_once:
            consumer_conf["isolation.level"] = "read_committed"
            producer_conf["transactional.id"] = self.transactional_id
            self._txn_lock = asyncio.Lock()
        self._consumer = RawConsumer(settings=consumer_conf)
        self._producer = RawProducer(settings=producer_conf)
        if self.exactly_once:
            # Before joining the group: fences a crashed predecessor with our transactional.id
            # and aborts what it left open, so its outputs never show up.
            try:
                await asyncio.to_thread(self._producer.init_transactions)
            except Exception as exc:
                raise FlowError(f"flow {self.name}: cannot start transactions: {exc}") from exc
        self._producer_thread = threading.Thread(
            target=self._poll_producer, name="kafkito-flow-producer", daemon=True
        )
        self._producer_thread.start()
        await self._call(
            self._consumer.subscribe,
            self._subscriptions(),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        restore = self._install_signal_handlers()
        log.info(
            "flow %s consuming %s as group %s", self.name, self._subscriptions(), self.group_id
        )
        watcher = asyncio.create_task(self._watch_cluster())
        try:
            await self._poll_loop()
        finally:
            watcher.cancel()
            restore()
            await self._shutdown()
        if self._fatal is not None:
            raise FlowError(f"flow {self.name} stopped: {self._fatal}") from self._fatal

    def _subscriptions(self) -> list[str]:
        subs = list(self.topics)
        if self.retry.mode == "topics":
            for topic in self.topics:
                subs += [letters.retry_topic(topic, n) for n in range(2, self.retry.attempts + 1)]
        return subs

    def _ensure_topics(self, conf: dict[str, Any]) -> None:
        """Create missing dead-letter and retry topics (real clusters may not auto-create)."""
        from kafkito.client.admin import Admin

        wanted = []
        for topic in self.topics:
            if self.dead_letter:
                wanted.append(self.dead_letter_topic(topic))
            if self.retry.mode == "topics":
                wanted += [letters.retry_topic(topic, n) for n in range(2, self.retry.attempts + 1)]
        settings = {k: v for k, v in conf.items() if not k.startswith("group.")}
        try:
            admin = Admin(settings=settings, timeout_s=15)
            existing = {t.name: t for t in admin.list_topics(internal=True)}
        except Exception as exc:
            log.warning("flow %s: cannot list topics to create %s: %s", self.name, wanted, exc)
            return
        with admin:
            source_partitions = max(
                (len(existing[t].partitions) for t in self.topics if t in existing), default=1
            )
            missing = [t for t in wanted if t not in existing]
            try:
                admin.create_topics(missing, source_partitions, if_not_exists=True)
            except Exception as exc:
                log.warning("flow %s: could not create %s: %s", self.name, missing, exc)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        assert self._loop is not None
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass

        def restore() -> None:
            assert self._loop is not None
            for sig in installed:
                self._loop.remove_signal_handler(sig)

        return restore

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a consumer call on the one thread that owns the consumer."""
        assert self._loop is not None
        return await self._loop.run_in_executor(self._kafka, lambda: fn(*args, **kwargs))

    def _poll_producer(self) -> None:
        """Serve delivery reports until the flow stops and nothing is left to deliver."""
        producer = self._producer
        while not self._stopping.is_set() or len(producer) > 0:
            try:
                producer.poll(0.05)
            except Exception as exc:  # KafkaException: fatal (a fenced transactional producer)
                log.error("flow %s: producer failed for good: %s", self.name, exc)
                return

    # -- the poll loop -----------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._scheduler is not None
        next_commit = time.monotonic() + self.commit_interval_s

        def poll(room: int) -> asyncio.Future[tuple[int, list[Any]]]:
            """The next poll, for at most `room` records (at least one: polls never stop)."""
            limit = max(1, min(self.poll_batch, room))
            return asyncio.ensure_future(self._call(self._consume, limit))

        polling: asyncio.Future[tuple[int, list[Any]]] | None = poll(self.max_in_flight)
        while not self._stopping.is_set():
            assert polling is not None
            began, messages = await polling
            if self._rewind_seeks or (self._sought_at and began != self._seek_epoch):
                messages = self._drop_rewound(began, messages)
            self._last_poll = time.monotonic()
            # With room left, the next poll runs on the consumer's thread while this batch is
            # accepted; without, it waits for the handlers to catch up first.
            room = self.max_in_flight - self._in_flight() - len(messages)
            polling = poll(room) if room > 0 else None
            self._submit(self._accept(messages))
            if self.batch_size is not None:
                self._flush_due_buffers()
            if polling is None:
                await self._catch_up()
            self._update_backpressure()
            await self._apply_pauses()
            if polling is None:  # still at the limit: the pause is applied before polling again
                polling = poll(self.max_in_flight - self._in_flight())
            if time.monotonic() >= next_commit:
                next_commit = time.monotonic() + self.commit_interval_s
                if self.exactly_once:
                    self._start_transaction()
                else:
                    await self._commit()
            if self._rewind_seeks:
                await self._call(self._apply_seeks)
        # Records of the last poll are left untracked: never committed, read again next time.
        if polling is not None:
            with contextlib.suppress(Exception):
                await polling

    def _consume(self, limit: int) -> tuple[int, list[Any]]:
        """Consumer thread: the records librdkafka has ready, with the rewind epoch at the
        start (records of a partition sought back after it are stale: `_drop_rewound`)."""
        epoch = self._seek_epoch
        return epoch, consume_ready(self._consumer, limit, POLL_TIMEOUT_S)

    def _drop_rewound(self, began: int, messages: list[Any]) -> list[Any]:
        """Exactly-once, after an abort: drop the records of partitions that are going back
        (seek pending) or went back after this poll began; the seek delivers them again."""
        with self._seek_lock:
            stale = set(self._rewind_seeks)
        stale.update(tp for tp, epoch in list(self._sought_at.items()) if epoch > began)
        if not stale:
            return messages
        return [m for m in messages if (m.topic(), m.partition()) not in stale]

    def _apply_seeks(self) -> None:
        """Consumer thread: seek the rewound partitions back to their last committed offsets."""
        from kafkito.client.raw_consumer import TopicPartition

        with self._seek_lock:
            seeks, self._rewind_seeks = self._rewind_seeks, {}
        if not seeks:
            return
        self._seek_epoch += 1
        for tp, offset in seeks.items():
            self._sought_at[tp] = self._seek_epoch
            try:
                self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
            except Exception as exc:  # revoked meanwhile: its next owner reads from the commit
                log.info("flow %s: no rewind of %s-%d: %s", self.name, tp[0], tp[1], exc)
        log.info("flow %s rewound %s", self.name, sorted(seeks.items()))

    def _accept(self, messages: list[Any]) -> list[Chunk]:
        """Group a poll's records into chunks (per partition and ordering key, in offset order)
        and track them. The hot path: a few C calls and a dict lookup per record."""
        from kafkito.client.raw_consumer import PARTITION_EOF

        partitions, ordering = self._partitions, self.ordering
        # Batch handlers take a partition's records in offset order, one batch at a time.
        by_partition = ordering == "partition" or self.batch_size is not None
        by_key: dict[Hashable, Chunk] = {}
        chunks: list[Chunk] = []
        floors: dict[TP, int] = {}
        last_topic, last_partition = "", -1
        tp: TP = ("", -1)
        state: _PartitionState | None = None
        current: Chunk | None = None  # ordering="partition": the chunk of the partition
        skip = retrying = False
        threads = self._threads
        split_by_key = ordering == "key" and threads is not None and self.batch_size is None
        speed = threads.seconds_per_unit if threads is not None else None
        fast = speed is None or speed < COARSE_BELOW_S  # unmeasured: coarse, split if slow
        coarse = False
        token: object | None = None
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    self._fatal = FlowError(f"consumer failed: {err.str()}")
                    self._stopping.set()
                    break
                if err.code() != PARTITION_EOF:
                    log.warning("flow %s: consumer error: %s", self.name, err.str())
                continue
            topic, partition = msg.topic(), msg.partition()
            if partition != last_partition or topic != last_topic:
                last_topic, last_partition, tp = topic, partition, (topic, partition)
                state = partitions.get(tp)
                # Not ours (revoked meanwhile), or a retry partition seeking back to a record
                # that is not due yet.
                skip = state is None or state.waiting_until_ms is not None
                if state is not None and tp not in floors:
                    floors[tp] = state.tracker.next
                    if state.origin is None:
                        state.origin = msg.offset()
                    if split_by_key and state.tracker.pending == 0:
                        # Nothing of the partition in flight: it may change modes safely.
                        state.split = None if fast else object()
                retrying = self._reads_retry_topics and topic not in self._own_topics
                coarse = split_by_key and state is not None and state.split is None
                token = state.split if state is not None else None
                current = by_key.get(tp) if by_partition or coarse else None
            if skip:
                continue
            assert state is not None
            if retrying:
                chunk = self._retry_chunk(msg, tp, state)
                if chunk is None:
                    skip = True  # waiting until it is due: the rest comes again after it
                else:
                    chunks.append(chunk)
            elif by_partition or coarse:
                if current is None:
                    current = by_key[tp] = Chunk(tp, state.generation, tp, topic, [msg])
                    current.coarse = coarse
                    chunks.append(current)
                else:
                    current.messages.append(msg)
            elif ordering == "key" and (key := msg.key()) is not None:
                group = (tp, key)
                chunk = by_key.get(group)
                if chunk is None:
                    order = (topic, key) if token is None else (token, key)
                    chunk = by_key[group] = Chunk(tp, state.generation, order, topic, [msg])
                    chunks.append(chunk)
                else:
                    chunk.messages.append(msg)
            else:  # no order to keep: a key of its own
                chunks.append(Chunk(tp, state.generation, object(), topic, [msg]))
        received: dict[str, int] = {}
        accepted: list[Chunk] = []
        for chunk in chunks:
            state = partitions.get(chunk.tp)
            if state is None:
                continue
            floor = floors.get(chunk.tp, -1)
            if chunk.messages[0].offset() < floor:  # delivered again after a seek back
                chunk.messages = [m for m in chunk.messages if m.offset() >= floor]
                if not chunk.messages:
                    continue
            state.tracker.received(chunk)
            received[chunk.source] = received.get(chunk.source, 0) + len(chunk.messages)
            accepted.append(chunk)
        for source, count in received.items():
            self._counters(source).received.inc(count)
        return accepted

    def _retry_chunk(self, msg: Any, tp: TP, state: _PartitionState) -> Chunk | None:
        """A record of a retry topic: its own chunk if due, else wait for it (None)."""
        headers = msg.headers() or []
        due = letters.header_int(headers, letters.DUE_MS)
        if due is not None and due > int(time.time() * 1000):
            self._wait_until_due(tp, msg.offset(), due)
            return None
        source = tp[0].rsplit(".retry.", 1)[0]
        key = msg.key()
        order: Hashable = object()  # no order to keep: a key of its own
        if self.ordering == "partition":
            order = tp
        elif self.ordering == "key" and key is not None:
            order = (source, key)
        attempt = letters.header_int(headers, letters.ATTEMPT) or 2
        return Chunk(tp, state.generation, order, source, [msg], attempt=attempt)

    def _submit(self, chunks: list[Chunk]) -> None:
        """Hand accepted chunks to the handler threads, the async scheduler or the batch
        buffers."""
        if not chunks:
            return
        if self.batch_size is not None:
            for chunk in chunks:
                tp = chunk.tp
                buffer = self._buffers.setdefault(tp, [])
                if not buffer:
                    self._buffer_started[tp] = time.monotonic()
                buffer.append(chunk)
                self._buffered[tp] = self._buffered.get(tp, 0) + len(chunk.messages)
                if self._buffered[tp] >= self.batch_size:
                    self._flush_buffer(tp)
        elif self._threads is not None:
            self._threads.submit_many([(chunk.key, chunk) for chunk in chunks])
        else:
            assert self._scheduler is not None
            self._scheduler.submit_many([(chunk.key, chunk) for chunk in chunks])

    def _flush_buffer(self, tp: TP) -> None:
        """Hand a partition's buffered records to the batch handler (one batch at a time)."""
        assert self._batch_scheduler is not None
        batch = self._buffers.pop(tp, [])
        self._buffer_started.pop(tp, None)
        self._buffered.pop(tp, None)
        if batch:
            self._batch_scheduler.submit(tp, batch)

    def _flush_due_buffers(self, *, all_now: bool = False) -> None:
        now = time.monotonic()
        for tp, began in list(self._buffer_started.items()):
            if all_now or now - began >= self.batch_timeout_s:
                self._flush_buffer(tp)

    def _wait_until_due(self, tp: TP, offset: int, due_ms: int) -> None:
        """A retry record not due yet: seek back to it, pause the partition until it is."""
        assert self._loop is not None
        state = self._partitions[tp]
        state.waiting_until_ms = due_ms
        state.pause_reasons.add("due")
        self._pause_changes.add(tp)
        self._seek_to[tp] = offset
        generation = state.generation
        delay_s = max(due_ms / 1000 - time.time(), 0.0)

        def resume() -> None:
            current = self._partitions.get(tp)
            if current is None or current.generation != generation:
                return
            current.waiting_until_ms = None
            current.pause_reasons.discard("due")
            self._pause_changes.add(tp)

        self._loop.call_later(delay_s, resume)

    async def _catch_up(self) -> None:
        """Wait (bounded) until the handlers bring the records in flight below half the limit."""
        deadline = time.monotonic() + self.backpressure_wait_s
        while self._in_flight() > self.max_in_flight // 2 and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # still too many: _update_backpressure pauses the partitions
            self._progressed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.1)):
                    await self._progressed.wait()

    def _in_flight(self) -> int:
        """Records polled and not resolved yet (queued, buffered, running or waiting)."""
        # list() copies in one step under the GIL: health() calls this from other threads.
        return sum(state.tracker.pending for state in list(self._partitions.values()))

    def _update_backpressure(self) -> None:
        size = self._in_flight()
        if not self._backpressured and size >= self.max_in_flight:
            self._backpressured = True
            for tp, state in self._partitions.items():
                state.pause_reasons.add("backpressure")
                self._pause_changes.add(tp)
        elif self._backpressured and size <= self.max_in_flight // 2:
            self._backpressured = False
            for tp, state in self._partitions.items():
                state.pause_reasons.discard("backpressure")
                self._pause_changes.add(tp)
        self.metrics.in_flight.labels(self.name).set(size)

    async def _apply_pauses(self) -> None:
        if not self._pause_changes:
            return
        from kafkito.client.raw_consumer import TopicPartition

        changes, self._pause_changes = self._pause_changes, set()
        pause: list[Any] = []
        resume: list[Any] = []
        seeks: list[Any] = []
        for tp in changes:
            state = self._partitions.get(tp)
            if state is None:
                continue
            target = TopicPartition(tp[0], tp[1])
            (pause if state.pause_reasons else resume).append(target)
            if tp in self._seek_to:
                seeks.append(TopicPartition(tp[0], tp[1], self._seek_to.pop(tp)))

        def apply() -> None:
            if pause:
                self._consumer.pause(pause)
            for target in seeks:
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    self._consumer.seek(target)
            if resume:
                self._consumer.resume(resume)

        await self._call(apply)

    # -- one record ---------------------------------------------------------------------------

    def _counters(self, topic: str) -> TopicMetrics:
        return self.metrics.for_topic(topic, self.group_id)

    def _owns(self, chunk: Chunk) -> bool:
        state = self._partitions.get(chunk.tp)
        return state is not None and state.generation == chunk.generation

    def _abandon(self, chunk: Chunk) -> None:
        """A record of `chunk` stays unresolved (revoked, or stopping): drop what is queued
        behind it with the same key in its partition, so nothing overtakes it, and free the
        key. The next owner (or the next run) reads them all again."""

        def keep(other: Chunk) -> bool:
            return other.tp != chunk.tp or other.key != chunk.key

        if self._threads is not None:
            self._threads.discard(keep)
            self._threads.release(chunk.key)
        elif self._scheduler is not None:
            self._scheduler.discard(keep)

    # -- sync handlers: handler threads ---------------------------------------------------

    def _thread_batch(self) -> _ThreadBatch:
        batch: _ThreadBatch | None = getattr(self._thread_local, "batch", None)
        if batch is None:
            batch = self._thread_local.batch = _ThreadBatch()
        return batch

    def _run_in_thread(self, chunk: Chunk) -> _Stop | None:
        """Handler thread: handle the chunk from its cursor. None when done; else how far it
        got and the failure, which `_held` hands to the loop once the key is held. What went
        well waits in the thread's batch until `_end_thread_batch`."""
        if not self._owns(chunk):  # a hint read from this thread; the loop checks again
            return None
        batch = self._thread_batch()
        durations = batch.durations.get(chunk.source)
        if durations is None:
            durations = batch.durations[chunk.source] = []
        start = chunk.cursor
        done, failure = self._run_sync_chunk(chunk, start, durations)
        chunk.cursor = start + done
        if failure is not None:
            return done, failure
        batch.results.append((chunk, done, None))
        return None

    def _end_thread_batch(self) -> None:
        """Handler thread, after a batch of keys: record the durations, report the results
        (before the failures of the batch, which `_held` reports next)."""
        batch = self._thread_batch()
        for source, durations in batch.durations.items():
            if durations:
                self._counters(source).handler_seconds.observe_many(durations)
                durations.clear()
        if batch.results:
            self._results.extend(batch.results)
            batch.results.clear()
            self._wake_loop()

    def _held(self, chunk: Chunk, stop: _Stop) -> None:
        """Handler thread, after the failed chunk's key is held: tell the loop."""
        self._results.append((chunk, *stop))
        self._wake_loop()

    def _wake_loop(self) -> None:
        """Handler thread: have the loop apply the results; one wake-up per burst of them."""
        if not self._results_wake:
            self._results_wake = True
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is closed: the flow is over
                self._loop.call_soon_threadsafe(self._apply_results)

    def _apply_results(self) -> None:
        """Loop: resolve what the handler threads finished; failures go to `_recover`."""
        self._results_wake = False
        results = self._results
        processed: dict[str, int] = {}
        while results:
            chunk, done, failure = results.popleft()
            owned = self._owns(chunk)
            if owned and done:
                self._partitions[chunk.tp].tracker.resolved(chunk, done)
                processed[chunk.source] = processed.get(chunk.source, 0) + done
            if failure is None:
                continue
            owned = owned and not self._partitions[chunk.tp].revoking
            if owned and chunk.coarse:
                chunk = self._split(chunk, hold=failure is not _RAN_LONG)
                if failure is _RAN_LONG:
                    continue
            if owned:
                task = asyncio.create_task(self._recover(chunk, failure))
                self._recovering.add(task)
                task.add_done_callback(self._recovering.discard)
            else:
                self._abandon(chunk)
        for source, count in processed.items():
            self._counters(source).processed.inc(count)
        self._progressed.set()

    def _split(self, chunk: Chunk, *, hold: bool) -> Chunk:
        """Loop: a coarse chunk stopped (a record failed, or it ran long) and holds its key, the
        partition. Regroup the unresolved records of the partition's coarse chunks by key
        (under a new token: `_PartitionState.split`) and hand them to the threads, the failed
        record's key held if `hold`. Returns the part that starts with the record where `chunk`
        stopped.

        Safe because nothing of the partition runs meanwhile (its one key is held), each key's
        records keep their offset order within one part, and the tracker swaps the chunks for
        the parts in one step on the loop (`PartitionTracker.split`)."""
        assert self._threads is not None
        assert chunk.done == chunk.cursor < len(chunk.messages)
        state = self._partitions[chunk.tp]
        queued = self._threads.discard(lambda other: other.key != chunk.key)
        self._threads.release(chunk.key)
        olds = [chunk] + [other for other in queued if other is not chunk]
        token = state.split = object()
        parts: dict[Hashable, Chunk] = {}
        ordered: list[Chunk] = []
        for old in olds:
            for index in range(old.cursor, len(old.messages)):
                msg = old.messages[index]
                key = msg.key()
                order: Hashable = (token, key) if key is not None else object()
                part = parts.get(order)
                if part is None:
                    part = parts[order] = Chunk(old.tp, old.generation, order, old.source, [msg])
                    ordered.append(part)
                else:
                    part.messages.append(msg)
        state.tracker.split(olds, ordered)
        first = ordered[0]
        if hold:
            self._threads.submit_held(first.key, first)
        self._threads.submit_many([(part.key, part) for part in ordered[1 if hold else 0 :]])
        return first

    async def _recover(self, chunk: Chunk, failure: _Failure) -> None:
        """Loop: the record at the chunk's cursor failed in a handler thread. Retry it or
        dead-letter it, then let the threads go on with the chunk (its key was held)."""
        assert self._threads is not None
        work = _Work.of(chunk, chunk.cursor)
        stage, exc, value = failure
        try:
            if stage == "decode":
                self._counters(work.source_topic).failed_permanent.inc()
                await self._dead_letter(work, exc, attempts=work.attempt)
            else:
                await self._attempts(work, value, exc)
        finally:
            if work.resolved:
                chunk.cursor += 1
                self._threads.release(chunk.key)
            else:
                self._abandon(chunk)

    def _run_sync_chunk(
        self, chunk: Chunk, start: int, durations: list[float]
    ) -> tuple[int, _Failure | None]:
        """Handler thread: decode and handle the chunk's records from `start`, in order, until
        one fails. Returns (records done, None) or (records done, (stage, exception, value));
        each record's duration is added to `durations`."""
        messages = chunk.messages
        handler, pass_record, attempt = self.handler, self.pass_record, chunk.attempt
        produced = self._outputs
        decode = self.decode if self.validate is None else self._decode_value
        recording = _recording_tracer()
        clock = time.perf_counter
        began = clock()
        # A coarse chunk that runs long and slow gives its keys back to be run in parallel.
        chunk_began = began
        long_after = began + SPLIT_AFTER_S if chunk.coarse else float("inf")
        for index in range(start, len(messages)):
            msg = messages[index]
            try:
                value = decode(msg.value())
            except (DecodeError, ValidationFailed) as exc:
                return index - start, ("decode", exc, None)
            try:
                arg = _record_of(msg, value, attempt) if pass_record else value
                headers = msg.headers()
                if recording or (headers and _has_traceparent(headers)):
                    with _trace_span(self.name, _Work.of(chunk, index)):
                        result = handler(arg)
                else:
                    result = handler(arg)
                # Out records (exactly_once.py): held until the record's offset is committed
                if result is not None and (outs := outputs_of(result)):
                    produced.append((chunk.tp, chunk.generation, msg.offset(), outs))
            except Exception as exc:
                return index - start, ("handle", exc, value)
            finally:
                now = clock()
                durations.append(now - began)
                began = now
            ran = index + 1 - start
            if (
                now > long_after
                and now - chunk_began > ran * COARSE_BELOW_S
                and ran < len(messages) - start
            ):
                return ran, _RAN_LONG
        return len(messages) - start, None

    # -- async handlers, and one record off the fast path -----------------------------------

    async def _process(self, chunks: list[Chunk]) -> None:
        """Async handlers: one ordering key's chunks, record by record, in order."""
        for chunk in chunks:
            while chunk.cursor < len(chunk.messages) and self._owns(chunk):
                work = _Work.of(chunk, chunk.cursor)
                await self._process_one(work)
                if not work.resolved:
                    self._abandon(chunk)
                    return
                chunk.cursor += 1

    def _argument(self, work: _Work, value: Any, attempt: int) -> Any:
        return _record_of(work.message, value, attempt) if self.pass_record else value

    def _first_decodes_done(self, bare: Decoder, loud: str | None) -> None:
        """A record decoded, or the first ones all failed: log that once; decode bare now."""
        self.decode = bare
        if loud is not None:
            where = (
                "they go to " + ", ".join(self.dead_letter_topic(t) for t in self.topics)
                if self.dead_letter
                else "they are dropped (no dead-letter topic)"
            )
            log.error("flow %s: %s; %s", self.name, loud, where)

    def _decode_value(self, raw: bytes | None) -> Any:
        """The record's value, decoded and validated; raises DecodeError or ValidationFailed."""
        value = self.decode(raw)
        if self.validate is not None:
            verdict = self.validate(value)
            if verdict not in (None, True, [], ()):
                raise ValidationFailed(f"validation failed: {verdict}")
        return value

    async def _process_one(self, work: _Work) -> None:
        """Decode, handle, retry, dead-letter; resolves the offset only when the record is safe."""
        started = time.perf_counter()
        try:
            try:
                value = self._decode_value(work.raw_value)
            except (DecodeError, ValidationFailed) as exc:
                self._counters(work.source_topic).failed_permanent.inc()
                await self._dead_letter(work, exc, attempts=work.attempt)
                return
            await self._attempts(work, value, None)
        finally:
            self._counters(work.source_topic).handler_seconds.observe(time.perf_counter() - started)

    async def _attempts(self, work: _Work, value: Any, failure: BaseException | None) -> None:
        """Call the handler until it succeeds, the attempts run out, or the record moves on.

        `failure` is the exception of an attempt already made (a batch call), if any.
        """
        attempt = work.attempt
        while True:
            if failure is None:
                if not self._owned(work):
                    return
                try:
                    await self._call_handler(work, value, attempt)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failure = error
                else:
                    self._counters(work.source_topic).processed.inc()
                    self._resolve(work)
                    return
            exc: BaseException = failure
            failure = None
            transient = self.retry.is_transient(exc)
            kind = "transient" if transient else "permanent"
            counters = self._counters(work.source_topic)
            (counters.failed_transient if transient else counters.failed_permanent).inc()
            log.info(
                "flow %s: %s-%d@%d attempt %d failed (%s): %s",
                self.name,
                work.tp[0],
                work.tp[1],
                work.offset,
                attempt,
                kind,
                exc,
            )
            if not transient or attempt >= self.retry.attempts:
                await self._dead_letter(work, exc, attempts=attempt)
                return
            delay_s = (
                exc.delay_s
                if isinstance(exc, RetryLater) and exc.delay_s is not None
                else self.retry.delay_s(attempt)
            )
            counters.retried.inc()
            if self.retry.mode == "topics":
                await self._send_to_retry_topic(work, attempt + 1, delay_s)
                return
            if not await self._backoff(work, delay_s):
                return  # revoked or stopping: left unresolved for the next owner
            attempt += 1

    async def _process_batches(self, batches: list[list[Chunk]]) -> None:
        """One partition's buffered chunks, `batch_size` records per handler call, in order."""
        assert self.batch_size is not None
        for chunks in batches:
            works = [
                _Work.of(chunk, index)
                for chunk in chunks
                if self._owns(chunk)
                for index in range(chunk.cursor, len(chunk.messages))
            ]
            for start in range(0, len(works), self.batch_size):
                if not await self._process_batch(works[start : start + self.batch_size]):
                    # Left unresolved (revoked, or stopping): nothing of the partition overtakes.
                    assert self._batch_scheduler is not None
                    self._batch_scheduler.discard(_other_partition(chunks[0].tp))
                    return

    async def _process_batch(self, batch: list[_Work]) -> bool:
        """One call of the batch handler; then, in order, undecodable records are dead-lettered
        and failed ones retried one by one. False if a record was left unresolved."""
        started = time.perf_counter()
        try:
            decoded: list[tuple[_Work, Any]] = []
            undecodable: dict[int, Exception] = {}
            for index, work in enumerate(batch):
                try:
                    decoded.append((work, self._decode_value(work.raw_value)))
                except (DecodeError, ValidationFailed) as exc:
                    undecodable[index] = exc
            failures: dict[int, BaseException] = {}
            if decoded:
                try:
                    await self._call_batch_handler(decoded)
                except asyncio.CancelledError:
                    raise
                except BatchFailed as exc:
                    failures = dict(exc.failures)
                except Exception as exc:
                    failures = dict.fromkeys(range(len(decoded)), exc)
            values = iter(enumerate(decoded))
            for index, work in enumerate(batch):
                if not self._owned(work):
                    return False
                if index in undecodable:
                    self._counters(work.source_topic).failed_permanent.inc()
                    await self._dead_letter(work, undecodable[index], attempts=work.attempt)
                else:
                    position, (_, value) = next(values)
                    if position in failures:
                        await self._attempts(work, value, failures[position])
                    else:
                        self._counters(work.source_topic).processed.inc()
                        self._resolve(work)
                if not work.resolved:
                    return False
            return True
        finally:
            self._counters(batch[0].source_topic).handler_seconds.observe(
                time.perf_counter() - started
            )

    def _owned(self, work: _Work) -> bool:
        state = self._partitions.get(work.tp)
        return state is not None and state.generation == work.generation

    def _resolve(self, work: _Work) -> None:
        """The record is safe (handled, moved on, or given up): its offset may be committed.
        Records of a chunk are resolved in order: `work` is the chunk's next one."""
        work.resolved = True
        state = self._partitions.get(work.tp)
        if state is not None and state.generation == work.generation:
            state.tracker.resolved(work.chunk)
            self._progressed.set()

    async def _call_handler(self, work: _Work, value: Any, attempt: int) -> None:
        if self.batch_handler is not None:  # a retry of one record of a batch
            await self._call_batch_handler([(work, value)], attempt=attempt)
            return
        arg = self._argument(work, value, attempt)
        with _trace_span(self.name, work):
            if self.is_async:
                result = await self.handler(arg)
            else:
                assert self._loop is not None
                # copy_context: the handler thread sees the trace span (and any contextvar) set here
                context = contextvars.copy_context()
                result = await self._loop.run_in_executor(
                    self._handlers, context.run, self.handler, arg
                )
        if result is not None and (outs := outputs_of(result)):
            self._outputs.append((work.tp, work.generation, work.offset, outs))

    async def _call_batch_handler(
        self, decoded: list[tuple[_Work, Any]], *, attempt: int | None = None
    ) -> None:
        args = [self._argument(work, value, attempt or work.attempt) for work, value in decoded]
        assert self.batch_handler is not None
        if inspect.iscoroutinefunction(self.batch_handler):
            await self.batch_handler(args)
        else:
            assert self._loop is not None
            context = contextvars.copy_context()
            await self._loop.run_in_executor(self._handlers, context.run, self.batch_handler, args)

    async def _backoff(self, work: _Work, delay_s: float) -> bool:
        """Sleep before the next attempt; False if the partition was revoked or we stop."""
        if self._stopping.is_set():
            return False
        task = asyncio.current_task()
        assert task is not None
        waiting = self._backoffs.setdefault(work.tp, set())
        waiting.add(task)
        try:
            await asyncio.sleep(delay_s)
        except asyncio.CancelledError:
            if self._owned(work) and not self._stopping.is_set():
                raise
            return False
        finally:
            waiting.discard(task)
        return self._owned(work) and not self._stopping.is_set()

    # -- writing to retry and dead-letter topics ----------------------------------------------

    async def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]],
    ) -> None:
        """Write one record and wait for the broker's ack; raises on failure."""
        assert self._loop is not None
        loop = self._loop
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: Any, _msg: Any) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is not None:
                    done.set_exception(FlowError(f"write to {topic} failed: {err.str()}"))
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(settle)

        carrier: dict[str, str] = {}
        _inject_trace(carrier)
        all_headers = [h for h in headers if h[0] not in carrier]
        all_headers += [(k, v.encode()) for k, v in carrier.items()]
        self._producer.produce(
            topic, value=value, key=key, headers=all_headers, on_delivery=on_delivery
        )
        await done

    async def _dead_letter(self, work: _Work, exc: BaseException, *, attempts: int) -> None:
        """Write the record to the dead-letter topic; resolve only after the ack.

        A failing write is retried with capped backoff while the partition stays paused and
        health is red; the record is never skipped.
        """
        if not self.dead_letter:
            log.error(
                "flow %s: dropping %s-%d@%d after %d attempts (no dead-letter topic): %s",
                self.name,
                work.tp[0],
                work.tp[1],
                work.offset,
                attempts,
                exc,
            )
            self._resolve(work)
            return
        topic = self.dead_letter_topic(work.source_topic)
        headers = letters.dead_letter_headers(
            work.headers,
            work.origin(),
            group=self.group_id,
            attempts=attempts,
            exc=exc,
            key=work.key,
            value=work.raw_value,
            max_record_bytes=self.max_dead_letter_bytes,
        )
        written = await self._write_until_acked(
            work, topic, headers, on_failure=lambda: self._mark_dead_letter_failing(work.tp, True)
        )
        if written:
            self._mark_dead_letter_failing(work.tp, False)
            self._counters(work.source_topic).dead_lettered.inc()
            log.warning(
                "flow %s: %s-%d@%d dead-lettered to %s after %d attempt(s): %s: %s",
                self.name,
                work.tp[0],
                work.tp[1],
                work.offset,
                topic,
                attempts,
                type(exc).__name__,
                exc,
            )
            self._resolve(work)

    def _mark_dead_letter_failing(self, tp: TP, failing: bool) -> None:
        state = self._partitions.get(tp)
        if failing:
            self._dead_letter_failing.add(tp)
            if state is not None and "dead-letter" not in state.pause_reasons:
                state.pause_reasons.add("dead-letter")
                self._pause_changes.add(tp)
        else:
            self._dead_letter_failing.discard(tp)
            if state is not None and "dead-letter" in state.pause_reasons:
                state.pause_reasons.discard("dead-letter")
                self._pause_changes.add(tp)

    async def _send_to_retry_topic(self, work: _Work, next_attempt: int, delay_s: float) -> None:
        topic = letters.retry_topic(work.source_topic, next_attempt)
        due_ms = int((time.time() + delay_s) * 1000)
        headers = letters.retry_headers(
            work.headers, work.origin(), attempt=next_attempt, due_ms=due_ms
        )
        if await self._write_until_acked(work, topic, headers):
            self._resolve(work)

    async def _write_until_acked(
        self,
        work: _Work,
        topic: str,
        headers: list[tuple[str, bytes | None]],
        *,
        on_failure: Callable[[], None] | None = None,
    ) -> bool:
        """Write `work`'s original key and value with `headers` to `topic` until the broker
        acknowledges it (True), retrying failures with capped backoff; False if the partition
        is revoked or the flow stops first (the record stays unresolved: nothing is lost)."""
        if self.exactly_once:  # written in the commit's transaction, with the offset
            if not self._owned(work):
                return False
            carrier: dict[str, str] = {}
            _inject_trace(carrier)
            held = [h for h in headers if h[0] not in carrier]
            held += [(k, v.encode()) for k, v in carrier.items()]
            record: OutRecord = (topic, work.key, work.raw_value, held)
            self._outputs.append((work.tp, work.generation, work.offset, [record]))
            return True
        delay_s = 0.5
        try:
            while self._owned(work):
                try:
                    await self._produce(topic, work.key, work.raw_value, headers)
                except FlowError as write_error:
                    self._writes_failing[id(work)] = str(write_error)
                    if on_failure is not None:
                        on_failure()
                    log.error(
                        "flow %s: write of %s-%d@%d to %s failed (%s); retrying in %.1fs",
                        self.name,
                        work.tp[0],
                        work.tp[1],
                        work.offset,
                        topic,
                        write_error,
                        delay_s,
                    )
                    if not await self._backoff(work, delay_s):
                        return False
                    delay_s = min(delay_s * 2, 30.0)
                    continue
                return True
            return False
        finally:
            self._writes_failing.pop(id(work), None)  # written, or no longer ours to write

    # -- commits and rebalances ---------------------------------------------------------------

    def _committable(self, tps: Iterable[TP] | None = None) -> list[Any]:
        from kafkito.client.raw_consumer import TopicPartition

        offsets = []
        for tp in list(tps if tps is not None else self._partitions):
            state = self._partitions.get(tp)
            if state is None:
                continue
            offset = state.tracker.needs_commit()
            if offset is not None:
                offsets.append(TopicPartition(tp[0], tp[1], offset))
        return offsets

    def _mark_committed(self, offsets: Iterable[Any]) -> None:
        for tp in offsets:
            state = self._partitions.get((tp.topic, tp.partition))
            if state is not None:
                state.tracker.committed = max(state.tracker.committed, tp.offset)
            self.metrics.committed_offset.labels(tp.topic, str(tp.partition), self.group_id).set(
                tp.offset
            )

    async def _commit(self) -> None:
        if self.exactly_once:
            await self._commit_transaction()
            return
        offsets = self._committable()
        if not offsets:
            self._commit_error = None  # nothing waits to be committed: nothing is failing
            return
        if (self._outputs or self._holding()) and not await self._write_outputs(offsets):
            return
        try:
            await self._call(self._consumer.commit, offsets=offsets, asynchronous=False)
        except Exception as exc:  # a rebalance in progress, the coordinator moving...
            log.warning("flow %s: commit failed, will retry: %s", self.name, exc)
            self._commit_error = str(exc)
            return
        self._commit_error = None
        self._mark_committed(offsets)

    # -- outputs and transactions (flow/exactly_once.py) -------------------------------------

    def _take_outputs(self) -> None:
        """Loop: move what the handlers produced to their partitions' held outputs."""
        produced = self._outputs
        while produced:
            tp, generation, offset, records = produced.popleft()
            state = self._partitions.get(tp)
            if state is not None and state.generation == generation:
                state.held.add(offset, records)

    def _holding(self) -> bool:
        return any(state.held.count for state in list(self._partitions.values()))

    def _ready_outputs(self, offsets: list[Any]) -> list[tuple[TP, int, list[OutRecord]]]:
        """Loop: take the held outputs of the records below each committable offset."""
        self._take_outputs()
        ready = []
        for target in offsets:
            tp = (target.topic, target.partition)
            state = self._partitions.get(tp)
            if state is not None and state.held.count:
                records = state.held.take_below(target.offset)
                if records:
                    ready.append((tp, target.offset, records))
        return ready

    async def _write_outputs(self, offsets: list[Any]) -> bool:
        """At-least-once: write the Out records of what `offsets` commit and wait for the
        acks; False (outputs held again, nothing committed) if any write failed."""
        ready = self._ready_outputs(offsets)
        if not ready:
            return True
        failures: list[str] = []

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(f"{msg.topic()}: {err.str()}")

        def write() -> None:
            for _, _, records in ready:
                for topic, key, value, headers in records:
                    self._producer.produce(topic, value, key, headers=headers, on_delivery=report)
            left = self._producer.flush(self._producer.timeout_s)
            if left:
                failures.append(f"{left} output record(s) unconfirmed")

        try:
            await asyncio.to_thread(write)
        except Exception as exc:  # refused at once (unknown partition, too large...)
            failures.append(str(exc))
        if not failures:
            return True
        log.warning("flow %s: writing outputs failed, will retry: %s", self.name, failures[0])
        self._commit_error = f"output writes failing: {failures[0]}"
        for tp, below, records in ready:
            state = self._partitions.get(tp)
            if state is not None:
                state.held.put_back(below, records)
        return False

    def _start_transaction(self) -> None:
        """Loop: commit in the background, so polling and handling go on meanwhile (what it
        commits is taken when it starts; what is resolved meanwhile waits for the next one).
        One at a time: while one runs, this interval's commit is left to the next."""
        if self._txn_task is None or self._txn_task.done():
            self._txn_task = asyncio.create_task(self._commit_transaction())
            self._txn_task.add_done_callback(self._transaction_done)

    def _transaction_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("flow %s: commit failed unexpectedly", self.name, exc_info=exc)
            self._fatal = exc
            self._stopping.set()

    async def _commit_transaction(self, group_metadata: Any = None) -> None:
        """Exactly-once: one transaction with the outputs of the records below each
        committable offset, and those offsets. A failure aborts it and rewinds.

        The group metadata is read on the consumer's thread, before the lock: read from
        another thread it blocks while that thread is in a rebalance callback, which itself
        waits for this lock (the revoke path passes it in, read inside the callback)."""
        assert self._txn_lock is not None
        if group_metadata is None:
            try:
                group_metadata = await self._call(self._consumer.group_metadata)
            except Exception as exc:  # the consumer is closing: the next commit tries again
                log.info("flow %s: no group metadata for the commit: %s", self.name, exc)
                return
        async with self._txn_lock:
            if self._fatal is not None or self._producer is None:
                return
            offsets = self._committable()
            if not offsets:  # commit_error stays until a transaction commits (after a rewind)
                return
            outputs = [r for _, _, records in self._ready_outputs(offsets) for r in records]
            try:
                await asyncio.to_thread(
                    run_transaction,
                    self._producer,
                    group_metadata,
                    outputs,
                    offsets,
                    self._producer.timeout_s,
                )
            except Exception as exc:  # TransactionError, DeliveryError: abort and rewind
                await self._transaction_failed(exc)
                return
            self._commit_error = None
            self._mark_committed(offsets)

    async def _transaction_failed(self, exc: Exception) -> None:
        """Abort, then rewind every partition to its last commit, so the records of the
        aborted transaction are handled again; a fenced or fatal producer stops the flow."""
        from kafkito.client.errors import TransactionError

        failure: Exception = exc
        if not (isinstance(exc, TransactionError) and exc.fatal):
            try:
                await asyncio.to_thread(self._producer.abort_transaction)
            except TransactionError as abort_error:
                if abort_error.fatal:
                    failure = abort_error
            except Exception as abort_error:  # nothing open to abort (begin failed)
                log.debug("flow %s: abort: %s", self.name, abort_error)
        if isinstance(failure, TransactionError) and failure.fatal:
            log.error("flow %s: transactions failed for good, stopping: %s", self.name, failure)
            self._fatal = failure
            self._stopping.set()
            return
        log.warning(
            "flow %s: transaction aborted (%s); going back to the last committed offsets",
            self.name,
            exc,
        )
        self._commit_error = str(exc)
        await self._rewind()

    async def _rewind(self) -> None:
        """Loop: forget everything not committed (queued work, back-offs, held outputs, the
        trackers: a new generation) and seek each partition back to its last commit, or to
        where this assignment began reading."""
        targets: dict[TP, int | None] = {}
        committed: dict[TP, int] = {}
        for tp, state in self._partitions.items():
            committed[tp] = state.tracker.committed
            targets[tp] = state.tracker.committed if state.tracker.committed >= 0 else state.origin
        tps = list(targets)
        await self._revoked(tps, commit=False)
        await self._assigned(tps)
        with self._seek_lock:
            for tp in tps:
                state = self._partitions[tp]
                state.tracker.committed = committed[tp]
                target = state.origin = targets[tp]
                if target is not None:
                    self._rewind_seeks[tp] = target
                self._pause_changes.add(tp)  # lift pauses of the old generation (retry waits)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Poll thread: partitions given to us. Start their trackers on the loop."""
        assert self._loop is not None
        tps = [(p.topic, p.partition) for p in partitions]
        asyncio.run_coroutine_threadsafe(self._assigned(tps), self._loop).result()
        log.info("flow %s assigned %s", self.name, tps)
        self._notify("assigned", tps)

    def _notify(self, kind: str, tps: list[TP]) -> None:
        if self.on_rebalance is not None:
            try:
                self.on_rebalance(kind, tps)
            except Exception:
                log.exception("flow %s: on_rebalance hook failed", self.name)

    async def _assigned(self, tps: list[TP]) -> None:
        for tp in tps:
            self._generation += 1
            state = _PartitionState(self._generation)
            if self._backpressured:
                state.pause_reasons.add("backpressure")
                self._pause_changes.add(tp)
            self._partitions[tp] = state

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Poll thread: finish or drop work of revoked partitions, commit what is done."""
        assert self._loop is not None
        tps = [(p.topic, p.partition) for p in partitions]
        future = asyncio.run_coroutine_threadsafe(self._revoked(tps, commit=True), self._loop)
        offsets = future.result()
        if self.exactly_once:
            # One transaction with what is resolved, before the partitions go (KIP-447: the
            # coordinator still takes offsets from this generation); the poll loop applies the
            # seeks of a rewind after this callback.
            metadata = self._consumer.group_metadata()  # on this thread (see _commit_transaction)
            asyncio.run_coroutine_threadsafe(
                self._commit_transaction(metadata), self._loop
            ).result()
            offsets = []
        elif offsets and (self._outputs or self._holding()):
            written = asyncio.run_coroutine_threadsafe(self._write_outputs(offsets), self._loop)
            if not written.result():
                offsets = []  # outputs not written: the next owner handles the records again
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                log.info(
                    "flow %s committed %s before revoke",
                    self.name,
                    [(o.topic, o.partition, o.offset) for o in offsets],
                )
            except Exception as exc:
                log.warning("flow %s: commit on revoke failed: %s", self.name, exc)
        asyncio.run_coroutine_threadsafe(self._forget(tps), self._loop).result()
        self._notify("revoked", tps)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Poll thread: partitions lost (session expired): drop everything, commit nothing."""
        assert self._loop is not None
        tps = [(p.topic, p.partition) for p in partitions]
        asyncio.run_coroutine_threadsafe(self._revoked(tps, commit=False), self._loop).result()
        asyncio.run_coroutine_threadsafe(self._forget(tps), self._loop).result()
        log.warning("flow %s lost %s", self.name, tps)
        self._notify("lost", tps)

    async def _revoked(self, tps: list[TP], *, commit: bool) -> list[Any]:
        """Drop queued work and back-offs of `tps`, let running handlers finish (bounded)."""
        assert self._scheduler is not None
        revoked = set(tps)
        for tp in tps:
            if (state := self._partitions.get(tp)) is not None:
                state.revoking = True

        def keep(chunk: Chunk) -> bool:
            return chunk.tp not in revoked

        self._scheduler.discard(keep)
        if self._threads is not None:
            self._threads.discard(keep)
        if self._batch_scheduler is not None:
            self._batch_scheduler.discard(lambda batch: batch[0].tp not in revoked)
        for tp in tps:
            self._buffers.pop(tp, None)
            self._buffered.pop(tp, None)
            self._buffer_started.pop(tp, None)
        for tp in tps:
            for task in list(self._backoffs.get(tp, ())):
                task.cancel()
        if not commit:
            for tp in tps:
                self._partitions.pop(tp, None)
        deadline = time.monotonic() + self.revoke_grace_s
        while time.monotonic() < deadline:
            busy = [t for t in self._running_tasks() if not t.done()]
            threads_busy = self._threads is not None and self._threads.running > 0
            if not (busy or threads_busy) or not commit:
                break
            if busy:
                await asyncio.wait(
                    busy,
                    timeout=min(0.05, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            else:  # handler threads report through call_soon_threadsafe: let them in
                await asyncio.sleep(0.005)
            self._apply_results()
            if all(
                self._partitions.get(tp) is None or self._partitions[tp].tracker.pending == 0
                for tp in tps
            ):
                break
        self._apply_results()  # what the threads reported, even if its wake-up is pending
        return self._committable(tps) if commit else []

    async def _idle(self) -> None:
        assert self._scheduler is not None
        await self._scheduler.wait_idle()
        if self._threads is not None:
            await self._threads.wait_idle()
        if self._batch_scheduler is not None:
            await self._batch_scheduler.wait_idle()
        if self._recovering:
            await asyncio.wait(list(self._recovering))

    def _running_tasks(self) -> list[asyncio.Task[None]]:
        assert self._scheduler is not None
        tasks = self._scheduler.running_tasks() + list(self._recovering)
        if self._batch_scheduler is not None:
            tasks += self._batch_scheduler.running_tasks()
        return tasks

    async def _forget(self, tps: list[TP]) -> None:
        for tp in tps:
            self._partitions.pop(tp, None)
            self._backoffs.pop(tp, None)
            self._dead_letter_failing.discard(tp)

    async def _shutdown(self) -> None:
        """Stop fetching, finish in-flight work within the grace period, commit, leave."""
        from kafkito.client.raw_consumer import TopicPartition

        assert self._scheduler is not None
        self._stopping.set()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                assigned = [TopicPartition(t, p) for t, p in self._partitions]
                if assigned:
                    await self._call(self._consumer.pause, assigned)
            for waiting in self._backoffs.values():
                for task in list(waiting):
                    task.cancel()
            self._flush_due_buffers(all_now=True)
            try:
                await asyncio.wait_for(self._idle(), self.shutdown_grace_s)
            except TimeoutError:
                log.warning(
                    "flow %s: %d record(s) still in progress after the %.0f s shutdown grace; "
                    "they stay uncommitted and are delivered again",
                    self.name,
                    self._in_flight(),
                    self.shutdown_grace_s,
                )
            self._apply_results()  # what the threads reported, even if its wake-up is pending
            await self._commit()
            with contextlib.suppress(Exception):
                await self._call(self._consumer.close)
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 10)
        if self._producer_thread is not None:
            self._producer_thread.join(timeout=5)
        # Drop the clients now: librdkafka handles live until collected and keep reconnecting.
        self._producer = None
        self._consumer = None
        self._kafka.shutdown(wait=False)
        self._handlers.shutdown(wait=False, cancel_futures=True)
        if self._threads is not None:
            self._threads.close()
        log.info("flow %s stopped", self.name)


@dataclass(slots=True)
class _ThreadBatch:
    """What a handler thread did in its current batch of keys, reported at its end."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    results: list[tuple[Chunk, int, None]] = field(default_factory=list)


_Failure = tuple[str, Exception, Any]
"""Why a record failed in a handler thread: ("decode" | "handle", the exception, the value);
or `_RAN_LONG`."""
_RAN_LONG: _Failure = ("long", Exception("a coarse chunk ran long"), None)
"""A coarse chunk stopped because it ran long and slow: its rest is split by key."""
_Stop = tuple[int, _Failure]
"""How far a handler thread got with a chunk, and the failure that stopped it."""


def _record_of(msg: Any, value: Any, attempt: int) -> Record[Any]:
    """The handler's Record for a confluent_kafka.Message."""
    return Record(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.timestamp()[1],
        msg.key(),
        value,
        dict(msg.headers() or ()),
        msg.value(),
        attempt,
    )


def _unhandled(chunk: Chunk) -> int:
    """Records of the chunk a handler thread has still to run (the scheduler's unit of work)."""
    return len(chunk.messages) - chunk.cursor


def _other_partition(tp: TP) -> Callable[[list[Chunk]], bool]:
    """A filter keeping the batches of partitions other than `tp`."""
    return lambda batch: batch[0].tp != tp


_TRACEPARENT = "traceparent"


@functools.cache
def _recording_tracer() -> bool:
    """Whether an OpenTelemetry SDK records spans in this process (asked once)."""
    from opentelemetry import trace

    with trace.get_tracer("kafkito.flow").start_as_current_span("kafkito.probe") as span:
        return bool(span.is_recording())


def _has_traceparent(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    return any(k == _TRACEPARENT for k, _ in headers)


@contextlib.contextmanager
def _trace_span(name: str, work: _Work) -> Iterator[None]:
    """An OpenTelemetry consumer span whose parent comes from the record's headers.

    Without an SDK and without a `traceparent` header there is nothing to propagate or record,
    and the hot path skips the work.
    """
    if not _recording_tracer() and not _has_traceparent(work.headers):
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


def _inject_trace(carrier: dict[str, str]) -> None:
    try:
        from opentelemetry import propagate
    except ImportError:  # pragma: no cover
        return
    propagate.inject(carrier)


__all__ = ["BatchFailed", "Flow", "FlowError", "Record", "Reject", "RetryLater", "RetryPolicy"]
