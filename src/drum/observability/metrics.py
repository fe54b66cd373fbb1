"""Prometheus metrics (opt-in, `DRUM_METRICS_ENABLED`): request counts and latency by route and status,
prediction jobs in flight, memory — aggregated across worker processes (prometheus_client multiprocess
mode: the parent sets `PROMETHEUS_MULTIPROC_DIR` before any worker starts)."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prepare_multiprocess_dir() -> str:
    """Called once by the process the user started: a fresh directory shared by every worker."""
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="drum-metrics-")
    return os.environ[MULTIPROC_ENV]


class Metrics:
    """The metric objects of one process (import prometheus_client only when metrics are on)."""

    def __init__(self) -> None:
        prepare_multiprocess_dir()
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("drum_requests_total", "HTTP requests", ["route", "method", "status"])
        self.latency = Histogram("drum_request_duration_seconds", "HTTP request latency", ["route"])
        self.jobs = Gauge(
            "drum_prediction_jobs", "Prediction jobs running or queued for an executor thread",
            multiprocess_mode="livesum",
        )
        self.memory = Gauge("drum_worker_rss_bytes", "Resident memory of worker processes", multiprocess_mode="livesum")
        self.abandoned = Counter(
            "drum_requests_abandoned_total", "Requests whose client disconnected before their answer", ["stage"]
        )
        self._memory_at = 0.0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        now = time.monotonic()
        if now - self._memory_at > 1.0:
            import psutil

            self.memory.set(psutil.Process().memory_info().rss)
            self._memory_at = now

    def count_abandoned(self, stage: str) -> None:
        """`stage`: "queued" (never scored) or "running" (its result dropped)."""
        self.abandoned.labels(stage).inc()

    def set_jobs(self, count: int) -> None:
        self.jobs.set(count)

    @staticmethod
    def render() -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not the raw path, to bound label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(template, scope["method"], status, time.perf_counter() - started)
