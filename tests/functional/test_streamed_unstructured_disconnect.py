"""Streamed unstructured responses (issue "Serving guarantees", item 1): a `score_unstructured` hook that
returns a generator of bytes is streamed chunk by chunk, and a client that disconnects mid-stream closes
the hook's generator (its `finally` runs, no more chunks are produced); the server keeps answering."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import pytest
from support import ours_only, server_pool

#: `score_unstructured` returns a generator yielding `chunk <i>\n` every 0.05 s, `n` chunks (query), and
#: logs each chunk it yields, then `closed` when it ends or is closed, to `<code_dir>/<name>.log`. A reference
#: cycle (gc off) keeps a dropped generator alive: only drum's explicit close() runs its `finally`.
STREAMING_MODEL = {
    "custom.py": """
        import gc
        import time
        from pathlib import Path


        def load_model(code_dir):
            return Path(code_dir)


        def chunks(log, n):
            try:
                for i in range(n):
                    with log.open("a") as f:
                        f.write(f"{i}\\n")
                    yield f"chunk {i}\\n".encode()
                    time.sleep(0.05)
            finally:
                with log.open("a") as f:
                    f.write("closed\\n")


        def score_unstructured(model, data, query=None, **kwargs):
            # held by a reference cycle with gc off: only an explicit close() runs its `finally`
            gc.disable()
            stream = chunks(model / f"{query['name']}.log", int(query["n"]))
            holder = [stream]
            holder.append(holder)
            return stream
    """,
}
TOTAL = 200  # 10 s of chunks


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get("stream", STREAMING_MODEL, "--target-type", "unstructured", name="unstructured-stream")


def _log(server, name: str) -> list[str]:
    path = server.code_dir / f"{name}.log"
    return path.read_text().split() if path.exists() else []


def _wait_for(predicate, what: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 10) -> bytes:
    """What the server sent until `marker` appeared (or it closed, or `timeout` passed)."""
    received = b""
    deadline = time.monotonic() + timeout
    while marker not in received and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return received


@ours_only
def test_client_disconnect_closes_the_hook_generator(server):
    parsed = urlparse(server.url)
    request = (
        f"POST /predictUnstructured/?name=abandoned&n={TOTAL} HTTP/1.1\r\n"
        f"Host: {parsed.hostname}:{parsed.port}\r\n"
        "Content-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
    ).encode()
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(request)
        received = _read_until(sock, b"chunk 1\n")
        # the head and the first chunks arrived while the generator still has seconds to go
        assert received.startswith(b"HTTP/1.1 200 "), received
        assert b"chunk 0\n" in received and b"chunk 1\n" in received, received
    # the connection is closed: the hook's generator must be closed too, long before its 10 s
    _wait_for(lambda: "closed" in _log(server, "abandoned"), "the unstructured hook's generator to be closed")
    produced = _log(server, "abandoned")
    assert produced[-1] == "closed" and produced.count("closed") == 1, produced
    assert len(produced) - 1 < TOTAL // 2, produced
    assert produced[:-1] == [str(i) for i in range(len(produced) - 1)]
    time.sleep(1)  # closed means finished: nothing more is produced
    assert _log(server, "abandoned") == produced
    assert server.get("/ping/").status_code == 200


@ours_only
def test_a_client_reading_the_whole_stream_gets_every_chunk_in_order(server):
    n = 10
    response = server.post(
        "/predictUnstructured/", params={"name": "whole", "n": n}, data="x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    assert response.content == b"".join(f"chunk {i}\n".encode() for i in range(n))
    _wait_for(lambda: "closed" in _log(server, "whole"), "the finished generator's `finally`")
    assert _log(server, "whole") == [*(str(i) for i in range(n)), "closed"]
