"""The OpenAI-compatible backend seen over HTTP: `/directAccess/` and `/nim/` forwarding and the health
probe that `/`, `/ping/` and `/health/` answer with in GPU/sidecar mode.

One `httpx.AsyncClient` per worker (opened in the server's lifespan, closed on shutdown) carries every
request. Bodies are streamed both ways: the client's body goes upstream as it arrives, the backend's
bytes come back unchanged (no decompression) as they arrive. Hop-by-hop headers are dropped in both
directions. A backend that is down or too slow gives DRUM's error body (502/504), never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx

from drum.serving.request import RequestData
from drum.serving.response import ResponseData, error_response, json_response

logger = logging.getLogger("drum.serving.proxy")

#: RFC 9110 §7.6.1 connection-specific headers, plus Host (httpx sets the backend's own).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
HEALTH_TIMEOUT = 5.0  # seconds, as DRUM's GPU predictors probe the backend


class BackendStreamError(Exception):
    """The backend failed after the response had started: the client's connection is aborted."""


def _forwardable(headers: list[tuple[str, str]] | httpx.Headers, drop: frozenset[str]) -> list[tuple[str, str]]:
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers
    connection = {
        token.strip().lower() for key, value in items if key.lower() == "connection" for token in value.split(",")
    }
    return [(k, v) for k, v in items if k.lower() not in drop and k.lower() not in connection]


class BackendProxy:
    """Forwards requests to `http://{host}:{port}`; `name` ("NIM", "vLLM") appears in health messages."""

    def __init__(self, host: str, port: int | str, health_route: str, name: str, timeout: float | None) -> None:
        self.base_url = f"http://{host}:{port}"
        self.health_route = health_route
        self.name = name
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the backend proxy is not open (it is opened in the server's lifespan)")
        return self._client

    def open(self) -> None:
        """Create the connection pool (connections open on first use, on the serving event loop)."""
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- /directAccess/{path}, /nim/{path} ----------------------------------------------------------

    async def forward(self, req: RequestData, path: str) -> ResponseData:
        """DRUM's forward_request: same method, headers, query and body to `/{path without trailing /}`."""
        url = f"{self.base_url}/{path.rstrip('/')}"
        headers = _forwardable(req.headers, HOP_BY_HOP | {"host"})
        content: AsyncIterator[bytes] | bytes = req.body_stream if req.body_stream is not None else req.body
        request = self.client.build_request(
            req.method, url, headers=headers, params=req.query.items_multi(), content=content
        )
        try:
            upstream = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            return self._timeout(url, exc)
        except httpx.HTTPError as exc:
            return self._unreachable(url, exc)
        # uvicorn writes its own Date header; the backend's would be a second one
        response_headers = _forwardable(upstream.headers, HOP_BY_HOP | {"date"})
        return ResponseData(
            upstream.status_code, b"", None, response_headers, astream=self._relay(upstream, url)
        )

    async def _relay(self, upstream: httpx.Response, url: str) -> AsyncIterator[bytes]:
        """The backend's bytes as they come; closing this (client gone) closes the upstream response."""
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            logger.error("The backend failed mid-response (%s %s): %r", upstream.request.method, url, exc)
            raise BackendStreamError(f"{url}: {exc!r}") from exc
        finally:
            await upstream.aclose()

    def _timeout(self, url: str, exc: Exception) -> ResponseData:
        logger.error("Backend request timed out: %s: %r", url, exc)
        limit = f" within {self.timeout:g} seconds" if self.timeout else ""
        return error_response(
            f"The {self.name} backend at {self.base_url} did not answer{limit} "
            "(NIM_DIRECT_ACCESS_REQUEST_TIMEOUT).",
            504,
        )

    def _unreachable(self, url: str, exc: Exception) -> ResponseData:
        logger.error("Backend request failed: %s: %r", url, exc)
        return error_response(f"Cannot reach the {self.name} backend at {self.base_url}: {exc!r}", 502)

    # --- health ----------------------------------------------------------------------------------

    async def health(self, on_unreachable: Callable[[], None] | None = None) -> ResponseData:
        """DRUM's GPU health check: the backend's health route body as `message`, with its status;
        503 when it does not answer (then `on_unreachable` runs, as DRUM resets its model name)."""
        url = f"{self.base_url}{self.health_route}"
        try:
            response = await self.client.get(url, timeout=HEALTH_TIMEOUT)
        except httpx.HTTPError as exc:
            if on_unreachable is not None:
                on_unreachable()
            if isinstance(exc, httpx.TimeoutException):
                message = f"Timeout waiting for {self.name} health route to respond."
            else:
                message = f"{self.name} server is not ready: {exc}"
            return json_response({"message": message}, 503)
        return json_response({"message": response.text}, response.status_code)


def backend_proxy_for(predictor: object, timeout: float) -> BackendProxy | None:
    """The proxy for a predictor backed by an OpenAI-compatible server (it has `openai_host`), else None;
    `timeout`: NIM_DIRECT_ACCESS_REQUEST_TIMEOUT."""
    host = getattr(predictor, "openai_host", None)
    if host is None:
        return None
    return BackendProxy(
        host,
        predictor.openai_port,  # type: ignore[attr-defined]
        predictor.health_route,  # type: ignore[attr-defined]
        getattr(predictor, "name", "OpenAI"),
        float(timeout),
    )
