"""DRUM's NIM watchdog (`USE_NIM_WATCHDOG`), one per worker, started and stopped with it.

Like DRUM it polls the server's own `http://{TEST_URL_HOST|localhost}:{port}{URL_PREFIX}/info/` every
`NIM_WATCHDOG_INTERVAL` (10) seconds with `NIM_WATCHDOG_REQUEST_TIMEOUT`, backing off 4·attempt² s
after a failure. DRUM, after `NIM_WATCHDOG_MAX_ATTEMPTS` failures, SIGTERMs every process in the
container; drum ends only processes it started, and in sidecar mode it starts none. So the watchdog
logs an error and marks the worker unhealthy instead: `/`, `/ping/` and `/health/` answer 513 (DRUM's
pipeline-error status) so the orchestrator's probes restart the container, and answer 200 again once
a poll succeeds.
"""

from __future__ import annotations

import logging
import threading

import httpx

from drum.serving.handlers import ServingContext

logger = logging.getLogger("drum.serving.watchdog")
BASE_BACKOFF = 4  # seconds, DRUM's quadratic back-off base
MAX_BACKOFF = 300  # DRUM never got this far (it killed everything); we keep polling


class Watchdog:
    def __init__(self, ctx: ServingContext, url: str, timeout: float, max_attempts: int, interval: float) -> None:
        """`url`: this server's own /info/; the rest: NIM_WATCHDOG_REQUEST_TIMEOUT, _MAX_ATTEMPTS, _INTERVAL."""
        self.ctx = ctx
        self.url = url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="NIM Watchdog", daemon=True)

    def start(self) -> None:
        logger.info("Starting watchdog to monitor server health...")
        logger.info("Nim watchdog health check request timeout is %s", self.timeout)
        logger.info("Nim watchdog max attempts: %s", self.max_attempts)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        logger.info("Watchdog thread exiting")

    def _run(self) -> None:
        attempt = 0
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    client.get(self.url)
                except httpx.HTTPError as exc:
                    attempt += 1
                    logger.warning("health_url %s", self.url)
                    logger.warning("Server health check failed (attempt %s/%s): %s", attempt, self.max_attempts, exc)
                    if attempt >= self.max_attempts and self.ctx.unhealthy is None:
                        logger.error(
                            "All health check attempts failed. drum started no process to end; "
                            "reporting unhealthy (513) on /, /ping/ and /health/."
                        )
                        self.ctx.unhealthy = f"NIM watchdog: {self.url} failed {attempt} health checks: {exc}"
                    self._stop.wait(min(MAX_BACKOFF, BASE_BACKOFF * attempt**2))
                    continue
                if self.ctx.unhealthy is not None:
                    logger.warning("Server health check succeeded again; reporting healthy")
                    self.ctx.unhealthy = None
                attempt = 0
                self._stop.wait(self.interval)
