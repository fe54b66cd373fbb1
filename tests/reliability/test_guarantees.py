"""The guarantees table (bench/guarantees.py) keeps measuring: its deadline scenario, run against drum only,
finds what docs/deployment.md promises for `X-Request-Timeout`: a running request is answered 504 at its
deadline, and a queued one is answered 504 at its deadline and never scored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import guarantees  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_deadline_scenario_measures_drums_504s_and_the_unscored_queued_request(tmp_path):
    drum = guarantees.targets()["drum"]
    assert isinstance(drum, guarantees.Target), drum
    scenario = next(s for s in guarantees.SCENARIOS if s.name == "deadline")
    cell = guarantees.run_cell(drum, scenario, tmp_path)
    data = cell.data
    assert data.get("startup_s") is not None, cell  # the server started and the scenario ran to its end
    deadline = guarantees.DEADLINE_S
    assert data["running_status"] == 504, cell
    assert deadline <= data["running_s"] < guarantees.DEADLINE_MODEL_S, cell
    assert data["queued_status"] == 504, cell
    assert deadline <= data["queued_s"] < guarantees.DEADLINE_MODEL_S, cell
    assert data["queued_scored"] is False, cell
    assert "504" in cell.summary and "not scored" in cell.summary, cell
