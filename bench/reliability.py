"""Reliability checks against a real `drum server`, one section per flag.

    python -m bench.reliability --all          # every section below, one after the other
    python -m bench.reliability --hostile [--drum PATH] [--only NAME,GLOB]
    python -m bench.reliability --sigterm | --kill9 | --slowloris | --big-bodies   (bench/faults.py)

`--hostile`: send every case of `HOSTILE_CASES` once to one `drum server` serving a small regression
model (`Predictions = 2 * x + 1`), each on its own connection with a 10 s socket timeout, and after each
case check with a normal 1-row `POST /predict/` that the server still serves; print one table and the
totals. tests/reliability/test_hostile_http.py runs the same table with the same client code.

Sections are flags, each one function in `SECTIONS` taking the parsed arguments and returning an exit
code; the fault drills live in bench/faults.py.

Requests go out two ways: a case with `raw` bytes is written to a plain socket exactly as given (what an
HTTP client would normalise away: smuggling, bad chunking, Content-Length lies, NUL bytes, HTTP/1.0
without Host, pipelining, huge header blocks and URLs); a case with `request` is sent with the standard
library's HTTP client (`http.client`: it adds Host and Content-Length itself). Answers are read by a small
HTTP/1.1 response reader here, which keeps bytes after one answer for the next (pipelining).

Every answer is put in one category (`classify`):

- `ok`: a 2xx (its predictions are checked when the case names them);
- `drum-error`: a 4xx in DRUM's error format, JSON `{"message": "ERROR: ..."}`;
- `drum-message`: a 4xx JSON `{"message": ...}` without the ERROR prefix (DRUM's own wording for
  `/directAccess/` without an OpenAI backend);
- `uvicorn-400`: uvicorn's protocol-level answer, `400` text/plain `Invalid HTTP request received.`
  (httptools/llhttp refused the bytes; uvicorn closes the connection after it);
- `other-4xx`: any other 4xx (e.g. Flask's `{"error": ...}` 400 that DRUM keeps for bad JSON);
- `model-500`: a 500 whose message is the model's own exception (`model rejected input: ...`);
- `5xx`: any other 5xx: never acceptable;
- `closed`: the connection closed (or was reset) before any answer;
- `timeout`: no answer within the socket timeout (10 s);
- `garbled`: an answer cut short or not HTTP.
"""

from __future__ import annotations

import argparse
import fnmatch
import http.client
import json
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_S = 10.0
MB = 1024 * 1024

#: The model every section serves: `Predictions = 2 * x + 1`; input it cannot use raises an exception
#: whose message starts with MODEL_ERROR (so a 500 that is the model's own error is recognisable).
MODEL_ERROR = "model rejected input"
MODEL_FILES = {
    "custom.py": f"""
        import pandas as pd


        def load_model(code_dir):
            return 2.0


        def score(data, model, **kwargs):
            try:
                x = pd.to_numeric(data["x"], errors="raise").astype(float)
            except Exception as exc:
                raise ValueError(f"{MODEL_ERROR}: {{exc!r}}") from None
            return pd.DataFrame({{"Predictions": x * model + 1.0}})
    """
}
#: The probe sent after every case: one row, x = 3 → 7.0.
PROBE_CSV = b"x\n3\n"
PROBE_PREDICTIONS = [7.0]
#: Never in any answer: the first line of /etc/passwd (path traversal must not read files).
PASSWD_MARKER = b"root:x:0:0"


def write_model(code_dir: Path) -> Path:
    code_dir.mkdir(parents=True, exist_ok=True)
    for name, text in MODEL_FILES.items():
        (code_dir / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return code_dir


# --- the client ----------------------------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP response: status, headers (lower-case names; repeated ones joined with ", "), body."""

    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Exchange:
    """What one case got back: its answers in order, how the exchange ended and how long it took.

    `ended`: "answered" (all expected answers read), "closed" (the server closed or reset the connection
    before an expected answer), "timeout" (nothing for `TIMEOUT_S`), "garbled" (an answer cut short or
    not HTTP)."""

    answers: list[Answer]
    ended: str
    seconds: float
    error: str = ""


class Garbled(Exception):
    """The bytes read are not a complete HTTP response."""


class ResponseReader:
    """Reads HTTP/1.x responses from a socket; bytes after one answer are kept for the next."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buf = sock, deadline, b""

    def _fill(self) -> bool:
        """Read more bytes; False at EOF. TimeoutError once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise Garbled(f"body cut short: {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise Garbled("connection closed inside a chunked body")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read(self, head_only: bool = False) -> Answer | None:
        """The next answer; None when the connection closes before any byte of it."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise Garbled(f"connection closed inside a response head: {self.buf[:200]!r}")
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise Garbled(f"not an HTTP status line: {status_line[:200]!r}")
        answer = Answer(int(parts[1]), parts[2] if len(parts) > 2 else "")
        for line in header_lines:
            name, _, value = line.partition(":")
            key, value = name.strip().lower(), value.strip()
            answer.headers[key] = f"{answer.headers[key]}, {value}" if key in answer.headers else value
        if head_only or answer.status < 200 or answer.status in (204, 304):
            return answer
        if "chunked" in answer.headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int(self._line().split(b";")[0], 16):
                chunks.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, up to the empty line
                pass
            answer.body = b"".join(chunks)
        elif "content-length" in answer.headers:
            answer.body = self._take(int(answer.headers["content-length"]))
        else:  # delimited by the connection's close
            while self._fill():
                pass
            answer.body, self.buf = self.buf, b""
        return answer


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)


def send_raw(port: int, data: bytes, responses: int = 1, shut_write: bool = False, head_only: bool = False) -> Exchange:
    """Write `data` to a fresh connection exactly as given (one `sendall`), then read up to `responses`
    answers. `shut_write`: half-close after sending (the server sees EOF)."""
    started = time.monotonic()
    answers: list[Answer] = []
    with _connect(port) as sock:
        reader = ResponseReader(sock, started + TIMEOUT_S)
        try:
            try:
                sock.sendall(data)
                if shut_write:
                    sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early and closed: its answer may still be readable
            while len(answers) < responses:
                answer = reader.read(head_only)
                if answer is None:
                    return Exchange(answers, "closed", time.monotonic() - started)
                answers.append(answer)
        except TimeoutError as exc:
            return Exchange(answers, "timeout", time.monotonic() - started, str(exc) or "timed out")
        except ConnectionResetError as exc:
            return Exchange(answers, "closed", time.monotonic() - started, f"reset: {exc}")
        except (Garbled, ValueError) as exc:
            return Exchange(answers, "garbled", time.monotonic() - started, str(exc))
    return Exchange(answers, "answered", time.monotonic() - started)


def send_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> Exchange:
    """Send one request with `http.client` (which adds Host and Content-Length, as any client would)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early: read what it said
        resp = conn.getresponse()
        answer = Answer(resp.status, resp.reason, {}, resp.read())
        for key, value in resp.getheaders():
            key = key.lower()
            answer.headers[key] = f"{answer.headers[key]}, {value}" if key in answer.headers else value
        return Exchange([answer], "answered", time.monotonic() - started)
    except TimeoutError as exc:
        return Exchange([], "timeout", time.monotonic() - started, str(exc) or "timed out")
    except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
        return Exchange([], "closed", time.monotonic() - started, repr(exc))
    except (http.client.HTTPException, ValueError) as exc:
        return Exchange([], "garbled", time.monotonic() - started, repr(exc))
    finally:
        conn.close()


def predict_probe(port: int) -> tuple[bool, str]:
    """Whether a normal 1-row `POST /predict/` answers 200 with the right prediction; what it got."""
    exchange = send_request(port, "POST", "/predict/", {"Content-Type": "text/csv"}, PROBE_CSV)
    if exchange.ended != "answered":
        return False, f"{exchange.ended} {exchange.error}".strip()
    answer = exchange.answers[0]
    try:
        ok = answer.status == 200 and answer.json() == {"predictions": PROBE_PREDICTIONS}
    except ValueError:
        ok = False
    return ok, f"{answer.status} {answer.body[:200]!r}"


# --- classification ------------------------------------------------------------------------------

OK = "ok"
DRUM_ERROR = "drum-error"
DRUM_MESSAGE = "drum-message"
UVICORN_400 = "uvicorn-400"
OTHER_4XX = "other-4xx"
MODEL_500 = "model-500"
SERVER_5XX = "5xx"
CLOSED = "closed"
TIMEOUT = "timeout"
GARBLED = "garbled"
#: uvicorn's answer when httptools (llhttp) refuses a request: 400, text/plain, then it closes.
UVICORN_INVALID = b"Invalid HTTP request received."


def _message(answer: Answer) -> str | None:
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None


def classify(answer: Answer) -> str:
    """The category of one answer (see the module docstring)."""
    message = _message(answer)
    if 200 <= answer.status < 300:
        return OK
    if 400 <= answer.status < 500:
        if message is not None:
            return DRUM_ERROR if message.startswith("ERROR: ") else DRUM_MESSAGE
        if answer.status == 400 and answer.body == UVICORN_INVALID:
            return UVICORN_400
        return OTHER_4XX
    if answer.status == 500 and message is not None and MODEL_ERROR in message:
        return MODEL_500  # "ERROR: Model 'score' hook failed to make predictions. Exception: ValueError('model ...')"
    return SERVER_5XX


def outcomes(exchange: Exchange, expected: int) -> list[str]:
    """One category per expected answer: those read, then how the exchange ended for the rest."""
    got = [classify(a) for a in exchange.answers]
    missing = {"answered": CLOSED, "closed": CLOSED, "timeout": TIMEOUT, "garbled": GARBLED}[exchange.ended]
    return got + [missing] * (expected - len(got))


# --- the hostile cases ---------------------------------------------------------------------------

#: What a case may get: DRUM's own 4xx, or uvicorn's protocol-level refusal (400 or a close).
DRUM_4XX = frozenset({DRUM_ERROR})
PROTOCOL = frozenset({UVICORN_400, CLOSED})


#: The server's environment: a short DRUM_REQUEST_READ_TIMEOUT, so a body that never ends gets its 408
#: within the 10 s a case may take (the default is 30 s).
SERVER_ENV = {"DRUM_SERVER_TYPE": "fastapi", "DRUM_REQUEST_READ_TIMEOUT": "2"}


@dataclass(frozen=True)
class HostileCase:
    """One hostile input. Exactly one of `raw` (bytes written as given; may read several answers) and
    `request` ((method, path, headers, body) sent with `http.client`) is set; both are built lazily.

    `accept[i]`: the categories allowed for answer i; `predictions[i]`: for an `ok` answer i, the body's
    `predictions` (None: not checked). `known_bug`: set where drum is known to misbehave (the test marks
    the case xfail(strict) with it; the bench prints it)."""

    name: str
    accept: tuple[frozenset[str], ...]
    raw: Callable[[], bytes] | None = None
    request: Callable[[], tuple[str, str, dict[str, str], bytes]] | None = None
    predictions: tuple[list[float] | None, ...] = ()
    shut_write: bool = False
    note: str = ""
    known_bug: str | None = None

    @property
    def responses(self) -> int:
        return len(self.accept)

    def send(self, port: int) -> Exchange:
        if self.raw is not None:
            return send_raw(port, self.raw(), self.responses, self.shut_write)
        assert self.request is not None
        return send_request(port, *self.request())

    def problems(self, exchange: Exchange) -> list[str]:
        """Why `exchange` is not what this case accepts (empty: it is)."""
        found = []
        for i, got in enumerate(outcomes(exchange, self.responses)):
            if got not in self.accept[i]:
                detail = ""
                if i < len(exchange.answers):
                    a = exchange.answers[i]
                    detail = f": {a.status} {a.headers.get('content-type', '')} {a.body[:300]!r}"
                elif exchange.error:
                    detail = f": {exchange.error}"
                found.append(f"answer {i + 1} is {got}, expected one of {sorted(self.accept[i])}{detail}")
            elif got == OK and i < len(self.predictions) and self.predictions[i] is not None:
                try:
                    body = exchange.answers[i].json()
                except ValueError:
                    body = exchange.answers[i].body[:300]
                if body != {"predictions": self.predictions[i]}:
                    found.append(f"answer {i + 1}: expected predictions {self.predictions[i]}, got {body!r}")
        for a in exchange.answers:
            if PASSWD_MARKER in a.body:
                found.append(f"an answer leaks /etc/passwd: {a.body[:300]!r}")
        return found


def http_bytes(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"", version: str = "1.1"
) -> bytes:
    """A request written by hand: the headers exactly as listed (nothing added)."""
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def _csv_post(body: bytes, headers: list[tuple[str, str]] | None = None, target: str = "/predict/") -> bytes:
    base = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Content-Length", str(len(body)))]
    return http_bytes("POST", target, base + (headers or []), body)


def _post(body: bytes, content_type: str | None = "text/csv", path: str = "/predict/"):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return lambda: ("POST", path, headers, body)


def _binary_garbage() -> bytes:
    import random

    return random.Random(1234).randbytes(4096)


def _wide_csv(columns: int = 10_000) -> bytes:
    header = ",".join(["x", *(f"c{i}" for i in range(1, columns))])
    row = ",".join(["3", *("0" for _ in range(1, columns))])
    return f"{header}\n{row}\n".encode()


def _giant_line(size: int = 50 * MB) -> bytes:
    """A header and one 50 MB line: x = 3 and one giant cell, no line end."""
    return b"x,blob\n3," + b"a" * size


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "hostileboundary") -> bytes:
    out = b""
    for name, filename, data in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def _multipart_post(body: bytes, content_type: str):
    return lambda: ("POST", "/predict/", {"Content-Type": content_type}, body)


def _pipelined() -> bytes:
    return _csv_post(b"x\n3\n") + _csv_post(b"x\n4\n")


def _smuggle_cl_te() -> bytes:
    """CL.TE: Content-Length covers a smuggled request after the chunked body's last chunk."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    headers = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Content-Length", str(len(body))),
               ("Transfer-Encoding", "chunked")]  # fmt: skip
    return http_bytes("POST", "/predict/", headers, body)


def _smuggle_te_cl() -> bytes:
    """TE.CL: Transfer-Encoding first, a short Content-Length; the chunk holds a smuggled request."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = f"{len(smuggled):x}\r\n".encode() + smuggled + b"\r\n0\r\n\r\n"
    headers = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Transfer-Encoding", "chunked"),
               ("Content-Length", "4")]  # fmt: skip
    return http_bytes("POST", "/predict/", headers, body)


def _te_obfuscated() -> bytes:
    body = b"4\r\nx\n3\n\r\n0\r\n\r\n"
    headers = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Content-Length", str(len(body))),
               ("Transfer-Encoding", "xchunked")]  # fmt: skip
    return http_bytes("POST", "/predict/", headers, body)


def _chunked(chunks: bytes) -> bytes:
    headers = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Transfer-Encoding", "chunked")]
    return http_bytes("POST", "/predict/", headers, chunks)


def _get(target: str, headers: list[tuple[str, str]] | None = None) -> Callable[[], bytes]:
    return lambda: http_bytes("GET", target, [("Host", "127.0.0.1"), *(headers or [])])


def _cl_post(content_length: str, body: bytes = PROBE_CSV) -> Callable[[], bytes]:
    headers = [("Host", "127.0.0.1"), ("Content-Type", "text/csv"), ("Content-Length", content_length)]
    return lambda: http_bytes("POST", "/predict/", headers, body)


# A case that drum is known to answer against the rule (4xx in DRUM's format, no 5xx but the
# model's own) gets `known_bug=REASON`: the test then expects it to fail (xfail strict). None today.


def _cases() -> list[HostileCase]:
    ok = frozenset({OK})
    drum = (DRUM_4XX,)
    #: uvicorn's own answer: httptools/llhttp refused the bytes, uvicorn wrote 400 text/plain
    #: "Invalid HTTP request received." and closed the connection (drum never saw the request).
    uvicorn = (frozenset({UVICORN_400}),)
    #: The request never completed and the client half-closed: uvicorn closes without an answer.
    closes = (frozenset({CLOSED}),)
    traversal = (frozenset({DRUM_MESSAGE}),)
    csv = "text/csv"
    boundary = "multipart/form-data; boundary=hostileboundary"
    return [
        # --- bodies (drum answers) ---------------------------------------------------------------
        # 422 "ERROR: Samples should be provided as: ..." (no data).
        HostileCase("empty-body", drum, request=_post(b"")),
        # A valid CSV of 0 rows: the model is called with an empty frame; 200 {"predictions": []}.
        HostileCase("header-only-csv", (ok,), request=_post(b"x\n"), predictions=([],)),
        HostileCase("ragged-rows", drum, request=_post(b"x,y\n3,1\n4\n5,1,2\n")),
        HostileCase("unterminated-quote", drum, request=_post(b'x\n"3\n')),
        HostileCase("binary-garbage", drum, request=_post(_binary_garbage())),
        HostileCase("invalid-utf8", drum, request=_post(b"x\n\xff\xfe\xfd\n")),
        HostileCase(
            "invalid-utf8-charset",
            drum,
            request=_post(b"x\n\xff\xfe\xfd\n", "text/csv; charset=utf-8"),
        ),
        # The NULs reach the model as part of the value "3\0\0": the model's own 500 is allowed.
        HostileCase("nul-bytes-in-body", (frozenset({DRUM_ERROR, MODEL_500}),), request=_post(b"x\n3\x00\x00\n")),
        # Valid input, just wide or long: served (200) with the right prediction.
        HostileCase("10000-columns", (ok,), request=_post(_wide_csv()), predictions=([7.0],)),
        HostileCase("50mb-single-line", (ok,), request=_post(_giant_line()), predictions=([7.0],)),
        # --- content types -----------------------------------------------------------------------
        # 422 "ERROR: payload format `image/png` is not supported by predictor/transformer. ..."
        HostileCase("wrong-content-type", drum, request=_post(PROBE_CSV, "image/png")),
        # No Content-Type: DRUM reads the body as CSV (200).
        HostileCase("no-content-type", (ok,), request=_post(PROBE_CSV, None), predictions=([7.0],)),
        HostileCase("mtx-garbage", drum, request=_post(b"garbage\x00\xff", "text/mtx")),
        # 422: application/json is not a structured-prediction payload format.
        HostileCase("invalid-json", drum, request=_post(b'{"x": [3', "application/json")),
        HostileCase(
            "chat-invalid-json",
            drum,
            request=_post(b'{"x": [3', "application/json", "/chat/completions"),
        ),
        HostileCase(
            "chat-wrong-content-type",
            drum,
            request=_post(b"{}", csv, "/chat/completions"),
        ),
        # --- multipart ---------------------------------------------------------------------------
        # Without a boundary the body is not a form: 422 "payload format `multipart/form-data` ...".
        HostileCase(
            "multipart-no-boundary",
            drum,
            request=_multipart_post(_multipart([("X", "x.csv", PROBE_CSV)]), "multipart/form-data"),
        ),
        # Cut inside the part: no complete file X, 422 "Samples should be provided as: ...".
        HostileCase(
            "multipart-truncated", drum, request=_multipart_post(_multipart([("X", "x.csv", PROBE_CSV)])[:60], boundary)
        ),
        # Two files named X: the first wins (werkzeug's rule), 200 with its prediction.
        HostileCase(
            "multipart-duplicate-field",
            (ok,),
            predictions=([7.0],),
            request=_multipart_post(_multipart([("X", "a.csv", PROBE_CSV), ("X", "b.csv", b"x\n4\n")]), boundary),
        ),
        # --- headers -----------------------------------------------------------------------------
        # Two Content-Types (text/csv first, then application/json): the first is used, 200.
        HostileCase(
            "duplicate-content-type",
            (ok,),
            predictions=([7.0],),
            raw=lambda: _csv_post(PROBE_CSV, [("Content-Type", "application/json")]),
        ),
        HostileCase("duplicate-content-length", uvicorn, raw=lambda: _csv_post(PROBE_CSV, [("Content-Length", "2")])),
        # httptools sets no limit on header size or count: both are served (200). (An 8 MB header and
        # 100,000 headers were served too.)
        HostileCase(
            "64kb-header", drum, raw=lambda: _csv_post(PROBE_CSV, [("X-Big", "a" * 65536)])
        ),  # 431: over DRUM_MAX_HEADER_SIZE (64 KiB of target and headers)
        HostileCase(
            "8mb-header", drum, raw=lambda: _csv_post(PROBE_CSV, [("X-Big", "a" * 8_000_000)])
        ),  # 431 before the rest is read (httptools alone read it whole)
        HostileCase(
            "60kb-header", (ok,), predictions=([7.0],), raw=lambda: _csv_post(PROBE_CSV, [("X-Big", "a" * 60_000)])
        ),
        HostileCase(
            "500-headers",
            (ok,),
            predictions=([7.0],),
            raw=lambda: _csv_post(PROBE_CSV, [(f"X-H-{i}", "v") for i in range(500)]),
        ),
        HostileCase("nul-in-header", uvicorn, raw=lambda: _csv_post(PROBE_CSV, [("X-Nul", "a\x00b")])),
        HostileCase("obs-fold-header", uvicorn, raw=lambda: _csv_post(PROBE_CSV, [("X-Fold", "a\r\n b")])),
        # --- framing: chunked, Content-Length, smuggling ------------------------------------------
        HostileCase("chunked-bad-size", uvicorn, raw=lambda: _chunked(b"zz\r\nx\n3\n\r\n0\r\n\r\n")),
        HostileCase(
            "chunked-size-overflow", uvicorn, raw=lambda: _chunked(b"ffffffffffffffffffff\r\nx\n3\n\r\n0\r\n\r\n")
        ),
        HostileCase("chunked-truncated-eof", closes, raw=lambda: _chunked(b"10\r\nx\n3\n"), shut_write=True),
        HostileCase("cl-longer-than-body-eof", closes, raw=_cl_post("10"), shut_write=True),
        HostileCase(
            "cl-longer-than-body-held", (DRUM_4XX | PROTOCOL,), raw=_cl_post("10")),
        # The bytes after the declared body are parsed as the next request and refused. Sent in one
        # packet, httptools fails on them before the first answer is written, and uvicorn answers
        # only its 400 and closes; had they come later, the first request would get its 200.
        HostileCase(
            "cl-shorter-than-body",
            (frozenset({OK, UVICORN_400}), PROTOCOL),
            predictions=([7.0],),
            raw=lambda: _csv_post(PROBE_CSV) + b"GARBAGE\x01\r\n\r\n",
        ),
        HostileCase("cl-not-a-number", uvicorn, raw=_cl_post("abc")),
        HostileCase("cl-negative", uvicorn, raw=_cl_post("-1")),
        HostileCase("cl-plus-sign", uvicorn, raw=_cl_post("+4")),
        HostileCase("cl-overflow", uvicorn, raw=_cl_post("99999999999999999999999")),
        # Declared over the 100 MB upload limit: drum's 413 at once, then it closes the connection.
        HostileCase("cl-over-upload-limit", drum, raw=_cl_post(str(200 * MB))),
        # llhttp refuses Content-Length together with Transfer-Encoding, and unknown codings.
        HostileCase("cl-te-smuggling", uvicorn, raw=_smuggle_cl_te),
        HostileCase("te-cl-smuggling", uvicorn, raw=_smuggle_te_cl),
        HostileCase("te-obfuscated", uvicorn, raw=_te_obfuscated),
        # --- request line, versions, pipelining ----------------------------------------------------
        HostileCase("pipelining", (ok, ok), raw=_pipelined, predictions=([7.0], [9.0])),
        HostileCase("pipelining-100", (ok,) * 100, raw=lambda: _csv_post(PROBE_CSV) * 100, predictions=([7.0],) * 100),
        # 404 "ERROR: 404 Not Found: ..." then the next request on the same connection, answered.
        HostileCase(
            "pipelining-after-404",
            (DRUM_4XX, ok),
            predictions=(None, [7.0]),
            raw=lambda: _get("/nowhere")() + _csv_post(PROBE_CSV),
        ),
        # HTTP/1.0 needs no Host: served (200), and the connection closed after it.
        HostileCase(
            "http10-no-host",
            (ok,),
            predictions=([7.0],),
            raw=lambda: http_bytes(
                "POST", "/predict/", [("Content-Type", csv), ("Content-Length", "4")], PROBE_CSV, "1.0"
            ),
        ),
        # HTTP/1.1 without Host (RFC 9112 says 400): uvicorn does not check, served (200).
        HostileCase(
            "http11-no-host",
            (ok,),
            predictions=([7.0],),
            raw=lambda: http_bytes("POST", "/predict/", [("Content-Type", csv), ("Content-Length", "4")], PROBE_CSV),
        ),
        HostileCase("bad-method", uvicorn, raw=lambda: http_bytes("FOO(", "/predict/", [("Host", "x")])),
        HostileCase("bad-http-version", uvicorn, raw=lambda: b"GET /ping/ HTTP/9.9\r\nHost: x\r\n\r\n"),
        HostileCase("http2-preface", uvicorn, raw=lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        HostileCase("bare-lf-line-ends", uvicorn, raw=lambda: b"GET /ping/ HTTP/1.1\nHost: x\n\n"),
        # --- URLs --------------------------------------------------------------------------------
        HostileCase("nul-in-url", uvicorn, raw=_get("/predict/\x00")),
        HostileCase("non-ascii-url", uvicorn, raw=lambda: b"GET /pr\xc3\xa9dict/\xff HTTP/1.1\r\nHost: x\r\n\r\n"),
        # 404 in DRUM's format; a 16 KB query string on /predict/ is served (200).
        HostileCase("16kb-url-path", drum, raw=_get("/" + "a" * 16384)),
        HostileCase(
            "16kb-url-query",
            (ok,),
            predictions=([7.0],),
            raw=lambda: _csv_post(PROBE_CSV, target="/predict/?q=" + "a" * 16384),
        ),
        # Path traversal: no proxy, no file access. The route matches (the dots stay in the path) and
        # drum answers DRUM's 400 {"message": "This endpoint is only supported by OpenAI based
        # predictors"} (DRUM's wording, without "ERROR: "); /etc/passwd never appears.
        HostileCase("traversal-directaccess", traversal, raw=_get("/directAccess/../../etc/passwd")),
        HostileCase("traversal-directaccess-encoded", traversal, raw=_get("/directAccess/%2e%2e/%2e%2e/etc/passwd")),
        HostileCase(
            "traversal-directaccess-encoded-slash", traversal, raw=_get("/directAccess/..%2f..%2f..%2fetc%2fpasswd")
        ),
        HostileCase("traversal-nim", traversal, raw=_get("/nim/../../etc/passwd")),
        # Outside the proxy routes: DRUM's 404.
        HostileCase("traversal-root", drum, raw=_get("/../../../../etc/passwd")),
    ]


HOSTILE_CASES: list[HostileCase] = _cases()


def select(patterns: str | None) -> list[HostileCase]:
    if not patterns:
        return list(HOSTILE_CASES)
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in HOSTILE_CASES if any(fnmatch.fnmatchcase(c.name, g) for g in globs)]


# --- the bench ------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"[reliability {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Server:
    """One `drum server` (the FastAPI backend, 1 worker) on the model above, restartable."""

    def __init__(self, drum: str, work: Path) -> None:
        from bench.servers import ServerSpec
        from bench.workload import ModelKind

        self.spec = ServerSpec("fastapi", drum, SERVER_ENV)
        self.kind = ModelKind("hostile", "regression")
        self.code_dir = write_model(work / "model")
        self.work = work
        self.restarts = 0
        self.running = self._start()

    def _start(self):
        from bench.servers import RunningServer

        server = RunningServer(self.spec, self.kind, self.code_dir, self.work, start_timeout_s=120)
        if not server.ready:
            tail = server.log_tail()
            server.stop()
            raise SystemExit(f"drum server did not start:\n{tail}")
        return server

    @property
    def port(self) -> int:
        return self.running.port

    def alive(self) -> bool:
        return self.running.proc.poll() is None

    def restart(self) -> None:
        self.running.stop()
        self.restarts += 1
        self.running = self._start()

    def stop(self) -> None:
        self.running.stop()


@dataclass
class Row:
    case: HostileCase
    exchange: Exchange
    outcomes: list[str]
    serving: bool
    problems: list[str]


def _status(row: Row) -> str:
    parts = [str(a.status) for a in row.exchange.answers[:3]]
    if len(row.exchange.answers) > 3:
        parts = [f"{len(row.exchange.answers)}x{row.exchange.answers[0].status}"]
    if len(row.exchange.answers) < row.case.responses:
        parts.append(row.exchange.ended)
    return ",".join(parts)


def _excerpt(row: Row, width: int = 60) -> str:
    if not row.exchange.answers:
        return row.exchange.error[:width]
    text = row.exchange.answers[0].body[: width * 2].decode("utf-8", "replace")
    text = text.replace("\n", " ").replace("\r", " ").strip()
    return text if len(text) <= width else text[: width - 3] + "..."


def _verdict(row: Row) -> str:
    if not row.serving:
        return "SERVER DOWN"
    if row.problems:
        return "known bug" if row.case.known_bug else "UNEXPECTED"
    return "fixed?" if row.case.known_bug else "ok"


def print_table(rows: list[Row]) -> None:
    header = ("case", "status", "category", "seconds", "body excerpt", "serving", "verdict")
    lines = [
        (
            r.case.name,
            _status(r),
            ",".join(sorted(set(r.outcomes))),
            f"{r.exchange.seconds:.2f}",
            _excerpt(r),
            "yes" if r.serving else "no",
            _verdict(r),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))


def print_totals(rows: list[Row], restarts: int) -> None:
    every = [o for r in rows for o in r.outcomes]
    answers = [a for r in rows for a in r.exchange.answers]
    count = {
        "2xx": sum(200 <= a.status < 300 for a in answers),
        "4xx": sum(400 <= a.status < 500 for a in answers),
        "5xx": sum(a.status >= 500 for a in answers),
    }
    model = every.count(MODEL_500)
    print()
    print(
        f"cases: {len(rows)}   answers: {len(answers)} (2xx {count['2xx']}, 4xx {count['4xx']}, "
        f"5xx {count['5xx']} of which the model's own {model})   closed: {every.count(CLOSED)}   "
        f"timeout: {every.count(TIMEOUT)}   garbled: {every.count(GARBLED)}"
    )
    print(
        f"4xx by whom: drum {every.count(DRUM_ERROR) + every.count(DRUM_MESSAGE)}, "
        f"uvicorn {every.count(UVICORN_400)}, other {every.count(OTHER_4XX)}"
    )
    unexpected = [r for r in rows if r.problems and not r.case.known_bug]
    known = [r for r in rows if r.problems and r.case.known_bug]
    fixed = [r for r in rows if not r.problems and r.case.known_bug]
    down = [r for r in rows if not r.serving]
    print(
        f"as expected: {len(rows) - len(unexpected) - len(known) - len(fixed)}   known drum bugs: {len(known)}   "
        f"unexpected: {len(unexpected)}   known bugs no longer seen: {len(fixed)}"
    )
    print(f"server not serving after a case: {len(down)}   server restarts: {restarts}")
    for r in known:
        print(f"  known bug  {r.case.name}: {r.case.known_bug}")
    for r in unexpected + fixed:
        print(f"  {'UNEXPECTED' if r.problems else 'fixed?    '} {r.case.name}: {'; '.join(r.problems) or 'as hoped'}")
    for r in down:
        print(f"  SERVER DOWN after {r.case.name}")


def run_hostile(args: argparse.Namespace) -> int:
    """`--hostile`: every hostile case once against one server, then the table."""
    cases = select(args.only)
    if not cases:
        raise SystemExit(f"no case matches {args.only!r}; --list shows them")
    with tempfile.TemporaryDirectory(prefix="drum-reliability-") as tmp:
        _log(f"starting drum server ({args.drum})")
        server = Server(args.drum, Path(tmp))
        _log(f"serving on 127.0.0.1:{server.port}; {len(cases)} cases")
        rows: list[Row] = []
        try:
            for case in cases:
                exchange = case.send(server.port)
                serving, probe = predict_probe(server.port) if server.alive() else (False, "process exited")
                rows.append(Row(case, exchange, outcomes(exchange, case.responses), serving, case.problems(exchange)))
                if not serving:
                    _log(f"{case.name}: server no longer serves ({probe}); restarting it")
                    server.restart()
        finally:
            server.stop()
    print_table(rows)
    print_totals(rows, server.restarts)
    bad = any((r.problems and not r.case.known_bug) or not r.serving for r in rows)
    return 1 if bad else 0


def _fault(flag: str) -> Callable[[argparse.Namespace], int]:
    """A drill of bench/faults.py as a section."""

    def run(args: argparse.Namespace) -> int:
        from bench import faults

        return faults.main([flag])

    return run


#: Section flag → its function.
SECTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "hostile": run_hostile,
    "sigterm": _fault("--sigterm"),
    "kill9": _fault("--kill9"),
    "slowloris": _fault("--slowloris"),
    "big_bodies": _fault("--big-bodies"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="every section")
    p.add_argument("--hostile", action="store_true", help="hostile HTTP input: every case once, one table")
    p.add_argument("--sigterm", action="store_true", help="SIGTERM under load (bench/faults.py)")
    p.add_argument("--kill9", action="store_true", help="kill -9 of a worker under load (bench/faults.py)")
    p.add_argument("--slowloris", action="store_true", help="50 slow clients (bench/faults.py)")
    p.add_argument("--big-bodies", action="store_true", help="32 concurrent 20 MB posts (bench/faults.py)")
    p.add_argument(
        "--drum",
        default=str(Path(sys.executable).with_name("drum")),
        help="the drum executable to serve with (default: the one next to this Python)",
    )
    p.add_argument("--only", help="comma-separated case names or globs (default: every case)")
    p.add_argument("--list", action="store_true", help="list the hostile cases, then exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for case in HOSTILE_CASES:
            print(f"{case.name:40} {'known bug' if case.known_bug else ''}")
        return 0
    chosen = [name for name in SECTIONS if args.all or getattr(args, name)]
    if not chosen:
        flags = " ".join("--" + name.replace("_", "-") for name in SECTIONS)
        raise SystemExit(f"choose a section: --all {flags}")
    code = 0
    for name in chosen:
        code = max(code, SECTIONS[name](args))
    return code


if __name__ == "__main__":
    sys.exit(main())
