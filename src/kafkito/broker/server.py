"""The broker's only socket code: accept, read frames, hand them to the core, write answers.

Reading is an asyncio BufferedProtocol (`RequestStream`): every socket read lands in one
receive buffer shared by all connections and is cut into frames at once (FrameSplitter), one
copy per byte out of that buffer and a join for a frame that spans reads. asyncio's streams
copied each byte three more times (into the stream's buffer, out of it, and the body's join)
and took several awaits per request; measured, the broker's user CPU per produced record fell
by about a quarter (docs/benchmarks.md, "The read path").

Requests on one connection are processed one after another, as Kafka does, with one exception:
Produce requests that follow Produce requests start at once, so a pipelined Produce need not
wait for the fsync of the one before it (each appends before its first await, so the log order
is the request order). Any other request waits until every earlier one is done, so it sees their
effects (a ListOffsets after a Produce sees the write). Answers are written strictly in request
order, as Kafka clients require (KAFKA-NOTES §6 P8).

Bounds (STYLE principle 7), each a BrokerSettings field, each checked where data enters:

* max_frame_bytes: a request's 4-byte size prefix is checked before anything is read or
  allocated for it; -1, 2^31-1 or too big close the connection at once.
* sasl_max_receive_bytes: the same, tighter, until the peer has authenticated (512 KiB).
* max_inflight_bytes: request bytes held across all connections, counted as they arrive (never
  from a declared size, B23): 1,000 sockets that each declare 100 MB and stall hold what they
  sent, not 100 GB. When it is spent, reads pause and TCP pushes back; stalled partial requests
  give their bytes back at their read deadline. A read is sized to what the budget has left,
  so it is overshot by a few bytes per connection at most.
* max_inflight_requests_per_connection: answers not yet written, per connection.
* max_connections, max_connections_per_ip: one more connection is accepted and closed at once
  (a FIN); on a TLS listener the count is taken after the handshake, which
  tls_handshake_timeout_ms bounds.
* idle_timeout_ms: no new request for this long: close.
* request_read_timeout_ms: a request must arrive whole this soon after its first byte
  (slowloris: a 1 byte/s drip is cut off, B24). Both clocks are checked by one watchdog timer
  per connection, every half of the shorter of the two (`Connection._arm_watchdog`).
* response_write_timeout_ms: a peer that stops reading its answers is cut off.
* auth_timeout_ms: a SASL listener's peer must authenticate this soon after connecting.

Security protocols, as Kafka's listeners: PLAINTEXT, SSL (TLS >= 1.2 via the ssl module),
SASL_PLAINTEXT and SASL_SSL. On a SASL listener a connection starts unauthenticated and its
`SaslSession` (kafkito.broker.auth) decides which requests may pass: ApiVersions and
SaslHandshake, then SaslAuthenticate (or, after a v0 handshake, raw unframed tokens that this
loop hands to the session itself); anything else closes the connection without an answer
(KAFKA-NOTES P17). Until then requests are handled one at a time. A failed login is answered
after a delay and the connection is closed.

Teardown: when the peer goes away or breaks the protocol, the loop yields once (so that every
request already received reaches its first await, where its state changes are done: a fully
received Produce is appended, B26), then cancels whatever is still waiting (a long-poll Fetch,
an fsync wait), releases the request bytes it held and closes the socket. When the broker
closes on purpose after an answer (failed login), the answers queued before are written first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from kafkito.errors import ProtocolError
from kafkito.protocol.framing import FrameSplitter, check_frame_size

if TYPE_CHECKING:
    from kafkito.broker.auth import SaslSession, UserStore
    from kafkito.broker.core import BrokerCore
    from kafkito.broker.settings import BrokerSettings

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_PRODUCE_KEY = b"\x00\x00"  # api_key 0, big-endian
_SASL_HANDSHAKE_KEY = b"\x00\x11"  # api_key 17
STOP_GRACE_S = 5.0
_HEADER_BYTES = 8  # api_key, api_version, correlation_id
RECEIVE_BYTES = 256 * 1024
"""The size of one read (asyncio's own default for a socket read)."""
QUEUE_BYTES = 128 * 1024
"""A connection stops reading while complete requests its read loop has not taken yet hold
this much (with the request arriving behind them)."""
_JOIN_BELOW = 16 * 1024
"""Answer chunks smaller than this are joined before writing; larger ones go out as they are."""

_Answer = asyncio.Task[list[bytes | memoryview] | None]
_Pending = asyncio.Queue[tuple[_Answer, int] | None]


class ByteBudget:
    """A global bound on received request bytes held in memory.

    Connections `take` bytes as they arrive (never from a declared size) and stop reading
    while the budget is spent (`spent`); `when_freed` calls them back once a `release`
    leaves room. Both are synchronous, so that a protocol callback or a cancelled task's
    `finally` can use them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: list[Callable[[], None]] = []

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def room(self) -> int:
        """Bytes that may still be taken before the budget is spent."""
        return self.limit - self.used

    def take(self, n: int) -> None:
        self.used += n

    def when_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (once) at the next release that leaves the budget unspent."""
        self._waiters.append(callback)

    def forget(self, callback: Callable[[], None]) -> None:
        """Drop a `when_freed` callback that is no longer wanted (its connection closed)."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(callback)

    def release(self, n: int) -> None:
        self.used -= n
        assert self.used >= 0, f"byte budget released below zero ({self.used})"
        if self._waiters and not self.spent:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter()


class RequestStream(asyncio.BufferedProtocol):
    """One connection's transport: cuts what arrives into request frames and queues them for
    the connection's read loop, and lets that loop wait for room to write its answers.

    Reads land in the listener's receive buffer, shared by every connection (asyncio calls
    `get_buffer`, `recv_into` and `buffer_updated` back to back, so no other connection can
    touch it in between), and each frame is copied out of it once (FrameSplitter). So a
    socket holds only what it sent, and nothing of asyncio's stream machinery copies the
    bytes again on the way.

    Reading pauses while the byte budget is spent, and while complete frames that the read
    loop has not taken yet hold QUEUE_BYTES or more (the loop is busy: TCP pushes back).
    """

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.budget = listener.core.inflight
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self.splitter = FrameSplitter()
        self.frames: deque[bytes] = deque()
        self.queued = 0
        """Body bytes of the frames in `frames`."""
        self.started_at: float | None = None
        """Loop time at which the first byte of the frame in progress arrived."""
        self.error: ProtocolError | None = None
        """A broken frame: raised to the read loop after the frames before it."""
        self.eof = False
        self.lost = False
        self._new: list[bytes] = []
        self._reader: asyncio.Future[None] | None = None
        self._paused = False
        self._waiting_budget = False
        self._write_paused = False
        self._drainers: list[asyncio.Future[None]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio's side ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not subclasses of asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)
        self.listener.accept(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        room = self.budget.room()
        view = self.listener.receive_view
        # Never take much more than the budget has left: a read of body bytes beyond it is
        # held anyway (it has arrived), so keep that overshoot to a few bytes.
        return view if room >= len(view) else view[: max(room, _SIZE.size)]

    def buffer_updated(self, nbytes: int) -> None:
        if self.error is not None:
            return
        splitter = self.splitter
        before = splitter.body_bytes
        new = self._new
        try:
            splitter.feed(self.listener.receive_view[:nbytes], new, self._check_size)
        except ProtocolError as exc:
            self.error = exc
            self._pause()
        finally:
            self.budget.take(splitter.body_bytes - before)
        if new:
            for frame in new:
                self.frames.append(frame)
                self.queued += len(frame)
            new.clear()
            self.started_at = None
        if splitter.mid_frame and self.started_at is None:
            self.started_at = asyncio.get_running_loop().time()
        if self.frames or self.error is not None:
            self._wake()
        self._regulate()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        # Keep a plain TCP connection half-open so that answers to what arrived still go
        # out (as asyncio's streams do); TLS cannot stay half-open.
        assert self.transport is not None
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self._wake()
        drainers, self._drainers = self._drainers, []
        for drainer in drainers:
            if not drainer.done():
                drainer.set_exception(ConnectionResetError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drainers, self._drainers = self._drainers, []
        for drainer in drainers:
            if not drainer.done():
                drainer.set_result(None)

    # -- the read loop's side ----------------------------------------------------------------

    async def next_frame(self) -> bytes | None:
        """The next frame's body; None at a clean end of stream.

        Raises the ProtocolError of a refused frame (after the frames before it), and
        IncompleteReadError when the stream ends inside a frame.
        """
        while not self.frames:
            if self.error is not None:
                raise self.error
            if self.eof:
                if self.splitter.mid_frame:
                    raise asyncio.IncompleteReadError(b"", None)
                return None
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        frame = self.frames.popleft()
        self.queued -= len(frame)  # its budget now travels with the frame to its answer
        self._regulate()
        return frame

    async def drain(self) -> None:
        """Wait until the transport takes more answers (raises ConnectionError once lost)."""
        if self.lost:
            raise ConnectionResetError("connection lost")
        if not self._write_paused:
            return
        drainer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drainers.append(drainer)
        await drainer

    def discard(self) -> None:
        """Give back the budget of every byte still held here (the connection is ending)."""
        if self._waiting_budget:
            self._waiting_budget = False
            self.budget.forget(self._budget_freed)
        self.budget.release(self.queued + self.splitter.held)
        self.frames.clear()
        self.queued = 0
        self.splitter = FrameSplitter()
        self.error = self.error or ProtocolError("connection closed")

    # -- inside ------------------------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        """Refuse a size outside the limits as soon as its prefix is in (before its body)."""
        connection = self.connection
        settings = self.listener.core.settings
        limit = settings.max_frame_bytes
        smallest = _HEADER_BYTES
        if connection is not None and not connection.authenticated:
            limit = min(limit, settings.sasl_max_receive_bytes)
            sasl = connection.sasl
            if sasl is not None and sasl.expects_raw_token:
                smallest = 1
        check_frame_size(size, max_frame_bytes=limit, min_bytes=smallest)

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _regulate(self) -> None:
        """Pause or resume reading: budget spent, or the read loop behind by QUEUE_BYTES."""
        if self.error is not None or self.lost:
            return
        hold = self.budget.spent
        if hold and not self._waiting_budget:
            self._waiting_budget = True
            self.budget.when_freed(self._budget_freed)
        if not hold:
            hold = bool(self.frames) and self.queued + self.splitter.held >= QUEUE_BYTES
        if hold:
            self._pause()
        elif self._paused:
            self._paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    def _pause(self) -> None:
        if not self._paused and self.transport is not None and not self.lost:
            self._paused = True
            self.transport.pause_reading()

    def _budget_freed(self) -> None:
        self._waiting_budget = False
        self._regulate()


class Connection:
    """One client connection: its read loop, its answer writer and its SASL state."""

    def __init__(
        self, core: BrokerCore, stream: RequestStream, sasl: SaslSession | None = None
    ) -> None:
        self.core = core
        self.stream = stream
        assert stream.transport is not None
        self.transport = stream.transport
        peer = self.transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.sasl = sasl
        self._running: set[asyncio.Task[Any]] = set()
        """Requests started and not finished (each removes itself when done)."""
        self._running_other = 0
        """How many of them are not Produce requests."""
        """None on PLAINTEXT and SSL listeners; handlers reach it through ctx.connection."""
        self.authenticated_user: str | None = None
        self.close_after_answer = False
        self.close_delay_s = 0.0
        """With close_after_answer: how long the connection stays open after the answer."""
        """Set by a handler (failed login): write the answers queued so far, then close."""
        self.muted_until = 0.0
        """Loop time before which no request is read: a client over its quota (broker/quotas)."""
        self._waiting = False
        """True while the read loop waits for a request: the idle clock runs, or, once part of
        one has arrived, the read clock."""
        self._waiting_since = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def authenticated(self) -> bool:
        return self.sasl is None or self.sasl.authenticated

    async def _wait_turn(self, frame: bytes) -> None:
        """Start a request only once the ones before it are done, as Kafka does, except that
        Produce requests may overlap one another (each appends before its first await, so the
        log order is the request order; only their fsync waits overlap). So a request sent
        after an acknowledged-or-pending Produce sees that write, and answers stay in order."""
        # O(1) per request: the set and the count are kept by done-callbacks (`_start`), so a
        # producer with many requests in flight costs no scan per frame.
        if not self._running:
            return
        if frame[:2] == _PRODUCE_KEY and self._running_other == 0:
            return
        await asyncio.wait(list(self._running))

    def _start(self, frame: bytes) -> asyncio.Task[list[bytes | memoryview] | None]:
        """Start the request in `frame`, tracked in `_running` until it is done."""
        task = asyncio.create_task(self.core.handle(frame, self))
        self._running.add(task)
        if frame[:2] == _PRODUCE_KEY:
            task.add_done_callback(self._running.discard)
        else:
            self._running_other += 1
            task.add_done_callback(self._other_done)
        return task

    def _other_done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        self._running_other -= 1

    async def serve(self) -> None:
        settings = self.core.settings
        pending: _Pending = asyncio.Queue(maxsize=settings.max_inflight_requests_per_connection)
        writer_task = asyncio.create_task(self._write_answers(pending))
        auth_timer = None
        if not self.authenticated:
            auth_timer = asyncio.get_running_loop().call_later(
                settings.auth_timeout_ms / 1000, self._auth_expired
            )
        graceful = False
        try:
            while not writer_task.done():
                if (mute_s := self.muted_until - asyncio.get_running_loop().time()) > 0:
                    await asyncio.sleep(mute_s)  # throttled: Kafka mutes the channel
                frame = await self._read_frame(settings)
                if frame is None:
                    break
                if not self.authenticated:
                    graceful = await self._serve_unauthenticated(frame, pending)
                    if graceful:
                        break
                    continue
                if self._session_expired(frame):
                    break
                await self._wait_turn(frame)
                task = self._start(frame)
                await pending.put((task, len(frame)))
        except ProtocolError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the peer went away, or the watchdog cut it (idle, a request too slow)
        finally:
            if auth_timer is not None:
                auth_timer.cancel()
            if self._watchdog is not None:
                self._watchdog.cancel()
            await self._teardown(pending, writer_task, graceful=graceful)

    def _session_expired(self, frame: bytes) -> bool:
        """KIP-368: a request other than SaslHandshake after the SASL session ran out closes
        the connection (the client should have re-authenticated), as Kafka does."""
        sasl = self.sasl
        if sasl is None or frame[:2] == _SASL_HANDSHAKE_KEY:
            return False
        if not sasl.expired(time.monotonic()):
            return False
        log.info("closing connection from %s: its SASL session expired", self.peer)
        self.core.inflight.release(len(frame))
        return True

    async def _serve_unauthenticated(self, frame: bytes, pending: _Pending) -> bool:
        """One pre-authentication request, handled to its end; True: close after the answers."""
        sasl = self.sasl
        assert sasl is not None
        if sasl.expects_raw_token:
            # After SaslHandshake v0 the peer sends bare tokens in size-prefixed frames and
            # expects bare tokens back (KAFKA-NOTES P17); a failure simply closes.
            self.core.inflight.release(len(frame))
            answer = await sasl.authenticate(frame, self.peer)
            if answer is None:
                return True
            self.transport.write(_SIZE.pack(len(answer)) + answer)
            try:
                await self._drain()
            except TimeoutError:
                raise ProtocolError("SASL token answer not taken in time") from None
            if sasl.authenticated:
                self.authenticated_user = sasl.user
            return False
        api_key = int.from_bytes(frame[:2], "big", signed=True)
        if not sasl.allows(api_key):
            self.core.inflight.release(len(frame))
            raise ProtocolError(
                f"api_key={api_key} not allowed before authentication ({sasl.state_name})"
            )
        task = asyncio.create_task(self.core.handle(frame, self))
        await pending.put((task, len(frame)))
        await asyncio.wait({task})
        if sasl.authenticated:
            self.authenticated_user = sasl.user
        return self.close_after_answer

    async def _read_frame(self, settings: BrokerSettings) -> bytes | None:
        """The next frame's body, or None at a clean end (EOF, idle timeout).

        Raises ProtocolError for a size outside the limits (RequestStream checks it as soon as
        its prefix arrives); a frame that does not arrive whole within request_read_timeout_ms
        ends in IncompleteReadError (the watchdog cut the connection).
        """
        if self._watchdog is None:
            self._arm_watchdog(settings)
        self._waiting, self._waiting_since = True, asyncio.get_running_loop().time()
        try:
            return await self.stream.next_frame()
        finally:
            self._waiting = False

    def _arm_watchdog(self, settings: BrokerSettings) -> None:
        """Check the idle and request-read clocks every half of the shorter timeout: one timer
        per connection instead of two per request (asyncio.timeout around every read was 13%
        of the loop's profile at 2,000 small requests a second). A timeout is thus seen between
        its due time and half the shorter timeout later (a drip at 1 byte/s meets a 30 s
        request_read_timeout_ms after 30-45 s).

        Both clocks run only while the read loop waits for a request: the idle clock from then,
        the read clock from the later of then and the request's first byte (bytes that wait
        while the broker is busy with earlier requests are not the peer's delay)."""
        idle_s = settings.idle_timeout_ms / 1000
        read_s = settings.request_read_timeout_ms / 1000
        tick_s = min(idle_s, read_s) / 2
        loop = asyncio.get_running_loop()
        stream = self.stream

        def watch() -> None:
            now = loop.time()
            if self._waiting:
                started = stream.started_at
                if started is None:
                    if now - self._waiting_since >= idle_s:
                        log.info("closing idle connection from %s", self.peer)
                        self.transport.close()  # the read loop sees the end and stops
                        return
                elif now - max(started, self._waiting_since) >= read_s:
                    log.warning(
                        "closing connection from %s: request not received whole within %d ms",
                        self.peer,
                        settings.request_read_timeout_ms,
                    )
                    # the read loop sees the stream end inside the frame; the bytes it held
                    # (even while the byte budget paused it) go back in the teardown
                    self.transport.abort()
                    return
            self._watchdog = loop.call_at(now + tick_s, watch)

        self._watchdog = loop.call_at(loop.time() + tick_s, watch)

    def _auth_expired(self) -> None:
        if not self.authenticated:
            log.warning(
                "closing connection from %s: not authenticated within %d ms",
                self.peer,
                self.core.settings.auth_timeout_ms,
            )
            self.transport.abort()

    async def _drain(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives as the
        # drain completes, and the writer task then outlives Listener.stop() (a hung shutdown).
        async with asyncio.timeout(self.core.settings.response_write_timeout_ms / 1000):
            await self.stream.drain()

    async def _write_answers(self, pending: _Pending) -> None:
        """Write each answer in request order. Answers already done when one is written go
        out in the same `write` (pipelined Produce requests covered by one fsync become one
        send), and the drain, a timer and an await, is skipped while the transport holds
        nothing unsent."""
        item = await pending.get()
        while item is not None:
            out: list[bytes | memoryview] = []
            carried = False  # `item` is the next answer, taken already but not done yet
            while True:
                task, size = item
                try:
                    chunks = await task
                except ProtocolError as exc:
                    log.warning("closing connection from %s: %s", self.peer, exc)
                    self._abort_after(out)
                    return
                except Exception:
                    log.exception("internal error answering %s; closing its connection", self.peer)
                    self._abort_after(out)
                    return
                finally:
                    self.core.inflight.release(size)
                if chunks:
                    out.extend(chunks)
                if self.close_after_answer or pending.empty():
                    break
                item = pending.get_nowait()
                if item is None or not item[0].done():
                    carried = True
                    break
            try:
                sent = not out or await self._send(out)
            except BaseException:  # cancelled (teardown): the carried answer is ours to drop
                if carried and item is not None:
                    item[0].cancel()
                    self.core.inflight.release(item[1])
                raise
            if not sent:
                if carried and item is not None:
                    item[0].cancel()
                    self.core.inflight.release(item[1])
                return
            if self.close_after_answer:
                # e.g. a failed login: the answer is out; the close waits the failure delay
                if self.close_delay_s > 0:
                    await asyncio.sleep(self.close_delay_s)
                self.transport.close()
                return
            if not carried:
                item = await pending.get()
        # None: the reader stopped gracefully; everything queued before it is written.

    def _abort_after(self, chunks: list[bytes | memoryview]) -> None:
        """Hand the answers before a failed one to the socket, then cut the connection."""
        if chunks:
            write_chunks(self.transport, chunks)
        self.transport.abort()

    async def _send(self, chunks: list[bytes | memoryview]) -> bool:
        """Write `chunks` and wait until the transport takes them; False: connection gone."""
        write_chunks(self.transport, chunks)
        transport = self.transport
        if not transport.is_closing() and transport.get_write_buffer_size() == 0:
            return True  # all sent at once: nothing to drain
        try:
            await self._drain()
        except TimeoutError:
            log.warning(
                "closing connection from %s: answer not taken within %d ms",
                self.peer,
                self.core.settings.response_write_timeout_ms,
            )
            self.transport.abort()
            return False
        except (ConnectionError, ssl.SSLError):
            return False
        return True

    async def _teardown(
        self, pending: _Pending, writer_task: asyncio.Task[None], *, graceful: bool
    ) -> None:
        if graceful and not writer_task.done():
            with contextlib.suppress(asyncio.QueueFull):
                pending.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.shield(writer_task), self.core.settings.response_write_timeout_ms / 1000
                )
        else:
            # Let each request already received reach its first await (where handlers change
            # state), so that nothing fully received is half-done; then abandon the waits.
            await asyncio.sleep(0)
        if not writer_task.done():
            writer_task.cancel()
        with contextlib.suppress(BaseException):
            await writer_task
        while not pending.empty():
            item = pending.get_nowait()
            if item is None:
                continue
            task, size = item
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            self.core.inflight.release(size)
            if not task.cancelled():
                exc = task.exception()
                if isinstance(exc, Exception) and not isinstance(exc, ProtocolError):
                    log.error("internal error answering %s", self.peer, exc_info=exc)
        self.stream.discard()
        self.transport.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.stream.closed), 1)


class _Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...


def write_chunks(writer: _Writable, chunks: list[bytes | memoryview]) -> None:
    """Queue an answer's chunks on the transport without copying the big ones.

    Python 3.11's `writelines` joins every chunk into one new `bytes`, a copy of each
    fetched record byte. Here runs of small chunks (headers, small answers) are still joined,
    so a small answer stays one `send`, but a chunk of at least _JOIN_BELOW bytes (records
    read from a segment) goes to `transport.write` as it is: on an idle transport that is a
    `send` straight from the segment bytes, and only what the socket does not take at once
    is copied into the transport's buffer.
    """
    small: list[bytes | memoryview] = []
    for chunk in chunks:
        if len(chunk) < _JOIN_BELOW:
            small.append(chunk)
            continue
        if small:
            writer.write(small[0] if len(small) == 1 else b"".join(small))
            small = []
        writer.write(chunk)
    if small:
        writer.write(small[0] if len(small) == 1 else b"".join(small))


def tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """The server-side TLS context: TLS >= 1.2, the broker's certificate, optional client CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    assert settings.ssl_certfile is not None
    context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    if settings.ssl_cafile:
        context.load_verify_locations(settings.ssl_cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Listener:
    """The TCP (or TLS) server; counts connections against the global and per-address caps."""

    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()
        self.per_ip: Counter[str] = Counter()
        self.refused = 0
        """Connections closed at once because a cap was reached (for tests and metrics)."""
        self.users: UserStore | None = None
        self.receive_view = memoryview(bytearray(RECEIVE_BYTES))
        """Where every connection's reads land (RequestStream): each is taken apart before
        the next read, so one buffer serves them all."""

    async def start(self) -> tuple[str, int]:
        settings = self.core.settings
        tls = tls_context(settings) if settings.tls_enabled else None
        if settings.sasl_enabled:
            from kafkito.broker.auth import UserStore

            assert settings.sasl_users_file is not None
            self.users = await asyncio.to_thread(UserStore.load, settings.sasl_users_file)
        self.server = await asyncio.get_running_loop().create_server(
            lambda: RequestStream(self),
            settings.host,
            settings.port,
            reuse_address=True,
            backlog=min(settings.max_connections, 4096),
            ssl=tls,
            ssl_handshake_timeout=settings.tls_handshake_timeout_ms / 1000 if tls else None,
        )
        sock = self.server.sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    def accept(self, stream: RequestStream) -> None:
        """A new connection (after its TLS handshake): refuse it over a cap, else serve it."""
        settings = self.core.settings
        transport = stream.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if len(self.connections) >= settings.max_connections:
            self._refuse(stream, "%d connections open", len(self.connections))
            return
        if self.per_ip[ip] >= settings.max_connections_per_ip:
            self._refuse(stream, "%d connections open from %s", self.per_ip[ip], ip)
            return
        connection = Connection(self.core, stream, self._new_session())
        stream.connection = connection
        task = asyncio.get_running_loop().create_task(self._serve(connection, ip))
        self.connections.add(task)
        self.per_ip[ip] += 1
        # a done-callback, not a `finally`: a task cancelled before it ran (a stop right after
        # the accept) never enters its coroutine
        task.add_done_callback(functools.partial(self._served, connection, ip))

    async def _serve(self, connection: Connection, ip: str) -> None:
        try:
            await connection.serve()
        except asyncio.CancelledError:
            pass  # broker shutdown
        except Exception:
            log.exception("internal error serving %s", ip)
            connection.transport.abort()

    def _served(self, connection: Connection, ip: str, task: asyncio.Task[None]) -> None:
        self.connections.discard(task)
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
        if not connection.transport.is_closing():  # it never ran: nothing tore it down
            connection.stream.discard()
            connection.transport.abort()

    def _new_session(self) -> SaslSession | None:
        if self.users is None:
            return None
        from kafkito.broker.auth import SaslSession

        return SaslSession(self.core.settings, self.users)

    def _refuse(self, stream: RequestStream, why: str, *args: object) -> None:
        self.refused += 1
        assert stream.transport is not None
        log.warning(
            "refusing connection from %s: " + why,
            stream.transport.get_extra_info("peername"),
            *args,
        )
        stream.discard()
        stream.transport.close()  # a FIN, not a reset: the client sees a clean end of stream

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = list(self.connections)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a connection that does not wind down in time is cut off regardless.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in stuck:
                log.warning(
                    "connection task did not stop within %.0f s; abandoning it", STOP_GRACE_S
                )
                task.cancel()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
