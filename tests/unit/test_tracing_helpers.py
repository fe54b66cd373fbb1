"""OpenTelemetry helpers: when setup is on or off, DRUM's span attributes, SSE reconstruction."""

from __future__ import annotations

import json

import pytest

from drum.observability import tracing


def test_setup_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.setup_otel() is False


@pytest.mark.parametrize("payload", [True, "true", "1"])
def test_setup_disabled_by_runtime_parameter(monkeypatch, payload):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    kind = "boolean" if isinstance(payload, bool) else "string"
    monkeypatch.setenv("MLOPS_RUNTIME_PARAM_OTEL_SDK_DISABLED", json.dumps({"type": kind, "payload": payload}))
    assert tracing.setup_otel() is False


def test_multiprocess_detection_does_not_depend_on_the_framework():
    assert tracing.is_multiprocess(2) is True
    assert tracing.is_multiprocess(1) is False
    assert tracing.is_multiprocess(None) is False


def test_request_header_attributes():
    headers = {"x-datarobot-consumer-id": "abc123", "x-datarobot-consumer-type": "external"}
    assert tracing.request_header_attributes(headers) == {
        "gen_ai.request.consumer_id": "abc123",
        "gen_ai.request.consumer_type": "external",
    }
    assert tracing.request_header_attributes({}) == {}


def test_chat_request_attributes():
    params = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": "u"}]},
        ],
    }
    a = tracing.chat_request_attributes(params)
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.prompt.0.content"] == "s"
    assert json.loads(a["gen_ai.prompt.1.content"])[0] == {"type": "text", "text": "hi"}
    assert json.loads(a["gen_ai.input.messages"])[1]["parts"] == [
        {"type": "text", "content": "hi"},
        {"type": "image_url", "image_url": "u"},
    ]
    assert tracing.chat_request_attributes(None) == {}


def test_chat_response_from_sse():
    chunks = [
        b'data: {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "y"}, "finish_reason": "stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    response = tracing.response_from_sse(chunks)
    assert response == {
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": "Hey"}, "finish_reason": "stop"}],
    }
    a = tracing.chat_response_attributes(response)
    assert a["gen_ai.completion"] == "Hey" and a["gen_ai.response.model"] == "m"
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hey"}], "finish_reason": "stop"}
    ]


def test_request_span_is_a_no_op_without_a_provider():
    if tracing.tracing_active():
        pytest.skip("a tracer provider is installed in this process")
    with tracing.request_span("drum.invocations", [("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]) as span:
        assert span is None
