"""The broker's state and request dispatch; owned by one asyncio event loop.

Start-up order: read the metadata log (cluster id, topics, groups), open every partition log
(scanning and cutting torn tails), then listen. Shutdown: stop listening, fsync every log, close
files, write the clean-shutdown marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kafkito.broker.dispatch import (
    NO_RESPONSE,
    ROUTES,
    RawBody,
    RequestContext,
    Route,
    advertised_versions,
    load_handlers,
)
from kafkito.broker.local import DataDirLock
from kafkito.broker.producers.guard import AppendGuard
from kafkito.broker.server import ByteBudget, Listener
from kafkito.broker.settings import BrokerSettings
from kafkito.broker.state import TopicRegistry
from kafkito.clock import Clock, SystemClock
from kafkito.errors import ErrorCode, StorageError, UnsupportedRequest
from kafkito.protocol import codec
from kafkito.protocol.framing import RequestHead, read_request_head
from kafkito.storage.checkpoint import checkpoint_logs, read_checkpoint
from kafkito.storage.cleaner import CleanerState, Throttler, plan_cleaning, run_pass
from kafkito.storage.durability import GroupCommitter, flush_logs
from kafkito.storage.fs import FileSystem, OsFileSystem, off_loop
from kafkito.storage.metalog import MetadataLog
from kafkito.storage.recovery import CLEAN_SHUTDOWN_MARKER, RecoveryPlan, remove_leftovers

if TYPE_CHECKING:
    from kafkito.broker.producers.manager import ProducerStateManager
    from kafkito.broker.txn.coordinator import TxnCoordinator

log = logging.getLogger(__name__)

API_VERSIONS_KEY = 18
_TICK_MS_MAX = 100  # housekeeping granularity: flush.messages is honoured within this
_SIZE = struct.Struct(">i")

# Subsystems (the group coordinator, producer state, transactions, quotas) take part in
# metadata-log replay, compaction, start and stop without core.py knowing their records;
# kafkito.broker.assembly attaches them.
MetaParticipant = Any


class BrokerCore:
    """Everything a handler can reach through `ctx.broker`.

    Build it with kafkito.broker.assembly.build_core, which attaches the collaborators below.
    """

    producers: ProducerStateManager
    """Idempotent-producer state (kafkito.broker.producers)."""
    transactions: TxnCoordinator
    """The transaction coordinator (kafkito.broker.txn)."""

    def __init__(
        self, settings: BrokerSettings, fs: FileSystem | None = None, clock: Clock | None = None
    ) -> None:
        settings.validate()
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        """Time for the subsystems' timeouts (kafkito.clock): the group coordinator's sessions,
        rebalance and join timers. A test passes a FakeClock to drive them."""
        self.fs: FileSystem = fs or OsFileSystem()
        self.metalog = MetadataLog(
            self.fs, os.path.join(settings.data_path, "meta", "metadata.log")
        )
        self.topics = TopicRegistry(settings, self.fs, self.metalog)
        self.committer = GroupCommitter(inline=None if settings.fsync_on_loop else False)
        self.inflight = ByteBudget(settings.max_inflight_bytes)
        self.listener = Listener(self)
        self.cluster_id = ""
        self.host = settings.advertised
        self.port = settings.port
        self.participants: list[MetaParticipant] = []
        self.request_meter: Callable[..., Awaitable[list[bytes | memoryview] | None]] | None = None
        """Set by broker/quotas while a request_percentage quota is configured: `handle` then
        runs requests through it (broker/request_quota). None: no metering, no cost."""
        self.append_guard = AppendGuard()
        """The produce path's checks around an append; given its collaborators by assembly."""
        self._dir_lock: DataDirLock | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.cleaner_state = CleanerState()
        self._uncleanable: set[str] = set()
        """Partitions whose cleaning failed on damaged data: skipped, as Kafka marks them."""
        load_handlers()

    # -- lifecycle -------------------------------------------------------------------------

    def _marker_path(self) -> str:
        return os.path.join(self.settings.data_path, CLEAN_SHUTDOWN_MARKER)

    def load(self) -> None:
        """Replay the metadata log and open every partition log (blocking; before serving).

        With the clean-shutdown marker every log is loaded from its indexes; without it the
        logs are recovered from the recovery-point checkpoint (storage.recovery). Raises
        CorruptLog when fsynced data is damaged.
        """
        data_path = self.settings.data_path
        self.fs.makedirs(data_path)
        self.fs.makedirs(self.topics.log_dir)
        for directory in (data_path, self.topics.log_dir, os.path.dirname(self.metalog.path)):
            if self.fs.exists(directory):
                remove_leftovers(self.fs, directory)
        clean = self.fs.exists(self._marker_path())
        if clean:
            self.topics.recovery = RecoveryPlan(clean=True)
        else:
            if self.fs.exists(self.metalog.path):
                log.info("no clean-shutdown marker in %s: recovering", data_path)
            else:
                log.info("new data directory %s", data_path)
            points = read_checkpoint(self.fs, self.topics.log_dir)
            self.topics.recovery = RecoveryPlan(clean=False, points=points)
        records = self.metalog.open()
        self.topics.begin_replay()
        for participant in self.participants:
            participant.begin_replay()
        for record in records:
            if record.get("type") == "cluster":
                self.cluster_id = str(record["id"])
            elif self.topics.replay(record):
                pass
            else:
                for participant in self.participants:
                    if participant.replay(record):
                        break
        self.topics.finish_replay()
        for participant in self.participants:
            participant.finish_replay()
        if clean:
            # Gone before we serve, durably: a later crash must not pass for a clean stop.
            self.fs.remove(self._marker_path())
            self.fs.fsync_dir(data_path)
        self.cleaner_state = CleanerState.load(self.fs, self.topics.log_dir)
        if not self.cluster_id:
            self.cluster_id = _new_cluster_id()
            self.metalog.append([{"type": "cluster", "id": self.cluster_id}])
        self.compact_metadata()

    def compact_metadata(self) -> None:
        def live() -> Any:
            yield {"type": "cluster", "id": self.cluster_id}
            yield from self.topics.live_records()
            for participant in self.participants:
                yield from participant.live_records()

        self.metalog.compact(live())

    async def start(self) -> tuple[str, int]:
        """Load state and start listening; returns the advertised (host, port).

        Raises DataDirInUse if another broker process holds the data directory.
        """
        self._dir_lock = DataDirLock.acquire(self.settings.data_path)
        try:
            await asyncio.to_thread(self.load)
            _, port = await self.listener.start()
        except BaseException:
            self._dir_lock.release()
            self._dir_lock = None
            raise
        self.port = port
        self._dir_lock.publish(f"{self.host}:{port}")
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        if self.settings.log_cleaner_enable:
            self._tasks.append(asyncio.create_task(self._cleaner_loop()))
        for participant in self.participants:
            start = getattr(participant, "start", None)
            if start is not None:
                await start()
        log.info(
            "kafkito broker listening on %s:%d (data in %s)",
            self.settings.host,
            port,
            self.settings.data_path,
        )
        return self.host, port

    async def stop(self) -> None:
        """Stop serving, fsync every log and index, checkpoint, then write the clean marker.

        The marker is written only if everything before it succeeded (RELIABILITY B7).
        """
        await self.listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        clean = True
        for participant in self.participants:
            stop = getattr(participant, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except OSError as exc:  # e.g. a snapshot on a failed disk: not a clean stop
                    clean = False
                    log.error("stopping %s failed: %s", type(participant).__name__, exc)
        try:
            logs = [p for topic in self.topics.by_name.values() for p in topic.partitions]
            healthy = [p for p in logs if p.failed is None]
            clean = clean and len(healthy) == len(logs)
            for p, error in await off_loop(flush_logs, healthy):
                clean = False
                p.fail(error)
                log.error("%s-%d: fsync at shutdown failed: %s", p.topic, p.partition, error)
            for p in healthy:
                if p.failed is None:
                    p.mark_durable(p.log_end_offset)
            try:
                await checkpoint_logs(self.fs, self.topics.log_dir, logs)
            except OSError as exc:
                clean = False
                log.error("recovery-point checkpoint at shutdown failed: %s", exc)
            await self.topics.settle()  # log starts moved by retention, fsynced off the loop
            self.topics.close()
            try:
                self.compact_metadata()
            except OSError as exc:
                clean = False
                log.error("metadata log compaction at shutdown failed: %s", exc)
            self.metalog.close()
            if clean:
                try:
                    self.fs.write_file_atomic(self._marker_path(), b"")
                except OSError as exc:
                    log.error("cannot write the clean-shutdown marker: %s", exc)
        finally:
            if self._dir_lock is not None:
                self._dir_lock.release()
                self._dir_lock = None

    async def _housekeeping(self) -> None:
        """Periodic fsync of logs not synced on ack, recovery-point checkpoints, retention."""
        settings = self.settings
        tick_ms = min(
            settings.flush_interval_ms, settings.recovery_checkpoint_interval_ms, _TICK_MS_MAX
        )
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + settings.recovery_checkpoint_interval_ms / 1000
        next_retention = 0.0
        last_points: dict[str, int] | None = None
        while True:
            await asyncio.sleep(max(tick_ms, 1) / 1000)
            logs = [p for topic in list(self.topics.by_name.values()) for p in topic.partitions]
            # Cheapest test first: most logs hold nothing unsynced (all of them under
            # durability=always once acknowledged). sync_on_ack first cost 7% of a core at
            # 10,000 idle partitions, every 100 ms.
            due = [
                p
                for p in logs
                if p.durable_offset < p.log_end_offset
                and not p.sync_on_ack
                and p.failed is None
                and p.flush_due(p._clock_ms(), settings.flush_interval_ms)
            ]
            if due:
                # all at once: they share one group-commit round (its fsyncs in parallel, in
                # the worker threads when there are many), not a round each one after another
                outcomes = await asyncio.gather(
                    *(self.committer.flush(p) for p in due), return_exceptions=True
                )
                for outcome in outcomes:  # a StorageError: logged, that log is now read-only
                    if isinstance(outcome, BaseException) and not isinstance(outcome, StorageError):
                        raise outcome
            if loop.time() >= next_checkpoint:
                next_checkpoint = loop.time() + settings.recovery_checkpoint_interval_ms / 1000
                try:
                    last_points = await checkpoint_logs(
                        self.fs, self.topics.log_dir, logs, last_points
                    )
                except OSError as exc:
                    last_points = None
                    log.error("recovery-point checkpoint failed: %s", exc)
            if loop.time() >= next_retention:
                next_retention = loop.time() + settings.retention_check_interval_ms / 1000
                self.apply_retention()

    async def _cleaner_loop(self) -> None:
        """Clean compacted logs one pass at a time; sleep log.cleaner.backoff.ms when idle."""
        while True:
            try:
                cleaned = await self.clean_logs()
            except Exception:
                # Our bug if it happens, but one failed pass must not end compaction of every
                # topic for the rest of the process: log it whole and carry on.
                log.exception("log cleaner pass failed")
                cleaned = False
            if not cleaned:
                await asyncio.sleep(self.settings.log_cleaner_backoff_ms / 1000)

    async def clean_logs(self, *, force: bool = False) -> bool:
        """Clean the filthiest compacted log that is due (storage.cleaner); False if none.

        The pass runs in a child process (a worker thread on the tests' file systems); the
        segment list is swapped on the loop, and the cleaner-offset-checkpoint is written
        after it.
        """
        plans = []
        live: set[str] = set()
        for topic in list(self.topics.by_name.values()):
            for p in topic.partitions:
                live.add(CleanerState.key(p))
                if CleanerState.key(p) in self._uncleanable:
                    continue
                txns = self.transactions
                plan = plan_cleaning(
                    p,
                    self.cleaner_state,
                    p._clock_ms(),
                    force=force,
                    stable_offset=txns.last_stable_offset(p),
                    aborted=txns.aborted_ranges(p),
                )
                if plan is not None:
                    plans.append(plan)
        if not plans:
            return False
        plan = max(plans, key=lambda candidate: candidate.dirty_ratio)
        settings = self.settings
        result = await run_pass(
            self.fs,
            plan,
            self.cleaner_state,
            Throttler(settings.log_cleaner_io_max_bytes_per_second),
            dedupe_buffer_bytes=settings.log_cleaner_dedupe_buffer_bytes,
            # A child process on the real disk (never the GIL of our loop); in-process on the
            # fault-injecting file systems of the tests, which a child could not share.
            isolated=settings.log_cleaner_in_process and type(self.fs) is OsFileSystem,
        )
        plog = plan.plog
        if result.error is not None:
            self._uncleanable.add(CleanerState.key(plog))
            log.error(
                "%s-%d: cleaning failed, the partition is no longer cleaned until a restart: %s",
                plog.topic,
                plog.partition,
                result.error,
            )
            return False
        for gone in set(self.cleaner_state.first_dirty) - live:  # deleted topics
            del self.cleaner_state.first_dirty[gone]
        await off_loop(self.cleaner_state.save, self.fs, self.topics.log_dir)
        log.info(
            "%s-%d: cleaned offsets %d..%d (%s): %d of %d records removed, %d -> %d bytes",
            plog.topic,
            plog.partition,
            plan.segments[0].base_offset,
            result.first_dirty,
            plan.reason,
            result.records_removed,
            result.records_read,
            result.bytes_read,
            result.bytes_written,
        )
        return True

    def apply_retention(self) -> int:
        """Delete closed segments past retention.ms / retention.bytes; persist log starts."""
        deleted = 0
        for topic in list(self.topics.by_name.values()):
            for p in topic.partitions:
                before = p.log_start_offset
                try:
                    deleted += p.apply_retention()
                except OSError as exc:
                    log.error("%s-%d: retention failed: %s", p.topic, p.partition, exc)
                if p.log_start_offset != before:
                    self.topics.record_log_start(topic.name, p.partition, p.log_start_offset)
        return deleted

    # -- requests --------------------------------------------------------------------------

    async def handle(self, frame: bytes, connection: Any) -> list[bytes | memoryview] | None:
        """Answer one request frame: the size-prefixed response chunks, or None (acks=0)."""
        head = read_request_head(frame)
        route = ROUTES.get(head.api_key)
        if route is None or head.api_version not in route.versions:
            if head.api_key == API_VERSIONS_KEY:
                return [self._api_versions_fallback(head.correlation_id)]
            raise UnsupportedRequest(api_key=head.api_key, api_version=head.api_version)
        if self.request_meter is not None:  # a request quota is configured (request_quota.py)
            return await self.request_meter(self, route, head, frame, connection)
        _ctx, call = self.prepare(route, head, frame, connection)
        return self.answer(head, await call)

    def prepare(
        self, route: Route, head: RequestHead, frame: bytes, connection: Any
    ) -> tuple[RequestContext, Awaitable[Any]]:
        """Decode the request (unless the route is raw): its context and the handler call,
        not started yet (so that request_quota can meter its steps)."""
        peer = getattr(connection, "peer", "?")
        if route.raw:
            ctx = RequestContext(
                self,
                head.api_key,
                head.api_version,
                head.correlation_id,
                None,
                peer,
                frame,
                connection,
            )
            return ctx, route.fn(None, ctx)
        decoded = codec.decode_request(frame, head.api_key, head.api_version)
        ctx = RequestContext(
            self,
            head.api_key,
            head.api_version,
            head.correlation_id,
            decoded.client_id,
            peer,
            None,
            connection,
        )
        return ctx, route.fn(decoded.body, ctx)

    def answer(self, head: RequestHead, result: Any) -> list[bytes | memoryview] | None:
        """Encode a handler's result as the size-prefixed response chunks (None: no answer)."""
        if result is NO_RESPONSE:
            return None
        if isinstance(result, RawBody):
            header = codec.response_header(head.api_key, head.api_version, head.correlation_id)
            total = len(header) + sum(len(c) for c in result.chunks)
            return [_SIZE.pack(total) + header, *result.chunks]
        payload = codec.encode_response(head.api_key, head.api_version, head.correlation_id, result)
        return [_SIZE.pack(len(payload)) + payload]

    def _api_versions_fallback(self, correlation_id: int) -> bytes:
        """KIP-511: an unsupported ApiVersions version gets a v0-layout answer with error 35."""
        keys = advertised_versions()
        body = struct.pack(">ihi", correlation_id, ErrorCode.unsupported_version, len(keys))
        body += b"".join(struct.pack(">hhh", k, lo, hi) for k, lo, hi in keys)
        return _SIZE.pack(len(body)) + body


def _new_cluster_id() -> str:
    """A 22-character URL-safe base64 id, as Kafka's `Uuid.randomUuid().toString()` gives."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
