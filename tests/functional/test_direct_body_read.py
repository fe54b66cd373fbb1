"""Large request bodies read straight into their buffers (servers/fastapi/protocol.py, DirectBodyReader),
on a real server and real sockets, with both event loops: the bytes arrive intact, a request pipelined
behind a large body is parsed, a client that leaves mid-body gives its share of the body budget back, and
one that stalls mid-body gets 408."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from tests.functional.support import ours_only

HASH_MODEL = {
    "custom.py": (
        "import hashlib\n\n"
        "def load_model(code_dir):\n    return 'm'\n\n"
        "def score_unstructured(model, data, **kwargs):\n"
        "    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()\n"
    )
}
BODY_SIZE = 3 * 1024 * 1024 + 7


def _request(body: bytes) -> bytes:
    head = (
        "POST /predictUnstructured/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """`count` HTTP responses (status, body) read from `sock` (Content-Length bodies)."""
    data = b""
    answers: list[tuple[int, bytes]] = []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed after {answers}: {data!r}")
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((int(lines[0].split()[1]), data[:length]))
        data = data[length:]
    return answers


@pytest.fixture(params=["uvloop", "asyncio"])
def server(request, drum_server, model_dir):
    env = {"DRUM_UVICORN_LOOP": request.param, "DRUM_REQUEST_READ_TIMEOUT": "2",
           "DRUM_FASTAPI_BODY_BUFFER_SIZE": str(BODY_SIZE + 1024)}  # fmt: skip
    return drum_server(model_dir(HASH_MODEL), "--target-type", "unstructured", env=env)


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


@ours_only
def test_large_bodies_arrive_intact_and_a_pipelined_request_behind_one_is_answered(server):
    bodies = [os.urandom(BODY_SIZE), b"small", os.urandom(BODY_SIZE - 1000)]
    with _connect(server.url) as sock:
        sock.sendall(b"".join(_request(body) for body in bodies))
        answers = _read_responses(sock, 3)
    assert answers == [(200, hashlib.sha256(body).hexdigest().encode()) for body in bodies]


@ours_only
def test_a_client_leaving_mid_body_gives_its_budget_back(server):
    body = os.urandom(BODY_SIZE)
    for _ in range(3):  # the budget holds one such body: a claim kept by a gone client would stall the next
        with _connect(server.url) as sock:
            sock.sendall(_request(body)[: BODY_SIZE // 2])
    with _connect(server.url) as sock:
        sock.sendall(_request(body))
        assert _read_responses(sock, 1) == [(200, hashlib.sha256(body).hexdigest().encode())]


@ours_only
def test_a_client_stalling_mid_body_gets_408(server):
    with _connect(server.url) as sock:
        sock.sendall(_request(os.urandom(BODY_SIZE))[: BODY_SIZE // 2])
        status, body = _read_responses(sock, 1)[0]
    assert status == 408, body


KEEPING_MODEL = {
    "custom.py": (
        "import hashlib\n\n"
        "KEPT = []\n\n"
        "def load_model(code_dir):\n    return 'm'\n\n"
        "def score_unstructured(model, data, **kwargs):\n"
        "    answer = ' '.join(hashlib.sha256(d).hexdigest() for d in KEPT + [data])\n"
        "    if kwargs.get('query', {}).get('keep'):\n"
        "        KEPT.append(data)\n"
        "    return answer\n"
    )
}


@pytest.fixture(params=["uvloop", "asyncio"])
def keeping_server(request, drum_server, model_dir):
    env = {"DRUM_UVICORN_LOOP": request.param, "DRUM_FASTAPI_BODY_BUFFER_SIZE": str(2 * BODY_SIZE)}
    return drum_server(model_dir(KEEPING_MODEL), "--target-type", "unstructured", env=env)


@ours_only
def test_bodies_a_hook_keeps_stay_intact_while_later_bodies_reuse_the_memory_of_forgotten_ones(keeping_server):
    """The server keeps answered bodies' memory for the next ones (body_memory.BodyPool): one the hook
    still holds is never written again, and a forgotten one serves later bodies, shorter or as long."""
    kept: list[bytes] = []
    sizes = [BODY_SIZE, BODY_SIZE - 1000, BODY_SIZE, BODY_SIZE - 3, BODY_SIZE, BODY_SIZE - 77, BODY_SIZE]
    with _connect(keeping_server.url) as sock:
        for i, size in enumerate(sizes):
            body, keep = os.urandom(size), i in (1, 4)
            path = "/predictUnstructured/?keep=1" if keep else "/predictUnstructured/"
            sock.sendall(_request(body).replace(b"/predictUnstructured/", path.encode(), 1))
            expected = " ".join(hashlib.sha256(d).hexdigest() for d in kept + [body])
            assert _read_responses(sock, 1) == [(200, expected.encode())], i
            kept += [body] if keep else []
