"""Fault drills under load (bench/faults.py): SIGTERM drains every request that reached the model and
exits 0; a worker killed with -9 is replaced, and only the requests it held fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import faults  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(tmp_path):
    result = faults.sigterm_drill(tmp_path, workers=2, clients=16, load_s=1.5)
    assert result.started > 0
    assert result.answered == result.started, result
    assert result.server_errors == 0, result
    assert result.exit_code == 0, result


def test_kill_9_of_a_worker_fails_only_what_it_held_and_the_worker_is_replaced(tmp_path):
    result = faults.kill9_drill(tmp_path, workers=2, clients=16, load_s=1.5)
    assert result.recovered, result
    assert result.workers_after == 2, result
    assert result.failed <= result.held, result
    assert result.answered_after > 0, result
