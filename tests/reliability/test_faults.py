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


def test_slow_clients_hold_no_prediction_thread_and_time_out_with_408(tmp_path):
    """50 connections sending a request head a byte a second: a normal client on the same worker (one
    prediction thread) is answered every time, and DRUM_REQUEST_READ_TIMEOUT closes every slow one."""
    result = faults.slowloris_drill(tmp_path, connections=50, requests_n=50, read_timeout=2, hold_s=3)
    assert result.statuses == [200] * 50, result
    assert result.timed_out == 50, result


def test_32_concurrent_20_mb_bodies_are_all_answered_within_bounded_memory(tmp_path):
    result = faults.big_bodies_drill(tmp_path, clients=32, body_mb=20)
    assert len(result.statuses) == 32 and set(result.statuses) <= {200, 413, 503}, result
    # The bodies together are ~610 MiB; the body budget (20 MiB) keeps most of them unread in the kernel.
    assert result.peak_rss_mb - result.idle_rss_mb < result.budget_mb + 8 * result.body_mb, result
