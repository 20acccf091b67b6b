"""The broker's only socket code: accept, read frames, hand them to the core, write answers.

Requests on one connection may be processed concurrently (a pipelined Produce need not wait for
the fsync of the one before it), but answers are written strictly in request order, as Kafka
clients require (KAFKA-NOTES §6 P8). Handlers that change state do so before their first await,
so the order of effects matches the order of requests.

Bounds, each checked where data enters: the frame size (refused from the 4-byte prefix, before
any allocation), the bytes of requests in flight across all connections, the requests in flight
per connection, the number of connections, and an idle deadline. A peer that breaks the protocol
loses its own connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import TYPE_CHECKING

from kafkito.errors import ProtocolError

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")


class ByteBudget:
    """A global bound on request bytes held in memory; a single oversize request may pass alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    async def release(self, n: int) -> None:
        async with self._changed:
            self.used -= n
            self._changed.notify_all()


class Connection:
    """One client connection."""

    def __init__(
        self, core: BrokerCore, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.core = core
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.authenticated_user: str | None = None

    async def serve(self) -> None:
        settings = self.core.settings
        pending: asyncio.Queue[tuple[asyncio.Task[list[bytes | memoryview] | None], int] | None]
        pending = asyncio.Queue(maxsize=settings.max_inflight_requests_per_connection)
        writer_task = asyncio.create_task(self._write_answers(pending))
        idle_s = settings.idle_timeout_ms / 1000
        try:
            while not writer_task.done():
                try:
                    prefix = await asyncio.wait_for(self.reader.readexactly(4), idle_s)
                except TimeoutError:
                    log.info("closing idle connection from %s", self.peer)
                    break
                (size,) = _SIZE.unpack(prefix)
                if size < 8 or size > settings.max_frame_bytes:
                    log.warning(
                        "closing connection from %s: frame size %d outside 8..%d",
                        self.peer,
                        size,
                        settings.max_frame_bytes,
                    )
                    break
                await self.core.inflight.acquire(size)
                try:
                    frame = await asyncio.wait_for(self.reader.readexactly(size), idle_s)
                except BaseException:
                    await self.core.inflight.release(size)
                    raise
                task = asyncio.create_task(self.core.handle(frame, self))
                await pending.put((task, size))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                pending.put_nowait(None)
            if not writer_task.done():
                # Let answers already being computed go out, unless the peer is gone.
                try:
                    await asyncio.wait_for(asyncio.shield(writer_task), 5)
                except (TimeoutError, asyncio.CancelledError):
                    writer_task.cancel()
            await self._drain_pending(pending)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _write_answers(
        self,
        pending: asyncio.Queue[tuple[asyncio.Task[list[bytes | memoryview] | None], int] | None],
    ) -> None:
        while (item := await pending.get()) is not None:
            task, size = item
            try:
                chunks = await task
            except ProtocolError as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                self.writer.transport.abort()
                return
            except Exception:
                log.exception("internal error answering %s; closing its connection", self.peer)
                self.writer.transport.abort()
                return
            finally:
                await self.core.inflight.release(size)
            if chunks:
                self.writer.writelines(chunks)
                await self.writer.drain()

    async def _drain_pending(
        self,
        pending: asyncio.Queue[tuple[asyncio.Task[list[bytes | memoryview] | None], int] | None],
    ) -> None:
        while not pending.empty():
            item = pending.get_nowait()
            if item is None:
                continue
            task, size = item
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await self.core.inflight.release(size)


class Listener:
    """The TCP server; counts connections against the configured cap."""

    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        settings = self.core.settings
        self.server = await asyncio.start_server(
            self._accept, settings.host, settings.port, reuse_address=True, limit=1 << 20
        )
        sock = self.server.sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.connections) >= self.core.settings.max_connections:
            log.warning("refusing connection: %d connections open", len(self.connections))
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await Connection(self.core, reader, writer).serve()
        except asyncio.CancelledError:
            pass  # broker shutdown; asyncio's stream callback must not see the cancellation
        finally:
            self.connections.discard(task)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        for task in list(self.connections):
            with contextlib.suppress(BaseException):
                await task
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
