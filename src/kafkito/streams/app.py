"""StreamsApp: builds the topology, joins the group, restores state, runs the loop, commits.

Theory of operation
-------------------
One consumer (group id = the app's name) reads every source topic and every repartition
topic of the app; one producer writes sinks, repartition topics and changelogs. Instances
started with the same name share the partitions (the group's assignor); a store's partition
lives where its input partition is assigned.

The loop: consume a batch, push each record from its source through the tree (`push`, or
`apush` per key concurrently in `run_async`), give stateful nodes the wall clock
(`punctuate`: window closes of idle partitions), and every `commit_interval_ms` commit:

1. each store sends its dirty keys (latest value per key) to its changelog partition;
2. at-least-once: flush the producer, then commit the input offsets;
   exactly-once: flush, `send_offsets_to_transaction`, `commit_transaction`: changelog
   records, outputs and input offsets become visible together or not at all;
3. only then each store writes its dirty keys and the changelog offset reached (the
   checkpoint) to its LMDB file (state.py).

On assignment each newly assigned store partition is restored from its changelog (from the
local checkpoint; everything with an empty state dir), with progress in `restore_progress`
and the `on_restore` callback, before its first record: the input partitions of that
number are paused and the restore goes on a batch per loop round (restore.Restorer), so the
loop keeps polling and the other partitions are processed meanwhile. On revocation the open
transaction is committed first (exactly-once), then the partitions are closed (restores
still running for them are dropped). If a transaction must be aborted, every store drops its
uncommitted writes, the window indexes are rebuilt from disk and the consumer seeks back to
the committed offsets: the batch is processed again.

Exactly-once uses one transactional.id per instance, `<app>-<instance_id>`, where the
instance id is kept in the state dir: an instance restarted on the same state dir fences its
predecessor's producer and aborts its open transaction at once. Offsets go with the
consumer's group metadata, so a zombie that lost its partitions is fenced by the group
generation (KIP-447). Input reads are read_committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kafkito.client import Admin
from kafkito.client.errors import ClientError, TransactionError
from kafkito.client.raw_consumer import RawConsumer, TopicPartition, is_partition_eof, message_error
from kafkito.client.raw_producer import RawProducer, delivery_error
from kafkito.streams.aggregate import StatefulNode, StoreSpec
from kafkito.streams.decoding import decoder_from_spec
from kafkito.streams.errors import StreamsError
from kafkito.streams.inspect import register_running, unregister_running
from kafkito.streams.joins import Table
from kafkito.streams.metrics import StreamsMetrics
from kafkito.streams.records import Record, unpack
from kafkito.streams.restore import RestoreProgress, Restorer
from kafkito.streams.runtime import RepartitionSource, Runtime, Source, raw
from kafkito.streams.sinks import ParquetSink
from kafkito.streams.state import PartitionStore
from kafkito.streams.topics import create_topics
from kafkito.streams.topology import Stream

log = logging.getLogger(__name__)

__all__ = ["Runtime", "StreamsApp", "StreamsError"]

BATCH_RECORDS = 1000
"""Records taken per consume call (one loop round)."""
POLL_WAIT_S = 0.1
"""How long one round waits for records; bounds how late punctuation and commits run."""
PURGE_INTERVAL_S = 30.0
"""How often repartition topics are purged below the committed offsets."""
LIVENESS_TIMEOUT_S = 30.0
"""health() says not live when the loop has not polled for this long."""


class StreamsApp:
    """A stream processing application: declare streams, then `run()` or `await run_async()`.

    `name` is the consumer group and the prefix of internal topics. `exactly_once` turns on
    transactions (outputs, changelogs and offsets commit together); without it processing is
    at-least-once. `state_dir` holds the LMDB stores (`<state_dir>/<name>/<store>/<p>`).
    `brokers`/`config` are the client library's; `consumer_settings` and
    `producer_settings` are librdkafka settings applied last.
    """

    def __init__(
        self,
        name: str,
        *,
        brokers: Sequence[str] | str | None = None,
        config: Any = None,
        state_dir: str | Path = ".kafkito-streams",
        exactly_once: bool = False,
        commit_interval_ms: int | None = None,
        instance_id: str | None = None,
        consumer_settings: Mapping[str, Any] | None = None,
        producer_settings: Mapping[str, Any] | None = None,
        on_restore: Callable[[RestoreProgress], None] | None = None,
        batch_records: int = BATCH_RECORDS,
        metrics: StreamsMetrics | None = None,
    ) -> None:
        if not name or any(c in name for c in "/\\ "):
            raise ValueError(f"app name {name!r}: letters, digits, '.', '_' and '-' only")
        self.name = name
        self.brokers = brokers
        self.config = config
        self.state_dir = Path(state_dir) / name
        self.exactly_once = exactly_once
        self.commit_interval_ms = commit_interval_ms or (100 if exactly_once else 1000)
        self.consumer_settings = dict(consumer_settings or {})
        self.producer_settings = dict(producer_settings or {})
        self.on_restore = on_restore
        self.batch_records = batch_records
        self._instance_id = instance_id
        self._sources: dict[str, Source] = {}
        self._internal: set[str] = set()
        self._repartitions: dict[str, tuple[str, int | None]] = {}
        self._output_topics: set[str] = set()
        self._joins: list[tuple[str, str]] = []  # (stream topic, table topic)
        self._stores: dict[str, StoreSpec] = {}
        self._nodes: dict[str, StatefulNode] = {}
        self._counter = 0
        self._running = False
        self._stopping = threading.Event()
        self.restore_progress: dict[tuple[str, int], RestoreProgress] = {}
        """Per (store, partition): the last restore's progress (for health and the console)."""
        self.processed = 0
        """Records taken from sources so far (this process)."""
        self.dead_letter_topic = f"{name}-dead-letters"
        self.metrics = metrics or StreamsMetrics.default()
        self.lag: dict[tuple[str, int], int] = {}
        """Per assigned (topic, partition): end offset minus position, refreshed each second."""
        self._last_poll = 0.0
        self._lag_at = 0.0
        self._fatal: BaseException | None = None

    # -- building --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._running:
            raise StreamsError("the topology cannot change while the app runs")

    def stream(
        self,
        topic: str,
        *,
        value: Any = "json",
        key: Any = "text",
        timestamp: Callable[[Any], int] | None = None,
    ) -> Stream:
        """The records of `topic`. `value` and `key` say how to decode: a type by the flow's
        annotation rules (bytes, str, dict/list/Any as JSON, a pydantic model, a msgspec
        Struct, X | None; decoding.py), 'json', 'text', 'raw' or a callable; an unsupported
        type raises StreamsError here;
        `timestamp(value) -> ms` extracts event time (default: the record's timestamp).
        A record that fails to decode goes to `<app>-dead-letters` with the error in its
        headers, and processing goes on."""
        self._check_open()
        if topic in self._sources:
            raise ValueError(f"topic {topic!r} is already a stream of this app: reuse it")
        decode_key = decoder_from_spec(key, what="key", topic=topic)
        decode_value = decoder_from_spec(value, what="value", topic=topic)
        source = Source(topic, decode_key, decode_value, timestamp)
        self._sources[topic] = source
        return Stream(self, source, topics=(topic,))

    def table(self, topic: str, *, value: Any = "json", name: str | None = None) -> Table:
        """The (compacted) `topic` as a table, the latest value per text key, to join streams
        to (`stream.join(table, fn)`). Its store is restored from the topic itself."""
        self._check_open()
        if topic in self._sources:
            raise ValueError(f"topic {topic!r} is already a stream or table of this app")
        decode = decoder_from_spec(value, what="value", topic=topic)
        store = self._name(name, f"table-{topic}") if name else f"table-{topic}"
        if store in self._stores:
            raise ValueError(f"store {store!r} is already used in this app")
        spec = StoreSpec(store, topic, topic, source_backed=True)
        self._stores[store] = spec
        table = Table(self, topic, spec, decode)
        source = Source(topic, raw, raw, None)
        source.children.append(table.node)
        self._sources[topic] = source
        return table

    def _internal_source(self, topic: str, *, value: Any) -> Stream:
        def decode_value(data: bytes | None) -> Any:
            return None if data is None else unpack(data, value)

        source = RepartitionSource(topic, raw, decode_value, None)
        self._sources[topic] = source
        self._internal.add(topic)
        return Stream(self, source, topics=(topic,))

    def _name(self, name: str | None, kind: str) -> str:
        if name is None:
            self._counter += 1
            name = f"{kind}-{self._counter}"
        if any(c in name for c in "/\\ "):
            raise ValueError(f"name {name!r}: letters, digits, '.', '_' and '-' only")
        return name

    def _repartition_topic(self, name: str | None, *, source: str, partitions: int | None) -> str:
        topic = f"{self.name}-{self._name(name, 'repartition')}-repartition"
        if topic in self._repartitions:
            raise ValueError(f"repartition {name!r} is already used in this app")
        self._repartitions[topic] = (source, partitions)
        return topic

    def _store(self, name: str | None, kind: str, *, topic: str, ttl_ms: int | None) -> StoreSpec:
        store = self._name(name, kind)
        if store in self._stores:
            raise ValueError(f"store {store!r} is already used in this app")
        spec = StoreSpec(store, topic, f"{self.name}-{store}-changelog", ttl_ms)
        self._stores[store] = spec
        return spec

    # -- running ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its round, commit and leave (thread- and signal-safe)."""
        self._stopping.set()

    def run(self) -> None:
        """Run until `stop()` (or SIGINT/SIGTERM in the main thread)."""
        if self._is_async():
            raise StreamsError("a step is an async function: use `await app.run_async()`")
        restore = self._signals()
        try:
            self._start()
            try:
                while not self._stopping.is_set():
                    self._round()
                self._commit()
            except BaseException as exc:
                self._fatal = exc
                raise
            finally:
                self._shutdown()
        finally:
            restore()

    async def run_async(self) -> None:
        """Run in asyncio until `stop()`: records of different keys go through async steps
        concurrently, records of one key (per partition) in order."""
        await asyncio.to_thread(self._start)
        try:
            while not self._stopping.is_set():
                restoring = bool(self._restores.todo)
                if restoring:
                    await asyncio.to_thread(self._restore_step)
                msgs = await asyncio.to_thread(
                    self._consumer.consume, self.batch_records, 0 if restoring else POLL_WAIT_S
                )
                self._begin()  # exactly-once: what the batch produces joins the transaction
                groups: dict[tuple[str, int, bytes | None], list[tuple[Source, Record]]] = {}
                for source, rec, msg in self._records(msgs):
                    groups.setdefault((rec.topic, rec.partition, msg.key()), []).append(
                        (source, rec)
                    )
                self._tick()
                await asyncio.gather(*(self._run_key(items) for items in groups.values()))
                now = _now_ms()
                for node in self._nodes.values():
                    await node.aemit_to(node.punctuate(now))
                if now >= self._next_commit:
                    await asyncio.to_thread(self._commit)
                    self._refresh_lag()
            await asyncio.to_thread(self._commit)
        except BaseException as exc:
            self._fatal = exc
            raise
        finally:
            await asyncio.to_thread(self._shutdown)

    @staticmethod
    async def _run_key(items: list[tuple[Source, Record]]) -> None:
        for source, rec in items:
            await source.apush(rec)

    def _is_async(self) -> bool:
        import inspect

        for source in self._sources.values():
            for node in source.walk():
                fn = getattr(node, "fn", None)
                if fn is not None and inspect.iscoroutinefunction(fn):
                    return True
        return False

    def _signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda *_: self.stop())

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    @property
    def instance_id(self) -> str:
        """This instance's id: given, else kept in the state dir (stable across restarts)."""
        if self._instance_id is None:
            path = self.state_dir / "instance-id"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(uuid.uuid4().hex[:12])
            self._instance_id = path.read_text().strip()
        return self._instance_id

    def _start(self) -> None:
        if not self._sources:
            raise StreamsError("the app has no streams: call app.stream(topic) first")
        self._running = True
        self._failures: list[ClientError] = []
        self._offsets: dict[tuple[str, int], int] = {}
        self._in_txn = False
        self._dirty_offsets = False
        self._changelog_next: dict[tuple[str, int], int] = {}
        self._create_topics()
        self._admin = Admin(self.config, brokers=self.brokers)
        self._purged_at = time.monotonic()
        consumer = {
            "group.id": self.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            # The same partition numbers of every topic to one member: co-partitioned state
            # (a stream and the table it joins) is on one instance.
            "partition.assignment.strategy": "range",
            **self.consumer_settings,
        }
        producer: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            **self.producer_settings,
        }
        if self.exactly_once:
            producer.setdefault("transactional.id", f"{self.name}-{self.instance_id}")
            # Kafka Streams' choice: a crashed instance's open transaction holds readers back
            # (read_committed) for at most 10 s when no restart on its state dir fences it.
            producer.setdefault("transaction.timeout.ms", 10_000)
            producer.setdefault("socket.timeout.ms", producer["transaction.timeout.ms"])
        self._producer = RawProducer(self.config, brokers=self.brokers, settings=producer)
        self._runtime = Runtime(self._producer, self._failures)
        self._sinks: list[ParquetSink] = []
        for source in self._sources.values():
            for node in source.walk():
                node.bind(self._runtime)
                if isinstance(node, StatefulNode):
                    self._nodes[node.spec.name] = node
                if isinstance(node, ParquetSink):
                    node.prefix = f"part-{self.name}-{self.instance_id}"
                    self._sinks.append(node)
        if self.exactly_once:
            self._producer.init_transactions()
        self._restorer = RawConsumer(
            self.config,
            brokers=self.brokers,
            settings={
                "group.id": f"{self.name}-restore",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            },
        )
        self._restores = Restorer(self._restorer, report=self._report_restore, opened=self._opened)
        self._paused: dict[int, list[Any]] = {}  # partition number -> paused input partitions
        self._consumer = RawConsumer(self.config, brokers=self.brokers, settings=consumer)
        self._consumer.subscribe(
            sorted(self._sources),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._next_commit = _now_ms() + self.commit_interval_ms
        register_running(self)  # for a console in this process (inspect.py)
        log.info(
            "streams app %s started (instance %s, %s)",
            self.name,
            self.instance_id,
            "exactly-once" if self.exactly_once else "at-least-once",
        )

    def _create_topics(self) -> None:
        admin = Admin(self.config, brokers=self.brokers)
        try:
            create_topics(
                admin,
                sources=[t for t in self._sources if t not in self._internal],
                repartitions=self._repartitions,
                joins=self._joins,
                stores=self._stores.values(),
                dead_letters=self.dead_letter_topic,
            )
        finally:
            admin.close()

    def _records(self, msgs: list[Any]) -> list[tuple[Source, Record, Any]]:
        """Decode a batch; bad records go to the dead-letter topic; offsets are noted."""
        out = []
        offsets = self._offsets
        self._last_poll = time.monotonic()
        counts: dict[str, int] = {}
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if is_partition_eof(error):
                    continue
                raise StreamsError(f"consume failed: {message_error(error)}")
            topic, partition = msg.topic(), msg.partition()
            offsets[(topic, partition)] = msg.offset() + 1
            counts[topic] = counts.get(topic, 0) + 1
            source = self._sources[topic]
            try:
                rec = source.record(msg)
            except Exception as exc:  # bad input: dead-letter it, keep going
                self._dead_letter(msg, exc)
                continue
            out.append((source, rec, msg))
        self.processed += len(msgs)
        for topic, count in counts.items():
            self.metrics.processed.labels(self.name, topic).inc(count)
        if msgs:
            self._dirty_offsets = True
        return out

    def _dead_letter(self, msg: Any, exc: Exception) -> None:
        log.warning(
            "streams app %s: %s[%d]@%d cannot be decoded (%s); sent to %s",
            self.name,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            exc,
            self.dead_letter_topic,
        )
        self.metrics.dead_lettered.labels(self.name).inc()
        headers = [
            ("kafkito-error", str(exc).encode()[:1000]),
            ("kafkito-topic", msg.topic().encode()),
            ("kafkito-partition", str(msg.partition()).encode()),
            ("kafkito-offset", str(msg.offset()).encode()),
        ]
        self._begin()
        self._producer.produce(
            self.dead_letter_topic,
            msg.value(),
            msg.key(),
            headers=headers,
            on_delivery=self._runtime._delivered,
        )

    def _begin(self) -> None:
        if self.exactly_once and not self._in_txn:
            self._producer.begin_transaction()
            self._in_txn = True

    def _tick(self) -> int:
        """Read the wall clock once for the batch and hand it to the open stores."""
        now = _now_ms()
        for spec in self._stores.values():
            for store in spec.partitions.values():
                store.clock_ms = now
        return now

    def _round(self) -> None:
        restoring = bool(self._restores.todo)
        if restoring:
            self._restore_step()
        msgs = self._consumer.consume(self.batch_records, 0 if restoring else POLL_WAIT_S)
        self._begin()
        self._tick()
        for source, rec, _ in self._records(msgs):
            source.push(rec)
        now = _now_ms()
        for node in self._nodes.values():
            node.emit_to(node.punctuate(now))
        if now >= self._next_commit:
            self._commit()
            self._refresh_lag()

    def _refresh_lag(self) -> None:
        """Lag per assigned partition from cached watermarks (no request), once a second."""
        if time.monotonic() - self._lag_at < 1.0:
            return
        self._lag_at = time.monotonic()
        lag: dict[tuple[str, int], int] = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                lag[(tp.topic, tp.partition)] = max(0, high - tp.offset)
                self.metrics.lag.labels(self.name, tp.topic, str(tp.partition)).set(
                    lag[(tp.topic, tp.partition)]
                )
        self.lag = lag

    def health(self) -> dict[str, Any]:
        """Liveness (the loop makes progress), readiness (partitions assigned and restored),
        lag, and each store partition's restore progress; answered from state."""
        age = time.monotonic() - self._last_poll if self._last_poll else None
        live = self._fatal is None and age is not None and age < LIVENESS_TIMEOUT_S
        restoring = [f"{s}[{p}]" for (s, p), r in self.restore_progress.items() if not r.done]
        assigned = sum(len(spec.partitions) for spec in self._stores.values())
        return {
            "name": self.name,
            "live": live,
            "ready": live and not restoring and (assigned > 0 or not self._stores),
            "exactly_once": self.exactly_once,
            "processed": self.processed,
            "lag": sum(self.lag.values()),
            "restoring": restoring,
            "stores": [
                {
                    "store": r.store,
                    "partition": r.partition,
                    "restored": r.restored,
                    "total": r.total,
                    "done": r.done,
                    "seconds": round(r.seconds, 3),
                }
                for r in self.restore_progress.values()
            ],
            "last_poll_age_s": None if age is None else round(age, 3),
            "error": None if self._fatal is None else str(self._fatal),
        }

    # -- commits ---------------------------------------------------------------------------

    def _changelog_delivered(self, error: Any, msg: Any) -> None:
        if error is not None:
            self._failures.append(delivery_error(error, topic=msg.topic()))
            return
        key = (msg.topic(), msg.partition())
        offset = msg.offset() + 1
        if offset > self._changelog_next.get(key, -1):
            self._changelog_next[key] = offset

    def _commit(self) -> None:
        """One commit (see the module docstring); an aborted transaction rewinds."""
        self._next_commit = _now_ms() + self.commit_interval_ms
        now = _now_ms()
        started = time.monotonic()
        stores = [
            (spec, p, store)
            for spec in self._stores.values()
            for p, store in spec.partitions.items()
        ]
        wrote = False
        for spec, p, store in stores:
            if spec.ttl_ms:
                store.sweep(now)
            if spec.source_backed:
                continue  # a table: its topic is its changelog
            for key, value, ts in store.dirty():
                self._begin()
                wrote = True
                self._producer.produce(
                    spec.changelog,
                    value,
                    key,
                    partition=p,
                    timestamp_ms=ts,
                    on_delivery=self._changelog_delivered,
                )
        if not (wrote or self._dirty_offsets or self._runtime.produced):
            return  # nothing to commit (an open transaction is only local until used)
        for sink in self._sinks:
            sink.before_commit()  # files first: at-least-once (sinks.py)
        self._runtime.produced = 0
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._offsets.items()]
        try:
            if self.exactly_once:
                self._begin()
                self._producer.flush()
                self._raise_failures()
                if offsets:
                    metadata = self._consumer.group_metadata()
                    # RawProducer resumes a retriable (timed out) call itself
                    self._producer.send_offsets_to_transaction(offsets, metadata)
                self._producer.commit_transaction()
                self._in_txn = False
            else:
                self._producer.flush()
                self._raise_failures()
                if offsets:
                    self._consumer.commit(offsets=offsets, asynchronous=False)
        except TransactionError as exc:
            if exc.abortable:
                log.warning(
                    "streams app %s: transaction aborted (%s); processing again", self.name, exc
                )
                self._abort_and_rewind()
                return
            raise StreamsError(f"commit failed: {exc}") from exc
        self._dirty_offsets = False
        self._purge_repartitions()
        self.metrics.commits.labels(self.name).inc()
        self.metrics.commit_seconds.labels(self.name).set(time.monotonic() - started)
        for spec, p, store in stores:
            if spec.source_backed:
                store.flush(self._offsets.get((spec.topic, p)))
            else:
                store.flush(self._changelog_next.get((spec.changelog, p)))

    def _purge_repartitions(self) -> None:
        """Every PURGE_INTERVAL_S, delete repartition records below the committed offsets
        (read and committed: never needed again), as Kafka Streams does."""
        if not self._repartitions or time.monotonic() - self._purged_at < PURGE_INTERVAL_S:
            return
        self._purged_at = time.monotonic()
        for topic in self._repartitions:
            before = {p: o for (t, p), o in self._offsets.items() if t == topic}
            if not before:
                continue
            try:
                self._admin.delete_records(topic, before)
            except ClientError as exc:  # only space is at stake: say so, go on
                log.warning("streams app %s: purging %s failed: %s", self.name, topic, exc)

    def _raise_failures(self) -> None:
        if self._failures:
            first = self._failures[0]
            self._failures.clear()
            if self.exactly_once:
                raise TransactionError(f"a record was not delivered: {first}", abortable=True)
            raise StreamsError(f"a record was not delivered: {first}") from first

    def _abort_and_rewind(self) -> None:
        """Abort the transaction, forget uncommitted state, go back to committed offsets."""
        self.metrics.aborts.labels(self.name).inc()
        with contextlib.suppress(TransactionError):
            self._producer.abort_transaction()
        self._in_txn = False
        self._failures.clear()
        for sink in self._sinks:
            sink.discard()
        for node in self._nodes.values():
            for p, store in list(node.spec.partitions.items()):
                store.discard()
                node.close_partition(p)
                node.open_partition(p, store)
        assigned = self._consumer.assignment()
        if assigned:
            for tp in self._consumer.committed(assigned):
                if tp.offset >= 0:
                    self._consumer.seek(tp)
                else:
                    self._consumer.seek(TopicPartition(tp.topic, tp.partition, -2))
        self._offsets.clear()
        self._dirty_offsets = False

    # -- rebalances and restore ------------------------------------------------------------

    def _on_assign(self, _consumer: RawConsumer, partitions: list[Any]) -> None:
        wanted = [
            (spec, tp.partition)
            for tp in partitions
            for spec in self._stores.values()
            if spec.topic == tp.topic and tp.partition not in spec.partitions
        ]
        log.info(
            "streams app %s: assigned %s",
            self.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing",
        )
        if not wanted:
            return
        # Apply the assignment now (librdkafka would after this callback) so that the
        # partitions whose stores are not restored yet can be paused until they are.
        self._consumer.assign(partitions)
        self._restores.add(self._jobs(wanted))
        pending = self._restores.pending()
        for tp in partitions:
            if tp.partition in pending:
                self._paused.setdefault(tp.partition, []).append(tp)
        if self._paused:
            self._consumer.pause([tp for tps in self._paused.values() for tp in tps])

    def _restore_step(self) -> None:
        """One batch of the running restores; resume the partitions whose stores are open."""
        self._restores.step()
        pending = self._restores.pending()
        for p in [p for p in self._paused if p not in pending]:
            self._consumer.resume(self._paused.pop(p))

    def _on_revoke(self, _consumer: RawConsumer, partitions: list[Any]) -> None:
        log.info("streams app %s: revoked %d partition(s)", self.name, len(partitions))
        try:
            self._commit()
        except (StreamsError, ClientError) as exc:
            log.warning("streams app %s: commit before revocation failed: %s", self.name, exc)
            if self.exactly_once:
                with contextlib.suppress(TransactionError):
                    self._producer.abort_transaction()
                self._in_txn = False
        self._close_partitions(partitions)

    def _on_lost(self, _consumer: RawConsumer, partitions: list[Any]) -> None:
        log.warning("streams app %s: lost %d partition(s)", self.name, len(partitions))
        if self.exactly_once and self._in_txn:
            with contextlib.suppress(TransactionError):
                self._producer.abort_transaction()
            self._in_txn = False
            for spec in self._stores.values():
                for store in spec.partitions.values():
                    store.discard()
        self._close_partitions(partitions)

    def _close_partitions(self, partitions: list[Any]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        for name, p in self._restores.cancel(revoked):
            self.restore_progress.pop((name, p), None)
        for p, tps in list(self._paused.items()):
            kept = [tp for tp in tps if (tp.topic, tp.partition) not in revoked]
            if kept:
                self._paused[p] = kept
            else:
                del self._paused[p]
        for tp in partitions:
            self._offsets.pop((tp.topic, tp.partition), None)
            for spec in self._stores.values():
                if spec.topic == tp.topic and tp.partition in spec.partitions:
                    self._nodes[spec.name].close_partition(tp.partition)
                    spec.partitions.pop(tp.partition).close()

    def _jobs(
        self, wanted: list[tuple[StoreSpec, int]]
    ) -> list[tuple[StoreSpec, PartitionStore, RestoreProgress]]:
        """A store and a progress record for each (store, partition) to restore."""
        jobs = []
        for spec, p in wanted:
            store = PartitionStore(
                self.state_dir / spec.name / str(p),
                name=spec.name,
                partition=p,
                ttl_ms=spec.ttl_ms,
            )
            progress = RestoreProgress(spec.name, p)
            self.restore_progress[(spec.name, p)] = progress
            jobs.append((spec, store, progress))
        return jobs

    def _report_restore(self, progress: RestoreProgress) -> None:
        labels = (self.name, progress.store, str(progress.partition))
        self.metrics.restore_records.labels(*labels).set(progress.restored)
        self.metrics.restore_total.labels(*labels).set(progress.total)
        self.metrics.restore_done.labels(*labels).set(1 if progress.done else 0)
        if self.on_restore is not None:
            self.on_restore(progress)

    def _opened(self, spec: StoreSpec, store: PartitionStore) -> None:
        spec.partitions[store.partition] = store
        self._nodes[spec.name].open_partition(store.partition, store)

    def _shutdown(self) -> None:
        for closer in (
            lambda: self._admin.close(),
            lambda: self._consumer.close(),
            lambda: self._restores.close(),
            lambda: self._restorer.close(),
            lambda: self._producer.close(5.0),
        ):
            try:
                closer()
            except (ClientError, AttributeError) as exc:
                log.debug("streams app %s: close: %s", self.name, exc)
        for spec in self._stores.values():
            for store in spec.partitions.values():
                store.close()
            spec.partitions.clear()
        unregister_running(self)
        self._running = False


def _now_ms() -> int:
    return int(time.time() * 1000)
