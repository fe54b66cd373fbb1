"""`drum perf-test` and Ctrl+C: a KeyboardInterrupt that Python drops (raised inside a finalizer) still
stops the test at its next request."""

from __future__ import annotations

import os
import signal
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from drum.cli import perf_test
from drum.cli.perf_test import CaseResult, Interrupt, PerfTestCase


def test_a_ctrl_c_dropped_in_a_finalizer_still_stops_the_test(monkeypatch):
    dropped: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    monkeypatch.setattr(Interrupt, "requested", False)

    class ClosedByTheCollector:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the handler runs between these bytecodes: its exception is dropped
                pass

    previous = signal.signal(signal.SIGINT, Interrupt.handler)
    try:
        ClosedByTheCollector()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert dropped == [KeyboardInterrupt]  # Python printed it and went on

    posted: list[tuple] = []
    monkeypatch.setattr(perf_test, "request", lambda *args, **kw: posted.append(args) or (200, b'{"predictions": [1]}'))
    case = PerfTestCase("1 row", 1, 1000)
    with pytest.raises(KeyboardInterrupt):
        perf_test.run_case(case, pd.DataFrame({"a": [1]}), SimpleNamespace(url="http://127.0.0.1:1"),
                           CaseResult(case.name, 1, 1000), False)  # fmt: skip
    assert posted == []
