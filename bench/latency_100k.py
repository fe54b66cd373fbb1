"""Interleaved single-connection latency of one CSV payload on several servers (issue #8's 100k-row target).

All servers run at once (each idle while another answers); requests go A, B, C, A, B, C, ... so that
load drift on a busy machine hits every server alike, each after `--gap` seconds of quiet. Prints
median / mean / min ms and ratios against the first server. (`python -m bench` runs one server at a
time with wrk; prefer it for reported numbers.)

    DRUM_REFERENCE_VENV=/tmp/drumref .venv/bin/python -m bench.latency_100k --rounds 40
    .venv/bin/python -m bench.latency_100k --ours-src /tmp/before/src   # adds a `before` column
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import SCRUBBED, SCRUBBED_PREFIXES
from bench.workload import REGRESSION, build_workdir


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED}
    return {**env, **extra}


def _start(drum: str, code_dir: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    argv = [drum, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{port}",
            "--target-type", "regression", "--max-workers", "1"]  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=str(code_dir), env=env, stdout=out, stderr=subprocess.STDOUT)


def _post(port: int, body: bytes) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/predict/", body=body, headers={"Content-Type": "text/csv"})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"port {port}: {resp.status} {data[:200]!r}")
    return elapsed, data


def _wait(port: int, proc: subprocess.Popen, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server on {port} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload", default="csv100k")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reference-venv", default=os.environ.get("DRUM_REFERENCE_VENV"))
    parser.add_argument("--ours-src", type=Path, help="also serve this src/ tree (PYTHONPATH) as `before`")
    parser.add_argument("--port", type=int, default=18700)
    parser.add_argument("--gap", type=float, default=0.3,
                        help="seconds of quiet before each request (OpenBLAS threads of the server "
                             "answered before may spin ~0.1 s after its predict)")  # fmt: skip
    args = parser.parse_args()

    ours = str(Path(sys.executable).with_name("drum"))
    specs: list[tuple[str, str, dict[str, str]]] = []
    if args.reference_venv:
        specs.append(("drum-1.18.1", str(Path(args.reference_venv) / "bin" / "drum"), {}))
    if args.ours_src:
        specs.append(("before", ours, {"DRUM_SERVER_TYPE": "fastapi", "PYTHONPATH": str(args.ours_src.resolve())}))
    specs.append(("fastapi", ours, {"DRUM_SERVER_TYPE": "fastapi"}))

    with tempfile.TemporaryDirectory() as tmp:
        work = build_workdir(Path(tmp))
        body = work.payload(args.payload).read_bytes()
        procs = []
        try:
            for i, (name, drum, extra) in enumerate(specs):
                procs.append(_start(drum, work.model_dir(REGRESSION), args.port + i, _env(extra), Path(tmp) / name))
            for i, proc in enumerate(procs):
                _wait(args.port + i, proc)
            answers = {}
            for i, (name, _, _) in enumerate(specs):  # warm up
                for _ in range(3):
                    answers[name] = _post(args.port + i, body)[1]
            times: dict[str, list[float]] = {name: [] for name, _, _ in specs}
            for _ in range(args.rounds):
                for i, (name, _, _) in enumerate(specs):
                    time.sleep(args.gap)
                    times[name].append(_post(args.port + i, body)[0] * 1000)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    first = statistics.median(times[specs[0][0]])
    print(f"{args.payload} ({len(body)} bytes), {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:>12}: median {med:7.1f} ms  mean {statistics.mean(values):7.1f}  min {min(values):7.1f}"
              f"  × median {med / first:.2f}")  # fmt: skip
    ours_answer = answers["fastapi"]
    for name, answer in answers.items():
        if name != "fastapi" and name != "drum-1.18.1" and answer != ours_answer:
            print(f"WARNING: {name} answered different bytes than fastapi")


if __name__ == "__main__":
    main()
