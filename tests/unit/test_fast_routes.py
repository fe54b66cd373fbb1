"""The one-layer path for DRUM's routes (`servers/fastapi/fastpath.py`) answers exactly as the whole
middleware stack does: same statuses, bodies, headers, access log lines, error log lines and metrics,
for good and bad requests; and it is used only while nothing else wraps DRUM's routes."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware

from drum.observability.access_log import ACCESS_LOGGER_NAME
from drum.servers.fastapi.app import create_app
from drum.servers.fastapi.fastpath import FastRoutes
from drum.serving.runtime import Runtime
from tests.unit.test_runtime import loader, make_runtime

MODEL = """
import pandas as pd

def load_model(code_dir):
    return "m"

def score(data, model, **kwargs):
    if "boom" in data.columns:
        raise ValueError("the model failed")
    return pd.DataFrame({"Predictions": [float(len(data.columns))] * len(data)})
"""
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    code_dir = tmp_path / "fastmodel"
    code_dir.mkdir()
    (code_dir / "custom.py").write_text(MODEL)
    return code_dir


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def requests(model_name: str) -> list[dict]:
    """Good and bad requests of every kind the fast path takes or hands on."""
    tensor = {"inputs": [{"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]}]}
    return [
        {"method": "POST", "url": "/predict/", "content": b"a,b\n1,2\n3,4\n", "headers": CSV},
        {"method": "POST", "url": "/predictions", "content": b"a\n1\n", "headers": {**CSV, "X-Request-ID": "r-1"}},
        {"method": "POST", "url": "/predict/?x=1&x=2", "content": b"a\n1\n", "headers": CSV},
        {"method": "POST", "url": "/predict/", "content": b"boom\n1\n", "headers": CSV},  # the model's 500
        {"method": "POST", "url": "/predict/", "content": b"", "headers": CSV},  # no data: 4xx
        {"method": "POST", "url": "/predict/", "content": b"a\n" + b"1\n" * 600, "headers": CSV},  # 413
        {"method": "POST", "url": "/predict/", "content": chunks(b"a\n", b"1\n" * 300, b"1\n" * 300), "headers": CSV},
        {"method": "POST", "url": "/predict/", "content": b"a\n1\n", "headers": {**CSV, "X-Request-Timeout": "x"}},
        {"method": "GET", "url": "/predict/"},  # 405: the router's answer
        {"method": "OPTIONS", "url": "/predict/"},
        {"method": "GET", "url": "/ping/"},
        {"method": "HEAD", "url": "/ping"},
        {"method": "GET", "url": "/"},
        {"method": "GET", "url": "/health/"},
        {"method": "GET", "url": "//ping/"},  # merged slashes: the whole stack
        {"method": "GET", "url": "/no/such/route"},
        {"method": "POST", "url": f"/v2/models/{model_name}/infer", "json": tensor},
        {"method": "POST", "url": "/v2/models/other/infer", "json": tensor},  # 404 in V2's form
        {"method": "POST", "url": f"/v2/models/{model_name}/infer", "content": b"{",
         "headers": {"X-Request-ID": "r-2"}},  # fmt: skip
        {"method": "GET", "url": f"/v2/models/{model_name}/infer"},  # 405
        {"method": "GET", "url": f"/v2/models/{model_name}"},
        {"method": "GET", "url": "/v2/health/ready"},
    ]


class Observed(list):
    """Stands for `Metrics` (one prometheus registry per process): what the app counts, in order."""

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.append((route, method, status))

    def count_abandoned(self, stage: str) -> None:
        self.append(("abandoned", stage))

    def set_jobs(self, count: int) -> None:
        pass


def exchange(runtime: Runtime, app: FastAPI, model_name: str) -> tuple[list, list[str], list[str], list[tuple]]:
    """Each request's (status, body, headers), the access log lines, drum's log lines naming the test's
    request ids, the metrics."""
    access: list[str] = []
    server: list[str] = []
    observed = runtime.metrics
    assert isinstance(observed, Observed)

    class Lines(logging.Handler):
        def __init__(self, into: list[str]) -> None:
            super().__init__()
            self.into = into

        def emit(self, record: logging.LogRecord) -> None:
            message = re.sub(r"request time: \S+ sec", "request time: T sec", record.getMessage())
            self.into.append(message.split("] ", 1)[-1] if "] " in message else message)  # no timestamp

    handlers = [(logging.getLogger(ACCESS_LOGGER_NAME), Lines(access)), (logging.getLogger("drum"), Lines(server))]
    level = logging.getLogger("drum").level
    logging.getLogger("drum").setLevel(logging.INFO)
    for logger, handler in handlers:
        logger.addHandler(handler)

    async def main() -> list:
        answers = []
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://drum") as client:
            for request in requests(model_name):
                response = await client.request(**request)
                headers = {k: v for k, v in response.headers.items() if k.lower() != "x_request_id"}
                answers.append((request["method"], request["url"], response.status_code, response.content, headers))
        return answers

    runtime.start()
    try:
        answers = asyncio.run(main())
    finally:
        runtime.stop()
        logging.getLogger("drum").setLevel(level)
        for logger, handler in handlers:
            logger.removeHandler(handler)
    ids = [line for line in server if "r-1" in line or "r-2" in line]
    return answers, access, ids, observed


def test_the_fast_path_answers_logs_and_counts_as_the_whole_stack(model_dir):
    results = []
    for fast in (True, False):
        runtime = make_runtime(loader(model_dir), fast_routes=fast, access_log=True, max_upload_size=1000)
        runtime.metrics = Observed()  # type: ignore[assignment]
        app = create_app(runtime)
        results.append(exchange(runtime, app, model_dir.name))
        assert isinstance(app.middleware_stack, FastRoutes) is fast
    (fast_answers, fast_access, fast_ids, fast_metrics), (answers, access, ids, metrics) = results
    for got, expected in zip(fast_answers, answers, strict=True):
        assert got == expected
    statuses = {answer[2] for answer in answers}
    assert {200, 400, 404, 405, 413, 500} <= statuses, statuses  # the cases are what they claim to be
    assert fast_access == access and len(access) == len(answers)
    assert fast_metrics == metrics and len(metrics) == len(answers) - 2  # not the 413s: as the stack counts
    assert fast_ids == ids and ids


def test_anything_that_wraps_drums_routes_turns_the_fast_path_off(model_dir):
    def user_middleware(app: FastAPI) -> None:
        app.add_middleware(BaseHTTPMiddleware, dispatch=lambda request, call_next: call_next(request))

    def route_first(app: FastAPI) -> None:
        app.router.routes.insert(0, app.router.routes.pop())

    cases = [
        ({}, None, True),
        ({}, lambda app: app.get("/mine")(lambda: {"mine": True}), True),  # a user route after DRUM's
        ({}, user_middleware, False),
        ({}, route_first, False),
        ({"fast_routes": False}, None, False),
        ({"enable_docs": True}, None, False),
    ]
    for settings, extend, fast in cases:
        runtime = make_runtime(loader(model_dir), **settings)
        app = create_app(runtime, extend)
        assert isinstance(app.build_middleware_stack(), FastRoutes) is fast, (settings, extend)


def test_a_failure_inside_drum_answers_500_as_starlettes_error_middleware_does(model_dir):
    """A bug that escapes the runtime: the same plain 500 (from outside DRUM's middleware: no DRUM headers),
    the same metrics, and the error raised on to the server (which logs it)."""
    results = []
    for fast in (True, False):
        runtime = make_runtime(loader(model_dir), fast_routes=fast)
        runtime.metrics = Observed()  # type: ignore[assignment]
        app = create_app(runtime)

        async def broken(route: object, req: object) -> None:
            raise RuntimeError("a bug")

        runtime.respond = broken  # type: ignore[method-assign]

        async def main(app: FastAPI = app) -> tuple:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://drum") as client:
                response = await client.post("/predict/", content=b"a\n1\n", headers=CSV)
            headers = {k: v for k, v in response.headers.items() if k.lower() != "x_request_id"}
            return response.status_code, response.content, headers, "x_request_id" in response.headers

        runtime.start()
        try:
            results.append((asyncio.run(main()), list(runtime.metrics)))
        finally:
            runtime.stop()
    assert results[0] == results[1]
    assert results[0][0][:2] == (500, b"Internal Server Error")


def test_uvicorns_app_is_the_front_which_answers_drums_routes_without_the_layers_between(model_dir):
    """`FastFront` takes DRUM's routes straight to `FastRoutes`; a request with X-Forwarded-* headers (the
    proxy-headers middleware rewrites its client) and anything else go through uvicorn's whole app."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from drum.config.server_config import ServerConfig
    from drum.servers.fastapi.fastpath import FastFront
    from drum.servers.fastapi.run import uvicorn_config

    runtime = make_runtime(loader(model_dir))
    app = create_app(runtime)

    class Options:
        code_dir = str(model_dir)
        address = "127.0.0.1:0"

    config = uvicorn_config(app, ServerConfig.from_options(Options(), {}))
    config.load()
    front = config.loaded_app
    assert isinstance(front, FastFront) and isinstance(front.outer, ProxyHeadersMiddleware)
    outer_paths: list[str] = []
    outer = front.outer

    async def counted(scope, receive, send) -> None:
        if scope["type"] == "http":
            forwarded = any(k == b"x-forwarded-for" for k, _ in scope["headers"])
            outer_paths.append(scope["path"] + ("+fwd" if forwarded else ""))
        await outer(scope, receive, send)

    front.outer = counted
    app.middleware_stack = app.build_middleware_stack()

    async def main() -> list[tuple[int, str | None]]:
        transport = httpx.ASGITransport(app=front, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://drum") as client:
            answers = [
                await client.post("/predict/", content=b"a,b\n1,2\n", headers=CSV),
                await client.post("/predict/", content=b"a\n1\n", headers={**CSV, "X-Forwarded-For": "203.0.113.7"}),
                await client.get("/ping/"),
                await client.get("/no/such/route"),
            ]
        return [(answer.status_code, answer.headers.get("x_request_id")) for answer in answers]

    runtime.start()
    try:
        answers = asyncio.run(main())
    finally:
        runtime.stop()
    assert [status for status, _ in answers] == [200, 200, 200, 404]
    assert all(request_id for _, request_id in answers[:3])  # DRUM's headers either way
    assert outer_paths == ["/predict/+fwd", "/no/such/route"]


def test_templated_paths_are_matched_once_and_remembered_within_a_bound(model_dir, monkeypatch):
    from drum.servers.fastapi import fastpath

    runtime = make_runtime(loader(model_dir))
    app = create_app(runtime)
    fast = app.build_middleware_stack()
    assert isinstance(fast, FastRoutes)
    monkeypatch.setattr(fastpath, "MATCHED_PATHS", 3)

    def scope(path: str, method: str = "POST") -> dict:
        return {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}

    first = fast.find(scope("/v2/models/m1/infer"))
    assert first is not None and first[1] == {"name": "m1"}
    first[1]["name"] = "changed"  # a caller's copy
    again = fast.find(scope("/v2/models/m1/infer"))
    assert again is not None and again[0] is first[0] and again[1] == {"name": "m1"}
    assert fast.find(scope("/v2/models/m1/infer", "GET")) is None  # the router's 405, also after a POST
    for i in range(5):
        assert fast.find(scope(f"/v2/models/n{i}/infer"))[1] == {"name": f"n{i}"}
        assert len(fast._matched) <= 3
