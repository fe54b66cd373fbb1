"""OpenTelemetry as DRUM 1.18.1 does it: OTLP/HTTP traces, logs and metrics, DRUM's span names and attributes.

Optional: `pip install drum[otel]`. Without the packages everything here is a no-op.

* `setup_otel(max_workers)` configures the providers when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and
  the runtime parameter `OTEL_SDK_DISABLED` is not truthy (standard `OTEL_*` variables configure the
  exporters and the resource). Simple (synchronous) processors in multi-process servers, batch ones
  otherwise; the decision uses the worker count and `multiprocessing.parent_process()`, never the web
  framework. `shutdown_otel()` flushes and shuts the providers down (idempotent).
* `request_span(name, req)` opens a route's span as the current span, parented by the request's W3C
  `traceparent`, with the consumer-header (and for chat the `gen_ai.*`) attributes. Spans are made
  whenever a tracer provider is configured, ours or one the model code installed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import context as otel_context_api
    from opentelemetry import trace
    from opentelemetry.trace import ProxyTracerProvider, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the `otel` extra is not installed
    trace = None  # type: ignore[assignment]

from drum.streams import ClosingIterator

logger = logging.getLogger("drum.observability.tracing")
TRACER_NAME = "datarobot_drum.drum.root_predictors.prediction_server"
CHAT_SPAN = "drum.chat.completions"
STREAM_SPAN = "drum.chat.completions.stream"
DIRECT_ACCESS_SPAN = "drum.directAccess"
_providers: list[Any] = []


def _otel_disabled() -> bool:
    from drum.config.runtime_params import RuntimeParameters

    if not RuntimeParameters.has("OTEL_SDK_DISABLED"):
        return False
    try:
        value = RuntimeParameters.get("OTEL_SDK_DISABLED")
    except Exception:  # noqa: BLE001 - a malformed value: read it as text
        value = os.environ.get(RuntimeParameters.namespaced_param_name("OTEL_SDK_DISABLED"), "")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def is_multiprocess(max_workers: int | None = None) -> bool:
    """Whether this server runs several processes (a worker, or a parent that starts workers)."""
    return (max_workers or 0) > 1 or multiprocessing.parent_process() is not None


class _ExcludeOtelLogsFilter(logging.Filter):
    """OpenTelemetry's own log records are not exported (no recursion when the endpoint is down)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("opentelemetry")


def setup_otel(max_workers: int | None = None) -> bool:
    """Configure OTLP/HTTP exporters for traces, logs and metrics; True when OpenTelemetry is on."""
    if _providers:
        return True
    if _otel_disabled():
        logger.info("OTEL explictly disabled")
        return False
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        logger.info("OTEL is not configured")
        return False
    try:
        from opentelemetry import metrics
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
        from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
        from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (pip install 'drum[otel]')"
        )
        return False

    simple = is_multiprocess(max_workers)
    resource = Resource.create()

    trace_provider = TracerProvider(resource=resource)
    span_processor = SimpleSpanProcessor if simple else BatchSpanProcessor
    trace_provider.add_span_processor(span_processor(OTLPSpanExporter()))
    trace.set_tracer_provider(trace_provider)

    logger_provider = LoggerProvider(resource=resource)
    log_processor = SimpleLogRecordProcessor if simple else BatchLogRecordProcessor
    logger_provider.add_log_record_processor(log_processor(OTLPLogExporter()))
    set_logger_provider(logger_provider)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    handler.addFilter(_ExcludeOtelLogsFilter())
    logging.getLogger().addHandler(handler)

    delta = AggregationTemporality.DELTA
    temporality = {Counter: delta, Histogram: delta, ObservableCounter: delta}
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(preferred_temporality=temporality))
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    metrics.set_meter_provider(meter_provider)

    _providers.extend([trace_provider, logger_provider, meter_provider])
    logger.info("OTEL is configured with endpoint: %s", endpoint)
    return True


def shutdown_otel() -> None:
    """Flush and shut down the providers `setup_otel` made (spans still buffered are exported)."""
    while _providers:
        provider = _providers.pop(0)
        try:
            if hasattr(provider, "force_flush"):
                provider.force_flush()
            provider.shutdown()
        except Exception:  # noqa: BLE001 - shutdown must not fail the server's exit
            logger.debug("OTEL provider shutdown failed", exc_info=True)


def tracing_active() -> bool:
    """Whether spans would go anywhere: a real tracer provider is set (ours or the model's)."""
    return trace is not None and not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


# --- attributes, as DRUM's common.py ------------------------------------------------------------


def request_header_attributes(headers: dict[str, str]) -> dict[str, str]:
    """Consumer headers as DRUM records them; `headers` has lower-case names."""
    attributes = {}
    consumer_id = headers.get("x-datarobot-consumer-id")
    consumer_type = headers.get("x-datarobot-consumer-type")
    if consumer_id:
        attributes["gen_ai.request.consumer_id"] = consumer_id
    if consumer_type:
        attributes["gen_ai.request.consumer_type"] = consumer_type
    return attributes


def _content_parts(content: Any) -> list[Any]:
    parts: list[Any] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and "text" in part:
                parts.append({"type": "text", "content": part["text"]})
            else:
                parts.append(part)
    elif content is not None:
        parts.append({"type": "text", "content": str(content)})
    return parts


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry drops None and rejects dicts: keep what it can store (lists of parts as JSON)."""
    result = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)) and not all(isinstance(v, (str, int, float, bool)) for v in value):
            value = json.dumps(value)
        result[key] = value
    return result


def _message(attributes: dict[str, Any], kind: str, i: int, message: dict[str, Any]) -> dict[str, Any]:
    """Set message `i`'s `gen_ai.<kind>.*` attributes (the last content also as `gen_ai.<kind>`); its
    entry of `gen_ai.input.messages` / `gen_ai.output.messages`."""
    role, content = message.get("role"), message.get("content")
    attributes[f"gen_ai.{kind}.{i}.role"] = role
    attributes[f"gen_ai.{kind}.{i}.content"] = content
    attributes[f"gen_ai.{kind}"] = content
    entry: dict[str, Any] = {"role": role}
    if parts := _content_parts(content):
        entry["parts"] = parts
    return entry


def chat_request_attributes(params: Any) -> dict[str, Any]:
    params = params if isinstance(params, dict) else {}
    attributes: dict[str, Any] = {"gen_ai.request.model": params.get("model")}
    messages = []
    for i, message in enumerate(params.get("messages") or []):
        if not isinstance(message, dict):
            continue
        messages.append(_message(attributes, "prompt", i, message))
    if messages:
        attributes["gen_ai.input.messages"] = json.dumps(messages)
    return _clean(attributes)


def chat_response_attributes(response: Any) -> dict[str, Any]:
    response = response if isinstance(response, dict) else {}
    attributes: dict[str, Any] = {"gen_ai.response.model": response.get("model")}
    messages = []
    for i, choice in enumerate(response.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        entry = _message(attributes, "completion", i, message)
        if choice.get("finish_reason") is not None:
            entry["finish_reason"] = choice["finish_reason"]
        messages.append(entry)
    if messages:
        attributes["gen_ai.output.messages"] = json.dumps(messages)
    return _clean(attributes)


def response_from_sse(chunks: list[bytes | str]) -> dict[str, Any]:
    """A chat completion rebuilt from the SSE chunks of a streamed answer (model, role, content, finish)."""
    model = None
    content: dict[int, str] = {}
    role: dict[int, str] = {}
    finish: dict[int, str] = {}
    for chunk in chunks:
        text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            try:
                parsed = json.loads(line[5:].strip())
            except ValueError:
                continue
            if not isinstance(parsed, dict):
                continue
            model = model or parsed.get("model")
            for choice in parsed.get("choices") or []:
                idx = choice.get("index", 0)
                delta = choice.get("delta") or {}
                if delta.get("role"):
                    role[idx] = delta["role"]
                if delta.get("content"):
                    content[idx] = content.get(idx, "") + delta["content"]
                if choice.get("finish_reason"):
                    finish[idx] = choice["finish_reason"]
    indices = sorted({*content, *role, *finish})
    choices = [
        {"message": {"role": role.get(i), "content": content.get(i)}, "finish_reason": finish.get(i)} for i in indices
    ]
    return {"model": model, "choices": choices}


# --- spans --------------------------------------------------------------------------------------


@contextmanager
def request_span(name: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> Iterator[Any]:
    """The route's span, current for the block (model code's spans become its children); None when off."""
    if not tracing_active():
        yield None
        return
    carrier = {k.lower(): v for k, v in headers}
    token = otel_context_api.attach(TraceContextTextMapPropagator().extract(carrier=carrier))
    try:
        with trace.get_tracer(TRACER_NAME).start_as_current_span(name) as span:
            if name == CHAT_SPAN:
                try:
                    span.set_attributes(chat_request_attributes(json.loads(body or b"null")))
                except Exception:  # noqa: BLE001 - attributes never fail a request
                    logger.debug("chat request attributes", exc_info=True)
            span.set_attributes(request_header_attributes(carrier))
            yield span
    finally:
        otel_context_api.detach(token)


def record_response(span: Any, name: str, status: int, body: bytes) -> None:
    """Attributes and status from the handler's answer (chat completions; direct-access errors)."""
    if span is None:
        return
    try:
        if name == CHAT_SPAN and status == 200 and body:
            span.set_attributes(chat_response_attributes(json.loads(body)))
        elif name == DIRECT_ACCESS_SPAN and status >= 400:
            try:
                message = json.loads(body).get("message", "")
            except (ValueError, AttributeError):
                message = ""
            span.set_status(StatusCode.ERROR, message or None)
    except Exception:  # noqa: BLE001
        logger.debug("span response attributes", exc_info=True)


def stream_with_span(parent: Any, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Iterate a streamed chat answer inside `drum.chat.completions.stream`, a child of the request span.
    Closing the result closes `chunks` (even before the first chunk)."""
    if parent is None:
        return chunks
    return ClosingIterator(_traced(parent, chunks), chunks)


def _traced(parent: Any, chunks: Iterator[bytes]) -> Iterator[bytes]:
    span = trace.get_tracer(TRACER_NAME).start_span(STREAM_SPAN, context=trace.set_span_in_context(parent))
    seen: list[bytes] = []
    try:
        for chunk in chunks:
            seen.append(chunk)
            yield chunk
    finally:
        try:
            span.set_attributes(chat_response_attributes(response_from_sse(seen)))
        except Exception:  # noqa: BLE001
            logger.debug("stream span attributes", exc_info=True)
        span.end()
