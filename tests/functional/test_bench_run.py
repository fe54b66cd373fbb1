"""`python -m bench` end to end on real servers: every server of a model is up at once and each case runs
on every server in turn (rotating order), round after round; the load generator is replaced by a few
real HTTP requests so the test needs neither wrk nor hey."""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import loadgen  # noqa: E402
from bench import run as bench_run  # noqa: E402

pytest.importorskip("gunicorn")
pytest.importorskip("sklearn")


def test_cases_run_on_every_server_in_turn(tmp_path, monkeypatch, capsys):
    calls: list[tuple[int, str]] = []

    def few_requests(tool, url, body, content_type, connections, duration_s, timeout_s=120.0):
        parts = urlsplit(url)
        calls.append((parts.port, parts.path))
        data, took = Path(body).read_bytes(), []
        for _ in range(3):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            started = time.perf_counter()
            conn.request("POST", parts.path, body=data, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            resp.read()
            took.append((time.perf_counter() - started) * 1000)
            conn.close()
            assert resp.status == 200
        return loadgen.LoadResult(requests=3, errors=0, duration_s=0.1, p50_ms=took[1], p90_ms=max(took),
                                  p99_ms=max(took), max_ms=max(took), tool=tool, p95_ms=max(took))  # fmt: skip

    monkeypatch.setattr(loadgen, "available_tools", lambda: ["wrk"])
    monkeypatch.setattr(loadgen, "run_load", few_requests)
    monkeypatch.delenv("DRUM_REFERENCE_VENV", raising=False)
    argv = ["--servers", "fastapi,gunicorn", "--cases", "csv1-c1,csv100-c1", "--duration", "0.1", "--rounds", "2",
            "--no-chart",
            "--results-dir", str(tmp_path), "--out", "t"]  # fmt: skip
    assert bench_run.main(argv) == 0

    log = capsys.readouterr().err
    ran = [line.split("] ", 1)[1].split(":")[0] for line in log.splitlines() if " req/s" in line]
    assert ran == [
        "fastapi csv1-c1 (round 1)", "gunicorn csv1-c1 (round 1)", "gunicorn csv100-c1 (round 1)",
        "fastapi csv100-c1 (round 1)", "gunicorn csv1-c1 (round 2)", "fastapi csv1-c1 (round 2)",
        "fastapi csv100-c1 (round 2)", "gunicorn csv100-c1 (round 2)",
    ]  # fmt: skip
    assert log.index("gunicorn: ready") < log.index("fastapi csv1-c1")  # both up before the first case
    assert len({port for port, _ in calls}) == 2 and all(path == "/predict/" for _, path in calls)

    results = json.loads((tmp_path / "t.json").read_text())
    rows = {(r["case"], r["server"]): r for r in results["rows"]}
    assert set(rows) == {(c, s) for c in ("csv1-c1", "csv100-c1") for s in ("fastapi", "gunicorn")}
    assert all(r["error"] is None and r["rps"] > 0 and r["peak_rss_mb"] > 0 for r in rows.values())
    assert all(r["rounds"] == 2 and r["requests"] == 6 and len(r["per_round"]) == 2 for r in rows.values())
    assert set(results["servers"]) == {"fastapi", "gunicorn"}
    assert all(s["startup_s"]["regression"] > 0 for s in results["servers"].values())
    text = (tmp_path / "t.md").read_text()
    assert "| csv100-c1 | gunicorn |" in text and "Start-up" in text and "× 2 rounds" in text
