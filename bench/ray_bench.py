"""Ray against plain drum on one machine (issue 20): the cost of Ray Serve's proxy, and Ray Data's scoring
throughput.

    python -m bench.ray_bench [--out bench/results/ray.md] [--duration 10] [--gb 1.0]

1. Serving: `drum ray-serve` with 1 and 2 replicas against `drum server --max-workers 1|2`, the same model
   (examples/regression, a 1-row CSV), wrk at 8 connections for --duration seconds each: requests/s and p99.
2. Batch scoring: a CSV of about --gb GB (3 integer columns), `drum score` against `drum score --ray-address
   local`: rows/s (wall clock of the whole command, start-up included), and whether the outputs are equal.
The Ray cluster is a local one started by this script (`ray start --head`), stopped at the end.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from bench.loadgen import run_load
from bench.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "regression"
DRUM = [sys.executable, "-m", "drum"]
RAY = str(Path(sys.executable).parent / "ray")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not start")


def serve_and_load(command: list[str], body: Path, duration: float) -> tuple[float, float]:
    port = free_port()
    process = subprocess.Popen([*command, "--address", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        run_load("wrk", url + "/predict/", body, "text/csv", 8, 3)  # warm-up
        result = run_load("wrk", url + "/predict/", body, "text/csv", 8, duration)
        return result.ok_rps, result.p99_ms
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def big_csv(path: Path, gigabytes: float) -> int:
    rng = np.random.default_rng(0)
    block = pd.DataFrame(rng.integers(1, 100, size=(200_000, 3)), columns=["rooms", "area", "age"])
    text = block.to_csv(index=False, header=False)
    rows = 0
    with open(path, "w") as f:
        f.write("rooms,area,age\n")
        while f.tell() < gigabytes * 1e9:
            f.write(text)
            rows += len(block)
    return rows


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--gb", type=float, default=1.0, help="0: serving only")
    args = parser.parse_args(argv)
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    start = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
             "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, env=env)
    address = f"127.0.0.1:{port}"
    lines = ["| serving (1-row CSV, wrk c8) | requests/s | p99 ms |", "|---|---|---|"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp, "one.csv")
            body.write_text("rooms,area,age\n3,75,10\n")
            base = [*DRUM, "server", "--code-dir", str(MODEL), "--target-type", "regression"]
            ray_base = [*DRUM, "ray-serve", "--code-dir", str(MODEL), "--target-type", "regression", "--ray-address",
                        address]  # fmt: skip
            for name, command in (
                ("drum server --max-workers 1", [*base, "--max-workers", "1"]),
                ("drum ray-serve --num-replicas 1", [*ray_base, "--num-replicas", "1"]),
                ("drum server --max-workers 2", [*base, "--max-workers", "2"]),
                ("drum ray-serve --num-replicas 2", [*ray_base, "--num-replicas", "2"]),
            ):
                rps, p99 = serve_and_load(command, body, args.duration)
                lines.append(f"| {name} | {rps:,.0f} | {p99:.1f} |")
                print(lines[-1], flush=True)
            if not args.gb:
                return 0
            data = Path(tmp, "big.csv")
            rows = big_csv(data, args.gb)
            size = data.stat().st_size / 1e9
            score = [*DRUM, "score", "--code-dir", str(MODEL), "--input", str(data), "--target-type", "regression"]
            plain_s = timed([*score, "--output", str(Path(tmp, "plain.csv"))])
            ray_s = timed([*score, "--output", str(Path(tmp, "ray.csv")), "--ray-address", address])
            same = filecmp.cmp(Path(tmp, "plain.csv"), Path(tmp, "ray.csv"), shallow=False)
            lines += ["", f"| batch scoring ({size:.2f} GB, {rows:,} rows) | seconds | rows/s |", "|---|---|---|",
                      f"| drum score | {plain_s:.1f} | {rows / plain_s:,.0f} |",
                      f"| drum score --ray-address (local cluster, 2 CPUs) | {ray_s:.1f} | {rows / ray_s:,.0f} |",
                      "", f"Outputs identical: {same}."]  # fmt: skip
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text("# Ray against plain drum\n\n`python -m bench.ray_bench` (see its docstring).\n\n"
                                  + table + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
