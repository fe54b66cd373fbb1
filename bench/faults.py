"""Fault drills for `drum server` under load: SIGTERM (graceful drain), kill -9 of one worker, slow
clients (slowloris) and 32 concurrent 20 MB bodies.

    .venv/bin/python -m bench.faults              # both drills, 2 workers, a 200 ms model, 16 clients
    .venv/bin/python -m bench.faults --sigterm    # one of them (--kill9, --slowloris, --big-bodies)

Each drill starts a real server on 127.0.0.1 with a model that sleeps 200 ms per prediction, records the
process that served it (its prediction is the worker's pid) and appends a line to a file when a
prediction starts; 16 client threads post 1-row CSVs.

- SIGTERM: after `load_s` seconds the server gets SIGTERM. Every request that reached the model must be
  answered (200s == predictions started), no answer may be a 5xx, and the server must exit 0.
- kill -9: the clients open a connection per request, so that the kernel spreads them over every worker.
  After `load_s` seconds one worker is killed. The server must survive, a new worker must serve, and the
  failed requests must be at most the connections the killed worker held. The time from the kill to the
  first answer from the new worker is the time to recover.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from bench.servers import free_port, tree_rss

MODEL = """
import os
import time

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    with open(os.environ["FAULTS_STARTED_FILE"], "a") as started:
        started.write(f"{os.getpid()}\\n")
    time.sleep(float(os.environ.get("FAULTS_SECONDS", "0.2")))
    return pd.DataFrame({"Predictions": [float(os.getpid())] * len(data)})
"""
CSV = b"a\n1\n"


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    started_file: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        """The worker processes (uvicorn's spawned children), alive."""
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        alive = []
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                    alive.append(child)
            except psutil.Error:  # gone (or a zombie) meanwhile
                continue
        return alive

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def start(
    directory: Path, workers: int, seconds: float = 0.2, timeout: float = 60, env: dict[str, str] | None = None
) -> Server:
    """A `drum server` on a free port serving the drill's model with `workers` processes, ready."""
    code_dir = directory / "model"
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "custom.py").write_text(MODEL)
    started = directory / "started.txt"
    started.write_text("")
    port = free_port()
    log = directory / f"server-{port}.log"
    env = {**os.environ, "FAULTS_STARTED_FILE": str(started), "FAULTS_SECONDS": str(seconds),
           "DRUM_ACCESS_LOG": "false", **(env or {})}  # fmt: skip
    cmd = [sys.executable, "-m", "drum", "server", "--code-dir", str(code_dir), "--target-type", "regression",
           "--address", f"127.0.0.1:{port}", "--max-workers", str(workers)]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(process, port, started, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"drum server exited with {process.returncode}:\n{log.read_text()}")
        try:
            supervised = len(server.workers()) == workers if workers > 1 else True
            if requests.get(server.url + "/ping/", timeout=1).status_code == 200 and supervised:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"drum server did not start in {timeout} s:\n{log.read_text()}")


@dataclass
class Outcome:
    sent: float
    done: float
    status: int | None  # None: no HTTP answer
    error: str = ""
    pid: int | None = None  # the worker that answered


@dataclass
class Load:
    """`clients` threads posting until `stop()`, on keep-alive connections or one connection per request."""

    url: str
    clients: int = 16
    keep_alive: bool = True
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self) -> None:
        session = requests.Session()
        headers = {"Content-Type": "text/csv", **({} if self.keep_alive else {"Connection": "close"})}
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = session.post(self.url + "/predict/", data=CSV, headers=headers, timeout=30)
                pid = None
                if response.status_code == 200:
                    pid = int(response.json()["predictions"][0])
                outcome = Outcome(sent, time.monotonic(), response.status_code, pid=pid)
            except requests.RequestException as exc:
                outcome = Outcome(sent, time.monotonic(), None, type(exc).__name__)
                session.close()
                session = requests.Session()
                time.sleep(0.01)
            with self._lock:
                self.outcomes.append(outcome)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)
        return list(self.outcomes)


@dataclass
class SigtermResult:
    answered: int  # 200s
    started: int  # predictions the model began
    server_errors: int  # 5xx answers
    refused: int  # requests without an HTTP answer (connection refused or reset)
    exit_code: int | None
    drain_s: float  # SIGTERM -> exit

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.answered == self.started and self.server_errors == 0


def sigterm_drill(directory: Path, workers: int = 2, clients: int = 16, load_s: float = 2.0) -> SigtermResult:
    server = start(directory, workers)
    try:
        load = Load(server.url, clients).start()
        time.sleep(load_s)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            exit_code = server.process.wait(60)
        except subprocess.TimeoutExpired:
            exit_code = None
        drain = time.monotonic() - signalled
        outcomes = load.stop()
    finally:
        server.stop()
    started = len(server.started_file.read_text().split())
    return SigtermResult(
        answered=sum(o.status == 200 for o in outcomes),
        started=started,
        server_errors=sum(o.status is not None and o.status >= 500 for o in outcomes),
        refused=sum(o.status is None for o in outcomes),
        exit_code=exit_code,
        drain_s=drain,
    )


@dataclass
class Kill9Result:
    held: int  # connections the killed worker held
    failed: int  # requests without a 200 after the kill
    recovered: bool
    recover_s: float | None  # kill -> first answer from the new worker
    workers_after: int
    answered_after: int  # 200s after the kill

    @property
    def ok(self) -> bool:
        return self.recovered and self.failed <= self.held


def kill9_drill(
    directory: Path, workers: int = 2, clients: int = 16, load_s: float = 2.0, recover_timeout: float = 30
) -> Kill9Result:
    server = start(directory, workers)
    try:
        before = {w.pid for w in server.workers()}
        # one connection per request: the kernel spreads them over the workers, the new one included
        load = Load(server.url, clients, keep_alive=False).start()
        time.sleep(load_s)
        victim = server.workers()[0]
        victim.suspend()  # SIGSTOP: it accepts nothing more while its connections are counted
        killed = time.monotonic()
        connections = victim.net_connections("tcp")
        held = sum(1 for c in connections if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port)
        victim.kill()
        recover_s = None
        deadline = killed + recover_timeout
        while time.monotonic() < deadline and recover_s is None:
            new = {w.pid for w in server.workers()} - before
            with load._lock:
                firsts = [o.done for o in load.outcomes if o.pid in new and o.done > killed]
            if firsts:
                recover_s = min(firsts) - killed
            time.sleep(0.05)
        time.sleep(0.5)
        outcomes = load.stop()
        alive = server.process.poll() is None
        workers_after = len(server.workers())
    finally:
        server.stop()
    after = [o for o in outcomes if o.done > killed]
    return Kill9Result(
        held=held,
        failed=sum(o.status != 200 for o in after),
        recovered=alive and recover_s is not None,
        recover_s=recover_s,
        workers_after=workers_after,
        answered_after=sum(o.status == 200 for o in after),
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _sequential(url: str, n: int) -> tuple[list[float], list[int]]:
    """`n` 1-row predictions one after another on one connection: latencies and statuses."""
    latencies, statuses = [], []
    with requests.Session() as session:
        for _ in range(n):
            started = time.perf_counter()
            response = session.post(url + "/predict/", data=CSV, headers={"Content-Type": "text/csv"}, timeout=30)
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)
    return latencies, statuses


@dataclass
class SlowlorisResult:
    idle_p99_ms: float
    loaded_p99_ms: float  # with the slow connections open
    statuses: list[int]  # the normal client's, with the slow connections open
    slow_open: int  # slow connections still open when the normal client was done
    timed_out: int  # slow connections answered 408 by DRUM_REQUEST_READ_TIMEOUT
    slow: int
    answers: dict[bytes, int] = field(default_factory=dict)  # what the slow connections got, by first bytes

    @property
    def ratio(self) -> float:
        return self.loaded_p99_ms / self.idle_p99_ms

    @property
    def ok(self) -> bool:
        return all(s == 200 for s in self.statuses)


def slowloris_drill(
    directory: Path, connections: int = 50, requests_n: int = 200, read_timeout: int | None = None,
    hold_s: float = 0.0,
) -> SlowlorisResult:  # fmt: skip
    """`connections` clients send a request head a byte a second while one normal client measures its p99
    (one worker, one executor thread). `read_timeout`: DRUM_REQUEST_READ_TIMEOUT for the server; `hold_s`:
    how long the slow clients go on after that (to see the timeout close them)."""
    env = {} if read_timeout is None else {"DRUM_REQUEST_READ_TIMEOUT": str(read_timeout)}
    server = start(directory, 1, seconds=0.0, env=env)
    slow: list[socket.socket] = []
    answers: dict[int, bytes] = {}
    stop = threading.Event()
    head = b"POST /predict/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nX-Slow: " + b"s" * 4096

    def drip() -> None:
        position = 0
        while not stop.is_set():
            for i, sock in enumerate(slow):
                if i in answers:
                    continue
                try:  # read before writing: a byte sent after the server closed would be answered by a reset
                    answers[i] = sock.recv(4096)  # answered (408) or closed (b"")
                    continue
                except BlockingIOError:
                    pass
                except OSError as error:
                    answers[i] = repr(error).encode()
                    continue
                try:
                    sock.sendall(head[position % len(head) : position % len(head) + 1])
                except BlockingIOError:
                    pass
                except OSError as error:
                    answers[i] = repr(error).encode()
            position += 1
            stop.wait(1.0)

    try:
        _sequential(server.url, 20)  # warm up
        idle, _ = _sequential(server.url, requests_n)
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setblocking(False)
            slow.append(sock)
        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        time.sleep(2)
        loaded, statuses = _sequential(server.url, requests_n)
        slow_open = connections - len(answers)
        if hold_s:  # then wait until every slow connection is answered, a while longer at most
            time.sleep(hold_s)
            deadline = time.monotonic() + 10
            while len(answers) < connections and time.monotonic() < deadline:
                time.sleep(0.2)
        stop.set()
        dripper.join(5)
    finally:
        for sock in slow:
            sock.close()
        server.stop()
    return SlowlorisResult(
        idle_p99_ms=_p99(idle) * 1000, loaded_p99_ms=_p99(loaded) * 1000, statuses=statuses, slow_open=slow_open,
        timed_out=sum(1 for a in answers.values() if a.startswith(b"HTTP/1.1 408")), slow=connections,
        answers=dict(Counter(a[:40] for a in answers.values())),
    )  # fmt: skip


@dataclass
class BigBodiesResult:
    statuses: list[int | None]
    idle_rss_mb: float
    peak_rss_mb: float
    body_mb: float
    budget_mb: float

    @property
    def ok(self) -> bool:
        return all(s in (200, 413, 503) for s in self.statuses)


def _big_csv(target_bytes: int) -> bytes:
    row = b"1.25,2.5,3.75,4.125,5.0625,6.5,7.25,8.125\n"
    header = b"a,b,c,d,e,f,g,h\n"
    return header + row * ((target_bytes - len(header)) // len(row))


def big_bodies_drill(directory: Path, clients: int = 32, body_mb: float = 20.0) -> BigBodiesResult:
    """`clients` concurrent posts of a `body_mb` MB CSV to one worker: each answered or cleanly refused;
    the server's peak resident memory (process tree) sampled every 20 ms."""
    server = start(directory, 1, seconds=0.0)
    body = _big_csv(int(body_mb * 1e6))
    statuses: list[int | None] = []
    lock = threading.Lock()

    def post() -> None:
        try:
            response = requests.post(server.url + "/predict/", data=body, headers={"Content-Type": "text/csv"},
                                     timeout=300)  # fmt: skip
            status: int | None = response.status_code
        except requests.RequestException:
            status = None
        with lock:
            statuses.append(status)

    try:
        _sequential(server.url, 5)
        idle = tree_rss(server.process.pid)
        peak = idle
        threads = [threading.Thread(target=post, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, tree_rss(server.process.pid))
            time.sleep(0.02)
    finally:
        server.stop()
    return BigBodiesResult(statuses, idle / 2**20, peak / 2**20, len(body) / 2**20, 64.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sigterm", action="store_true", help="only the SIGTERM drill")
    parser.add_argument("--kill9", action="store_true", help="only the kill -9 drill")
    parser.add_argument("--slowloris", action="store_true", help="only the slow-clients drill")
    parser.add_argument("--big-bodies", action="store_true", help="only the 32 x 20 MB drill")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--load", type=float, default=2.0, help="seconds of load before the fault")
    args = parser.parse_args(argv)
    both = not (args.sigterm or args.kill9 or args.slowloris or args.big_bodies)
    ok = True
    with tempfile.TemporaryDirectory(prefix="drum-faults-") as tmp:
        if both or args.sigterm:
            r = sigterm_drill(Path(tmp, "sigterm"), args.workers, args.clients, args.load)
            ok &= r.ok
            print(f"SIGTERM under load ({args.workers} workers, 200 ms model, {args.clients} clients): "
                  f"{r.answered} answered of {r.started} that reached the model, {r.server_errors} 5xx, "
                  f"{r.refused} refused after the signal, exit code {r.exit_code}, drained in {r.drain_s:.2f} s: "
                  f"{'PASS' if r.ok else 'FAIL'}")  # fmt: skip
        if both or args.kill9:
            k = kill9_drill(Path(tmp, "kill9"), args.workers, args.clients, args.load)
            ok &= k.ok
            recover = f"{k.recover_s:.2f} s" if k.recover_s is not None else "never"
            print(f"kill -9 of one worker under load ({args.workers} workers, {args.clients} clients): "
                  f"{k.failed} failed requests, the worker held {k.held} connections; recovered in {recover}; "
                  f"{k.workers_after} workers after, {k.answered_after} answered after the kill: "
                  f"{'PASS' if k.ok else 'FAIL'}")  # fmt: skip
        if both or args.slowloris:
            sl = slowloris_drill(Path(tmp, "slowloris"), read_timeout=5, hold_s=6)
            ok &= sl.ok
            print(f"slowloris ({sl.slow} connections sending a byte a second, 1 worker, 1 executor thread): a "
                  f"normal client's p99 {sl.idle_p99_ms:.1f} ms idle, {sl.loaded_p99_ms:.1f} ms with them "
                  f"({sl.ratio:.2f}x), {sum(s == 200 for s in sl.statuses)}/{len(sl.statuses)} answered 200; "
                  f"{sl.slow_open} slow connections still open meanwhile, {sl.timed_out} answered 408 by "
                  f"DRUM_REQUEST_READ_TIMEOUT=5: {'PASS' if sl.ok and sl.ratio <= 2 else 'FAIL'}")  # fmt: skip
        if both or args.big_bodies:
            b = big_bodies_drill(Path(tmp, "big"))
            ok &= b.ok
            counts = {s: b.statuses.count(s) for s in sorted(set(b.statuses), key=str)}
            print(f"{len(b.statuses)} concurrent {b.body_mb:.0f} MiB CSV posts to 1 worker: answers {counts}; "
                  f"resident memory {b.idle_rss_mb:.0f} MiB idle, peak {b.peak_rss_mb:.0f} MiB "
                  f"(+{b.peak_rss_mb - b.idle_rss_mb:.0f} MiB; the bodies together are "
                  f"{b.body_mb * len(b.statuses):.0f} MiB, the body budget {b.budget_mb:.0f} MiB): "
                  f"{'PASS' if b.ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
