"""A small progress bar on stderr, drawn only when stderr is a terminal (never into pipes or logs)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class ProgressBar:
    """`with ProgressBar(total, "Scoring") as bar: bar.update(done)`; silent unless `stream` is a tty."""

    WIDTH = 30

    def __init__(
        self, total: int, label: str, unit: str = "rows", stream: IO[str] | None = None, interval: float = 0.1
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = f" {unit}" if unit else ""
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._done = 0
        self._drawn_at = 0.0

    def __enter__(self) -> ProgressBar:
        self._draw()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def update(self, done: int) -> None:
        self._done = done
        if self.enabled and time.monotonic() - self._drawn_at >= self.interval:
            self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        fraction = min(self._done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} |{bar}| {self._done}/{self.total}{self.unit} {fraction:4.0%}")
        self.stream.flush()
        self._drawn_at = time.monotonic()
