"""Chat completions, `/models` and `/directAccess` (spec §2.6–§2.8), without the openai package."""

from __future__ import annotations

import json

import pytest
from support import JSON, UUID4, assert_error, assert_json, ours_only, runtime_param, server_pool

OPENAI_LIKE = """
    import json


    class Obj:
        # Enough of openai's pydantic objects: attributes, to_dict() and to_json(indent=...).
        def __init__(self, **fields):
            self.__dict__.update(fields)

        def to_dict(self):
            return {key: _plain(value) for key, value in self.__dict__.items()}

        def to_json(self, indent=2):
            separators = (",", ":") if indent is None else None
            return json.dumps(self.to_dict(), indent=indent, separators=separators)


    def _plain(value):
        if isinstance(value, Obj):
            return value.to_dict()
        if isinstance(value, list):
            return [_plain(v) for v in value]
        return value


    def completion(model, content):
        message = Obj(content=content, role="assistant")
        choice = Obj(finish_reason="stop", index=0, message=message)
        return Obj(id="cmpl-1", choices=[choice], created=1700000000, model=model, object="chat.completion")


    def chunk(model, content, finish_reason=None):
        choice = Obj(delta=Obj(content=content), index=0, finish_reason=finish_reason)
        return Obj(id="chunk-1", choices=[choice], created=1700000000, model=model, object="chat.completion.chunk")
"""

CHAT = {
    "openai_like.py": OPENAI_LIKE,
    "custom.py": """
        import json

        import pandas as pd
        from datarobot_drum import CustomHTTPError

        from openai_like import Obj, chunk, completion


        class Pretty(Obj):
            def to_json(self, indent=2):
                return json.dumps({"object": self.object, "n": self.n}, indent=2)


        class Fixed(Obj):
            def to_dict(self):
                return {"object": "chat.completion", "fixed": True}


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"completion": data["prompt"]})


        def chat(completion_create_params, model, headers):
            params = completion_create_params
            model_name = params.get("model", "my-model")
            last = params["messages"][-1]["content"] if params.get("messages") else ""
            if last == "boom":
                raise ValueError("boom")
            if last == "http":
                raise CustomHTTPError("slow down", status_code=429)
            if last == "list":
                return ["a"]
            if last == "empty":
                return iter([])
            if last == "pretty":
                return iter([Pretty(object="chat.completion.chunk", n=1, choices=[])])
            if last == "fixed":
                return Fixed(**completion(model_name, "fixed").__dict__)
            if last == "headers":
                seen = [headers.get("X-Custom"), headers.get("x-custom"), headers.get("Content-Type")]
                return completion(model_name, json.dumps(seen))
            if last == "params":
                return completion(model_name, json.dumps(sorted(params)))
            if params.get("stream"):
                words = ["Echo:", last]
                chunks = [chunk(model_name, word) for word in words]
                chunks.append(chunk(model_name, None, finish_reason="stop"))
                return iter(chunks)
            return completion(model_name, "Echo: " + last)
    """,
}

TEXTGEN_NO_CHAT = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"completion": data["prompt"]})
    """
}

MODELS_HOOK = {
    "openai_like.py": OPENAI_LIKE,
    "custom.py": """
        import pandas as pd

        from openai_like import Obj, completion


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"completion": data["prompt"]})


        def chat(completion_create_params, model):
            return completion("two-args", str(len(completion_create_params["messages"])))


        def get_supported_llm_models(model):
            return [
                Obj(id="model-a", object="model", created=1, owned_by="me"),
                Obj(id="not-a-model", object="something"),
                Obj(id="model-b", object="model", created=2, owned_by="you"),
            ]
    """,
}

REGRESSION = {
    "custom.py": """
        import pandas as pd


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            return pd.DataFrame({"Predictions": [1.0] * len(data)})
    """
}

REGRESSION_WITH_CHAT = """
    import pandas as pd

    from openai_like import completion


    def load_model(code_dir):
        return "model"


    def score(data, model, **kwargs):
        return pd.DataFrame({"Predictions": [1.0] * len(data)})


    def chat(completion_create_params, model):
        return completion("m", "regression says " + completion_create_params["messages"][-1]["content"])
"""

TEXTGEN = {"TARGET_NAME": "completion"}
NOT_IMPLEMENTED = "ERROR: This model's chat interface was called, but chat() is not implemented."
NOT_SUPPORTED = "ERROR: This model's chat interface was called, but chat is not supported."
MODELS_ONLY_TEXTGEN = "ERROR: get_supported_llm_models is supported only for TextGen models"
MESSAGES = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        yield get


@pytest.fixture
def chat(pool):
    env = {**TEXTGEN, "MLOPS_RUNTIME_PARAM_LLM_ID": runtime_param("my-llm")}
    return pool("chat", CHAT, "--target-type", "textgeneration", env=env, name="chat")


def _ask(server, content, path="/chat/completions", **extra):
    body = {"model": "my-model", "messages": [{"role": "user", "content": content}], **extra}
    return server.post(path, json=body)


# --- non-streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/v1/chat/completions"])
def test_chat_completion(chat, path):
    response = _ask(chat, "hi", path=path, datarobot_association_id="abc-123")
    expected = {
        "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": "Echo: hi", "role": "assistant"}}],
        "created": 1700000000,
        "datarobot_association_id": "abc-123",
        "id": "cmpl-1",
        "model": "my-model",
        "object": "chat.completion",
    }
    assert_json(response, 200, expected)
    # Flask's JSON provider: sorted keys, compact separators, trailing newline.
    assert response.content == (json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n").encode()


def test_chat_association_id_is_generated(chat):
    first = _ask(chat, "hi").json()["datarobot_association_id"]
    second = _ask(chat, "hi").json()["datarobot_association_id"]
    assert UUID4.match(first) and UUID4.match(second) and first != second


def test_chat_body_is_whatever_to_dict_returns(chat):
    """DRUM sets `datarobot_association_id` as an attribute; a `to_dict` that ignores it leaves it out."""
    assert_json(_ask(chat, "fixed"), 200, {"fixed": True, "object": "chat.completion"})


def test_chat_hook_gets_the_whole_request_body(chat):
    response = _ask(chat, "params", temperature=0.5, datarobot_association_id="x")
    content = response.json()["choices"][0]["message"]["content"]
    assert json.loads(content) == ["datarobot_association_id", "messages", "model", "temperature"]


def test_chat_hook_gets_request_headers(chat):
    body = {"model": "m", "messages": [{"role": "user", "content": "headers"}]}
    response = chat.post("/chat/completions", json=body, headers={"X-Custom": "v1"})
    content = response.json()["choices"][0]["message"]["content"]
    assert json.loads(content) == ["v1", "v1", "application/json"]


def test_chat_capabilities(chat):
    expected = b'{"supported_methods":{"chat":true},"supported_payload_formats":{"csv":null,"mtx":null}}\n'
    assert chat.get("/capabilities/").content == expected


def test_chat_model_still_predicts(chat):
    response = chat.post("/predict/", data=b"prompt\nhello\n")
    assert (response.status_code, response.content) == (200, b'{"predictions":["hello"]}')


# --- streaming -----------------------------------------------------------------------------------


def test_chat_streaming_sse_framing(chat):
    response = _ask(chat, "hi", stream=True, datarobot_association_id="assoc-1")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"

    def event(content, finish_reason=None):
        data = {
            "id": "chunk-1",
            "choices": [{"delta": {"content": content}, "index": 0, "finish_reason": finish_reason}],
            "created": 1700000000,
            "model": "my-model",
            "object": "chat.completion.chunk",
            "datarobot_association_id": "assoc-1",
        }
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    expected = event("Echo:") + event("hi") + event(None, "stop") + b"data: [DONE]\n\n"
    assert response.content == expected


def test_chat_streaming_multiline_json(chat):
    """Every line of a chunk's JSON gets its own `data:` prefix."""
    response = _ask(chat, "pretty")
    assert response.status_code == 200
    expected = b'data: {\ndata:   "object": "chat.completion.chunk",\ndata:   "n": 1\ndata: }\n\ndata: [DONE]\n\n'
    assert response.content == expected


def test_chat_empty_stream(chat):
    response = _ask(chat, "empty")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.content == b"data: [DONE]\n\n"


# --- errors --------------------------------------------------------------------------------------


@ours_only
def test_chat_requires_json_content_type(chat):
    """Decided deviation: 415 (DRUM answers Flask's 415 text with status 500)."""
    response = chat.post("/chat/completions", data=json.dumps(MESSAGES), headers={"Content-Type": "text/plain"})
    assert_error(
        response,
        415,
        "ERROR: 415 Unsupported Media Type: Did not attempt to load JSON data because the request Content-Type "
        "was not 'application/json'.",
    )


@ours_only
def test_chat_malformed_json(chat):
    """Decided deviation: DRUM's error format (DRUM answers Flask's `{"error": ...}` body)."""
    response = chat.post("/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "ERROR: The browser (or proxy) sent a request that this server could not understand.")


def test_chat_hook_exception(chat):
    assert_error(_ask(chat, "boom"), 500, "ERROR: boom")


def test_chat_custom_http_error(chat):
    response = _ask(chat, "http")
    assert_error(response, 429, "slow down")
    assert response.headers["X-Drum-User-Http-Error"] == "true"


def test_chat_hook_returning_something_else(chat):
    assert_error(
        _ask(chat, "list"),
        500,
        "ERROR: Expected response to be ChatCompletion or Iterable[ChatCompletionChunk]. "
        "response type: <class 'list'>.response(str): ['a']",
    )


def test_chat_streaming_generated_association_id_is_shared_by_chunks(chat):
    response = _ask(chat, "hi", stream=True)
    assert response.status_code == 200
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    ids = {json.loads(event[len(b"data: ") :])["datarobot_association_id"] for event in events[:-2]}
    assert len(ids) == 1 and UUID4.match(ids.pop())
    assert UUID4.match(response.headers["X_Request_ID"])


def test_chat_hook_with_two_parameters(pool):
    server = pool("models-hook", MODELS_HOOK, "--target-type", "textgeneration", env=TEXTGEN, name="hook")
    body = {"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    response = server.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["model"], response.json()["choices"][0]["message"]["content"]) == ("two-args", "2")


def test_chat_hook_on_a_regression_model(pool):
    files = {"openai_like.py": OPENAI_LIKE, "custom.py": REGRESSION_WITH_CHAT}
    server = pool("regression-chat", files, "--target-type", "regression", name="regchat")
    response = _ask(server, "hi")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "regression says hi"
    assert server.get("/capabilities/").json()["supported_methods"] == {"chat": True}
    assert_error(server.get("/models"), 404, MODELS_ONLY_TEXTGEN)


# --- models without a chat hook ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "files", "args", "env", "message"),
    [
        ("textgen", TEXTGEN_NO_CHAT, ("--target-type", "textgeneration"), TEXTGEN, NOT_IMPLEMENTED),
        ("agentic", TEXTGEN_NO_CHAT, ("--target-type", "agenticworkflow"), TEXTGEN, NOT_IMPLEMENTED),
        ("vectordb", TEXTGEN_NO_CHAT, ("--target-type", "vectordatabase"), TEXTGEN, NOT_SUPPORTED),
        ("regression", REGRESSION, ("--target-type", "regression"), {}, NOT_SUPPORTED),
        (
            "binary",
            REGRESSION,
            ("--target-type", "binary", "--positive-class-label", "a", "--negative-class-label", "b"),
            {},
            NOT_SUPPORTED,
        ),
    ],
    ids=["textgen", "agentic", "vectordb", "regression", "binary"],
)
def test_chat_without_hook(pool, name, files, args, env, message):
    server = pool(name, files, *args, env=env, name=name)
    for path in ("/chat/completions", "/v1/chat/completions"):
        assert_error(server.post(path, json=MESSAGES), 404, message)


def test_chat_without_hook_still_needs_json(pool):
    server = pool("textgen", TEXTGEN_NO_CHAT, "--target-type", "textgeneration", env=TEXTGEN, name="textgen")
    response = server.post("/chat/completions", data=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    response = server.post("/chat/completions", data=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


# --- /models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
def test_models_from_llm_id(chat, path):
    expected = {
        "data": [{"created": 1735689600, "id": "my-llm", "object": "model", "owned_by": "DataRobot"}],
        "object": "list",
    }
    response = chat.get(path)
    assert_json(response, 200, expected)
    assert response.content == (json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n").encode()


def test_models_without_llm_id(pool):
    server = pool("textgen", TEXTGEN_NO_CHAT, "--target-type", "textgeneration", env=TEXTGEN, name="textgen")
    response = server.get("/models")
    assert (response.status_code, response.content) == (200, b'{"data":[],"object":"list"}\n')
    assert response.headers["Content-Type"] == JSON


def test_models_hook_overrides_llm_id(pool):
    env = {**TEXTGEN, "MLOPS_RUNTIME_PARAM_LLM_ID": runtime_param("ignored")}
    server = pool("models-hook", MODELS_HOOK, "--target-type", "textgeneration", env=env, name="hook")
    assert_json(
        server.get("/v1/models"),
        200,
        {
            "data": [
                {"created": 1, "id": "model-a", "object": "model", "owned_by": "me"},
                {"created": 2, "id": "model-b", "object": "model", "owned_by": "you"},
            ],
            "object": "list",
        },
    )


@pytest.mark.parametrize(
    ("name", "files", "args", "env"),
    [
        ("agentic", TEXTGEN_NO_CHAT, ("--target-type", "agenticworkflow"), TEXTGEN),
        ("regression", REGRESSION, ("--target-type", "regression"), {}),
    ],
    ids=["agentic", "regression"],
)
def test_models_only_for_textgeneration(pool, name, files, args, env):
    server = pool(name, files, *args, env=env, name=name)
    for path in ("/models", "/v1/models"):
        assert_error(server.get(path), 404, MODELS_ONLY_TEXTGEN)


# --- /directAccess and /nim ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/directAccess/x", "/directAccess/v1/chat/completions/", "/nim/v1/models"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_direct_access_without_openai_backend(chat, path, method):
    response = chat.request(method, path, json={})
    assert_json(response, 400, {"message": "This endpoint is only supported by OpenAI based predictors"})
