"""Latency of each connection's first requests against the rest, for large bodies.

Every connection (one process each, so that clients do not share a GIL) sends `--requests` POSTs of one
body file on one keep-alive connection; all start together, as wrk's connections do at the start of a
case. Prints, for the first four request numbers, the slowest latency among the connections, then the
median of the rest:

    .venv/bin/python -m bench.first_requests --port 8080 --path /predictUnstructured/ \\
        --body 10mb.bin --content-type application/octet-stream --connections 8 --requests 12
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import statistics
import time
from pathlib import Path


def _client(args: argparse.Namespace, body: bytes, index: int, start: mp.synchronize.Event, out: mp.Queue) -> None:
    connection = http.client.HTTPConnection(args.host, args.port)
    latencies = []
    start.wait()
    for _ in range(args.requests):
        began = time.perf_counter()
        connection.request("POST", args.path, body=body, headers={"Content-Type": args.content_type})
        connection.getresponse().read()
        latencies.append(time.perf_counter() - began)
    out.put((index, latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default="/predictUnstructured/")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--content-type", default="application/octet-stream")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=12)
    args = parser.parse_args()
    body = args.body.read_bytes()
    start, out = mp.Event(), mp.Queue()
    clients = [mp.Process(target=_client, args=(args, body, i, start, out)) for i in range(args.connections)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    start.set()
    results = [out.get() for _ in clients]
    for client in clients:
        client.join()
    by_number = list(zip(*(latencies for _, latencies in results), strict=True))
    firsts = ", ".join(f"request {k + 1}: {max(column) * 1e3:.0f} ms" for k, column in enumerate(by_number[:4]))
    rest = [latency for column in by_number[4:] for latency in column]
    print(f"slowest {firsts}; median of the rest: {statistics.median(rest) * 1e3:.0f} ms" if rest else firsts)


if __name__ == "__main__":
    main()
