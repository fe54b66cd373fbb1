"""The httptools protocol that receives large bodies whole (servers/fastapi/protocol.py), driven
with uvicorn's own machinery and a recording transport."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from drum.servers.fastapi.body_memory import BodyPool
from drum.servers.fastapi.protocol import WHOLE_BODY_MIN_BYTES, BodyBudget, BodyBuffer, WholeBodyHttpToolsProtocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.pauses = 0
        self.resumes = 0

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1

    protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def deliver(self, data: bytes) -> None:
        """`data` from the socket, as the event loop hands it to the connection's current protocol: a
        buffered one (DirectBodyReader) gets it written into its buffers, the others `data_received`."""
        while data:
            protocol = self.protocol
            if not isinstance(protocol, asyncio.BufferedProtocol):
                protocol.data_received(data)  # type: ignore[union-attr]
                return
            buffer = protocol.get_buffer(len(data))
            n = min(len(buffer), len(data))
            buffer[:n] = data[:n]
            data = data[n:]
            protocol.buffer_updated(n)


def _echo_app(messages: list[dict]):
    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[:8] + body[-8:]})

    return app


async def _serve(
    requests: bytes, pieces: int, path_prefixes: tuple[str, ...] = (), limit: int = 0
) -> tuple[list[dict], Transport]:
    messages: list[dict] = []
    config = Config(app=_echo_app(messages), lifespan="off", log_level="warning")
    assert WholeBodyHttpToolsProtocol is not None

    class Protocol(WholeBodyHttpToolsProtocol):
        max_body = limit
        streamed_prefixes = path_prefixes
        budget = BodyBudget(1 << 40)

    protocol = Protocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    transport.protocol = protocol
    step = max(1, len(requests) // pieces)
    for start in range(0, len(requests), step):
        transport.deliver(requests[start : start + step])
        await asyncio.sleep(0)
    for _ in range(100):
        await asyncio.sleep(0)
    transport.protocol.connection_lost(None)  # type: ignore[union-attr]
    return messages, transport


def _request(body: bytes, path: str = "/predict/") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head + body


def test_a_large_body_arrives_as_one_bytes_message_without_pausing():
    body = os.urandom(WHOLE_BODY_MIN_BYTES * 3 + 17)
    messages, transport = asyncio.run(_serve(_request(body), pieces=40))
    assert len(messages) == 1
    assert type(messages[0]["body"]) is bytes and messages[0]["body"] == body
    assert messages[0]["more_body"] is False
    assert transport.pauses == 0
    assert b"x-length: %d" % len(body) in transport.written


def test_the_rest_of_a_large_body_is_read_straight_into_its_buffer():
    body = os.urandom(WHOLE_BODY_MIN_BYTES * 3 + 17)
    seen: list[tuple[str, int]] = []

    class Recording(Transport):
        def set_protocol(self, protocol) -> None:
            seen.append((type(protocol).__name__, 0))
            super().set_protocol(protocol)

        def deliver(self, data: bytes) -> None:
            seen.append((type(self.protocol).__name__, len(data)))
            super().deliver(data)

    async def main() -> list[dict]:
        messages: list[dict] = []
        config = Config(app=_echo_app(messages), lifespan="off", log_level="warning")
        protocol = WholeBodyHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Recording()
        protocol.connection_made(transport)
        transport.protocol = protocol
        request = _request(body) + _request(b"small")  # a pipelined request right behind it
        transport.deliver(request[:1000])  # the head and the body's start: the HTTP parser's
        transport.deliver(request[1000:])
        for _ in range(100):
            await asyncio.sleep(0)
        assert transport.written.count(b"HTTP/1.1 200") == 2
        return messages

    messages = asyncio.run(main())
    assert [m["body"] for m in messages] == [body, b"small"]
    names = [name for name, _ in seen]
    # the HTTP protocol hands the connection over after the head, and takes it back with the body complete
    assert names[:4] == ["WholeBodyHttpToolsProtocol", "DirectBodyReader", "DirectBodyReader",
                         "WholeBodyHttpToolsProtocol"], seen  # fmt: skip


def test_small_bodies_and_streamed_prefixes_keep_uvicorns_pieces():
    small = os.urandom(WHOLE_BODY_MIN_BYTES // 2)
    messages, _ = asyncio.run(_serve(_request(small), pieces=8))
    assert b"".join(m["body"] for m in messages) == small
    large = os.urandom(WHOLE_BODY_MIN_BYTES * 2)
    messages, _ = asyncio.run(_serve(_request(large, "/directAccess/x"), pieces=16, path_prefixes=("/directAccess/",)))
    assert len(messages) > 1 and b"".join(m["body"] for m in messages) == large


def test_pipelined_large_bodies_each_reach_their_own_request():
    first, second = os.urandom(WHOLE_BODY_MIN_BYTES + 1), os.urandom(WHOLE_BODY_MIN_BYTES + 2)
    messages, transport = asyncio.run(_serve(_request(first) + _request(second), pieces=30))
    bodies = [m["body"] for m in messages if m["body"]]
    assert bodies == [first, second]
    assert transport.written.count(b"HTTP/1.1 200") == 2


def test_a_body_cut_short_is_a_disconnect():
    body = os.urandom(WHOLE_BODY_MIN_BYTES * 2)
    messages, _ = asyncio.run(_serve(_request(body)[:-1000], pieces=10))
    assert messages == [{"type": "http.disconnect"}]


def test_bodies_over_the_upload_limit_keep_uvicorns_pieces():
    large = os.urandom(WHOLE_BODY_MIN_BYTES * 3)
    messages, _ = asyncio.run(_serve(_request(large), pieces=16, limit=WHOLE_BODY_MIN_BYTES * 2))
    assert len(messages) > 1 and b"".join(m["body"] for m in messages) == large


def test_limits_come_from_the_server_config():
    from drum.config.server_config import ServerConfig
    from drum.servers.fastapi.protocol import configure_whole_bodies

    env = {"URL_PREFIX": "/v1", "DRUM_FASTAPI_MAX_UPLOAD_SIZE": str(WHOLE_BODY_MIN_BYTES * 2)}
    saved = (WholeBodyHttpToolsProtocol.max_body, WholeBodyHttpToolsProtocol.streamed_prefixes,
             WholeBodyHttpToolsProtocol.budget)  # fmt: skip
    try:
        configure_whole_bodies(ServerConfig.from_options(_Options(), env))
        assert WholeBodyHttpToolsProtocol.max_body == WHOLE_BODY_MIN_BYTES * 2
        assert WholeBodyHttpToolsProtocol.streamed_prefixes == ("/v1/directAccess/", "/v1/nim/")
        budget = WholeBodyHttpToolsProtocol.budget
        assert budget is not None and budget.limit == 20 << 20
        configure_whole_bodies(ServerConfig.from_options(_Options(), {**env, "DRUM_FASTAPI_BODY_BUFFER_SIZE": "0"}))
        assert WholeBodyHttpToolsProtocol.budget is None
    finally:
        (WholeBodyHttpToolsProtocol.max_body, WholeBodyHttpToolsProtocol.streamed_prefixes,
         WholeBodyHttpToolsProtocol.budget) = saved  # fmt: skip


class _Options:
    code_dir = "."
    address = "127.0.0.1:0"


def test_the_server_config_uses_the_protocol_and_it_pickles_by_name():
    import pickle

    from drum.config.server_config import ServerConfig
    from drum.servers.fastapi.run import uvicorn_config

    config = uvicorn_config(_echo_app([]), ServerConfig.from_options(_Options(), {}))
    assert config.http is WholeBodyHttpToolsProtocol
    assert pickle.loads(pickle.dumps(config.http)) is WholeBodyHttpToolsProtocol


def test_expect_100_continue_is_answered_before_a_whole_body_arrives():
    body = os.urandom(WHOLE_BODY_MIN_BYTES * 2)
    head = f"POST /predict/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"

    async def main() -> tuple[list[dict], Transport, bytes]:
        messages: list[dict] = []
        config = Config(app=_echo_app(messages), lifespan="off", log_level="warning")
        protocol = WholeBodyHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(head.encode())
        for _ in range(20):
            await asyncio.sleep(0)
        before_body = bytes(transport.written)
        for start in range(0, len(body), 65536):
            protocol.data_received(body[start : start + 65536])
        for _ in range(50):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return messages, transport, before_body

    messages, transport, before_body = asyncio.run(main())
    assert before_body == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(messages) == 1 and messages[0]["body"] == body
    assert b"HTTP/1.1 200" in transport.written


def test_buffer_refuses_more_than_its_size():
    buffer = BodyBuffer(10)
    assert buffer.write(b"12345") and not buffer.complete
    assert not buffer.write(b"123456")
    assert buffer.write(b"67890") and buffer.complete
    assert buffer.data == b"1234567890"


@pytest.mark.parametrize("size", [WHOLE_BODY_MIN_BYTES, 5 << 20])
def test_buffer_of_several_huge_pages_holds_the_bytes(size):
    data = os.urandom(size)
    buffer = BodyBuffer(size)
    for start in range(0, size, 65536):
        assert buffer.write(data[start : start + 65536])
    assert buffer.complete and buffer.data == data


def test_budget_grants_in_order_within_its_limit():
    budget = BodyBudget(100)
    granted: list[str] = []
    assert budget.claim(60, lambda: granted.append("a"))
    assert not budget.claim(50, lambda: granted.append("b"))  # 110 > 100: waits
    assert not budget.claim(10, lambda: granted.append("c"))  # fits, but after b: arrival order
    budget.give_back(60)
    assert granted == ["b", "c"] and budget.held == 60
    assert not budget.claim(500, lambda: granted.append("big"))
    budget.give_back(50)
    budget.give_back(10)
    assert granted == ["b", "c", "big"] and budget.held == 500  # larger than the limit: read alone


def test_budget_forgets_a_withdrawn_claim():
    budget = BodyBudget(100)
    granted: list[str] = []
    assert budget.claim(100, lambda: granted.append("a"))

    def b() -> None:
        granted.append("b")

    assert not budget.claim(100, b)
    assert not budget.claim(100, lambda: granted.append("c"))
    budget.withdraw(b)
    budget.give_back(100)
    assert granted == ["c"]


def _connections(app, count: int, budget: BodyBudget, pool: BodyPool | None = None) -> tuple[list, list[Transport]]:
    """`count` connections of one server (one budget and pool) to `app`, each with its own transport."""

    class Protocol(WholeBodyHttpToolsProtocol):
        max_body = 0
        streamed_prefixes = ()

    Protocol.budget, Protocol.pool = budget, pool
    config = Config(app=app, lifespan="off", log_level="warning")
    state = ServerState()
    protocols = [Protocol(config=config, server_state=state, app_state={}) for _ in range(count)]
    transports = [Transport() for _ in range(count)]
    for protocol, transport in zip(protocols, transports, strict=True):
        protocol.connection_made(transport)
        transport.protocol = protocol
    return protocols, transports


def test_a_connection_over_the_budget_is_not_read_until_an_earlier_body_is_answered():
    size = WHOLE_BODY_MIN_BYTES * 2
    bodies = [os.urandom(size), os.urandom(size)]

    async def main() -> tuple[list[dict], list[Transport], list[int]]:
        messages: list[dict] = []
        budget = BodyBudget(size)
        protocols, transports = _connections(_echo_app(messages), len(bodies), budget)
        requests = [_request(body) for body in bodies]
        protocols[0].data_received(requests[0][:1000])
        protocols[1].data_received(requests[1][:1000])  # its headers: over the budget
        held = [budget.held, transports[1].pauses, transports[1].resumes]
        protocols[0].data_received(requests[0][1000:])
        for _ in range(50):
            await asyncio.sleep(0)  # the first is answered: the second may be read
        held += [transports[1].resumes]
        protocols[1].data_received(requests[1][1000:])
        for _ in range(50):
            await asyncio.sleep(0)
        for protocol in protocols:
            protocol.connection_lost(None)
        held.append(budget.held)
        return messages, transports, held

    messages, transports, held = asyncio.run(main())
    assert held == [size, 1, 0, 1, 0]
    assert [m["body"] for m in messages] == bodies
    assert all(t.written.count(b"HTTP/1.1 200") == 1 for t in transports)


def _forgetful_app(seen: list[tuple[int, int, bytes]]):
    """Answers each request with its body's length; remembers only its id, length and ends."""

    async def app(scope, receive, send):
        body = (await receive())["body"]
        seen.append((id(body), len(body), body[:8] + body[-8:]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    return app


def test_a_body_waiting_for_the_budget_takes_the_memory_of_the_one_answered_before_it():
    size = 2 * BodyPool.MIN_SIZE
    bodies = [os.urandom(size), os.urandom(size - 100)]

    async def main() -> tuple[list[tuple[int, int, bytes]], list[bool], list[Any]]:
        seen: list[tuple[int, int, bytes]] = []

        protocols, transports = _connections(_forgetful_app(seen), len(bodies), BodyBudget(size), BodyPool(size))
        requests = [_request(body) for body in bodies]
        transports[0].deliver(requests[0][:1000])
        transports[1].deliver(requests[1][:1000])  # over the budget: waits, its first piece kept aside
        allocated = [protocols[0]._whole.allocated, protocols[1]._whole.allocated]
        reader = transports[0].protocol
        transports[0].deliver(requests[0][1000:])  # straight into its memory, then answered
        for _ in range(50):
            await asyncio.sleep(0)
        readers = [reader.buffer, transports[1].resumes]  # the reader let go of the body once complete
        transports[1].deliver(requests[1][1000:])
        for _ in range(50):
            await asyncio.sleep(0)
        for transport in transports:
            transport.protocol.connection_lost(None)
        return seen, allocated, readers

    seen, allocated, readers = asyncio.run(main())
    assert allocated == [True, False]
    assert readers == [None, 1]
    assert [(n, ends) for _, n, ends in seen] == [(len(b), b[:8] + b[-8:]) for b in bodies]
    assert seen[0][0] == seen[1][0]  # the second body was written into the first one's memory


def test_a_closed_connection_gives_back_what_it_held_or_waited_for():
    size = WHOLE_BODY_MIN_BYTES * 2

    async def main() -> list[int]:
        budget = BodyBudget(size)

        class Protocol(WholeBodyHttpToolsProtocol):
            max_body = 0
            streamed_prefixes = ()

        Protocol.budget = budget
        config = Config(app=_echo_app([]), lifespan="off", log_level="warning")
        protocols = [Protocol(config=config, server_state=ServerState(), app_state={}) for _ in range(3)]
        for protocol in protocols:
            protocol.connection_made(Transport())
            protocol.data_received(_request(os.urandom(size))[:1000])
        seen = [budget.held]
        protocols[1].connection_lost(None)  # waiting: withdrawn
        protocols[0].connection_lost(None)  # holding: given back, the third is granted
        seen.append(budget.held)
        protocols[2].connection_lost(None)
        seen.append(budget.held)
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(main()) == [size, size, 0]


def _timed_protocol(timeout: float, messages: list[dict]):
    class Protocol(WholeBodyHttpToolsProtocol):
        max_body = 0
        streamed_prefixes = ()
        budget = None
        read_timeout = timeout

    config = Config(app=_echo_app(messages), lifespan="off", log_level="warning")
    protocol = Protocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def _drive(steps) -> tuple[Transport, list[dict]]:
    """Run `steps(protocol)` (a coroutine function) against a protocol with a 0.05 s read timeout."""

    async def main() -> tuple[Transport, list[dict]]:
        messages: list[dict] = []
        protocol, transport = _timed_protocol(0.05, messages)
        await steps(protocol)
        protocol.connection_lost(None)
        return transport, messages

    return asyncio.run(main())


HEAD = b"POST /predict/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"


def test_a_request_head_not_finished_within_the_read_timeout_gets_408_and_is_closed():
    async def slow_head(protocol) -> None:
        for byte in HEAD:  # a byte at a time, never the blank line
            protocol.data_received(bytes([byte]))
        await asyncio.sleep(0.2)

    transport, messages = _drive(slow_head)
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    body = b'{"message":"ERROR: Request timeout: the request was not received within 0.05 seconds"}'
    assert body in transport.written
    assert transport.closed and messages == []


def test_a_body_dripped_a_byte_at_a_time_gets_408_but_a_steady_one_does_not():
    async def drip(protocol) -> None:
        protocol.data_received(HEAD + b"Content-Length: 5000\r\n\r\n")
        for _ in range(10):
            protocol.data_received(b"1")
            await asyncio.sleep(0.02)

    transport, _ = _drive(drip)
    assert transport.written.startswith(b"HTTP/1.1 408") and transport.closed

    async def steady(protocol) -> None:
        protocol.data_received(HEAD + b"Content-Length: 5120\r\n\r\n")
        for _ in range(5):
            protocol.data_received(b"1" * 1024)  # 1 KiB renews the timeout
            await asyncio.sleep(0.03)
        for _ in range(20):
            await asyncio.sleep(0)

    transport, messages = _drive(steady)
    assert transport.written.startswith(b"HTTP/1.1 200") and b"408" not in transport.written
    assert b"".join(m.get("body", b"") for m in messages) == b"1" * 5120


def test_an_idle_connection_is_closed_silently_and_a_wait_for_the_body_budget_never_times_out():
    async def idle(protocol) -> None:
        await asyncio.sleep(0.2)

    transport, _ = _drive(idle)
    assert transport.closed and transport.written == b""

    async def paused(protocol) -> None:
        protocol.data_received(HEAD + b"Content-Length: 5000\r\n\r\n")
        protocol._queued = lambda: None  # waiting for the body budget: drum stopped reading, not the client
        await asyncio.sleep(0.2)
        assert not protocol.transport.closed
        protocol._queued = None
        protocol.data_received(b"1" * 5000)
        for _ in range(20):
            await asyncio.sleep(0)

    transport, _ = _drive(paused)
    assert transport.written.startswith(b"HTTP/1.1 200")


def test_no_read_timeout_when_it_is_0():
    async def main() -> Transport:
        protocol, transport = _timed_protocol(0, [])
        protocol.data_received(HEAD)
        await asyncio.sleep(0.1)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    assert transport.written == b""


def _head_limited(limit: int, head: bytes) -> Transport:
    async def main() -> Transport:
        class Protocol(WholeBodyHttpToolsProtocol):
            max_body = 0
            streamed_prefixes = ()
            budget = None
            max_head = limit

        config = Config(app=_echo_app([]), lifespan="off", log_level="critical")
        protocol = Protocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(head)
        for _ in range(20):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    return asyncio.run(main())


def test_a_request_head_over_the_limit_gets_431_and_is_closed():
    big = HEAD + b"X-Big: " + b"a" * 2000 + b"\r\nContent-Length: 4\r\n\r\na\n1\n"
    transport = _head_limited(1024, big)
    assert transport.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b'"ERROR: Request header fields too large: the request line and headers exceed 1024 bytes"' in (
        transport.written
    )
    assert transport.closed and b"HTTP/1.1 200" not in transport.written
    long_url = b"GET /" + b"p" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _head_limited(1024, long_url).written.startswith(b"HTTP/1.1 431")
    assert _head_limited(0, big).written.startswith(b"HTTP/1.1 200")  # 0: no limit
    assert _head_limited(4096, big).written.startswith(b"HTTP/1.1 200")


def test_the_scope_tells_a_lost_connection_by_callback_once_and_never_after_the_answer():
    """`scope[ON_DISCONNECT]` calls back when the client leaves before its answer (a pipelined request
    waiting behind it too); a request already answered is not called back."""
    from drum.servers.fastapi.protocol import ON_DISCONNECT

    async def main() -> list[str]:
        calls: list[str] = []
        release = asyncio.Event()

        async def app(scope, receive, send):
            path = scope["path"]
            scope[ON_DISCONNECT](lambda: calls.append(path))
            if path == "/slow":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        config = Config(app=app, lifespan="off", log_level="warning")
        protocol = WholeBodyHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0)
        assert transport.written.count(b"200 OK") == 1
        protocol.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        protocol.connection_lost(None)  # told once
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        return calls

    assert asyncio.run(main()) == ["/slow"]


def test_answered_requests_leave_no_reference_cycles_for_the_collector():
    """Each request's objects (its cycle, scope, disconnect watch) are freed by reference counting when it
    is answered: none waits for the garbage collector (a cycle per request made every collection of
    the young generations walk thousands of them, and broke the inline streak)."""
    import gc

    async def main() -> int:
        config = Config(app=_echo_app([]), lifespan="off", log_level="warning")
        protocol = WholeBodyHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        for _ in range(3):  # warm: first-time caches are not per-request garbage
            protocol.data_received(_request(b"1,2\n"))
            for _ in range(5):
                await asyncio.sleep(0)
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                protocol.data_received(_request(b"1,2\n"))
                for _ in range(5):
                    await asyncio.sleep(0)
            assert transport.written.count(b"200 OK") == 53
            return gc.collect()
        finally:
            gc.enable()

    assert asyncio.run(main()) == 0


def test_without_drums_protocol_a_request_is_told_of_a_disconnect_through_receive():
    """Where the scope has no `ON_DISCONNECT` (another HTTP protocol), `RequestData.on_disconnect` watches
    ASGI `receive()` for `http.disconnect` instead."""
    from drum.servers.fastapi.adapters import request_data
    from drum.serving.routes import ROUTES

    async def main() -> list[str]:
        gone = asyncio.Event()
        messages = [{"type": "http.request", "body": b"1,2\n", "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        route = next(r for r in ROUTES if not r.stream_request)
        scope = {"type": "http", "method": "POST", "path": "/predict/", "headers": [], "query_string": b""}
        req = await request_data(route, scope, receive)
        assert req is not None and req.on_disconnect is not None
        calls: list[str] = []
        req.on_disconnect(lambda: calls.append("left"))
        await asyncio.sleep(0.01)
        assert calls == []
        gone.set()
        await asyncio.sleep(0.01)
        return calls

    assert asyncio.run(main()) == ["left"]
