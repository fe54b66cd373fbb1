"""THE route table: every DRUM route, its methods, handler, span name and how it is served.

Servers generate their routes from `ROUTES`; no route logic lives in `servers/`.
Both the slashed and slash-less spelling of each path are served directly (a decided deviation
from Flask's 308 redirects and 404s; see docs/compatibility.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drum.serving import handlers, v2
from drum.serving.handlers import ServingContext
from drum.serving.request import RequestData
from drum.serving.response import ResponseData

Handler = Callable[[ServingContext, RequestData], ResponseData]
AsyncHandler = Callable[[ServingContext, RequestData], Awaitable[ResponseData]]


@dataclass(frozen=True)
class Route:
    #: Path as DRUM declares it (relative to URL_PREFIX); `{path}` captures the rest of the URL.
    path: str
    methods: tuple[str, ...]
    handler: Handler
    #: Flask endpoint name in DRUM's `model_api` blueprint.
    name: str
    #: OpenTelemetry span name, if DRUM traces this route.
    span: str | None = None
    #: Cheap routes (health, metadata) answer from the event loop, never queued behind predictions.
    on_loop: bool = False
    #: Still answered (with 513) when the model failed to load and `--with-error-server` is on.
    error_server: bool = False
    #: Prediction routes whose wall time goes to `/stats/` time_info.
    timed: bool = False
    #: Servers that run a loop use this instead of `handler` (network I/O only, never model code).
    async_handler: AsyncHandler | None = None
    #: The body is not read up front: `RequestData.body_stream` hands it on as it arrives.
    stream_request: bool = False
    #: "drum" (DRUM's routes, DRUM's error format) or "v2" (the Open Inference Protocol, `{"error": ...}`).
    protocol: str = "drum"

    def allowed_methods(self) -> tuple[str, ...]:
        """What the route answers, as Flask does: HEAD with GET, and OPTIONS everywhere."""
        extra = ("HEAD",) if "GET" in self.methods else ()
        return (*extra, *self.methods, "OPTIONS")

    def variants(self) -> list[str]:
        """The spellings served: with and without the trailing slash."""
        if self.path == "/":
            return ["/"]
        if "{path" in self.path:
            return [self.path]
        bare = self.path.rstrip("/")
        return [bare, bare + "/"]


def _health(path: str, handler: Handler, name: str) -> Route:
    return Route(path, ("GET",), handler, name, on_loop=True, error_server=True, async_handler=handlers.probe)


def _proxy(path: str) -> Route:
    return Route(
        path,
        PROXY_METHODS,
        handlers.direct_access,
        "forward_request",
        "drum.directAccess",
        on_loop=True,
        async_handler=handlers.direct_access_async,
        stream_request=True,
    )


def _scoring(path: str, handler: Handler, name: str, span: str) -> Route:
    """Prediction-like routes: timed for /stats/ and answered with 513 by the error server."""
    return Route(path, ("POST",), handler, name, span, error_server=True, timed=True)


UNSTRUCTURED = "predict_unstructured"
PROXY_METHODS = ("GET", "POST", "PUT")
#: Routes whose request body is streamed on, not read first (relative to URL_PREFIX).
STREAMED_PREFIXES = ("/directAccess/", "/nim/")

ROUTES: tuple[Route, ...] = (
    _health("/", handlers.ping, "ping"),
    _health("/ping/", handlers.ping, "ping"),
    _health("/health/", handlers.health, "health"),
    Route("/info/", ("GET",), handlers.info, "info", on_loop=True),
    Route("/capabilities/", ("GET",), handlers.capabilities, "capabilities", on_loop=True),
    Route("/stats/", ("GET",), handlers.stats, "stats", on_loop=True),
    Route("/metrics", ("GET",), handlers.metrics, "metrics", on_loop=True),
    _scoring("/predictions/", handlers.predict, "predict", "drum.invocations"),
    _scoring("/predict/", handlers.predict, "predict", "drum.invocations"),
    _scoring("/invocations", handlers.predict, "predict", "drum.invocations"),
    _scoring("/transform/", handlers.transform, "transform", "drum.transform"),
    _scoring("/predictionsUnstructured/", handlers.predict_unstructured, UNSTRUCTURED, "drum.predictUnstructured"),
    _scoring("/predictUnstructured/", handlers.predict_unstructured, UNSTRUCTURED, "drum.predictUnstructured"),
    Route("/chat/completions", ("POST",), handlers.chat, "chat", "drum.chat.completions", timed=True),
    Route("/v1/chat/completions", ("POST",), handlers.chat, "chat", "drum.chat.completions", timed=True),
    Route("/models", ("GET",), handlers.models, "get_supported_llm_models", timed=True),
    Route("/v1/models", ("GET",), handlers.models, "get_supported_llm_models", timed=True),
    _proxy("/directAccess/{path:path}"),
    _proxy("/nim/{path:path}"),
)


def _v2(path: str, handler: Handler, name: str, method: str = "GET") -> Route:
    if method == "GET":
        return Route(path, ("GET",), handler, name, on_loop=True, protocol="v2")
    return Route(path, (method,), handler, name, "drum.v2.infer", timed=True, protocol="v2")


#: The Open Inference Protocol's REST routes (`drum.serving.v2`), served unless DRUM_V2_PROTOCOL is off.
V2_ROUTES: tuple[Route, ...] = (
    _v2("/v2/health/live", v2.live, "v2_live"),
    _v2("/v2/health/ready", v2.ready, "v2_ready"),
    _v2("/v2", v2.server_metadata, "v2_metadata"),
    _v2("/v2/models/{name}", v2.model_metadata, "v2_model_metadata"),
    _v2("/v2/models/{name}/ready", v2.model_ready, "v2_model_ready"),
    _v2("/v2/models/{name}/infer", v2.infer, "v2_infer", "POST"),
)


def active_routes(v2_protocol: bool) -> tuple[Route, ...]:
    """The routes a server serves: DRUM's, and the V2 ones when `v2_protocol` (DRUM_V2_PROTOCOL)."""
    return ROUTES + V2_ROUTES if v2_protocol else ROUTES


def full_paths(route: Route, prefix: str) -> list[str]:
    """Absolute paths for a route under the prefix; the root route also answers at the bare prefix."""
    paths = [prefix + v for v in route.variants()]
    if route.path == "/" and prefix:
        paths = [prefix, prefix + "/"]
    return paths
