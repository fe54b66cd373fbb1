"""One function per route: `(ServingContext, RequestData) -> ResponseData`, shared by every server."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drum import DRUM_COMPAT_VERSION
from drum.errors import DrumSchemaValidationException
from drum.model import codecs, output
from drum.model.predictor import PredictionInput, Predictor
from drum.model.target import TargetType
from drum.observability.resources import ResourceMonitor
from drum.observability.stats import RequestTimes
from drum.serving.errors import UNSUPPORTED_JSON_TEXT, BadRequest, HTTPError
from drum.serving.request import RequestData
from drum.serving.response import ResponseData, error_response, json_response
from drum.streams import ClosingIterator, close_all

if TYPE_CHECKING:
    from drum.serving.proxy import BackendProxy

SAMPLES_MISSING = (
    "Samples should be provided as:   - a csv or mtx under `{}` form-data param key.  - binary data"
)


@dataclass
class ServingContext:
    """What handlers need: the loaded predictor (None in error-server mode) and server facts."""

    predictor: Predictor | None
    target_type: TargetType
    code_dir: str
    server_name: str = "fastapi"
    language: str = "python"
    model_metadata: dict | None = None
    deployment_config: dict | None = None
    #: Set when the model failed to load and `--with-error-server` keeps serving 513s.
    load_error: str | None = None
    times: RequestTimes = field(default_factory=lambda: RequestTimes(False))
    #: Prometheus metrics when DRUM_METRICS_ENABLED is on (an observability.metrics.Metrics).
    metrics: Any = None
    resources: ResourceMonitor = field(default_factory=ResourceMonitor)
    #: The OpenAI-compatible backend over HTTP in GPU/sidecar mode (opened in the server's lifespan).
    proxy: BackendProxy | None = None
    #: Set by the NIM watchdog when this worker's own /info/ stopped answering: health routes give 513.
    unhealthy: str | None = None
    #: Set by the runtime: why the model cannot take requests now (a wedged model), else None. V2 readiness.
    wedged: Callable[[], str | None] | None = None

    @property
    def model(self) -> Predictor:
        assert self.predictor is not None
        return self.predictor


def _fail(message: str, status: int = 422) -> HTTPError:
    return HTTPError(error_response(message, status))


# --- health and metadata ------------------------------------------------------------------------


def ping(ctx: ServingContext, req: RequestData) -> ResponseData:
    if ctx.unhealthy is not None:
        return error_response(ctx.unhealthy, 513)
    return json_response({"message": "OK"})


health = ping


async def probe(ctx: ServingContext, req: RequestData) -> ResponseData:
    """`/`, `/ping/`, `/health/` in GPU/sidecar mode: DRUM's liveness/readiness probes ask the backend."""
    if ctx.unhealthy is not None or ctx.proxy is None:
        return ping(ctx, req)
    return await ctx.proxy.health(getattr(ctx.predictor, "reset_served_model_name", None))


def info(ctx: ServingContext, req: RequestData) -> ResponseData:
    body = ctx.model.info()
    body.update(
        language=ctx.language,
        drumVersion=DRUM_COMPAT_VERSION,
        drumServer=ctx.server_name,
        modelMetadata=ctx.model_metadata,
    )
    return json_response(body)


def capabilities(ctx: ServingContext, req: RequestData) -> ResponseData:
    return json_response(ctx.model.capabilities())


def stats(ctx: ServingContext, req: RequestData) -> ResponseData:
    body = ctx.resources.collect()
    body["time_info"] = ctx.times.report()
    return json_response(body)


def metrics(ctx: ServingContext, req: RequestData) -> ResponseData:
    """Prometheus exposition of every worker's metrics; 404 (like any unknown route) when off."""
    if ctx.metrics is None:
        from drum.serving.errors import NOT_FOUND_TEXT

        raise _fail(NOT_FOUND_TEXT, 404)
    from drum.observability.metrics import CONTENT_TYPE

    return ResponseData(200, ctx.metrics.render(), CONTENT_TYPE)


# --- structured predictions and transforms -------------------------------------------------------


def _input(ctx: ServingContext, req: RequestData, key: str) -> tuple[bytes, str | None, str | None]:
    """DRUM's data selection: a multipart file under `key`, else the raw body, else 422."""
    upload = req.files.get(key)
    if upload is not None:
        return upload.data, codecs.mimetype_from_filename(upload.filename), None
    if key == "X" and req.data:
        return req.data, req.mimetype, req.charset
    raise _fail(SAMPLES_MISSING.format(key))


def _check_mimetype(ctx: ServingContext, mimetype: str | None) -> None:
    supported = codecs.MIMETYPE_TO_FORMAT.get(mimetype) in ctx.model.payload_formats
    if not supported and not ctx.model.has_read_input_data_hook():
        raise _fail(
            f"payload format `{mimetype}` is not supported by predictor/transformer. Make DRUM support the "
            "format or implement `read_input_data` hook to read the data. "
        )


def _sparse_colnames(req: RequestData) -> list[str] | None:
    upload = req.files.get("X.colnames")
    return codecs.read_column_names(upload.data) if upload is not None and upload.data else None


def predict(ctx: ServingContext, req: RequestData) -> ResponseData:
    result = ctx.model.predict(prediction_input(ctx, req))
    body = output.prediction_body(result, ctx.target_type, ctx.deployment_config)
    return ResponseData(200, body, "application/json")


def prediction_input(ctx: ServingContext, req: RequestData) -> PredictionInput:
    """The structured-prediction input of a request (DRUM's checks and data selection)."""
    target = ctx.target_type
    if target == TargetType.TRANSFORM:
        raise _fail("This model has target type 'transform', use the /transform/ endpoint.")
    if target == TargetType.UNSTRUCTURED:
        raise _fail(
            "This model has target type 'unstructured', use the /predictUnstructured/ or "
            "/predictionsUnstructured/ endpoint."
        )
    data, mimetype, charset = _input(ctx, req, "X")
    colnames = _sparse_colnames(req)
    _check_mimetype(ctx, mimetype)
    return PredictionInput(data, mimetype, charset, colnames)


def transform(ctx: ServingContext, req: RequestData) -> ResponseData:
    if ctx.target_type != TargetType.TRANSFORM:
        endpoint = "predictUnstructured" if ctx.target_type == TargetType.UNSTRUCTURED else "predict"
        raise _fail(f"This model has target type {ctx.target_type}, use the /{endpoint}/ endpoint.")
    data, mimetype, _charset = _input(ctx, req, "X")
    colnames = _sparse_colnames(req)
    _check_mimetype(ctx, mimetype)
    y_data = y_mimetype = None
    if "y" in req.files:
        y_data, y_mimetype, _ = _input(ctx, req, "y")
        _check_mimetype(ctx, y_mimetype)
    try:
        out_x, out_y = ctx.model.transform(data, mimetype, colnames, y_data, y_mimetype)
    except DrumSchemaValidationException as exc:
        body = {"message": f"ERROR: {exc}", "is_schema_validation_error": True}
        return json_response(body, 422)
    multipart = codecs.transform_multipart(out_x, out_y if y_data else None)
    return ResponseData(200, multipart.body, multipart.content_type)


# --- unstructured --------------------------------------------------------------------------------


def predict_unstructured(ctx: ServingContext, req: RequestData) -> ResponseData:
    if ctx.target_type not in (TargetType.UNSTRUCTURED, TargetType.TEXT_GENERATION):
        raise _fail(
            f"This model has target type {ctx.target_type}, use either /predict/ or /predictions/ endpoint."
        )
    data, mimetype, charset = codecs.decode_unstructured(req.body, req.mimetype, req.charset)
    kwargs: dict[str, Any] = {"mimetype": mimetype}
    if charset is not None:
        kwargs["charset"] = charset
    kwargs["query"] = req.query
    kwargs["headers"] = dict(req.headers_dict())  # DRUM passes a plain dict here
    value, extra = ctx.model.stream_unstructured(data, **kwargs)
    if isinstance(value, Iterator):
        return _unstructured_stream(value, extra)
    body, out_mimetype, out_charset = codecs.encode_unstructured(value, extra)
    content_type = out_mimetype if out_charset is None else f"{out_mimetype}; charset={out_charset}"
    return ResponseData(200, body or b"", content_type)


def _unstructured_stream(chunks: Iterator[Any], extra: dict | None) -> ResponseData:
    """A hook's iterator of str/bytes chunks, streamed (drum's extension: DRUM takes only str/bytes). The
    first chunk is made here, on the prediction thread (its failure is the request's error), and sets the
    content type as a single value would; closing the stream (client gone) closes the hook's iterator."""
    end = object()
    try:
        first = next(chunks, end)
    except BaseException:
        close_all(chunks)
        raise
    if first is end:
        _, mimetype, charset = codecs.encode_unstructured(None, extra)
        return ResponseData(200, b"", mimetype if charset is None else f"{mimetype}; charset={charset}")
    _, mimetype, charset = codecs.encode_unstructured(_chunk_type_check(first), extra)

    def encoded() -> Iterator[bytes]:
        for chunk in itertools.chain((first,), chunks):
            chunk = _chunk_type_check(chunk)
            yield chunk.encode(charset or codecs.DEFAULT_CHARSET) if isinstance(chunk, str) else bytes(chunk)

    content_type = mimetype if charset is None else f"{mimetype}; charset={charset}"
    return ResponseData(200, b"", content_type, stream=ClosingIterator(encoded(), chunks))


def _chunk_type_check(chunk: Any) -> str | bytes:
    if not isinstance(chunk, (str, bytes, bytearray, memoryview)):
        raise ValueError(f"In unstructured mode a streamed chunk can be of type str/bytes, but received {type(chunk)}")
    return chunk


# --- chat and models -----------------------------------------------------------------------------


def request_json(req: RequestData) -> Any:
    """Flask's `request.json`: JSON content type required (415), and JSON (400), in DRUM's error format
    (DRUM answered the 415 as a 500 and the 400 as Flask's `{"error": ...}`; see docs/compatibility.md)."""
    mimetype = req.mimetype.lower()
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise HTTPError(error_response(UNSUPPORTED_JSON_TEXT, 415))
    try:
        return json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest() from None


def chat(ctx: ServingContext, req: RequestData) -> ResponseData:
    params = request_json(req)
    if not ctx.model.supports_chat():
        if ctx.target_type in (TargetType.TEXT_GENERATION, TargetType.AGENTIC_WORKFLOW):
            message = "This model's chat interface was called, but chat() is not implemented."
        else:
            message = "This model's chat interface was called, but chat is not supported."
        raise _fail(message, 404)
    result = ctx.model.chat(params, headers=req.headers_dict())
    if getattr(result, "object", None) == "chat.completion":
        return json_response(result.to_dict())
    return ResponseData(200, b"", "text/event-stream; charset=utf-8", stream=_sse(result))


def _sse(chunks: Iterator[Any]) -> Iterator[bytes]:
    """DRUM's SSE framing: `data: ` before every line of each chunk's JSON, a blank line after it.
    Closing it (client gone) closes `chunks`, i.e. the hook's iterator, even before the first chunk."""

    def frames() -> Iterator[bytes]:
        for chunk in chunks:
            text = chunk.to_json(indent=None)
            yield "".join(f"data: {line}\n" for line in text.splitlines()).encode() + b"\n"
        yield b"data: [DONE]\n\n"

    return ClosingIterator(frames(), chunks)


def models(ctx: ServingContext, req: RequestData) -> ResponseData:
    if ctx.target_type != TargetType.TEXT_GENERATION:
        raise _fail("get_supported_llm_models is supported only for TextGen models", 404)
    return json_response(ctx.model.models())


def direct_access(ctx: ServingContext, req: RequestData) -> ResponseData:
    return json_response({"message": "This endpoint is only supported by OpenAI based predictors"}, 400)


async def direct_access_async(ctx: ServingContext, req: RequestData) -> ResponseData:
    """`/directAccess/{path}`, `/nim/{path}`: forwarded to the backend, streamed both ways."""
    if ctx.proxy is None:
        if req.body_stream is not None:  # read (and drop) the body so the connection stays usable
            async for _ in req.body_stream:
                pass
        return direct_access(ctx, req)
    return await ctx.proxy.forward(req, req.path_params.get("path", ""))


def options(allowed: tuple[str, ...]) -> ResponseData:
    """Flask's automatic OPTIONS answer: empty, with the allowed methods."""
    return ResponseData(200, b"", "text/html; charset=utf-8", [("Allow", ", ".join(allowed))])


# --- error server --------------------------------------------------------------------------------


def load_failed(ctx: ServingContext, req: RequestData) -> ResponseData:
    """`--with-error-server`: the routes DRUM keeps answer 513 with the load error."""
    return error_response(ctx.load_error or "model failed to load", 513)


def timed(ctx: ServingContext, started: float) -> None:
    ctx.times.add(time.perf_counter() - started)
