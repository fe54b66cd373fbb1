"""Benchmark chat model (textgeneration): the `chat` hook streams a few chunks, or answers at once.

Duck-typed completion objects (no `openai` package needed): DRUM 1.18 only reads `.object`,
`.choices`, `.to_dict()` and `.to_json()`.
"""

import json
from types import SimpleNamespace

import pandas as pd

CREATED = 1700000000
WORDS = ("Hello", "from", "the", "benchmark", "model.")


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
    return "bench-chat"


def score(data, model, **kwargs):
    return pd.DataFrame({"completion": ["ok"] * len(data)})


def _chunk(name, content, finish_reason=None):
    return _Obj(
        id="chunk",
        choices=[SimpleNamespace(delta=SimpleNamespace(content=content), index=0, finish_reason=finish_reason)],
        created=CREATED,
        model=name,
        object="chat.completion.chunk",
    )


def chat(completion_create_params, model, headers=None):
    name = completion_create_params.get("model", model)
    if completion_create_params.get("stream"):
        chunks = [_chunk(name, w + " ") for w in WORDS]
        chunks.append(_chunk(name, None, "stop"))
        return iter(chunks)
    return _Obj(
        id="cmpl-bench",
        choices=[
            SimpleNamespace(
                finish_reason="stop", index=0, message=SimpleNamespace(content=" ".join(WORDS), role="assistant")
            )
        ],
        created=CREATED,
        model=name,
        object="chat.completion",
        usage={"completion_tokens": len(WORDS), "prompt_tokens": 1, "total_tokens": len(WORDS) + 1},
    )
