"""Text generation with chat + get_supported_llm_models hooks.

The OpenAI client types are not needed: DRUM only looks at `.object`, `.choices`, `.to_dict()` and
`.to_json()`, so small duck-typed classes are returned (the `openai` package is not installed).
"""

import json
import os
from types import SimpleNamespace

import pandas as pd
from datarobot_drum import CustomHTTPError

CREATED = 1700000000


class _Obj:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def to_dict(self):
        return json.loads(self.to_json())

    def to_json(self, indent=None):
        return json.dumps(_plain(self.__dict__), indent=indent)


def _plain(v):
    if isinstance(v, (_Obj, SimpleNamespace)):
        return {k: _plain(x) for k, x in vars(v).items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def load_model(code_dir):
    return "chat-model"


def score(data, model, **kwargs):
    return pd.DataFrame({os.environ["TARGET_NAME"]: "Echo: " + data["prompt"].astype(str)})


def chat(completion_create_params, model, headers=None):
    messages = completion_create_params["messages"]
    text = messages[-1]["content"]
    if text == "raise":
        raise ValueError("chat failed on purpose")
    if text == "http_error":
        raise CustomHTTPError("too many tokens", status_code=429)
    if text == "bad_return":
        return {"not": "a completion"}
    reply = f"Echo: {text} (x-custom={headers.get('X-Custom') if headers else None})"
    name = completion_create_params.get("model", "m")
    if completion_create_params.get("stream"):
        words = reply.split(" ")
        chunks = [
            _Obj(
                id="chunk",
                choices=[SimpleNamespace(delta=SimpleNamespace(content=w + " "), index=0, finish_reason=None)],
                created=CREATED,
                model=name,
                object="chat.completion.chunk",
            )
            for w in words
        ]
        chunks.append(
            _Obj(
                id="chunk",
                choices=[SimpleNamespace(delta=SimpleNamespace(content=None), index=0, finish_reason="stop")],
                created=CREATED,
                model=name,
                object="chat.completion.chunk",
            )
        )
        return iter(chunks)
    return _Obj(
        id="cmpl-1",
        choices=[
            SimpleNamespace(finish_reason="stop", index=0, message=SimpleNamespace(content=reply, role="assistant"))
        ],
        created=CREATED,
        model=name,
        object="chat.completion",
        usage={"completion_tokens": 3, "prompt_tokens": 2, "total_tokens": 5},
    )


def get_supported_llm_models(model):
    return [
        _Obj(id="model-a", object="model", created=CREATED, owned_by="me"),
        _Obj(id="not-a-model", object="other", created=CREATED, owned_by="me"),
        _Obj(id="model-b", object="model", created=CREATED, owned_by="you"),
    ]
