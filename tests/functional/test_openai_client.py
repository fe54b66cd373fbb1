"""The official `openai` client (sync and async, streaming and not) against `drum server` with a `chat`
hook that returns openai's own types; a client leaving mid-stream closes the hook's generator, and a
stream waiting on the model never holds up the event loop."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from support import UUID4, ours_only, runtime_param, server_pool

CHAT_MODEL = {
    "custom.py": """
        import gc
        import time
        from pathlib import Path

        from openai.types.chat import ChatCompletion, ChatCompletionChunk
        from openai.types.chat.chat_completion import Choice
        from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
        from openai.types.chat.chat_completion_chunk import ChoiceDelta
        from openai.types.chat.chat_completion_message import ChatCompletionMessage


        def load_model(code_dir):
            return Path(code_dir)


        def chunk(model, content, finish_reason=None):
            choice = ChunkChoice(delta=ChoiceDelta(content=content), index=0, finish_reason=finish_reason)
            return ChatCompletionChunk(
                id="chunk-1", choices=[choice], created=1700000000, model=model, object="chat.completion.chunk"
            )


        def endless(code_dir, model):
            log = code_dir / "endless.log"
            i = 0
            try:
                while True:
                    with log.open("a") as f:
                        f.write(f"{i}\\n")
                    yield chunk(model, f"w{i} ")
                    i += 1
                    time.sleep(0.02)
            finally:
                with log.open("a") as f:
                    f.write("closed\\n")


        def gated(code_dir, model):
            yield chunk(model, "before ")
            deadline = time.monotonic() + 60
            while not (code_dir / "gate.open").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # the model is busy: the thread waits, the event loop must not
            yield chunk(model, "after", "stop")


        def late(code_dir, model):
            try:
                yield chunk(model, "late")
                yield chunk(model, None, "stop")
            finally:
                (code_dir / "late.closed").touch()


        def chat(completion_create_params, model, headers):
            params = completion_create_params
            name = params.get("model") or "my-model"
            last = params["messages"][-1]["content"]
            if last == "late":  # the first chunk comes after DRUM_CLIENT_REQUEST_TIMEOUT
                time.sleep(2)
                # a reference cycle keeps the generator alive once drum drops it (gc off): only an
                # explicit close() runs its `finally`
                gc.disable()
                stream = late(model, name)
                holder = [stream]
                holder.append(holder)
                return stream
            if params.get("stream"):
                if last == "endless":
                    # held by a reference cycle with gc off: only an explicit close() runs its `finally`
                    gc.disable()
                    stream = endless(model, name)
                    holder = [stream]
                    holder.append(holder)
                    return stream
                if last == "gate":
                    return gated(model, name)
                words = ["Echo:", last, headers.get("X-Tag", "-")]
                return iter([chunk(name, w) for w in words] + [chunk(name, None, "stop")])
            message = ChatCompletionMessage(role="assistant", content=f"Echo: {last} [{headers.get('X-Tag', '-')}]")
            choice = Choice(finish_reason="stop", index=0, message=message)
            return ChatCompletion(
                id="cmpl-1", choices=[choice], created=1700000000, model=name, object="chat.completion"
            )
    """,
}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with server_pool(tmp_path_factory) as get:
        env = {"TARGET_NAME": "completion", "MLOPS_RUNTIME_PARAM_LLM_ID": runtime_param("my-llm")}
        yield get("chat", CHAT_MODEL, "--target-type", "textgeneration", env=env, name="openai")


@pytest.fixture(params=["", "/v1"], ids=["root", "v1"])
def base_url(request, server):
    return server.url + request.param


def test_sync_client_completion(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="my-model",
        messages=MESSAGES,
        extra_headers={"X-Tag": "t1"},
        extra_body={"datarobot_association_id": "assoc-1"},
    )
    assert completion.choices[0].message.content == "Echo: hi [t1]"
    assert (completion.id, completion.model, completion.created) == ("cmpl-1", "my-model", 1700000000)
    assert completion.model_extra["datarobot_association_id"] == "assoc-1"


def test_sync_client_streaming(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True, extra_headers={"X-Tag": "t2"})
    chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks] == ["Echo:", "hi", "t2", None]
    assert chunks[-1].choices[0].finish_reason == "stop"
    ids = {c.model_extra["datarobot_association_id"] for c in chunks}
    assert len(ids) == 1 and UUID4.match(ids.pop())


def test_async_client_completion_and_streaming(base_url):
    async def main() -> tuple[str | None, list[str | None]]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
            completion = await client.chat.completions.create(model="m", messages=MESSAGES)
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            words = [chunk.choices[0].delta.content async for chunk in stream]
            return completion.choices[0].message.content, words

    content, words = asyncio.run(main())
    assert content == "Echo: hi [-]"
    assert words == ["Echo:", "hi", "-", None]


def test_async_client_concurrent_streams(server):
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        messages = [{"role": "user", "content": f"n{i}"}]
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
            return await asyncio.gather(*(one(client, i) for i in range(8)))

    assert asyncio.run(main()) == [f"Echo:n{i}-" for i in range(8)]


def test_client_model_list(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    models = client.models.list()
    assert [(m.id, m.object, m.created, m.owned_by) for m in models] == [("my-llm", "model", 1735689600, "DataRobot")]


def test_streaming_bytes_are_drums_framing(server):
    """`data: <chunk JSON in pydantic field order, unset fields omitted>`, a blank line, `data: [DONE]`."""
    body = {"model": "m", "messages": MESSAGES, "stream": True, "datarobot_association_id": "a-1"}
    response = server.post("/v1/chat/completions", json=body, headers={"X-Tag": "t"})
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"

    def event(content: str | None, finish: str | None = None) -> bytes:
        choice = {"delta": {"content": content}, "index": 0, "finish_reason": finish}
        data = {"id": "chunk-1", "choices": [choice], "created": 1700000000, "model": "m",
                "object": "chat.completion.chunk", "datarobot_association_id": "a-1"}
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    expected = event("Echo:") + event("hi") + event("t") + event(None, "stop") + b"data: [DONE]\n\n"
    assert response.content == expected


def _wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@ours_only
def test_client_disconnect_closes_the_hook_generator(server):
    """DRUM left the hook's generator to the garbage collector; drum closes it when the client goes."""
    log = server.code_dir / "endless.log"
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "endless"}], stream=True
    )
    chunks = iter(stream)
    words = [next(chunks).choices[0].delta.content for _ in range(3)]
    assert words == ["w0 ", "w1 ", "w2 "]
    stream.close()

    def lines() -> list[str]:
        return log.read_text().split() if log.exists() else []

    _wait_for(lambda: "closed" in lines(), "the chat hook's generator to be closed")
    produced = lines()
    assert produced[-1] == "closed" and produced.count("closed") == 1
    # closed means finished: the generator can produce nothing more
    assert server.get("/ping/").status_code == 200
    assert lines() == produced


@ours_only
def test_a_waiting_stream_does_not_block_the_event_loop(server):
    """While the hook's generator blocks (a model busy between tokens), other requests are answered."""
    gate = server.code_dir / "gate.open"
    gate.unlink(missing_ok=True)
    body = {"model": "m", "messages": [{"role": "user", "content": "gate"}], "stream": True}
    with server.post("/chat/completions", json=body, stream=True) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        assert json.loads(first[len(b"data: "):])["choices"][0]["delta"]["content"] == "before "
        # the generator is now blocked in the gate loop (on an executor thread, never on the loop)
        assert server.get("/ping/", timeout=10).status_code == 200
        assert server.get("/info/", timeout=10).status_code == 200
        gate.touch()
        rest = [line for line in lines if line]
    assert json.loads(rest[0][len(b"data: "):])["choices"][0]["delta"]["content"] == "after"
    assert rest[-1] == b"data: [DONE]"


@ours_only
def test_a_stream_that_missed_the_request_timeout_is_closed(drum_server, tmp_path):
    """The client got 504; the generator the hook returned later is closed, not left running."""
    from support import write_model

    env = {"TARGET_NAME": "completion", "MLOPS_RUNTIME_PARAM_DRUM_CLIENT_REQUEST_TIMEOUT": runtime_param(1, "numeric")}
    code_dir = write_model(tmp_path / "late", CHAT_MODEL)
    server = drum_server(code_dir, "--target-type", "textgeneration", env=env)
    body = {"model": "m", "messages": [{"role": "user", "content": "late"}], "stream": True}
    response = server.post("/chat/completions", json=body)
    assert response.status_code == 504
    _wait_for((code_dir / "late.closed").exists, "the late generator to be closed")
