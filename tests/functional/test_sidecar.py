"""`--gpu-predictor nim|vllm --sidecar`: the model is an OpenAI-compatible server beside drum (here the
fake backend of `fake_openai.py`). Predictions, chat (official OpenAI client, streaming included),
/models, health probes and the `/directAccess/` and `/nim/` proxy, with the backend up, slow and down."""

from __future__ import annotations

import gzip
import json
import time

import openai
import pytest
import requests
from fake_openai import MODEL_ID, fake_openai_backend
from support import (
    assert_error,
    assert_json,
    free_port,
    ours_only,
    runtime_param,
    server_pool,
    start_server,
    wait_for_exit,
    write_model,
)

pytestmark = ours_only  # DRUM 1.18.1 needs a GPU container for these (and proxies synchronously)

EMPTY_MODEL = {"README.md": "The model is the OpenAI-compatible server next to drum.\n"}
TEXTGEN = ("--target-type", "textgeneration")


@pytest.fixture(scope="module")
def backend():
    with fake_openai_backend(free_port()) as fake:
        yield fake


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture
def vllm(pool, backend):
    env = {"OPENAI_HOST": "127.0.0.1", "OPENAI_PORT": str(backend.port)}
    return pool("vllm", EMPTY_MODEL, *TEXTGEN, "--gpu-predictor", "vllm", "--sidecar", env=env, name="vllm")


@pytest.fixture
def nim(pool, backend):
    """NIM: DR_NIM_SERVER_* runtime parameters win over OPENAI_*; prompt settings from runtime parameters."""
    env = {
        "OPENAI_PORT": "1",
        "MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_HOST": runtime_param("127.0.0.1"),
        "MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_PORT": runtime_param(str(backend.port)),
        "MLOPS_RUNTIME_PARAM_prompt_column_name": runtime_param("question"),
        "MLOPS_RUNTIME_PARAM_system_prompt": runtime_param("be brief"),
        "MLOPS_RUNTIME_PARAM_n": runtime_param(2, "numeric"),
        "MLOPS_RUNTIME_PARAM_NIM_DIRECT_ACCESS_REQUEST_TIMEOUT": runtime_param(1, "numeric"),
    }
    return pool("nim", EMPTY_MODEL, *TEXTGEN, "--gpu-predictor", "nim", "--sidecar", env=env, name="nim")


@pytest.fixture
def down(pool):
    env = {"OPENAI_HOST": "127.0.0.1", "OPENAI_PORT": str(free_port())}  # nothing listens there
    return pool("down", EMPTY_MODEL, *TEXTGEN, "--gpu-predictor", "vllm", "--sidecar", env=env, name="down")


def _wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- health, info, predictions ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ping/", "/ping", "/health/"])
def test_health_routes_ask_the_backend(vllm, backend, path):
    assert_json(vllm.get(path), 200, {"message": "ready"})
    backend.healthy = False
    try:
        assert_json(vllm.get(path), 503, {"message": "not ready"})
    finally:
        backend.healthy = True


def test_nim_health_route(nim):
    assert_json(nim.get("/health/"), 200, {"message": "ready"})  # served at /v1/health/ready by the fake


def test_info_and_capabilities(vllm):
    info = vllm.get("/info/").json()
    assert (info["language"], info["targetType"], "predictor" in info) == ("other", "textgeneration", False)
    expected = b'{"supported_methods":{"chat":true},"supported_payload_formats":{"csv":null}}\n'
    assert vllm.get("/capabilities/").content == expected


def test_predict_sends_one_completion_per_row(vllm, backend):
    before = len(backend.chat_requests)
    data = b"promptText,other\nhello,1\nworld,2\n"
    response = vllm.post("/predict/", data=data, headers={"Content-Type": "text/csv"})
    assert (response.status_code, response.content) == (200, b'{"predictions":["Echo: hello","Echo: world"]}')
    sent = backend.chat_requests[before:]
    assert [r["messages"] for r in sent] == [
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": "world"}],
    ]
    assert {r["model"] for r in sent} == {MODEL_ID}  # the backend's first model


def test_predict_with_runtime_parameters(nim, backend):
    before = len(backend.chat_requests)
    response = nim.post("/invocations", data=b"question\nhi\n", headers={"Content-Type": "text/csv"})
    expected = ["Echo: hi (system: be brief)"] * 2  # n=2 choices for the one row
    assert (response.status_code, response.json()) == (200, {"predictions": expected})
    (sent,) = backend.chat_requests[before:]
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert sent["n"] == 2


def test_predict_without_the_prompt_column(nim):
    response = nim.post("/predict/", data=b"promptText\nhi\n", headers={"Content-Type": "text/csv"})
    assert_error(response, 500, "ERROR: Model expects column names '['question']'")


# --- chat and models ---------------------------------------------------------------------------------


def test_chat_is_forwarded(vllm, backend):
    client = openai.OpenAI(base_url=vllm.url + "/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="datarobot-deployed-llm",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        extra_body={"datarobot_association_id": "assoc-9", "custom_field": [1]},
    )
    assert completion.choices[0].message.content == "Echo: hi"
    assert completion.model_extra["datarobot_association_id"] == "assoc-9"
    sent = backend.chat_requests[-1]
    # the placeholder model name becomes the served model; unknown parameters travel in the body
    assert sent["model"] == MODEL_ID
    assert (sent["temperature"], sent["datarobot_association_id"], sent["custom_field"]) == (0.5, "assoc-9", [1])


def test_chat_keeps_an_explicit_model(vllm, backend):
    response = vllm.post("/chat/completions", json={"model": "other", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert (response.json()["model"], backend.chat_requests[-1]["model"]) == ("other", "other")


def test_chat_streaming_is_forwarded(vllm):
    client = openai.OpenAI(base_url=vllm.url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(messages=[{"role": "user", "content": "hi there"}], model="", stream=True)
    chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks] == ["Echo:", "hi", "there", None]
    assert {c.model for c in chunks} == {MODEL_ID}
    assert len({c.model_extra["datarobot_association_id"] for c in chunks}) == 1


def test_chat_stream_client_disconnect_reaches_the_backend(vllm, backend):
    backend.disconnected.clear()
    client = openai.OpenAI(base_url=vllm.url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "forever"}], stream=True)
    chunks = iter(stream)
    assert [next(chunks).choices[0].delta.content for _ in range(3)] == ["w0 ", "w1 ", "w2 "]
    stream.close()
    _wait_for(backend.disconnected.is_set, "drum to close its backend stream")


def test_models_come_from_the_backend(vllm):
    model = {"created": 1700000000, "id": MODEL_ID, "object": "model", "owned_by": "tests"}
    expected = {"data": [model], "object": "list"}
    for path in ("/models", "/v1/models"):
        assert_json(vllm.get(path), 200, expected)


# --- /directAccess and /nim ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/directAccess", "/nim"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_proxy_forwards_the_request(vllm, backend, prefix, method):
    response = vllm.request(
        method, f"{prefix}/echo/a/b/?x=1&x=2", data=b"payload", headers={"X-Custom": "v", "Connection": "keep-alive"}
    )
    assert response.status_code == 201
    assert response.headers["x-backend"] == "fake"
    assert "x-backend-hop" not in response.headers  # named in the backend's Connection header: hop-by-hop
    echo = response.json()
    assert (echo["method"], echo["path"], echo["query"], echo["body"]) == (method, "/echo/a/b", "x=1&x=2", "payload")
    headers = dict(echo["headers"])
    assert headers["x-custom"] == "v"
    assert headers["host"] == f"127.0.0.1:{backend.port}"  # the backend's own, not drum's


def test_proxy_streams_a_large_answer(vllm):
    size = 20 * 1024 * 1024 + 7
    with vllm.get(f"/directAccess/big?size={size}", stream=True) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # relayed as it arrives, not buffered
        received = sum(len(chunk) for chunk in response.iter_content(1024 * 1024))
    assert received == size


def test_proxy_streams_the_request_body(vllm):
    parts = [b"y" * 65536] * 64  # a chunked upload, never read whole by drum
    response = vllm.post("/nim/count", data=iter(parts))
    assert_json(response, 200, {"received": 65536 * 64})


def test_proxy_passes_bytes_unchanged(vllm):
    with vllm.get("/nim/gzip", stream=True) as response:
        raw = response.raw.read(decode_content=False)
        assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"compressed hello"


def test_proxy_client_disconnect_closes_the_backend_stream(vllm, backend):
    backend.disconnected.clear()
    with vllm.get("/directAccess/forever", stream=True) as response:
        lines = response.iter_lines()
        assert [next(lines) for _ in range(3)] == [b"line 0", b"line 1", b"line 2"]
    _wait_for(backend.disconnected.is_set, "drum to close its backend stream")


def test_proxy_slow_backend_times_out(nim):
    """NIM_DIRECT_ACCESS_REQUEST_TIMEOUT=1 here: a backend that takes longer gets DRUM's error, 504."""
    response = nim.get("/directAccess/slow?seconds=5")
    assert response.status_code == 504
    assert response.json()["message"].startswith("ERROR: The NIM backend at http://127.0.0.1:")
    assert "did not answer within 1 seconds" in response.json()["message"]
    assert nim.get("/nim/slow?seconds=0").content == b"late"


# --- backend down ----------------------------------------------------------------------------------------


def test_backend_down(down):
    response = down.get("/ping/")
    assert response.status_code == 503
    assert response.json()["message"].startswith("vLLM server is not ready: ")
    response = down.post("/directAccess/v1/chat/completions", json={})
    assert response.status_code == 502
    assert response.json()["message"].startswith("ERROR: Cannot reach the vLLM backend at http://127.0.0.1:")


# --- what this drum refuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--gpu-predictor", "vllm"), {}, "without --sidecar would make drum start the vllm server itself"),
        (("--gpu-predictor", "triton", "--sidecar"), {}, "--gpu-predictor triton is not supported"),
        (("--gpu-predictor", "nim", "--sidecar"), {"DRUM_SERVER_TYPE": "flask"}, "--gpu-predictor needs the FastAPI"),
    ],
    ids=["no-sidecar", "triton", "flask"],
)
def test_refused_configurations(tmp_path, args, env, message):
    code_dir = write_model(tmp_path / "m", EMPTY_MODEL)
    server = start_server(code_dir, [*TEXTGEN, *args], tmp_path / "log", env=env, wait=False)
    assert wait_for_exit(server) == 1
    assert message in server.log()


def test_requests_still_work_after_errors(vllm):
    """The shared client survives timeouts, disconnects and errors of other requests."""
    assert requests.get(vllm.url + "/nim/echo", timeout=10).status_code == 201
    assert json.loads(vllm.get("/v1/models").content)["object"] == "list"
