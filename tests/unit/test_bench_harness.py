"""The benchmark harness's pure parts (bench/): wrk/hey output parsing, case selection, ratios and tables.

Runs without wrk, hey or matplotlib installed.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import loadgen, report, workload  # noqa: E402

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:40000/predict/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    17.31ms    2.10ms  30.00ms   90.00%
  918 requests in 2.00s, 150.00KB read
  Non-2xx or 3xx responses: 3
Requests/sec:    459.00
Transfer/sec:     75.00KB
BENCH_JSON {"requests": 918, "duration_us": 2000000, "bytes": 153600, "connect": 0, "read": 1, "write": 0, \
"status": 3, "timeout": 2, "p50_us": 17000, "p90_us": 20000, "p95_us": 21500, "p99_us": 23700, "max_us": 30000, \
"mean_us": 17310.0}
"""

HEY_OUTPUT = """
Summary:
  Total:\t2.0040 secs
  Slowest:\t0.0520 secs
  Fastest:\t0.0031 secs
  Average:\t0.0175 secs
  Requests/sec:\t457.6000

Latency distribution:
  10%% in 0.0150 secs
  25%% in 0.0160 secs
  50%% in 0.0170 secs
  75%% in 0.0180 secs
  90%% in 0.0200 secs
  95%% in 0.0210 secs
  99%% in 0.0240 secs

Status code distribution:
  [200]\t910 responses
  [503]\t7 responses

Error distribution:
  [2]\tPost "http://127.0.0.1:40000/predict/": EOF
"""


def test_parse_wrk_counts_non_2xx_and_socket_errors() -> None:
    r = loadgen.parse_wrk(WRK_OUTPUT)
    assert (r.requests, r.non_2xx, r.errors) == (918, 3, 6)
    assert (r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.max_ms) == (17.0, 20.0, 21.5, 23.7, 30.0)
    assert r.ok_rps == pytest.approx((918 - 3) / 2.0)
    assert r.to_dict()["rps"] == pytest.approx(457.5)


def test_parse_wrk_without_summary_line_fails() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_hey() -> None:
    r = loadgen.parse_hey(HEY_OUTPUT)
    assert (r.requests, r.non_2xx, r.errors) == (917, 7, 9)
    assert (r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.max_ms) == pytest.approx((17.0, 20.0, 21.0, 24.0, 52.0))
    assert r.duration_s == pytest.approx(2.004)
    assert r.ok_rps == pytest.approx(910 / 2.004)


def test_parse_hey_all_connections_refused() -> None:
    out = (
        "Summary:\n  Total:\t1.0006 secs\n  Slowest:\t0.0000 secs\n\nStatus code distribution:\n\n"
        'Error distribution:\n  [41839]\tGet "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: refused\n'
    )
    r = loadgen.parse_hey(out)
    assert (r.requests, r.errors, r.ok_rps) == (0, 41839, 0.0)


def test_load_commands() -> None:
    wrk = loadgen.wrk_command("http://h/predict/", 64, 10, 120)
    assert wrk[:7] == ["wrk", "-t", "1", "-c", "64", "-d", "10s"]
    assert str(loadgen.LUA_SCRIPT) in wrk and loadgen.LUA_SCRIPT.exists()
    hey = loadgen.hey_command("http://h/p", 8, 2.5, 120, Path("/tmp/body"), "text/csv")
    assert hey[hey.index("-z") + 1] == "2.5s" and hey[hey.index("-T") + 1] == "text/csv"


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert loadgen.percentile(values, 50) == 50.0
    assert loadgen.percentile(values, 99) == 99.0
    assert loadgen.percentile(values, 100) == 100.0
    assert loadgen.percentile([], 99) == 0.0


def test_select_cases() -> None:
    full = workload.select_cases(None)
    assert "csv1-c8" in {c.name for c in full} and "csv100k-c64" not in {c.name for c in full}
    assert [c.name for c in workload.select_cases(None, quick=True)] == list(workload.QUICK_CASES)
    assert {c.name for c in workload.select_cases(["csv100k-*"])} == {"csv100k-c1", "csv100k-c8", "csv100k-c64"}
    with pytest.raises(ValueError, match="no case"):
        workload.select_cases(["nope"])


def test_check_response_chat_stream() -> None:
    case = next(c for c in workload.CASES if c.name == "chat-c1")
    good = b"".join(b'data: {"x": %d}\n\n' % i for i in range(workload.CHAT_CHUNKS)) + b"data: [DONE]\n\n"
    work = workload.Workdir(Path("/nonexistent"), {})
    assert workload.check_response(case, 200, "text/event-stream; charset=utf-8", good, work) is None
    assert "event-stream" in workload.check_response(case, 200, "application/json", good, work)
    assert "status 500" in workload.check_response(case, 500, "application/json", b"{}", work)


def test_check_response_predictions() -> None:
    case = next(c for c in workload.CASES if c.name == "csv100-c1")
    work = workload.Workdir(Path("/nonexistent"), {"csv100": [1.5, -2.0]})
    body = b'{"predictions": [1.5' + b", 0.0" * 98 + b", -2.0]}"
    assert workload.check_response(case, 200, "application/json", body, work) is None
    assert "99 predictions" in workload.check_response(case, 200, "application/json", b'{"predictions": [1.5' +
                                                       b", 0.0" * 98 + b"]}", work)  # fmt: skip
    wrong = body.replace(b"-2.0", b"-2.1")
    assert "differ" in workload.check_response(case, 200, "application/json", wrong, work)


def _results() -> dict:
    row = {"requests": 100, "errors": 0, "p50_ms": 10.0, "p99_ms": 20.0, "peak_rss_mb": 100.0, "error": None}
    return {
        "meta": {"date": "today", "machine": "2 cores", "tool": "wrk", "duration_s": 10, "skipped": {"x": "why"}},
        "servers": {
            "drum-1.18.1": {"startup_s": {"regression": 4.0}, "idle_rss_mb": {"regression": 800.0}, "note": "ref"},
            "fastapi": {"startup_s": {"regression": 1.0, "chat": 0.5}, "idle_rss_mb": {"regression": 200.0}},
        },
        "rows": [
            {**row, "case": "csv1-c8", "server": "drum-1.18.1", "rps": 400.0},
            {**row, "case": "csv1-c8", "server": "fastapi", "rps": 600.0, "p99_ms": 10.0, "errors": 2},
            {"case": "chat-c8", "server": "drum-1.18.1", "error": "server did not start"},
            {**row, "case": "chat-c8", "server": "fastapi", "rps": 50.0},
            {**row, "case": "ping-c8", "server": "drum-1.18.1", "rps": 380.0, "ping": {"p50_ms": 16, "p99_ms": 24}},
            {**row, "case": "ping-c8", "server": "fastapi", "rps": 590.0, "ping": {"p50_ms": 2, "p99_ms": 6}},
        ],
    }


def test_ratio_and_formatting() -> None:
    assert report.ratio(600, 400) == 1.5
    assert report.ratio(1, 0) is None and report.ratio(None, 1) is None
    assert report.fmt_ratio(1.5) == "1.50×" and report.fmt_ratio(None) == "–"
    assert report.fmt_num(1234.5) == "1,234" and report.fmt_num(12.345) == "12.3" and report.fmt_num(None) == "–"


def test_load_table_ratios_against_first_server() -> None:
    lines = report.load_table(_results()).splitlines()
    assert lines[0].startswith("| case | server | req/s | × req/s |")
    fastapi = next(ln for ln in lines if ln.startswith("| csv1-c8 | fastapi "))
    assert "| 600 | 1.50× |" in fastapi and "| 10.0 | 0.50× |" in fastapi and "| 2 |" in fastapi
    assert any("chat-c8 | drum-1.18.1 | failed: server did not start" in ln for ln in lines)
    # the first server failed: chat ratios are against the first server that measured something
    assert "| 50.0 | 1.00× |" in next(ln for ln in lines if ln.startswith("| chat-c8 | fastapi "))
    assert not any(ln.startswith("| ping-") for ln in lines)


def test_ping_and_startup_tables() -> None:
    ping = report.ping_table(_results())
    assert "| ping-c8 | fastapi | 590 | 2.0 | 6.0 | 0.25× |" in ping
    startup = report.startup_table(_results())
    assert startup.splitlines()[0] == (
        "| server | start-up s (regression) | start-up s (chat) | × start-up | idle RSS MB (regression) | notes |"
    )
    assert "| fastapi | 1.00 | 0.50 | 0.25× | 200 |" in startup


def test_markdown_names_the_reference_and_skipped_servers() -> None:
    text = report.markdown(_results())
    assert "against `drum-1.18.1`" in text and "not run: `x` (why)" in text


def test_batching_table_compares_p95_at_one_connection() -> None:
    results = _results()
    assert report.batching_table(results) is None  # no batching server in the run
    low = {"requests": 100, "errors": 0, "p50_ms": 2.0, "p99_ms": 4.0, "rps": 400.0, "error": None, "connections": 1,
           "peak_rss_mb": 100.0, "model": "regression"}  # fmt: skip
    results["rows"] += [
        {**low, "case": "csv1-c1", "server": "fastapi", "p95_ms": 2.0},
        {**low, "case": "csv1-c1", "server": "fastapi-batching", "p95_ms": 2.3},
        {**low, "case": "csv100-c1", "server": "fastapi", "p95_ms": 2.0},
        {**low, "case": "csv100-c1", "server": "fastapi-batching", "p95_ms": 2.6},
        {**low, "case": "csv1-c8", "server": "fastapi-batching", "p95_ms": 9.0, "connections": 8},
        {**low, "case": "chat-c1", "server": "fastapi", "p95_ms": 2.0, "model": "chat"},
        {**low, "case": "chat-c1", "server": "fastapi-batching", "p95_ms": 3.0, "model": "chat"},
    ]
    table = report.batching_table(results)
    assert table is not None
    assert "| csv1-c1 | 2.0 | 2.3 | 1.15× | yes |" in table
    assert "| csv100-c1 | 2.0 | 2.6 | 1.30× | no |" in table
    assert "csv1-c8" not in table  # only one connection is low load
    assert "chat-c1" not in table  # never batched
    assert "Adaptive batching at low load" in report.markdown(results)


def test_memory_table_shows_growth_over_idle_per_payload() -> None:
    results = _results()
    big = {"requests": 10, "errors": 0, "p50_ms": 50.0, "p99_ms": 60.0, "rps": 15.0, "error": None,
           "model": "regression", "payload_bytes": 20 << 20}  # fmt: skip
    results["rows"] += [
        {**big, "case": "csv100k-c1", "server": "drum-1.18.1", "peak_rss_mb": 860.0},
        {**big, "case": "csv100k-c1", "server": "fastapi", "peak_rss_mb": 260.0},
    ]
    table = report.memory_table(results)
    assert table is not None
    assert "| csv100k-c1 | drum-1.18.1 | 20.0 | 800 | 860 | 60 | 3.00× |" in table
    assert "| csv100k-c1 | fastapi | 20.0 | 200 | 260 | 60 | 3.00× |" in table
    assert "csv1-c8" not in table  # small payloads are left out
    assert "Memory of large payloads" in report.markdown(results)
    assert report.memory_table(_results()) is None


def test_cases_rotate_the_server_order() -> None:
    from bench.run import case_order

    specs = ["drum", "fastapi", "batching"]
    orders = [case_order(specs, i) for i in range(4)]  # type: ignore[arg-type]
    assert orders == [specs, ["fastapi", "batching", "drum"], ["batching", "drum", "fastapi"], specs]
    assert case_order([], 3) == []


def test_rss_sampler_samples_only_while_active() -> None:
    import os
    import time

    from bench.servers import RssSampler

    sampler = RssSampler(os.getpid(), interval_s=0.01)
    try:
        assert sampler.peak == 0  # not sampling before the first reset
        time.sleep(0.05)
        assert sampler.peak == 0
        sampler.reset()
        assert sampler.peak > 0
        sampler.pause()
        sampler.peak = 1
        time.sleep(0.05)
        assert sampler.peak == 1  # paused: untouched
        sampler.reset()
        time.sleep(0.05)
        assert sampler.peak > 1
    finally:
        sampler.stop()


def test_peak_rss_from_the_kernels_high_water_marks_sees_memory_already_given_back() -> None:
    import os
    import subprocess
    import time

    from bench.servers import PeakRss

    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "sys.stdin.readline()\n"
        "block = bytearray(200 << 20)\n"  # touched: 200 MiB of RSS, then given back
        "del block\n"
        "print('freed', flush=True)\n"
        "time.sleep(30)\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(0.3)
        if not PeakRss.supported(child.pid):
            pytest.skip("this kernel does not let the high-water mark be reset")
        meter = PeakRss(os.getpid())  # the tree of this test process: the child is in it
        meter.reset()
        idle = meter.tree_rss()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "freed"
        assert meter.tree_rss() < idle + (100 << 20)  # the memory is gone again...
        meter.pause()
        assert meter.peak >= idle + (190 << 20)  # ...but its peak was seen
        meter.reset()
        meter.pause()
        assert meter.peak < idle + (100 << 20)  # reset: the old peak is forgotten
    finally:
        child.kill()
        child.wait()


def test_merge_rounds_takes_medians_and_sums_counts() -> None:
    from bench.run import merge_rounds

    base = {"case": "csv1-c8", "server": "fastapi", "error": None, "connections": 8, "duration_s": 6.0}
    rounds = [
        {**base, "rps": 500.0, "p50_ms": 10.0, "p99_ms": 20.0, "requests": 3000, "errors": 0, "peak_rss_mb": 190.0,
         "ping": {"p50_ms": 1.0, "p99_ms": 3.0, "max_ms": 4.0, "pings": 100, "errors": 0}},
        {**base, "rps": 300.0, "p50_ms": 30.0, "p99_ms": 60.0, "requests": 1800, "errors": 1, "peak_rss_mb": 400.0,
         "ping": {"p50_ms": 2.0, "p99_ms": 9.0, "max_ms": 12.0, "pings": 90, "errors": 1}},
        {**base, "rps": 450.0, "p50_ms": 12.0, "p99_ms": 25.0, "requests": 2700, "errors": 0, "peak_rss_mb": 380.0,
         "ping": {"p50_ms": 1.5, "p99_ms": 4.0, "max_ms": 5.0, "pings": 95, "errors": 0}},
        {**base, "error": "wrk exited 1"},
    ]  # fmt: skip
    merged = merge_rounds(rounds)
    assert (merged["rps"], merged["p50_ms"], merged["p99_ms"]) == (450.0, 12.0, 25.0)
    assert (merged["requests"], merged["errors"], merged["duration_s"]) == (7500, 1, 18.0)
    assert merged["peak_rss_mb"] == 190.0  # the first round's: later rounds hold what larger cases left
    assert merged["ping"] == {"p50_ms": 1.5, "p99_ms": 4.0, "max_ms": 5.0, "pings": 285, "errors": 1}
    assert (merged["rounds"], merged["failed_rounds"], merged["error"]) == (4, 1, None)
    assert [r["rps"] for r in merged["per_round"]] == [500.0, 300.0, 450.0, None]
    assert merge_rounds(rounds[:1]) is rounds[0]
    failed = merge_rounds([rounds[3], rounds[3]])
    assert failed["error"] == "wrk exited 1" and failed["failed_rounds"] == 2


def test_markdown_names_the_rounds() -> None:
    results = _results()
    results["meta"]["rounds"] = 3
    assert "10 s per case × 3 rounds (medians; servers in rotating order)" in report.markdown(results)
    assert "rounds" not in report.markdown(_results())


def _rounds_row(case: str, server: str, rps: list[float], p99: list[float]) -> dict:
    per_round = [{"rps": r, "p50_ms": 1.0, "p99_ms": p, "error": None} for r, p in zip(rps, p99, strict=True)]
    return {"case": case, "server": server, "error": None, "rps": sorted(rps)[1], "p99_ms": sorted(p99)[1],
            "p50_ms": 1.0, "requests": 100, "errors": 0, "peak_rss_mb": 100.0, "per_round": per_round}  # fmt: skip


def test_targets_are_judged_by_the_median_of_per_round_ratios() -> None:
    """The machine drifts between rounds: a round's servers ran back to back, so a target is judged by the
    median of each round's ratio, not by the ratio of medians taken minutes apart."""
    rows = [
        # the peer ran in the fast rounds, ours in the slow ones: medians say 0.8x, every round says 1.25x
        _rounds_row("row1-c1", "fastapi-v2", [1000, 1250, 2500], [2, 2, 2]),
        _rounds_row("row1-c1", "kserve-v1", [800, 1000, 2000], [2, 2, 2]),
        _rounds_row("row1-c1", "kserve-v2", [800, 1000, 2000], [2, 2, 2]),
        _rounds_row("row1-c64", "fastapi-batching", [2000, 2400, 2600], [9, 9, 9]),
        _rounds_row("row1-c64", "mlserver", [500, 500, 500], [9, 9, 9]),
        _rounds_row("row1-c64", "kserve-v1", [1000, 800, 1000], [9, 9, 9]),  # the best peer differs per round
        _rounds_row("row1-c64", "kserve-v2", [700, 1000, 700], [9, 9, 9]),
        _rounds_row("unstr1k-c1", "drum-1.18.1", [1000, 1000, 1000], [1.0, 1.0, 1.0]),
        _rounds_row("unstr1k-c1", "fastapi", [1500, 1500, 1500], [1.2, 0.9, 1.1]),
    ]
    table = report.targets_table({"meta": {}, "servers": {}, "rows": rows})
    assert table is not None
    lines = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table.splitlines()[2:]}
    v1 = lines[("V2 `/infer` ≥ 1.0× KServe V1", "row1-c1")]
    assert "1.25× (1.25, 1.25, 1.25)" in v1 and v1.rstrip(" |").endswith("yes")
    v2 = lines[("V2 `/infer` ≥ 1.2× KServe V2", "row1-c1")]
    assert v2.rstrip(" |").endswith("yes")
    batching = lines[("batching c64 ≥ 2.5× the best peer", "row1-c64")]
    assert "2.40× (2.00, 2.40, 2.60)" in batching and batching.rstrip(" |").endswith("**no**")
    p99 = lines[("above DRUM in p99", "unstr1k-c1")]
    assert "1.10× (1.20, 0.90, 1.10)" in p99
    assert ("below DRUM in req/s", "unstr1k-c1") not in lines
    assert "Targets (issue 24)" in report.markdown({"meta": {}, "servers": {}, "rows": rows})
