"""The consume flow: receive, decode, validate, handle, retry, dead-letter, commit.

Theory of operation
-------------------
One asyncio event loop owns all the flow's state. The confluent-kafka consumer is only ever
called from one worker thread (`_kafka`, a single-thread executor), so its calls are serialized;
the loop awaits them (flow/lifecycle.py). A record's way through the flow, module by module:

1. intake.py: the loop polls the records librdkafka has ready, up to `poll_batch` and the room
   under `max_in_flight` (no waiting for a full batch; the poll thread returns every ~100 ms
   even when idle, so the group never sees a missed poll, whatever the handlers do: no
   `max.poll.interval.ms` rebalances), cuts them into chunks (the records of one partition with
   the same ordering key, in offset order; `tracker.Chunk`), notes each chunk in its
   partition's `PartitionTracker` and submits it under its ordering key (same key in order,
   different keys in parallel, `concurrency` at once): sync handlers to the
   `ThreadedKeyedScheduler`'s handler threads, async ones to the `KeyedScheduler`'s tasks,
   batch handlers to per-partition buffers. backpressure.py stops polling, then pauses, when
   `max_in_flight` records are unresolved;
2. threads.py: a handler thread decodes and handles a chunk's records in order; what went well
   is reported to the loop in bulk; a record that fails holds its key and goes to the loop.
   With ordering="key" and a fast sync handler a partition's records of a poll are one coarse
   chunk, split by key (`_split`) when a record fails or the chunk runs long and slow.
   execution.py does the same for async handlers (record by record in their task) and batch
   handlers;
3. settling.py: a failed record is retried in place with backoff (`blocking`) or republished to
   `<topic>.retry.<n>` with a due time (`topics`); when attempts run out, or on `Reject` or a
   decoding failure, it is written to `<topic>.dlq` and the ack awaited; then its key goes on;
4. only then is the offset resolved (records of a chunk are resolved in order); commits.py
   commits every `commit_interval_s` the lowest unresolved offset of each partition, so the
   committed offset never passes an unresolved record (with exactly_once: in one transaction
   with the outputs, flow/exactly_once.py).

assignment.py handles rebalances (revoke: drop queued work, wait for running handlers within
`revoke_grace_s`, commit what is resolved); status.py answers `health()` from state;
lifecycle.py starts the clients and shuts down (finish in-flight work within
`shutdown_grace_s`, commit, leave the group); tracing.py makes a consumer span per record.
Each module's docstring tells its part in detail. Time for scheduling (backoff, retry due
times, the commit interval, deadlines) is read through `_clock` (`kafkito.clock`; a test may
pass `clock=FakeClock()`); handler durations stay on `time.perf_counter`.

Why functions bound as methods: the parts share one state (the loop's, owned by `Flow`) and
call each other on the hot path; as methods of one class they cost no extra call or lookup,
and `Flow` stays the one object tests and users see. Each module holds one job.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kafkito.clock import Clock, SystemClock
from kafkito.flow import (
    assignment,
    backpressure,
    commits,
    execution,
    intake,
    letters,
    lifecycle,
    options,
    settling,
    status,
    threads,
)
from kafkito.flow.annotations import AnnotationError, FirstDecodes, handler_decoding
from kafkito.flow.codecs import Decoder, decoder_for, decoder_of
from kafkito.flow.exactly_once import OutRecord, transactional_id_for
from kafkito.flow.metrics import FlowMetrics
from kafkito.flow.outcomes import BatchFailed, Reject, RetryLater
from kafkito.flow.policy import RetryPolicy
from kafkito.flow.records import (
    COARSE_BELOW_S,
    SPLIT_AFTER_S,
    Failure,
    FlowError,
    Ordering,
    PartitionState,
    Record,
    Stop,
    log,
)
from kafkito.flow.scheduler import KeyedScheduler, ThreadedKeyedScheduler
from kafkito.flow.tracker import TP, Chunk
from kafkito.loops import loop_factory


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
        clock: Clock | None = None,
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

        self._clock: Clock = clock or SystemClock()
        """Time for the flow's scheduling: backoff sleeps, retry due times, the commit
        interval, batch timeouts, backpressure and revoke deadlines, health ages (a
        `FakeClock` in tests). Handler durations stay on the real `time.perf_counter`: they
        measure work, not schedule it."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._seek_to: dict[TP, int] = {}
        self._partitions: dict[TP, PartitionState] = {}
        self._generation = 0
        self._scheduler: KeyedScheduler[Chunk] | None = None
        """Async handlers: one asyncio task per running key."""
        self._threads: ThreadedKeyedScheduler[Chunk, Stop] | None = None
        """Sync handlers: `concurrency` handler threads that take keys' chunks themselves."""
        self._batch_scheduler: KeyedScheduler[list[Chunk]] | None = None
        self._buffers: dict[TP, list[Chunk]] = {}
        self._buffered: dict[TP, int] = {}
        self._buffer_started: dict[TP, float] = {}
        self._results: collections.deque[tuple[Chunk, int, Failure | None]] = collections.deque()
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
        return options.flow_from_config(cls, handler, config, **overrides)

    def run(self, loop: str | None = None) -> None:
        """Run until stopped (SIGTERM/SIGINT in the main thread, or `stop()`), on an event
        loop of its own: `loop` "asyncio", "uvloop" or "auto" (uvloop when installed); by
        default $KAFKITO_LOOP, else asyncio's. asyncio's loop rounds each timer's wait up to a
        millisecond, uvloop's does not (docs/flow.md, "Event loop")."""
        name, factory = loop_factory(loop)
        log.debug("flow event loop: %s", name)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self.run_async())

    def stop(self) -> None:
        """Ask the flow to finish in-flight work, commit and leave the group (thread-safe)."""
        self._stopping.set()

    CLUSTER_CHECK_S = 2.0
    """How often the watcher asks the cluster's metadata for the health report."""

    # -- the rest of the flow, one module per job (their functions are its methods) ---------

    # status.py
    health = status.health
    _degradation = status.degradation
    _on_client_error = status.on_client_error
    _watch_cluster = status.watch_cluster
    # lifecycle.py
    run_async = lifecycle.run_async
    _librdkafka = lifecycle.librdkafka
    _subscriptions = lifecycle.subscriptions
    _ensure_topics = lifecycle.ensure_topics
    _install_signal_handlers = lifecycle.install_signal_handlers
    _call = lifecycle.call
    _poll_producer = lifecycle.poll_producer
    _shutdown = lifecycle.shutdown
    _idle = lifecycle.idle
    _running_tasks = lifecycle.running_tasks
    # intake.py
    _poll_loop = intake.poll_loop
    _consume = intake.consume
    _drop_rewound = intake.drop_rewound
    _apply_seeks = intake.apply_seeks
    _accept = intake.accept
    _retry_chunk = intake.retry_chunk
    _submit = intake.submit
    _flush_buffer = intake.flush_buffer
    _flush_due_buffers = intake.flush_due_buffers
    # backpressure.py
    _wait_until_due = backpressure.wait_until_due
    _catch_up = backpressure.catch_up
    _in_flight = backpressure.in_flight
    _update_backpressure = backpressure.update_backpressure
    _apply_pauses = backpressure.apply_pauses
    # threads.py
    _thread_batch = threads.thread_batch
    _run_in_thread = threads.run_in_thread
    _end_thread_batch = threads.end_thread_batch
    _held = threads.held
    _wake_loop = threads.wake_loop
    _apply_results = threads.apply_results
    _split = threads.split
    _recover = threads.recover
    _run_sync_chunk = threads.run_sync_chunk
    # execution.py
    _counters = execution.counters
    _owns = execution.owns
    _owned = execution.owned
    _resolve = execution.resolve
    _abandon = execution.abandon
    _argument = execution.argument
    _first_decodes_done = execution.first_decodes_done
    _decode_value = execution.decode_value
    _process = execution.process
    _process_one = execution.process_one
    _process_batches = execution.process_batches
    _process_batch = execution.process_batch
    _call_handler = execution.call_handler
    _call_batch_handler = execution.call_batch_handler
    # settling.py
    _attempts = settling.attempts
    _backoff = settling.backoff
    _produce = settling.produce
    _dead_letter = settling.dead_letter
    _mark_dead_letter_failing = settling.mark_dead_letter_failing
    _send_to_retry_topic = settling.send_to_retry_topic
    _write_until_acked = settling.write_until_acked
    # commits.py
    _committable = commits.committable
    _mark_committed = commits.mark_committed
    _commit = commits.commit
    _take_outputs = commits.take_outputs
    _holding = commits.holding
    _ready_outputs = commits.ready_outputs
    _write_outputs = commits.write_outputs
    _start_transaction = commits.start_transaction
    _transaction_done = commits.transaction_done
    _commit_transaction = commits.commit_transaction
    _transaction_failed = commits.transaction_failed
    _rewind = commits.rewind
    # assignment.py
    _on_assign = assignment.on_assign
    _notify = assignment.notify
    _assigned = assignment.assigned
    _on_revoke = assignment.on_revoke
    _on_lost = assignment.on_lost
    _revoked = assignment.revoked
    _forget = assignment.forget


__all__ = [
    "COARSE_BELOW_S",
    "SPLIT_AFTER_S",
    "BatchFailed",
    "Flow",
    "FlowError",
    "Record",
    "Reject",
    "RetryLater",
    "RetryPolicy",
    "log",
]
