"""OpenTelemetry: a real OTLP/HTTP receiver (started here) gets DRUM's spans, attributes and parents."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from support import runtime_param  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CONSUMER = {"X-DataRobot-Consumer-Id": "abc123", "X-DataRobot-Consumer-Type": "external"}

MODEL = {
    "custom.py": """
        import json
        import pandas as pd
        from opentelemetry import trace


        class Obj:
            def __init__(self, **fields):
                self.__dict__.update(fields)

            def to_dict(self):
                return {k: v.to_dict() if isinstance(v, Obj) else [x.to_dict() for x in v] if isinstance(v, list)
                        else v for k, v in self.__dict__.items()}

            def to_json(self, indent=2):
                return json.dumps(self.to_dict(), indent=indent)


        def load_model(code_dir):
            return "m"


        def score(data, model, **kwargs):
            with trace.get_tracer("user").start_as_current_span("user.score"):
                return pd.DataFrame({"Predictions": [1.0] * len(data)})


        def chat(params, model, headers):
            if params.get("stream"):
                def chunks():
                    for word, finish in (("Hel", None), ("lo", "stop")):
                        delta = Obj(content=word, role="assistant")
                        yield Obj(model="m-1", object="chat.completion.chunk",
                                  choices=[Obj(index=0, delta=delta, finish_reason=finish)])
                return chunks()
            message = Obj(role="assistant", content="Hello")
            return Obj(model="m-1", object="chat.completion",
                       choices=[Obj(index=0, message=message, finish_reason="stop")])
    """
}


class Receiver:
    """A minimal OTLP/HTTP collector: keeps every span POSTed to /v1/traces; logs and metrics are accepted."""

    def __init__(self) -> None:
        self.spans: list = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource_spans in request.resource_spans:
                        for scope_spans in resource_spans.scope_spans:
                            spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list:
        return [s for s in self.spans if s.name == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 20) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.named(name)) < count:
            time.sleep(0.05)
        return self.named(name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def otel_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "drum-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
        **extra,
    }


def attrs(span) -> dict:
    result = {}
    for kv in span.attributes:
        value = kv.value
        result[kv.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return result


def test_predict_span_parent_attributes_and_hook_child(drum_server, model_dir, receiver):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env=otel_env(receiver))
    for path in ("/", "/ping/", "/health/", "/stats/", "/info/", "/capabilities/"):
        assert server.get(path).status_code == 200
    response = server.post(
        "/predict/", data=b"a\n1\n2\n", headers={"Content-Type": "text/csv", "traceparent": TRACEPARENT, **CONSUMER}
    )
    assert response.status_code == 200
    (span,) = receiver.wait_for("drum.invocations")
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    assert attrs(span) == {"gen_ai.request.consumer_id": "abc123", "gen_ai.request.consumer_type": "external"}
    (child,) = receiver.wait_for("user.score")  # made by the hook in an executor thread
    assert child.parent_span_id == span.span_id and child.trace_id == span.trace_id
    assert server.post("/invocations", data=b"a\n1\n", headers={"Content-Type": "text/csv"}).status_code == 200
    spans = receiver.wait_for("drum.invocations", 2)
    assert len(spans) == 2 and not spans[1].parent_span_id  # no traceparent: a new trace
    time.sleep(0.3)
    assert {s.name for s in receiver.spans} == {"drum.invocations", "user.score"}  # no health-route spans


def test_chat_spans_with_gen_ai_attributes(drum_server, model_dir, receiver):
    server = drum_server(
        model_dir(MODEL), "--target-type", "textgeneration", env=otel_env(receiver, TARGET_NAME="completion")
    )
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    body = {"model": "m-1", "messages": messages}
    assert server.post("/v1/chat/completions", json=body, headers=CONSUMER).status_code == 200
    (span,) = receiver.wait_for("drum.chat.completions")
    a = attrs(span)
    assert a["gen_ai.request.model"] == "m-1"
    assert a["gen_ai.prompt.0.role"] == "system" and a["gen_ai.prompt.1.content"] == "hi"
    assert a["gen_ai.prompt"] == "hi"
    assert '"parts": [{"type": "text", "content": "hi"}]' in a["gen_ai.input.messages"]
    assert a["gen_ai.response.model"] == "m-1" and a["gen_ai.completion"] == "Hello"
    assert a["gen_ai.completion.0.role"] == "assistant"
    assert '"finish_reason": "stop"' in a["gen_ai.output.messages"]
    assert a["gen_ai.request.consumer_id"] == "abc123"

    response = server.post("/chat/completions", json={**body, "stream": True}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200 and "data: [DONE]" in response.text
    (stream,) = receiver.wait_for("drum.chat.completions.stream")
    (parent,) = [s for s in receiver.wait_for("drum.chat.completions", 2) if s.span_id == stream.parent_span_id]
    assert parent.parent_span_id.hex() == PARENT_ID
    assert "gen_ai.completion" not in attrs(parent)
    s = attrs(stream)
    assert s["gen_ai.completion"] == "Hello" and s["gen_ai.response.model"] == "m-1"


def test_direct_access_span_is_an_error(drum_server, model_dir, receiver):
    server = drum_server(
        model_dir(MODEL), "--target-type", "textgeneration", env=otel_env(receiver, TARGET_NAME="completion")
    )
    assert server.get("/nim/some/path", headers=CONSUMER).status_code == 400
    (span,) = receiver.wait_for("drum.directAccess")
    assert span.status.code == 2  # STATUS_CODE_ERROR
    assert span.status.message == "This endpoint is only supported by OpenAI based predictors"
    assert attrs(span)["gen_ai.request.consumer_type"] == "external"


def test_spans_buffered_in_batch_are_flushed_on_shutdown(drum_server, model_dir, receiver):
    env = otel_env(receiver, OTEL_BSP_SCHEDULE_DELAY="600000")
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env=env)
    assert server.post("/transform/", data=b"a\n1\n", headers={"Content-Type": "text/csv"}).status_code in (200, 422)
    assert server.post("/predictUnstructured/", data=b"x").status_code in (200, 422)
    time.sleep(0.3)
    assert not receiver.spans
    assert server.stop() == 0
    assert {s.name for s in receiver.spans} >= {"drum.transform", "drum.predictUnstructured"}


def test_two_workers_export_spans(drum_server, model_dir, receiver):
    server = drum_server(model_dir(MODEL), "--target-type", "regression", "--max-workers", "2", env=otel_env(receiver))
    for _ in range(4):
        headers = {"Content-Type": "text/csv", "Connection": "close", "traceparent": TRACEPARENT}
        assert server.post("/predict/", data=b"a\n1\n", headers=headers).status_code == 200
    spans = receiver.wait_for("drum.invocations", 4)
    assert len(spans) == 4 and all(s.parent_span_id.hex() == PARENT_ID for s in spans)


def test_otel_sdk_disabled_runtime_parameter(drum_server, model_dir, receiver):
    env = otel_env(receiver, MLOPS_RUNTIME_PARAM_OTEL_SDK_DISABLED=runtime_param(True, "boolean"))
    server = drum_server(model_dir(MODEL), "--target-type", "regression", env=env)
    assert server.post("/predict/", data=b"a\n1\n", headers={"Content-Type": "text/csv"}).status_code == 200
    time.sleep(0.5)
    assert receiver.spans == []
