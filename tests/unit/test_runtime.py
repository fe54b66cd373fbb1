"""The serving runtime's dispatch policy, in process (the whole FastAPI app over httpx's ASGITransport):
early answers, 503 when admission is full, 504 after the request timeout, batching, the error server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from drum.config.server_config import ServerConfig
from drum.config.settings import Settings
from drum.model.predictor import ModelConfig, Predictor
from drum.model.target import TargetType
from drum.servers.fastapi.app import create_app
from drum.serving import runtime as runtime_module
from drum.serving.handlers import ServingContext
from drum.serving.response import ResponseData
from drum.serving.runtime import BUSY_TEXT, Runtime

CSV = {"Content-Type": "text/csv"}
GATED_MODEL = """
import threading
import pandas as pd

gate = threading.Event()

def load_model(code_dir):
    return "m"

def score(data, model, **kwargs):
    if "wait" in data.columns:
        gate.wait(10)
    return pd.DataFrame({"Predictions": [1.0] * len(data)})
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "custom.py").write_text(GATED_MODEL)
    return tmp_path


def loader(code_dir: Path) -> Callable[[], ServingContext]:
    def load() -> ServingContext:
        predictor = Predictor(ModelConfig(str(code_dir), TargetType.REGRESSION)).load()
        return ServingContext(predictor=predictor, target_type=TargetType.REGRESSION, code_dir=str(code_dir))

    return load


def make_runtime(load: Callable[[], ServingContext], with_error_server: bool = False, **settings: object) -> Runtime:
    """A runtime with `settings` (names of `Settings` fields) over the defaults, quiet and untuned."""
    defaults: dict[str, object] = {"access_log": False, "malloc_mmap_threshold": 0, "gil_switch_interval_us": 0}
    settings = Settings(**{**defaults, **settings})  # type: ignore[arg-type]
    config = ServerConfig(code_dir=".", with_error_server=with_error_server, settings=settings)
    return Runtime(config, load)


def serve(runtime: Runtime, scenario: Callable[[httpx.AsyncClient], object], start: bool = True) -> object:
    """Run `scenario(client)` against the app of `runtime` (started first, stopped after)."""
    app = create_app(runtime)

    async def main() -> object:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://drum") as client:
            return await scenario(client)  # type: ignore[misc]

    if start:
        runtime.start()
    try:
        return asyncio.run(main())
    finally:
        if start:
            runtime.stop()


def gate_of(runtime: Runtime) -> threading.Event:
    assert runtime.ctx is not None and runtime.ctx.predictor is not None
    return runtime.ctx.predictor.hooks.get("score").__globals__["gate"]


def test_a_full_executor_and_queue_answer_503_while_health_answers_on_the_loop(model_dir):
    runtime = make_runtime(loader(model_dir), executor_workers=1, max_queue=0)

    async def scenario(client: httpx.AsyncClient) -> None:
        blocked = asyncio.ensure_future(client.post("/predict/", content=b"wait\n1\n", headers=CSV))
        while runtime.admission is None or runtime.admission.in_flight == 0:
            await asyncio.sleep(0.001)
        busy = await client.post("/predict/", content=b"a\n1\n", headers=CSV)
        assert busy.status_code == 503
        assert busy.json() == {"message": f"ERROR: {BUSY_TEXT}"}
        assert busy.headers["Retry-After"] == "1"
        assert (await client.get("/ping/")).json() == {"message": "OK"}  # never queued behind predictions
        gate_of(runtime).set()
        assert (await blocked).json() == {"predictions": [1.0]}
        assert (await client.post("/predict/", content=b"a\n1\n", headers=CSV)).status_code == 200

    serve(runtime, scenario)


def test_a_full_executor_answers_a_v2_request_503_in_the_protocols_error_form(model_dir):
    runtime = make_runtime(loader(model_dir), executor_workers=1, max_queue=0)
    tensor = {"inputs": [{"name": "a", "shape": [1, 1], "datatype": "FP64", "data": [1.0]}]}

    async def scenario(client: httpx.AsyncClient) -> None:
        blocked = asyncio.ensure_future(client.post("/predict/", content=b"wait\n1\n", headers=CSV))
        while runtime.admission is None or runtime.admission.in_flight == 0:
            await asyncio.sleep(0.001)
        infer = f"/v2/models/{model_dir.name}/infer"
        busy = await client.post(infer, json=tensor)
        assert busy.status_code == 503
        assert busy.json() == {"error": BUSY_TEXT}
        assert busy.headers["Retry-After"] == "1"
        gate_of(runtime).set()
        await blocked
        assert (await client.post(infer, json=tensor)).status_code == 200

    serve(runtime, scenario)


def test_a_request_over_the_timeout_answers_504_and_its_slot_is_held_until_the_model_returns(model_dir):
    runtime = make_runtime(loader(model_dir), executor_workers=1, max_queue=0)

    async def scenario(client: httpx.AsyncClient) -> None:
        runtime.request_timeout = 0.05
        late = await client.post("/predict/", content=b"wait\n1\n", headers=CSV)
        assert late.status_code == 504
        assert late.json() == {"message": "ERROR: Request timed out after 0.05 seconds"}
        assert runtime.admission is not None and runtime.admission.in_flight == 1  # the model still runs
        assert (await client.post("/predict/", content=b"a\n1\n", headers=CSV)).status_code == 503
        gate_of(runtime).set()
        while runtime.admission.in_flight:
            await asyncio.sleep(0.001)
        assert (await client.post("/predict/", content=b"a\n1\n", headers=CSV)).status_code == 200

    serve(runtime, scenario)


def test_early_answers_need_no_model_thread(model_dir):
    runtime = make_runtime(loader(model_dir))

    async def not_started(client: httpx.AsyncClient) -> None:
        options = await client.options("/predict/")
        assert options.status_code == 200 and options.headers["Allow"] == "POST, OPTIONS"
        answer = await client.post("/predict/", content=b"a\n1\n", headers=CSV)
        assert answer.status_code == 503 and answer.json() == {"message": "ERROR: model is not loaded yet"}

    serve(runtime, not_started, start=False)


def test_the_error_server_answers_513_on_the_routes_drum_keeps_and_404_elsewhere():
    def failing() -> ServingContext:
        raise ValueError("cannot load")

    with pytest.raises(ValueError, match="cannot load"):
        make_runtime(failing).start()
    runtime = make_runtime(failing, with_error_server=True)

    async def scenario(client: httpx.AsyncClient) -> None:
        for method, path in (("GET", "/ping/"), ("GET", "/"), ("POST", "/predict/"), ("POST", "/transform/")):
            answer = await client.request(method, path, content=b"a\n1\n", headers=CSV)
            assert (answer.status_code, answer.json()) == (513, {"message": "ERROR: cannot load"}), path
        assert (await client.get("/info/")).status_code == 404

    serve(runtime, scenario)


def test_small_requests_go_to_the_batcher_and_larger_ones_alone(model_dir, monkeypatch):
    alone: list[int] = []
    real_run_route = runtime_module.run_route

    def counting_run_route(ctx, route, req):  # type: ignore[no-untyped-def]
        alone.append(len(req.body))
        return real_run_route(ctx, route, req)

    monkeypatch.setattr(runtime_module, "run_route", counting_run_route)
    runtime = make_runtime(loader(model_dir), batching_max_rows=4)

    class RecordingBatcher:
        max_rows = 4

        def __init__(self) -> None:
            self.rows: list[int] = []

        def submit(self, item: object) -> asyncio.Future:
            self.rows.append(item.rows)  # type: ignore[attr-defined]
            future = asyncio.get_running_loop().create_future()
            future.set_result(ResponseData(200, b'{"predictions":"batched"}'))
            return future

    small, large = b"a,b\n" + b"1,2\n" * 4, b"a,b\n" + b"1,2\n" * 50_000

    async def scenario(client: httpx.AsyncClient) -> list[object]:
        assert runtime.batcher is not None  # the model may be batched
        runtime.batcher = recorder = RecordingBatcher()  # type: ignore[assignment]
        answers = [(await client.post("/predict/", content=body, headers=CSV)).json() for body in (small, large)]
        assert recorder.rows == [4]  # the large body never reached the batcher (nor was counted whole)
        return answers

    answers = serve(runtime, scenario)
    assert answers == [{"predictions": "batched"}, {"predictions": [1.0] * 50_000}]
    assert alone == [len(large)]


def test_the_runtime_stops_what_it_started(model_dir):
    runtime = make_runtime(loader(model_dir), executor_workers=2)
    runtime.start()
    assert runtime.ctx is not None and runtime.ctx.server_name == "fastapi"
    executor = runtime.executor
    runtime.stop()
    assert executor is not None
    assert not any(t.is_alive() for t in executor._workers)  # noqa: SLF001 - stopped and joined
    with pytest.raises(RuntimeError):
        executor.submit(print)
