"""`ClosingIterator`: a generator wrapped so that `close()` also closes what it reads from.

Closing a generator that never started does not run its body, so a `finally` inside it cannot close
the iterator it wraps. Streamed answers (a chat hook's generator, tagged, framed as SSE, traced) are
layered this way, and a client that disconnects before the first byte must still stop the hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def close_all(*objects: Any) -> None:
    """Call `close()` on each object that has one (each object once; errors propagate after all ran)."""
    seen: set[int] = set()
    error: BaseException | None = None
    for obj in objects:
        close = getattr(obj, "close", None)
        if obj is None or id(obj) in seen or not callable(close):
            continue
        seen.add(id(obj))
        try:
            close()
        except BaseException as exc:  # noqa: BLE001 - close the rest, then report the first failure
            error = error or exc
    if error is not None:
        raise error


class ClosingIterator(Iterator[T]):
    """Iterates `generator`; `close()` closes it and then every object in `inner`."""

    def __init__(self, generator: Iterator[T], *inner: Any) -> None:
        self._generator = generator
        self._inner = inner

    def __iter__(self) -> ClosingIterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._generator)

    def close(self) -> None:
        close_all(self._generator, *self._inner)
