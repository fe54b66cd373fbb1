"""Chat hooks returning the `openai` package's own types (ChatCompletion, ChatCompletionChunk, Model):
the byte layout of DRUM's JSON and SSE answers depends on their pydantic serialisation."""

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.model import Model


def load_model(code_dir):
    return "dummy"


def get_supported_llm_models(model):
    return [Model(id="llm-a", created=1744854432, object="model", owned_by="tests@example.com")]


def _chunk(model, content, finish_reason=None, role=None):
    delta = ChoiceDelta(content=content, role=role) if role else ChoiceDelta(content=content)
    choice = ChunkChoice(delta=delta, index=0, finish_reason=finish_reason)
    return ChatCompletionChunk(id="chunk", choices=[choice], created=1700000000, model=model,
                               object="chat.completion.chunk")


def chat(completion_create_params, model):
    params = completion_create_params
    name = params["model"]
    last = params["messages"][-1]["content"]
    if params.get("stream"):
        words = last.split()
        chunks = [_chunk(name, "", role="assistant")] + [_chunk(name, w) for w in words]
        return iter(chunks + [_chunk(name, None, "stop")])
    message = ChatCompletionMessage(role="assistant", content="Echo: " + last)
    return ChatCompletion(id="cmpl", choices=[Choice(finish_reason="stop", index=0, message=message)],
                          created=1700000000, model=name, object="chat.completion")
