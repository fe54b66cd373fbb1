"""Request timing for `/stats/` `time_info` (enabled by `--show-perf`), reset on every read."""

from __future__ import annotations

import threading


class RequestTimes:
    """Collects per-request wall times of prediction routes; `report()` returns and resets them."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._times: list[float] = []

    def add(self, seconds: float) -> None:
        if self.enabled:
            with self._lock:
                self._times.append(seconds)

    def report(self) -> dict[str, dict[str, float | None]]:
        with self._lock:
            times = [round(t, 3) for t in self._times]
            self._times.clear()
        if not self.enabled or not times:
            stats: dict[str, float | None] = {"min": None, "max": None, "avg": None, "total": None}
        else:
            stats = {"min": min(times), "max": max(times), "avg": sum(times) / len(times), "total": sum(times)}
        return {"run_predictor_total": stats}
