"""Load generators: wrk (with bench/wrk_post.lua) or hey, their output parsers, and a /ping prober.

The parsers are pure functions (unit-tested without wrk or hey installed). Errors are every answer
that is not 2xx plus every socket error (connect, read, write, timeout); requests/s counts only the
2xx answers.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk_post.lua")
WRK_MARKER = "BENCH_JSON "


@dataclass
class LoadResult:
    """What one load run measured."""

    requests: int  # completed requests, any status
    errors: int  # non-2xx answers + socket errors
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    tool: str
    non_2xx: int = 0
    p95_ms: float = 0.0

    @property
    def ok_rps(self) -> float:
        """Successful (2xx) requests per second."""
        ok = max(self.requests - self.non_2xx, 0)
        return ok / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["rps"] = round(self.ok_rps, 2)
        return data


def parse_wrk(output: str) -> LoadResult:
    """Parse the `BENCH_JSON {...}` line that bench/wrk_post.lua prints from wrk's `done()`."""
    for line in output.splitlines():
        if line.startswith(WRK_MARKER):
            d = json.loads(line[len(WRK_MARKER) :])
            socket_errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
            return LoadResult(
                requests=int(d["requests"]),
                errors=int(d["status"]) + socket_errors,
                non_2xx=int(d["status"]),
                duration_s=d["duration_us"] / 1e6,
                p50_ms=d["p50_us"] / 1e3,
                p90_ms=d["p90_us"] / 1e3,
                p95_ms=d.get("p95_us", 0) / 1e3,
                p99_ms=d["p99_us"] / 1e3,
                max_ms=d["max_us"] / 1e3,
                tool="wrk",
            )
    raise ValueError("no BENCH_JSON line in wrk output:\n" + output[-2000:])


_HEY_PCT = re.compile(r"^\s*(\d+(?:\.\d+)?)%+ in ([\d.]+) secs", re.M)
_HEY_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_HEY_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(?!\d+ responses)(.+)$", re.M)
_HEY_TOTAL = re.compile(r"^\s*Total:\s+([\d.]+) secs", re.M)
_HEY_SLOWEST = re.compile(r"^\s*Slowest:\s+([\d.]+) secs", re.M)


def parse_hey(output: str) -> LoadResult:
    """Parse hey's default text summary (latency distribution, status codes, error distribution)."""
    total = _HEY_TOTAL.search(output)
    if not total:
        raise ValueError("no 'Total:' line in hey output:\n" + output[-2000:])
    pct = {float(p): float(s) * 1e3 for p, s in _HEY_PCT.findall(output)}
    statuses = {int(code): int(n) for code, n in _HEY_STATUS.findall(output)}
    error_part = output.split("Error distribution:", 1)[1] if "Error distribution:" in output else ""
    socket_errors = sum(int(n) for n, _ in _HEY_ERROR.findall(error_part))
    answered = sum(statuses.values())
    non_2xx = sum(n for code, n in statuses.items() if not 200 <= code < 300)
    slowest = _HEY_SLOWEST.search(output)
    return LoadResult(
        requests=answered,
        errors=non_2xx + socket_errors,
        non_2xx=non_2xx,
        duration_s=float(total.group(1)),
        p50_ms=pct.get(50.0, 0.0),
        p90_ms=pct.get(90.0, 0.0),
        p95_ms=pct.get(95.0, 0.0),
        p99_ms=pct.get(99.0, 0.0),
        max_ms=float(slowest.group(1)) * 1e3 if slowest else 0.0,
        tool="hey",
    )


def available_tools() -> list[str]:
    """The installed load generators, preferred first."""
    return [t for t in ("wrk", "hey") if shutil.which(t)]


def wrk_command(url: str, connections: int, duration_s: float, timeout_s: float) -> list[str]:
    return [
        "wrk", "-t", "1", "-c", str(connections), "-d", f"{duration_s:g}s",
        "--timeout", f"{timeout_s:g}s", "-s", str(LUA_SCRIPT), url,
    ]  # fmt: skip


def hey_command(
    url: str, connections: int, duration_s: float, timeout_s: float, body: Path, content_type: str
) -> list[str]:
    return [
        "hey", "-z", f"{duration_s:g}s", "-c", str(connections), "-t", str(max(int(timeout_s), 1)),
        "-m", "POST", "-T", content_type, "-D", str(body), url,
    ]  # fmt: skip


def run_load(
    tool: str, url: str, body: Path, content_type: str, connections: int, duration_s: float, timeout_s: float = 120.0
) -> LoadResult:
    """POST `body` to `url` from `connections` connections for `duration_s` seconds."""
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_CONTENT_TYPE=content_type)
    if tool == "wrk":
        cmd = wrk_command(url, connections, duration_s, timeout_s)
    elif tool == "hey":
        cmd = hey_command(url, connections, duration_s, timeout_s, body, content_type)
    else:
        raise ValueError(f"unknown load generator {tool!r}")
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return parse_wrk(proc.stdout) if tool == "wrk" else parse_hey(proc.stdout)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


class PingProber:
    """GETs /ping/ on a fresh connection (like a kubelet probe) every `interval_s`, in a thread."""

    def __init__(self, host: str, port: int, path: str = "/ping/", interval_s: float = 0.02, timeout_s: float = 10.0):
        self.host, self.port, self.path = host, port, path
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ping-prober", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                conn.request("GET", self.path, headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
                else:
                    self.errors += 1
            except OSError:
                self.errors += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PingProber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)

    def summary(self) -> dict[str, float]:
        return {
            "pings": len(self.latencies_ms),
            "errors": self.errors,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "max_ms": max(self.latencies_ms, default=0.0),
        }
