"""The access log: gunicorn's `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"` on stdout."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import sys
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from drum.observability.access_log import (
    ACCESS_LOG_FORMAT,
    ACCESS_LOGGER_NAME,
    AccessLog,
    AccessLogMiddleware,
    format_access_line,
    format_time,
)

LINE = re.compile(
    r"^(?P<h>\S+) - (?P<u>\S+) \[(?P<t>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "
    r'"(?P<r>[^"]*)" (?P<s>\d{3}) (?P<b>\d+|-) "(?P<f>[^"]*)" "(?P<a>[^"]*)"$'
)


def scope(**overrides) -> dict:
    base = {
        "type": "http",
        "method": "POST",
        "path": "/predict/",
        "raw_path": b"/predict/",
        "query_string": b"",
        "http_version": "1.1",
        "client": ("10.1.2.3", 54321),
        "headers": [],
    }
    return {**base, **overrides}


def test_the_format_is_gunicorns():
    assert ACCESS_LOG_FORMAT == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def test_line_with_every_atom():
    line = format_access_line(
        scope(
            query_string=b"a=1&b=%20x",
            headers=[(b"referer", b"http://app/page"), (b"user-agent", b"python-requests/2.32.3")],
        ),
        200,
        27,
        timestamp=0,
    )
    match = LINE.match(line)
    assert match, line
    assert match["h"] == "10.1.2.3"  # the address only, without the port
    assert match["u"] == "-"
    assert match["t"] == format_time(0)[1:-1]
    assert match["r"] == "POST /predict/?a=1&b=%20x HTTP/1.1"
    assert (match["s"], match["b"]) == ("200", "27")
    assert (match["f"], match["a"]) == ("http://app/page", "python-requests/2.32.3")


def test_line_is_the_gunicorn_format_of_its_atoms():
    """The line is `ACCESS_LOG_FORMAT % atoms`, repeated headers joined with commas as in WSGI."""
    auth = b"Basic " + base64.b64encode(b"bob:pw")
    headers = [
        (b"user-agent", b"a/1"), (b"referer", b"http://r/1"), (b"x-other", b"z"), (b"user-agent", b"b/2"),
        (b"referer", b"http://r/2"), (b"authorization", auth), (b"user-agent", b"c\xe9"),
    ]
    line = format_access_line(scope(headers=headers, query_string=b"q=1"), 201, 5, timestamp=7)
    atoms = {
        "h": "10.1.2.3", "l": "-", "u": "bob", "t": format_time(7), "r": "POST /predict/?q=1 HTTP/1.1", "s": 201,
        "b": "5", "f": "http://r/1,http://r/2", "a": "a/1,b/2,c\xe9",
    }
    assert line == ACCESS_LOG_FORMAT % atoms


def test_missing_headers_and_client_are_dashes():
    line = format_access_line(scope(method="GET", path="/ping/", raw_path=b"/ping/", client=None), 200, 0)
    assert re.match(r'^- - - \[[^]]+\] "GET /ping/ HTTP/1.1" 200 0 "-" "-"$', line), line


def test_raw_path_is_logged_as_received():
    line = format_access_line(scope(path="/a b", raw_path=b"/a%20b"), 404, 10)
    assert '"POST /a%20b HTTP/1.1" 404 10' in line


def test_http_version_and_no_bytes():
    line = format_access_line(scope(http_version="1.0"), 500, None)
    assert '"POST /predict/ HTTP/1.0" 500 - "-"' in line


def test_user_comes_from_basic_auth_as_in_gunicorn():
    auth = "Basic " + base64.b64encode(b"alice:pw").decode()
    assert LINE.match(format_access_line(scope(headers=[(b"authorization", auth.encode())]), 200, 1))["u"] == "alice"
    for value in (b"Bearer abc", b"Basic !!!notbase64", b"Basic"):
        assert LINE.match(format_access_line(scope(headers=[(b"authorization", value)]), 200, 1))["u"] == "-"


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_time_is_apache_common_log_format(utc):
    assert format_time(1795441988) == "[23/Nov/2026:13:53:08 +0000]"


def test_time_carries_the_local_offset(monkeypatch):
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        assert format_time(1795441988) == "[23/Nov/2026:08:53:08 -0500]"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_time_matches_strftime_in_the_c_locale(utc):
    now = time.time()
    assert format_time(now) == time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))


# --- the middleware ----------------------------------------------------------------------------


async def hello(request):
    return PlainTextResponse("hello world")


async def stream(request):
    async def chunks():
        for chunk in (b"abc", b"defg", b""):
            yield chunk

    return StreamingResponse(chunks())


async def boom(request):
    raise RuntimeError("boom")


class Client:
    """A synchronous client calling an ASGI app in-process (client address "testclient")."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(self.app, raise_app_exceptions=False, client=("testclient", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                kwargs.setdefault("headers", {})
                kwargs["headers"].setdefault("User-Agent", "testclient")
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def head(self, url: str, **kwargs) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)


def make_client(enabled: bool = True) -> Client:
    app = Starlette(
        routes=[
            Route("/hello", hello, methods=["GET", "HEAD", "POST"]),
            Route("/stream", stream),
            Route("/boom", boom),
        ]
    )
    return Client(AccessLogMiddleware(app, enabled=enabled))


def access_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_one_line_per_request_on_stdout(capsys):
    client = make_client()
    client.get("/hello?x=1", headers={"User-Agent": "ua/1.0", "Referer": "http://r/"})
    client.post("/hello", content=b"abc")
    lines = access_lines(capsys)
    assert len(lines) == 2, lines
    first = LINE.match(lines[0])
    assert first, lines[0]
    assert first["h"] == "testclient"
    assert (first["r"], first["s"], first["b"]) == ("GET /hello?x=1 HTTP/1.1", "200", "11")
    assert (first["f"], first["a"]) == ("http://r/", "ua/1.0")
    assert LINE.match(lines[1])["r"] == "POST /hello HTTP/1.1"


def test_not_found_and_streamed_bytes(capsys):
    client = make_client()
    assert client.get("/nope").status_code == 404
    assert client.get("/stream").content == b"abcdefg"
    lines = [LINE.match(line) for line in access_lines(capsys)]
    assert [(m["s"], m["b"]) for m in lines] == [("404", "9"), ("200", "7")]


def test_head_counts_no_body_bytes(capsys):
    make_client().head("/hello")
    (line,) = access_lines(capsys)
    assert LINE.match(line)["b"] == "0"


def test_an_error_answered_by_the_app_is_logged_with_its_bytes(capsys):
    assert make_client().get("/boom").text == "Internal Server Error"
    (line,) = access_lines(capsys)
    match = LINE.match(line)
    assert (match["r"], match["s"], match["b"]) == ("GET /boom HTTP/1.1", "500", "21")


def test_an_app_that_raises_before_answering_is_logged_as_500_without_bytes(capsys):
    async def crash(scope, receive, send):
        raise RuntimeError("boom")

    client = Client(AccessLogMiddleware(crash))
    assert client.get("/crash").status_code == 500
    (line,) = access_lines(capsys)
    match = LINE.match(line)
    assert (match["r"], match["s"], match["b"]) == ("GET /crash HTTP/1.1", "500", "-")


def test_disabled_writes_nothing(capsys):
    client = make_client(enabled=False)
    assert client.get("/hello").text == "hello world"
    assert access_lines(capsys) == []


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_logger_is_plain_and_does_not_propagate(capsys):
    make_client()
    logger = logging.getLogger(ACCESS_LOGGER_NAME)
    assert logger.propagate is False
    assert logger.level == logging.INFO
    make_client()  # a second middleware does not add a second handler
    assert sum(type(h).__name__ == "_StdoutHandler" for h in logger.handlers) == 1
    root = logging.getLogger()
    recorder = Recorder()
    root.addHandler(recorder)
    old_level = root.level
    root.setLevel(logging.CRITICAL)  # the access log does not depend on --logging-level
    try:
        make_client().get("/hello")
    finally:
        root.removeHandler(recorder)
        root.setLevel(old_level)
    assert recorder.records == []  # not through the root logger: no DRUM log prefix, not on stderr
    out = capsys.readouterr()
    assert re.search(r'^testclient - - \[[^]]+\] "GET /hello HTTP/1.1" 200 11 "-" "testclient"$', out.out, re.M)
    assert out.err == ""


def test_lifespan_passes_through(capsys):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        pass

    asyncio.run(AccessLogMiddleware(app)({"type": "lifespan"}, receive, send))
    assert seen == ["lifespan"]
    assert access_lines(capsys) == []


def test_utc_example_matches_the_documented_line(utc):
    line = format_access_line(
        scope(client=("127.0.0.1", 1), headers=[(b"user-agent", b"python-requests/2.28.0")]),
        200,
        1234,
        timestamp=1768299332,
    )
    expected = '127.0.0.1 - - [13/Jan/2026:10:15:32 +0000] "POST /predict/ HTTP/1.1" 200 1234 "-" ' + (
        '"python-requests/2.28.0"'
    )
    assert line == expected
    assert os.environ["TZ"] == "UTC"


def test_lines_of_one_loop_turn_go_out_in_one_write_and_a_users_handler_sees_records(monkeypatch):
    """While `drum.access` is as drum set it up, the lines of one turn of the event loop are one write to
    stdout (with the same text); a handler the user adds gets every line as a record instead."""
    log = AccessLog()
    monkeypatch.setattr(log.logger, "handlers", [log.handler])  # as drum sets it up (pytest adds its own)
    writes: list[str] = []

    class Stdout:
        def write(self, text: str) -> None:
            writes.append(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Stdout())
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "client": ("c", 1)}

    async def turn() -> None:
        for status in (200, 404, 500):
            log.log(scope, status, 3)
        assert writes == []  # not yet: at the next turn of the loop
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert len(writes) == 1
    lines = writes[0].splitlines()
    assert [LINE.match(line)["s"] for line in lines] == ["200", "404", "500"]
    assert lines[0] == format_access_line(scope, 200, 3)

    recorder = Recorder()
    logger = logging.getLogger(ACCESS_LOGGER_NAME)
    logger.addHandler(recorder)
    try:
        log.log(scope, 201, 0)
    finally:
        logger.removeHandler(recorder)
    assert [record.getMessage() for record in recorder.records] == [format_access_line(scope, 201, 0)]
