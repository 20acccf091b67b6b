"""Starting and stopping a flow: clients, topics, signals, the consumer's thread, shutdown.

The confluent-kafka consumer is only ever called from one worker thread (`Flow._kafka`, a
single-thread executor, through `call`), so its calls are serialized; the loop awaits them. A
thread of its own serves the producer's delivery reports.

Shutdown (SIGTERM/SIGINT or `stop()`): stop fetching, let in-flight records finish within
`shutdown_grace_s`, commit, close the consumer (which leaves the group at once).

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkito.flow import letters
from kafkito.flow.records import (
    FlowError,
    log,
    unhandled,
)
from kafkito.flow.scheduler import KeyedScheduler, ThreadedKeyedScheduler

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow

FETCH_WAIT_MAX_MS = 100
"""The flow consumer's `fetch.wait.max.ms` unless its settings say otherwise (see
`consumer_settings`)."""


def consumer_settings(self: Flow, conf: dict[str, Any]) -> dict[str, Any]:
    """The consumer's librdkafka settings: the flow's defaults under `conf` (connection and
    the user's `settings`, which win)."""
    return {
        "group.id": self.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "client.id": self.name,
        "error_cb": self._on_client_error,
        # A partition the flow resumes (backpressure.spread pauses partitions over their
        # share) is fetched again only after the fetch in flight returns, which the broker
        # holds up to this long when the other partitions have nothing new: librdkafka's
        # default, 500 ms, idled a resumed partition's keys that long (1 round in 10 of
        # bench_flow's fewkeys, 734 vs 915 msgs/s; 0 in 20 at 100 ms). An idle flow sends up
        # to 10 fetches a second instead of 2.
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        **conf,
    }


async def run_async(self: Flow) -> None:
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
            size_of=unhandled,
            after_batch=self._end_thread_batch,
            name=f"{self.name}-handler",
        )
    conf = self._librdkafka()
    if self.create_topics:
        await asyncio.to_thread(self._ensure_topics, conf)
    consumer_conf = consumer_settings(self, conf)
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
    log.info("flow %s consuming %s as group %s", self.name, self._subscriptions(), self.group_id)
    watcher = asyncio.create_task(self._watch_cluster())
    try:
        await self._poll_loop()
    finally:
        watcher.cancel()
        restore()
        await self._shutdown()
    if self._fatal is not None:
        raise FlowError(f"flow {self.name} stopped: {self._fatal}") from self._fatal


def librdkafka(self: Flow) -> dict[str, Any]:
    """Connection settings: `brokers`, else the library's rule (env, local broker)."""
    bootstrap = self.brokers
    if bootstrap is None and "bootstrap.servers" not in self.settings:
        from kafkito.client.embedded import resolve_bootstrap

        bootstrap = resolve_bootstrap(None)
    base: dict[str, Any] = {"bootstrap.servers": bootstrap} if bootstrap else {}
    return {**base, **self.settings}


def subscriptions(self: Flow) -> list[str]:
    subs = list(self.topics)
    if self.retry.mode == "topics":
        for topic in self.topics:
            subs += [letters.retry_topic(topic, n) for n in range(2, self.retry.attempts + 1)]
    return subs


def ensure_topics(self: Flow, conf: dict[str, Any]) -> None:
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


def install_signal_handlers(self: Flow) -> Callable[[], None]:
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


async def call(self: Flow, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a consumer call on the one thread that owns the consumer."""
    assert self._loop is not None
    return await self._loop.run_in_executor(self._kafka, lambda: fn(*args, **kwargs))


def poll_producer(self: Flow) -> None:
    """Serve delivery reports until the flow stops and nothing is left to deliver."""
    producer = self._producer
    while not self._stopping.is_set() or len(producer) > 0:
        try:
            producer.poll(0.05)
        except Exception as exc:  # KafkaException: fatal (a fenced transactional producer)
            log.error("flow %s: producer failed for good: %s", self.name, exc)
            return


async def shutdown(self: Flow) -> None:
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


async def idle(self: Flow) -> None:
    assert self._scheduler is not None
    await self._scheduler.wait_idle()
    if self._threads is not None:
        await self._threads.wait_idle()
    if self._batch_scheduler is not None:
        await self._batch_scheduler.wait_idle()
    if self._recovering:
        await asyncio.wait(list(self._recovering))


def running_tasks(self: Flow) -> list[asyncio.Task[None]]:
    assert self._scheduler is not None
    tasks = self._scheduler.running_tasks() + list(self._recovering)
    if self._batch_scheduler is not None:
        tasks += self._batch_scheduler.running_tasks()
    return tasks
