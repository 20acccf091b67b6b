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
from typing import Any

from kafkito.broker.dispatch import (
    NO_RESPONSE,
    ROUTES,
    RawBody,
    RequestContext,
    advertised_versions,
    load_handlers,
)
from kafkito.broker.local import DataDirLock
from kafkito.broker.server import ByteBudget, Listener
from kafkito.broker.settings import BrokerSettings
from kafkito.broker.state import TopicRegistry
from kafkito.errors import ErrorCode, UnsupportedRequest
from kafkito.protocol import codec
from kafkito.protocol.framing import read_request_head
from kafkito.storage.durability import GroupCommitter
from kafkito.storage.fs import FileSystem, OsFileSystem
from kafkito.storage.metalog import MetadataLog

log = logging.getLogger(__name__)

API_VERSIONS_KEY = 18
_SIZE = struct.Struct(">i")

# Hooks that other subsystems (the group coordinator, producer state) register to take part
# in metadata-log replay and compaction without core.py knowing their records.
MetaParticipant = Any


class BrokerCore:
    """Everything a handler can reach through `ctx.broker`."""

    def __init__(self, settings: BrokerSettings, fs: FileSystem | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.fs: FileSystem = fs or OsFileSystem()
        self.metalog = MetadataLog(
            self.fs, os.path.join(settings.data_path, "meta", "metadata.log")
        )
        self.topics = TopicRegistry(settings, self.fs, self.metalog)
        self.committer = GroupCommitter()
        self.inflight = ByteBudget(settings.max_inflight_bytes)
        self.listener = Listener(self)
        self.cluster_id = ""
        self.host = settings.advertised
        self.port = settings.port
        self.participants: list[MetaParticipant] = []
        self.producers: Any = None
        self._dir_lock: DataDirLock | None = None
        self._tasks: list[asyncio.Task[None]] = []
        load_handlers()

    # -- lifecycle -------------------------------------------------------------------------

    def _marker_path(self) -> str:
        return os.path.join(self.settings.data_path, ".kafkito_cleanshutdown")

    def load(self) -> None:
        """Replay the metadata log and open every partition log (blocking; before serving)."""
        self.fs.makedirs(self.settings.data_path)
        clean = self.fs.exists(self._marker_path())
        if clean:
            self.fs.remove(self._marker_path())
        else:
            log.info("no clean-shutdown marker in %s: recovering", self.settings.data_path)
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
        await self.listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for participant in self.participants:
            stop = getattr(participant, "stop", None)
            if stop is not None:
                await stop()
        clean = True
        for topic in self.topics.by_name.values():
            for p in topic.partitions:
                try:
                    p.flush()
                except OSError as exc:
                    clean = False
                    log.error("%s-%d: fsync at shutdown failed: %s", p.topic, p.partition, exc)
        self.topics.close()
        self.compact_metadata()
        self.metalog.close()
        if clean:
            self.fs.write_file_atomic(self._marker_path(), b"")
        if self._dir_lock is not None:
            self._dir_lock.release()
            self._dir_lock = None

    async def _housekeeping(self) -> None:
        """Retention, and periodic fsync for durability=interval."""
        interval_s = min(self.settings.flush_interval_ms, self.settings.retention_check_interval_ms)
        next_retention = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s / 1000)
            if self.settings.durability == "interval":
                for topic in list(self.topics.by_name.values()):
                    for p in topic.partitions:
                        if p.durable_offset < p.log_end_offset:
                            target = p.log_end_offset
                            try:
                                await asyncio.to_thread(p.flush)
                            except OSError as exc:
                                log.error(
                                    "%s-%d: periodic fsync failed: %s", p.topic, p.partition, exc
                                )
                                continue
                            p.mark_durable(target)
            if loop.time() >= next_retention:
                next_retention = loop.time() + self.settings.retention_check_interval_ms / 1000
                self.apply_retention()

    def apply_retention(self) -> int:
        deleted = 0
        for topic in self.topics.by_name.values():
            for p in topic.partitions:
                before = p.log_start_offset
                deleted += p.apply_retention()
                if p.log_start_offset != before:
                    self.topics.record_log_start(topic.name, p.partition, p.log_start_offset)
        return deleted

    # -- idempotent producers (filled in by the producer-state module) ----------------------

    def check_producer(self, plog: Any, header: Any) -> int | None:
        """Check an idempotent batch's sequence before append.

        Returns the original base offset for a duplicate of a recent batch, None to append;
        raises BrokerError (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, ...).
        """
        if self.producers is None or header.producer_id < 0:
            return None
        return self.producers.check(plog, header)  # type: ignore[no-any-return]

    def record_producer(self, plog: Any, header: Any, base_offset: int) -> None:
        """Remember an appended idempotent batch (for duplicate detection and restarts)."""
        if self.producers is not None and header.producer_id >= 0:
            self.producers.record(plog, header, base_offset)

    # -- requests --------------------------------------------------------------------------

    async def handle(self, frame: bytes, connection: Any) -> list[bytes | memoryview] | None:
        """Answer one request frame: the size-prefixed response chunks, or None (acks=0)."""
        head = read_request_head(frame)
        route = ROUTES.get(head.api_key)
        if route is None or head.api_version not in route.versions:
            if head.api_key == API_VERSIONS_KEY:
                return [self._api_versions_fallback(head.correlation_id)]
            raise UnsupportedRequest(api_key=head.api_key, api_version=head.api_version)
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
            result = await route.fn(None, ctx)
        else:
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
            result = await route.fn(decoded.body, ctx)
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
