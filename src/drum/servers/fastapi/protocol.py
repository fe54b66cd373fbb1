"""uvicorn's httptools protocol, receiving large request bodies whole.

uvicorn hands a body to the app in socket-read pieces (256 KiB): each is copied three times
(parser, per-cycle bytearray, `bytes()` in `receive`), reading pauses after 64 KiB until the app
asks for more, and the app's task wakes once per piece. A 20 MB CSV spent ~22 ms there on a
2-core machine, twice what the socket needs. For a request whose Content-Length lies between
`WHOLE_BODY_MIN_BYTES` and the upload limit, this protocol puts the body into one `bytes` object of
that length (`body_memory.BodyBuffer`: an answered body's memory, or fresh memory): the part that
came with the head is copied there, and the rest is read by the socket straight into it
(`DirectBodyReader`, a buffered protocol the connection is handed to until the body is complete; not
on TLS connections, whose pieces are copied). It reads without pausing and wakes the app once:
`receive()` returns that very object, so the app gets the body without another copy. Smaller bodies,
chunked bodies and the streamed prefixes (the backend proxy forwards those as they arrive) keep
uvicorn's behaviour.

Bodies received whole are bounded together (`BodyBudget`, DRUM_FASTAPI_BODY_BUFFER_SIZE): a request
whose body would take the bytes held by one worker past the budget is not read (its client's sends
block, TCP's backpressure) until earlier large requests have been answered, in arrival order; one
body larger than the budget is read when it is alone. A worker with one prediction thread gains
nothing from holding more bodies than it can parse next, and 64 clients sending 20 MB at once no
longer make it hold 1.3 GB. The memory of answered bodies, up to the budget, is kept for the next ones
(`body_memory.BodyPool`).

(Parsing a CSV body's first parts while the rest arrives was tried and measured no faster on 2
CPUs: the parser threads and the receiving loop then contend for the same cores.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drum.servers.fastapi.body_memory import BodyBuffer, BodyPool
from drum.serving import http
from drum.serving.routes import STREAMED_PREFIXES

#: The scope key of a request's disconnect watch: `scope[ON_DISCONNECT](callback)` calls `callback` once if
#: the client leaves before the response is complete (set by drum's HTTP protocol; absent elsewhere).
ON_DISCONNECT = "drum.on_disconnect"

if TYPE_CHECKING:
    from drum.config.server_config import ServerConfig

#: The body bytes that renew the read timeout: slower than this per DRUM_REQUEST_READ_TIMEOUT is a 408.
READ_TIMEOUT_MIN_BYTES = 1024
#: Bodies at least this large (by Content-Length) are received whole.
WHOLE_BODY_MIN_BYTES = 1 << 18

class BodyBudget:
    """Bytes of bodies held at once by one worker process (on its event loop). `claim` takes a body's
    size at once, or queues it (False) and calls its `granted` callback when earlier bodies are given
    back; a body is always granted when nothing is held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._queue: deque[tuple[int, Callable[[], None]]] = deque()

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    def claim(self, size: int, granted: Callable[[], None]) -> bool:
        if not self._queue and self._fits(size):
            self.held += size
            return True
        self._queue.append((size, granted))
        return False

    def give_back(self, size: int) -> None:
        self.held -= size
        while self._queue and self._fits(self._queue[0][0]):
            size, granted = self._queue.popleft()
            self.held += size
            granted()

    def withdraw(self, granted: Callable[[], None]) -> None:
        """Drop a queued claim (its connection closed); the ones behind it may now fit."""
        self._queue = deque(entry for entry in self._queue if entry[1] is not granted)
        self.give_back(0)


try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools not installed: uvicorn's h11 protocol serves
    HttpToolsProtocol = None


def configure_whole_bodies(config: ServerConfig) -> None:
    """Set the upload limit, the streamed prefixes and this process's body budget
    (DRUM_FASTAPI_BODY_BUFFER_SIZE) on `WholeBodyHttpToolsProtocol`, in each serving process."""
    if WholeBodyHttpToolsProtocol is None:  # pragma: no cover
        return
    budget = config.settings.body_buffer_size
    WholeBodyHttpToolsProtocol.max_body = config.settings.max_upload_size
    WholeBodyHttpToolsProtocol.streamed_prefixes = tuple(config.url_prefix + p for p in STREAMED_PREFIXES)
    WholeBodyHttpToolsProtocol.budget = BodyBudget(budget) if budget else None
    WholeBodyHttpToolsProtocol.pool = BodyPool(budget) if budget else None
    WholeBodyHttpToolsProtocol.read_timeout = float(config.settings.request_read_timeout)
    WholeBodyHttpToolsProtocol.max_head = config.settings.max_header_size


#: Writes at least this large go out at once (after what is pending), never held for the end of the turn.
COALESCE_MAX = 1 << 16


class CoalescingTransport:
    """A connection's transport whose small writes during one turn of the event loop go out together at
    its end: uvicorn writes a response's head and its body separately, two sends (each a trip through
    the kernel's TCP stack, ~15 µs on loopback) where one `writelines` does. Order is kept; `close`
    sends what is pending first; everything else is the transport's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        pending = self._pending
        if len(data) >= COALESCE_MAX:
            if pending is not None:
                pending.append(data)
                self._flush()
            else:
                self._transport.write(data)
        elif pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if not pending or self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DisconnectWatch:
    """`scope[ON_DISCONNECT]`: `watch(callback)` calls `callback` once if the client leaves before the
    response is complete (`fire`, from the connection's `connection_lost`); on the event loop's thread."""

    __slots__ = ("_callbacks", "gone")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] | None = None
        self.gone = False

    def __call__(self, callback: Callable[[], None]) -> None:
        if self.gone:
            asyncio.get_running_loop().call_soon(callback)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def fire(self) -> None:
        if self.gone:
            return
        self.gone = True
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback()


class DirectBodyReader(asyncio.BufferedProtocol):
    """A connection's protocol while the rest of a whole body arrives: the socket reads straight into the
    body's buffer. A piece of the body otherwise lands in the loop's read buffer, is copied into a `bytes`
    for `data_received`, then into the body: two of its three copies are saved (on a 10 MB body, most of
    the work that is not the kernel's). It asks for no more than the body's remaining bytes, so a
    pipelined request stays in the socket for the HTTP protocol, which gets the connection back once the
    body is complete."""

    __slots__ = ("http", "buffer")

    def __init__(self, http: Any, buffer: BodyBuffer) -> None:
        self.http = http
        self.buffer: BodyBuffer | None = buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self.buffer is not None, "the body is complete"
        return self.buffer.free()

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self.buffer
        self.http.direct_body_read(nbytes)
        if buffer.complete:  # the connection is the HTTP protocol's again, but uvloop may keep this
            self.buffer = None  # reader's methods: it must not keep the body (the pool reuses its memory)

    def eof_received(self) -> bool | None:
        return self.http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()


if HttpToolsProtocol is not None:

    class WholeBodyHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol receiving bodies of `WHOLE_BODY_MIN_BYTES` up to the upload limit
        whole, except under the streamed prefixes (set by `configure_whole_bodies` in each serving
        process: the class travels to workers by name)."""

        #: Largest body received whole (0: no bound), the paths never received whole, the budget of
        #: bodies held at once (None: unbounded) and the memory of answered bodies kept (None: none).
        max_body: int = 0
        streamed_prefixes: tuple[str, ...] = STREAMED_PREFIXES
        budget: BodyBudget | None = None
        pool: BodyPool | None = None
        _whole: BodyBuffer | None = None
        _whole_cycle: Any = None
        _claims: list[tuple[Any, int]] | None = None  # (cycle, size) held by this connection
        _queued: Callable[[], None] | None = None  # this connection's claim waiting in the budget
        #: Seconds a client may take to send a request's head, and between pieces of its body (0: no limit).
        read_timeout: float = 0
        _read_timer: Any = None
        _read_armed = False  # a request's head or body is being read: the read timeout applies
        _body_since_arm = 0
        _renewed_at = 0.0  # loop time of the body's last renewal of the timer (0: none since it was armed)
        #: Bytes of a request's target and headers allowed (0: no limit); more is a 431.
        max_head: int = 0
        _head_size = 0
        _head_too_large = False
        _message_begun = False
        _direct = False  # whole bodies may be read straight into their buffers (DirectBodyReader)
        _watchers: list[tuple[Any, DisconnectWatch]] | None = None  # requests not answered yet

        # --- the read timeout (DRUM_REQUEST_READ_TIMEOUT): slow clients cannot hold a connection --------

        # One timer per connection, not per request: (re)arming a pending timer moves its deadline
        # (`_renewed_at`), and disarming leaves it to find nothing to do when it fires.

        def _arm_read_timer(self) -> None:
            self._body_since_arm = 0
            if not self.read_timeout:
                return
            self._read_armed = True
            if self._read_timer is not None:
                self._renewed_at = self.loop.time()
                return
            self._renewed_at = 0.0
            self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

        def _disarm_read_timer(self) -> None:
            self._read_armed = False

        def _cancel_read_timer(self) -> None:
            self._read_armed = False
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if not self._read_armed:
                return
            if self._renewed_at:  # the body moved on since the timer was set: its deadline moved with it
                remaining = self._renewed_at + self.read_timeout - self.loop.time()
                self._renewed_at = 0.0
                if remaining > 0:
                    self._read_timer = self.loop.call_later(remaining, self._read_timed_out)
                    return
            if self.transport.is_closing():
                return
            if self.flow.read_paused or self._queued is not None:  # we stopped reading, not the client
                self._arm_read_timer()
                return
            cycle = self.cycle
            if self._message_begun and (cycle is None or not cycle.response_started):
                self.transport.write(http.raw_response(http.read_timed_out(self.read_timeout)))
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))
            # a TLS connection's transport decrypts into its own buffers: nothing to save there
            self._direct = transport.get_extra_info("sslcontext") is None and hasattr(transport, "set_protocol")
            self._arm_read_timer()  # a connection that never sends a request is closed too

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._message_begun = True
            self._head_size = 0
            self._arm_read_timer()

        # --- the head size limit (DRUM_MAX_HEADER_SIZE): httptools itself has none -----------------------

        def _count_head(self, size: int) -> None:
            self._head_size += size
            if self.max_head and self._head_size > self.max_head:
                self._head_too_large = True
                raise ValueError("request head too large")  # stops the parser: uvicorn calls send_400_response

        def on_url(self, url: bytes) -> None:
            self._count_head(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_head(len(name) + len(value) + 4)
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            if not self._head_too_large:
                super().send_400_response(msg)
                return
            self._cancel_read_timer()
            self.transport.write(http.raw_response(http.head_too_large(self.max_head)))
            self.transport.close()

        def on_message_complete_read(self) -> None:
            self._message_begun = False
            self._disarm_read_timer()

        def on_headers_complete(self) -> None:
            self._whole = self._whole_cycle = None
            if self.read_timeout:
                self._arm_read_timer()  # now the time between pieces of the body
            super().on_headers_complete()
            cycle = self.cycle
            max_body, budget = self.max_body, self.budget
            if cycle is None or cycle.scope is not self.scope:
                return
            watch = DisconnectWatch()  # no reference back to the cycle or the scope: no cycle for the GC
            self.scope[ON_DISCONNECT] = watch  # type: ignore[literal-required]
            if self._watchers is None:
                self._watchers = []
            self._watchers.append((cycle, watch))
            if self.scope["path"].startswith(self.streamed_prefixes):
                return
            size = _content_length(self.scope["headers"])
            if size < WHOLE_BODY_MIN_BYTES or (max_body and size > max_body):
                return
            buffer = BodyBuffer(size, self.pool)
            if (budget is None or self._claim(budget, cycle, buffer)) and not buffer.allocate():
                return  # no memory for it: uvicorn's pieces
            self._whole, self._whole_cycle = buffer, cycle

        def _claim(self, budget: BodyBudget, cycle: Any, buffer: BodyBuffer) -> bool:
            """Claim the body's bytes of the budget: True when granted now, else reading pauses until it is
            (and the body's memory is taken then)."""
            if self._claims is None:
                self._claims = []

            def granted() -> None:
                self._queued = None
                assert self._claims is not None
                self._claims.append((cycle, buffer.size))
                # Next turn: the request answered just now, which gave its bytes back, has let go of its
                # body by then, and the pool can give that memory to this one.
                self.loop.call_soon(self._read_granted, buffer)

            if budget.claim(buffer.size, granted):
                self._claims.append((cycle, buffer.size))
                return True
            self._queued = granted  # not FlowControl: the app's receive() must not resume reading
            self.transport.pause_reading()
            return False

        def _read_granted(self, buffer: BodyBuffer) -> None:
            if self.transport.is_closing():
                return
            if not buffer.allocate() and self._whole is buffer:  # no memory for it: uvicorn's pieces
                self._whole = None
                self._whole_cycle.body += buffer.early()
            self.transport.resume_reading()

        def _give_back(self, everything: bool) -> None:
            budget = self.budget
            if budget is None:
                return
            if everything and self._queued is not None:
                budget.withdraw(self._queued)
                self._queued = None
            for claim in list(self._claims or ()):
                if everything or claim[0].response_complete:
                    assert self._claims is not None
                    self._claims.remove(claim)
                    budget.give_back(claim[1])

        def on_response_complete(self) -> None:
            self._give_back(everything=False)
            if self._watchers:
                self._watchers = [w for w in self._watchers if not w[0].response_complete]
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_read_timer()
            self._give_back(everything=True)
            super().connection_lost(exc)
            watchers, self._watchers = self._watchers, None
            for cycle, watch in watchers or ():
                if not cycle.response_complete:
                    watch.fire()

        def _body_arrived(self, size: int) -> None:
            if self._read_armed:
                self._body_since_arm += size
                if self._body_since_arm >= READ_TIMEOUT_MIN_BYTES:  # a drip of bytes does not renew it
                    self._body_since_arm = 0  # renewed: the timer, when it fires, sets itself again
                    self._renewed_at = self.loop.time()

        # --- the rest of a whole body read straight into its buffer (DirectBodyReader) ------------------

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            buffer = self._whole
            if (
                buffer is not None
                and not buffer.complete
                and self.cycle is self._whole_cycle
                and self._queued is None
                and buffer.allocated
                and self._direct
                and not self.transport.is_closing()
            ):
                self.transport.set_protocol(DirectBodyReader(self, buffer))

        def direct_body_read(self, size: int) -> None:
            """`size` more bytes of the whole body were read into its buffer (by DirectBodyReader)."""
            buffer = self._whole
            assert buffer is not None
            buffer.received += size
            self._unset_keepalive_if_required()  # as data_received does: an early answer's keep-alive wait
            self._body_arrived(size)
            if buffer.complete:  # the connection is the HTTP parser's again, for the next request
                self.transport.set_protocol(self)
                self.parser = _parser(self)
                self.on_message_complete()

        def on_body(self, body: bytes) -> None:
            self._body_arrived(len(body))
            buffer = self._whole
            if buffer is None or self.cycle is not self._whole_cycle:
                super().on_body(body)
                return
            if self.cycle.response_complete:
                return
            if not buffer.write(body):  # more than Content-Length: cannot happen with httptools
                self._whole = None
                self.cycle.body += memoryview(buffer.data)[: buffer.received]
                super().on_body(body)

        def on_message_complete(self) -> None:
            self.on_message_complete_read()
            buffer = self._whole
            if buffer is not None and self.cycle is self._whole_cycle and buffer.complete:
                self.cycle.body = buffer.data  # receive() returns bytes(data): this very object
            self._whole = self._whole_cycle = None
            super().on_message_complete()

else:  # pragma: no cover
    WholeBodyHttpToolsProtocol = None


def _parser(protocol: Any) -> Any:
    """A fresh httptools request parser for `protocol`, set up as uvicorn sets up its own."""
    parser = httptools.HttpRequestParser(protocol)
    try:
        parser.set_dangerous_leniencies(lenient_data_after_close=True)
    except AttributeError:  # pragma: no cover - httptools < 0.6.3
        pass
    return parser


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    for key, value in headers:
        if key == b"content-length":
            length = http.content_length(value)
            return -1 if length is None else length
    return -1
