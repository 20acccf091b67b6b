"""The consume flow on Pub/Sub: the same handler code as `kafkito.flow.Flow`, on a subscription.

    from kafkito.pubsub import Flow
    Flow("orders-sub", handle_order, retry=RetryPolicy.delays([1, 5, 30])).run()

Theory of operation
-------------------
The handler's side is the Kafka flow's, reused as is: the annotation picks the decoder
(`kafkito.flow.annotations`, `codecs`), `validate=`, `RetryLater` / `Reject` / `BatchFailed`
(`outcomes`), `RetryPolicy` (`policy`), the Prometheus families (`metrics`), OpenTelemetry
spans whose parent comes from a `traceparent` attribute. A handler that takes a `Record` gets
`kafkito.flow.Record` with `partition` and `offset` -1 (Pub/Sub has neither); the message id
and delivery attempt are in `kafkito.pubsub.current_message`.

The transport's side is Pub/Sub's, and simpler than Kafka's: there are no offsets, so nothing
is committed and nothing waits for a lower offset. Each message is settled on its own once it
is resolved: acked after the handler returned, or after its dead letter was confirmed.

    google streaming pull (its threads) ─► _arrive: a deque, one loop wake-up per burst
        flow control: at most max_in_flight messages (and max_outstanding_bytes) unsettled
        leases: extended by the google client while a message is unsettled (retries in place
        included), up to subscription.max_lease_duration
    sync handlers: straight from google's callback to `concurrency` handler threads
        (kafkito.flow.scheduler.ThreadedKeyedScheduler, the Kafka flow's): FIFO per ordering
        key, keys in parallel; a success is acked on the handler thread, so the event loop
        sees nothing of the happy path (one loop hop per message cost 2.5x the Reader's CPU).
        A failure holds its key and goes to the loop (`_recover`), which releases the key
        once the message is resolved
    async handlers: the event loop, per ordering key a lane (one message at a time, in
        arrival order), `concurrency` at once; batch handlers get up to `batch_size`
    a failure: RetryPolicy(mode="blocking") retries in place (the key waits, the lease is
        extended); mode="topics" (non-blocking) becomes "nack with backoff": the message's ack
        deadline is set to the delay and it is released, so Pub/Sub redelivers it then (the
        key's next message goes on); retry="subscription" nacks and leaves the backoff to the
        subscription's retry policy. Attempts across redeliveries are Pub/Sub's
        `delivery_attempt` when the subscription has a dead-letter policy, else counted here.
    dead letters: to `dead_letter_topic(topic)` (`<topic>.dlq`), or to the topic of the
        subscription's dead-letter policy when it has one, with the Kafka flow's `x-kafkito-*`
        names as attributes (pubsub/letters.py), then acked; a dead-letter write that fails
        keeps the message unsettled and is retried with capped backoff (health says why).

The google client itself hands out an ordering key's next message only after the previous
one was settled (when the subscription orders messages); the threads' queues and the lanes
keep the order of arrival per key even when it does not. The steps a message goes through
(decode, handle, retry, dead-letter, batches) are in flow_steps.py, Flow's base class.

Stopping (`stop()`, SIGTERM/SIGINT in the main thread): no new messages are taken, handlers
that run get `shutdown_grace_s` to finish, then the stream ends; every message not settled
comes back after its ack deadline, as after a crash (see SubscriberCore.close_stream for why
they are not nacked). At-least-once: a message handled but whose ack was not yet sent when the
process died is delivered again.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from kafkito.flow import letters as kafka_letters
from kafkito.flow.annotations import AnnotationError, FirstDecodes, handler_decoding
from kafkito.flow.codecs import Decoder, decoder_for, decoder_of
from kafkito.flow.metrics import FlowMetrics, TopicMetrics
from kafkito.flow.policy import RetryPolicy
from kafkito.flow.runner import FlowError
from kafkito.flow.scheduler import ThreadedKeyedScheduler
from kafkito.pubsub.config import ReaderConfig
from kafkito.pubsub.flow_steps import TICK_S, Policies, Steps, _Failure
from kafkito.pubsub.reader import Stream, SubscriberCore, build_reader_config

log = logging.getLogger(__name__)

__all__ = ["Flow", "FlowError"]

Ordering = Literal["key", "none"]
Retry = RetryPolicy | Literal["subscription"]


class Flow(Steps):
    """Consume a Pub/Sub subscription through a handler: retries, dead letters, per-key order.

        flow = Flow("orders-sub", handle_order, project_id="shop",
                    retry=RetryPolicy.delays([1, 5, 30]))
        flow.run()          # until SIGTERM / Ctrl-C / flow.stop()

    The arguments that the Kafka `kafkito.flow.Flow` has mean the same here (model, decoder,
    validate, retry, dead_letter, dead_letter_topic, concurrency, max_in_flight, batch_size,
    batch_timeout_s, ordering, shutdown_grace_s, liveness_timeout_s, create_topics, metrics,
    name); `subscription` takes the place of topics and group_id, and `config` is a Pub/Sub
    ReaderConfig (or dict of the seed's pubsub keys). `retry="subscription"` leaves the backoff
    to the subscription's retry policy.
    """

    def __init__(
        self,
        subscription: str,
        handler: Callable[..., Any],
        *,
        project_id: str | None = None,
        topic: str | None = None,
        config: ReaderConfig | Mapping[str, Any] | None = None,
        model: Any = None,
        decoder: Any = None,
        validate: Callable[[Any], Any] | None = None,
        retry: Retry | None = None,
        dead_letter: bool = True,
        dead_letter_topic: Callable[[str], str] = kafka_letters.dead_letter_topic,
        concurrency: int = 16,
        max_in_flight: int = 1000,
        batch_size: int | None = None,
        batch_timeout_s: float = 0.5,
        ordering: str = "key",
        shutdown_grace_s: float = 30.0,
        liveness_timeout_s: float = 30.0,
        create_topics: bool = True,
        metrics: FlowMetrics | None = None,
        name: str | None = None,
    ) -> None:
        if ordering == "partition":
            raise FlowError(
                "ordering='partition' has no meaning on Pub/Sub (no partitions): use 'key' "
                "(in order per ordering key) or 'none'"
            )
        if ordering not in ("key", "none"):
            raise FlowError(f"ordering must be 'key' or 'none', got {ordering!r}")
        if concurrency < 1 or max_in_flight < 1:
            raise FlowError("concurrency and max_in_flight must be at least 1")
        if batch_size is not None and batch_size < 1:
            raise FlowError("batch_size must be at least 1")
        if isinstance(retry, str) and retry != "subscription":
            raise FlowError(f"retry must be a RetryPolicy or 'subscription', got {retry!r}")
        base = build_reader_config(
            config, subscription=subscription, topic=topic, project_id=project_id
        )
        settings = base.subscription.model_dump()
        settings["max_outstanding_messages"] = max_in_flight
        self.config: ReaderConfig = base.merged(subscription=settings)
        self.subscription: str = str(self.config.subscription_id)
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        try:
            decoding = handler_decoding(handler, batch=bool(batch_size))
        except AnnotationError as exc:
            raise FlowError(str(exc)) from exc
        explicit = decoder if decoder is not None else model
        if explicit is None and decoding.problem is not None:
            raise FlowError(decoding.problem)
        self.pass_record = decoding.pass_record
        bare: Decoder = (
            decoder_for(explicit)
            if explicit is not None
            else decoder_of(decoding.target, nullable=decoding.nullable)
        )
        self._bare = bare
        self.decode: Decoder = FirstDecodes(
            bare,
            how=decoding.how() if explicit is None else f"{explicit!r} (given as decoder/model)",
            fix=decoding.fix_hint() if explicit is None else "check the decoder/model given",
            done=self._first_decodes_done,
        ).decode
        self.validate = validate
        self.retry: Retry = retry or RetryPolicy.exponential()
        self.dead_letter = dead_letter
        self.dead_letter_topic = dead_letter_topic
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.ordering = ordering
        self.shutdown_grace_s = shutdown_grace_s
        self.liveness_timeout_s = liveness_timeout_s
        self.create_topics = create_topics
        self.name = name or f"flow-{self.subscription}"
        self.metrics = metrics or FlowMetrics.default()

        self.policies: Policies | None = None
        self.dead_letter_to: str | None = None
        """Where dead letters go (a topic id or path), decided at start."""
        self._core: SubscriberCore | None = None
        self._stream: Stream | None = None
        self._writer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._inbox: collections.deque[Any] = collections.deque()
        self._woken = False
        self._lanes: dict[str, collections.deque[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batch: list[Any] = []
        self._batch_timer: asyncio.TimerHandle | None = None
        self._sem: asyncio.Semaphore | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._attempts: collections.OrderedDict[str, int] = collections.OrderedDict()
        """Attempts per message id across redeliveries, when Pub/Sub does not count them."""
        self._last_tick = 0.0
        self._fatal: BaseException | None = None
        self._writes_failing: dict[str, str] = {}
        self._counters: TopicMetrics | None = None
        self._threads: ThreadedKeyedScheduler[Any, tuple[_Failure, float]] | None = None
        """Sync handlers: `concurrency` threads that take keys' messages themselves."""
        self._count_lock = threading.Lock()
        self.handled = 0
        self.dead_lettered = 0

    # -- public surface ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, handler: Callable[..., Any], config: str | Path | Mapping[str, Any], **overrides: Any
    ) -> Flow:
        """A flow from the seed's pubsub keys (YAML path or text, or a dict) and a `flow:`
        section with the Kafka flow's options (retry, concurrency, max_in_flight, ordering,
        batch_size, batch_timeout, dead_letter, shutdown_grace, name). Keywords override."""
        import yaml

        from kafkito.client.config import parse_duration_s

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
        known = {
            "retry",
            "concurrency",
            "max_in_flight",
            "ordering",
            "batch_size",
            "batch_timeout",
            "dead_letter",
            "shutdown_grace",
            "name",
        }
        kw: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                raise FlowError(f"flow.{key}: unknown key (known: {', '.join(sorted(known))})")
            if key == "retry":
                kw["retry"] = (
                    "subscription" if value == "subscription" else RetryPolicy.from_config(value)
                )
            elif key in ("concurrency", "max_in_flight", "batch_size"):
                kw[key] = int(value)
            elif key in ("ordering", "name"):
                kw[key] = value
            elif key == "dead_letter":
                kw[key] = bool(value)
            else:
                kw[f"{key}_s"] = parse_duration_s(value)
        reader = ReaderConfig.from_dict(data)
        if not reader.subscription_id:
            raise FlowError("a Pub/Sub flow config needs `subscription_id`")
        kw.update(overrides)
        return cls(reader.subscription_id, handler, config=reader, **kw)

    def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT in the main thread, or `stop()`)."""
        asyncio.run(self.run_async())

    def stop(self) -> None:
        """Ask the flow to finish what runs and stop (thread- and signal-safe)."""
        self._stopping.set()

    @property
    def core(self) -> SubscriberCore:
        """The subscriber (for kafkito.pubsub.HealthChecker(reader=flow)); set while running."""
        if self._core is None:
            raise FlowError("the flow is not running")
        return self._core

    def health(self) -> dict[str, Any]:
        """Liveness (the loop ticks) and readiness (the stream is open, dead letters go out)."""
        age = time.monotonic() - self._last_tick if self._last_tick else None
        live = (
            self._stream is not None
            and self._fatal is None
            and age is not None
            and age < self.liveness_timeout_s
        )
        write_error = next(iter(self._writes_failing.values()), None)
        degraded = [f"dead-letter writes failing: {write_error}"] if write_error else []
        if self._fatal is not None:
            degraded.append(f"stream failed: {self._fatal}")
        return {
            "name": self.name,
            "subscription": self.subscription,
            "live": live,
            "ready": live and self._stream is not None and not self._writes_failing,
            "in_flight": self._in_flight(),
            "handled": self.handled,
            "dead_lettered": self.dead_lettered,
            "dead_letter_topic": self.dead_letter_to,
            "dead_letter_failing": len(self._writes_failing),
            "last_poll_age_s": None if age is None else round(age, 3),
            "write_error": write_error,
            "degraded": degraded,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def run_async(self) -> None:
        """Run inside a running event loop until stopped; raises if the stream fails for good
        (the subscription deleted, permissions withdrawn)."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._fatal = None
        self._writes_failing.clear()
        self._sem = asyncio.Semaphore(self.concurrency)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="kafkito-pubsub-flow"
        )
        core = SubscriberCore(self.config)
        try:
            await asyncio.to_thread(core.connect)
            self._core = core
            self._settle_policies(core)
            await asyncio.to_thread(self._open_writer)
        except BaseException:
            core.close()
            self._pool.shutdown(wait=False)
            raise
        if not self.is_async and self.batch_size is None:
            self._threads = ThreadedKeyedScheduler(
                self.concurrency,
                self._work_sync,
                self._on_hold,
                name="kafkito-pubsub-handler",
            )
        restore = self._install_signals()
        try:
            self._stream = core.open(self._arrive)
            await self._serve(core, self._stream)
        finally:
            for sig in restore:
                self._loop.remove_signal_handler(sig)
            await self._shut_down(core)
        if self._fatal is not None:
            raise self._fatal

    def _settle_policies(self, core: SubscriberCore) -> None:
        policies = Policies.of(core.info, self.config.topic_id or self.subscription)
        self.policies = policies
        if self.retry == "subscription" and not policies.has_retry_policy:
            raise FlowError(
                f"retry='subscription' needs a retry policy on subscription {self.subscription!r} "
                "(gcloud pubsub subscriptions update --min-retry-delay/--max-retry-delay); "
                "without one Pub/Sub redelivers a nacked message at once. Or pass a RetryPolicy"
            )
        if not self.dead_letter:
            self.dead_letter_to = None
        elif policies.dead_letter_topic is not None:
            self.dead_letter_to = policies.dead_letter_topic
        else:
            self.dead_letter_to = self.dead_letter_topic(policies.topic)
        self._counters = self.metrics.for_topic(policies.topic, self.subscription)

    def _open_writer(self) -> None:
        """The dead-letter publisher, and the dead-letter topic checked (or created) now, so
        a wrong project or a missing topic is an error at start, not at the first failure."""
        if self.dead_letter_to is None:
            return
        from kafkito.pubsub.writer import TopicWriter

        client = self.config.client.model_dump()
        self._writer = TopicWriter(
            {
                "client": client,
                "retry": self.config.retry,
                "create_if_missing": self.create_topics,
                "message_ordering": self.config.message_ordering,
            }
        )
        try:
            self._writer._core.ensure_topic(self.dead_letter_to)
        except BaseException:
            self._writer.close()
            self._writer = None
            raise

    def _install_signals(self) -> list[signal.Signals]:
        if threading.current_thread() is not threading.main_thread() or self._loop is None:
            return []
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
        return installed

    async def _serve(self, core: SubscriberCore, stream: Stream) -> None:
        core.reading = True
        while not self._stopping.is_set():
            now = time.monotonic()
            self._last_tick = now
            core.last_poll_monotonic = now
            self.metrics.in_flight.labels(self.name).set(stream.held)
            error = core.failed(stream)
            if error is not None:
                log.error("flow %s: the stream ended: %s", self.name, error)
                self._fatal = error
                return
            await asyncio.sleep(TICK_S)

    async def _shut_down(self, core: SubscriberCore) -> None:
        """No new work; let running handlers finish (bounded); end the stream; close."""
        stream = self._stream
        if stream is not None:
            stream.begin_close()
        self._stopping.set()
        self._inbox.clear()
        self._lanes.clear()  # queued messages of a key stay unsettled: nothing overtakes
        self._batch.clear()
        if self._batch_timer is not None:
            self._batch_timer.cancel()
        threads = self._threads
        if threads is not None:
            threads.discard(lambda msg: False)  # queued: unsettled, back after the deadline
            await asyncio.to_thread(_wait_running, threads, self.shutdown_grace_s)
            if threads.running:
                log.warning(
                    "flow %s: %d handler(s) still running after %.0fs; their messages come "
                    "back after the ack deadline",
                    self.name,
                    threads.running,
                    self.shutdown_grace_s,
                )
            threads.close()
            self._threads = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace_s)
            if pending:
                log.warning(
                    "flow %s: %d handler(s) still running after %.0fs; their messages come "
                    "back after the ack deadline",
                    self.name,
                    len(pending),
                    self.shutdown_grace_s,
                )
                for task in pending:
                    task.cancel()
        if stream is not None:
            await asyncio.to_thread(core.close_stream, stream, [])
        self._stream = None
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        core.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.metrics.in_flight.labels(self.name).set(0)

    # -- arrival and lanes -----------------------------------------------------------------

    def _arrive(self, msg: Any) -> None:
        """google's callback thread: hand the message to the handler threads (sync handlers),
        or queue it for the loop and wake the loop once per burst."""
        threads = self._threads
        if threads is not None:
            assert self._counters is not None
            self._counters.received.inc()
            key = msg.ordering_key if self.ordering == "key" else ""
            threads.submit_many(((key or ("", msg.message_id), msg),))
            return
        self._inbox.append(msg)
        if not self._woken:
            self._woken = True
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: left to its deadline
                    loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        self._woken = False
        inbox = self._inbox
        counters = self._counters
        assert counters is not None
        while inbox and not self._stopping.is_set():
            msg = inbox.popleft()
            counters.received.inc()
            if self.batch_size is not None:
                self._add_to_batch(msg)
                continue
            key = msg.ordering_key if self.ordering == "key" else ""
            if key:
                lane = self._lanes.get(key)
                if lane is not None:
                    lane.append(msg)
                    continue
                self._lanes[key] = collections.deque()
                self._spawn(self._run_lane(key, msg))
            else:
                self._spawn(self._process_one(msg))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("flow %s: a handler task failed", self.name, exc_info=task.exception())

    async def _run_lane(self, key: str, msg: Any) -> None:
        """One ordering key's messages, one at a time, in arrival order."""
        while True:
            resolved = await self._process_one(msg)
            lane = self._lanes.get(key)
            if not resolved or lane is None or not lane or self._stopping.is_set():
                # unresolved (stopping): the key's later messages stay unsettled too
                self._lanes.pop(key, None)
                return
            msg = lane.popleft()

    def _work_sync(self, msg: Any) -> tuple[_Failure, float] | None:
        """A handler thread: one message's first attempt; acked here when it succeeds. A
        failure holds the message's key and goes to the loop (`_on_hold`) for the retry path.
        """
        if self._stopping.is_set():
            return None  # not settled: back after its ack deadline
        started = time.perf_counter()
        failure = self._call_sync(msg, self._attempt_of(msg))
        if failure is not None:
            return failure, started
        stream, counters = self._stream, self._counters
        assert stream is not None and counters is not None
        stream.settle(msg, ok=True)
        self._attempts.pop(str(msg.message_id), None)
        counters.processed.inc()
        counters.handler_seconds.observe(time.perf_counter() - started)
        with self._count_lock:
            self.handled += 1
        return None

    def _on_hold(self, msg: Any, held: tuple[_Failure, float]) -> None:
        """A handler thread: a message failed and holds its key; recover it on the loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: back after its deadline
                loop.call_soon_threadsafe(self._spawn, self._recover(msg, held[0]))

    async def _recover(self, msg: Any, failure: _Failure) -> None:
        """The retry path of a message whose first attempt failed on a handler thread; its
        key runs again once it is resolved (left held when it is not: stopping)."""
        if await self._process_one(msg, failure) and self._threads is not None:
            key = msg.ordering_key if self.ordering == "key" else ""
            self._threads.release(key or ("", msg.message_id), drop=msg)

    def _in_flight(self) -> int:
        stream = self._stream
        return stream.held if stream is not None else 0


def _wait_running(threads: ThreadedKeyedScheduler[Any, Any], timeout_s: float) -> None:
    """Until no handler thread runs a message, or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while threads.running and time.monotonic() < deadline:
        time.sleep(0.01)
