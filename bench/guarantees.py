"""Serving guarantees, measured side by side: drum, DRUM 1.18.1, MLServer and KServe (issue 25, item 6).

    .venv/bin/python -m bench.guarantees                                   # every server, every scenario
    .venv/bin/python -m bench.guarantees --servers drum,mlserver --scenarios deadline,health
    .venv/bin/python -m bench.guarantees --out docs/guarantees.md          # also write the Markdown report

Each scenario starts each server afresh (one server at a time) on a model this script writes into a temp
dir, the same model for every server: drum and DRUM get a `custom.py` (`load_model`, `score` returning
`Predictions`), MLServer a custom `mlserver.MLModel` runtime (`model-settings.json` naming
`guarantee_runtime.GuaranteeModel`), KServe a `kserve.Model` subclass run by `kserve.ModelServer`. Every
model runs the same few lines (`BEHAVIOUR`): append a line `PID ROWS` to `$GUAR_COUNT_FILE` per call (so
the script counts what was scored, and tells requests apart by their row count), sleep `$GUAR_SECONDS`
(`$GUAR_FIRST_SECONDS` on the process's first call), and while `$GUAR_RELEASE_FILE` names a file that does
not exist yet, block until it does. The peers' models block where they run, as their own scikit-learn
runtimes do (MLServer's `async def predict` in its inference worker process, KServe's plain `def predict`
on its event loop).

Each server is sent its own protocol: drum and DRUM `POST /predict/` with CSV, MLServer and KServe
`POST /v2/models/guarantee/infer` with one V2 JSON FP64 tensor; health probes on each server's own routes.
Each cell (scenario x server) has a time limit; a server that is not installed is a column of "skipped"
with the reason. Everything the script starts (servers, temp dirs) it stops, also on Ctrl-C.
tests/reliability/test_guarantees.py runs the deadline scenario against drum.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import RssSampler, dist_version, free_port, known_servers, launch, log_tail, server_env, stop_group

MODEL = "guarantee"  # drum's code dir name (its V2 name) and the peers' model name
V2_INFER = f"/v2/models/{MODEL}/infer"
N_FEATURES = 10
ROW = ",".join(str(1.25 * (i + 1)) for i in range(N_FEATURES))
CSV_HEADER = ",".join(f"x{i}" for i in range(N_FEATURES))
MB = 1024 * 1024
#: The columns, in order: key -> label.
SERVERS = {"drum": "drum", "drum-1.18.1": "DRUM 1.18.1", "mlserver": "MLServer", "kserve": "KServe"}
DEFAULT_REFERENCE_VENV = "/tmp/drumref"

BEHAVIOUR = '''
import os
import threading
import time

_lock = threading.Lock()
_calls = 0


def _behave(rows):
    """Count the call (a line "PID ROWS"), block while $GUAR_RELEASE_FILE is missing, then sleep."""
    global _calls
    with _lock:
        _calls += 1
        first = _calls == 1
    count = os.environ.get("GUAR_COUNT_FILE")
    if count:
        with open(count, "a") as out:
            out.write(f"{os.getpid()} {rows}\\n")
    release = os.environ.get("GUAR_RELEASE_FILE")
    if release:
        deadline = time.monotonic() + float(os.environ.get("GUAR_BLOCK_MAX", "60"))
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    seconds = os.environ.get("GUAR_FIRST_SECONDS") if first else None
    time.sleep(float(seconds or os.environ.get("GUAR_SECONDS", "0")))
'''

DRUM_MODEL = BEHAVIOUR + '''
import pandas as pd


def load_model(code_dir):
    return "guarantee"


def score(data, model, **kwargs):
    _behave(len(data))
    return pd.DataFrame({"Predictions": [1.0] * len(data)})
'''

MLSERVER_MODEL = BEHAVIOUR + '''
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class GuaranteeModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = payload.inputs[0].shape[0]
        _behave(rows)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="predictions", shape=[rows], datatype="FP64", data=[1.0] * rows)],
        )
'''

KSERVE_MODEL = BEHAVIOUR + '''
import argparse

import kserve
import numpy as np
from kserve.utils.utils import get_predict_response


class GuaranteeModel(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.load()

    def load(self):
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        if isinstance(payload, dict):  # V1
            rows = len(payload["instances"])
            _behave(rows)
            return {"predictions": [1.0] * rows}
        rows = payload.inputs[0].shape[0]
        _behave(rows)
        return get_predict_response(payload, np.ones(rows), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([GuaranteeModel(args.model_name)])
'''


# ---------------------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Target:
    """One column: which server, the executable that starts it, its version and the protocol it is sent."""

    key: str  # drum, drum-1.18.1, mlserver, kserve
    executable: str  # drum: a `drum`; mlserver: `mlserver`; kserve: the KServe venv's python
    version: str

    @property
    def label(self) -> str:
        return SERVERS[self.key]

    @property
    def drum_routes(self) -> bool:
        return self.key in ("drum", "drum-1.18.1")

    @property
    def ready_path(self) -> str:
        """What start-up waits for a 200 from."""
        return "/ping/" if self.drum_routes else f"/v2/models/{MODEL}/ready"

    @property
    def health_paths(self) -> tuple[str, str]:
        """(readiness, liveness) probes. DRUM 1.18.1 has only /health/ and /ping/."""
        if self.key == "drum-1.18.1":
            return "/health/", "/ping/"
        return "/v2/health/ready", "/v2/health/live"


def targets(reference_venv: str | None = None, peers_file: Path | None = None) -> dict[str, Target | str]:
    """Every column's Target, or why it cannot run here (bench.servers finds the executables)."""
    if reference_venv is None:
        reference_venv = os.environ.get("DRUM_REFERENCE_VENV") or (
            DEFAULT_REFERENCE_VENV if Path(DEFAULT_REFERENCE_VENV, "bin", "drum").exists() else None
        )
    known = known_servers(reference_venv, peers_file=peers_file)
    out: dict[str, Target | str] = {}
    import drum  # this repository's

    ours = known["fastapi"]
    out["drum"] = Target("drum", ours.drum, getattr(drum, "__version__", "?")) if not isinstance(ours, str) else ours
    for key, name, dist in (("drum-1.18.1", "drum-1.18.1", "datarobot-drum"), ("mlserver", "mlserver", "mlserver"),
                            ("kserve", "kserve-v2", "kserve")):  # fmt: skip
        spec = known.get(name, f"bench.servers knows no {name}")
        if isinstance(spec, str):
            out[key] = spec
            continue
        python = spec.drum if key == "kserve" else str(Path(spec.drum).with_name("python"))
        out[key] = Target(key, spec.drum, dist_version(python, dist))
    return out


@dataclass
class Setup:
    """How a scenario configures the servers: the model's environment, the concurrency (None: each server's
    default; N: drum N executor threads, DRUM N gunicorn workers, MLServer N inference workers, KServe N
    uvicorn workers) and extra environment per server key."""

    model_env: dict[str, str] = field(default_factory=dict)
    concurrency: int | None = None
    server_env: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # name in the work dir -> text (e.g. a warm-up CSV)


def concurrency_note(key: str, n: int | None) -> str:
    """What `n` (or the default) means for server `key`."""
    if key == "drum":
        return f"DRUM_FASTAPI_EXECUTOR_WORKERS={n}" if n else "defaults: 1 worker, 1 executor thread"
    if key == "drum-1.18.1":
        return f"MAX_WORKERS={n} (gunicorn sync workers)" if n else "defaults: gunicorn, 1 sync worker"
    if key == "mlserver":
        return f"parallel_workers={n}" if n else "defaults: parallel_workers=1 (1 inference process)"
    return f"--workers {n} (uvicorn processes)" if n else "defaults: 1 uvicorn process"


class Server:
    """A started server of `target` on a free port, in its own process group, ready (or `error` says why)."""

    def __init__(self, target: Target, work: Path, setup: Setup, start_timeout_s: float = 90.0):
        self.target, self.work, self.port = target, work, free_port()
        self.count_file = work / "count.txt"
        self.count_file.write_text("")
        self.release_file = work / "release"
        self.log_path = work / f"{target.key}.log"
        for name, text in setup.files.items():
            (work / name).write_text(text)
        env = server_env(work / "home", GUAR_COUNT_FILE=str(self.count_file))
        env.update({k: v.replace("{work}", str(work)) for k, v in setup.model_env.items()})
        env.update({k: v.replace("{work}", str(work)) for k, v in setup.server_env.get(target.key, {}).items()})
        argv, cwd = self._command(setup.concurrency, env)
        self.proc, t0 = launch(argv, cwd, env, self.log_path)
        _RUNNING.add(self)
        self.startup_s: float | None = None
        self.error = ""
        deadline = t0 + start_timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.error = f"exited with {self.proc.returncode} at start-up: {self.log_tail(300)!r}"
                return
            if probe(self.port, target.ready_path, 1.0) == "200":
                self.startup_s = time.perf_counter() - t0
                return
            time.sleep(0.02)
        self.error = f"not ready in {start_timeout_s:.0f} s: {self.log_tail(300)!r}"

    def _command(self, concurrency: int | None, env: dict[str, str]) -> tuple[list[str], Path]:
        key, exe = self.target.key, self.target.executable
        if self.target.drum_routes:
            code_dir = self.work / MODEL
            code_dir.mkdir(exist_ok=True)
            (code_dir / "custom.py").write_text(DRUM_MODEL)
            if concurrency:
                env["DRUM_FASTAPI_EXECUTOR_WORKERS" if key == "drum" else "MAX_WORKERS"] = str(concurrency)
            return [exe, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{self.port}",
                    "--target-type", "regression"], code_dir  # fmt: skip
        if key == "mlserver":
            root = self.work / "mlserver"
            (root / MODEL).mkdir(parents=True, exist_ok=True)
            settings = {"host": "127.0.0.1", "http_port": self.port, "grpc_port": free_port(),
                        "metrics_port": free_port(), "parallel_workers": concurrency or 1}  # fmt: skip
            (root / "settings.json").write_text(json.dumps(settings, indent=2))
            model_settings = {"name": MODEL, "implementation": "guarantee_runtime.GuaranteeModel"}
            (root / MODEL / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
            (root / MODEL / "guarantee_runtime.py").write_text(MLSERVER_MODEL)
            return [exe, "start", str(root)], root
        script = self.work / "kserve_guarantee.py"
        script.write_text(KSERVE_MODEL)
        argv = [exe, str(script), "--model_name", MODEL, "--http_port", str(self.port), "--grpc_port", str(free_port())]
        if concurrency:
            argv += ["--workers", str(concurrency)]
        return argv, self.work

    @property
    def ready(self) -> bool:
        return self.startup_s is not None

    def log_tail(self, n: int = 2000) -> str:
        return log_tail(self.log_path, n)

    # -- requests in this server's protocol

    def predict_request(self, rows: int = 1) -> tuple[str, bytes, dict[str, str]]:
        """(path, body, headers) of a `rows`-row prediction."""
        if self.target.drum_routes:
            body = (CSV_HEADER + "\n" + "\n".join([ROW] * rows) + "\n").encode()
            return "/predict/", body, {"Content-Type": "text/csv"}
        data = ",".join([ROW] * rows)
        body = (f'{{"inputs":[{{"name":"x","shape":[{rows},{N_FEATURES}],"datatype":"FP64","data":[{data}]}}]}}')
        return V2_INFER, body.encode(), {"Content-Type": "application/json"}

    def predict(self, rows: int = 1, timeout_s: float = 30.0, headers: dict[str, str] | None = None) -> Outcome:
        path, body, base = self.predict_request(rows)
        return post(self.port, path, body, {**base, **(headers or {})}, timeout_s)

    def scored(self, rows: int | None = None) -> int:
        """Model calls so far (with `rows` rows only, when given)."""
        try:
            lines = self.count_file.read_text().split("\n")
        except OSError:
            return 0
        return sum(1 for line in lines if line.strip() and (rows is None or line.split()[-1] == str(rows)))

    def wait_scored_stable(self, quiet_s: float = 1.0, cap_s: float = 15.0) -> int:
        """Wait until the count has not changed for `quiet_s` (at most `cap_s`); the count."""
        deadline, last, since = time.monotonic() + cap_s, -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.scored()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
            time.sleep(0.05)
        return last

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        stop_group(self.proc, grace_s)
        _RUNNING.discard(self)


_RUNNING: set[Server] = set()


# ---------------------------------------------------------------------------------------------- clients


@dataclass
class Outcome:
    """One request: its status (None: no HTTP answer) and the seconds from sending to the answer."""

    status: int | None
    seconds: float
    error: str = ""

    def describe(self) -> str:
        if self.status is None:
            return self.error if self.error.startswith("no answer") else f"{self.error} after {self.seconds:.2f} s"
        return f"{self.status} after {self.seconds:.2f} s"


def post(port: int, path: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
    """POST on a fresh connection; on a socket timeout the client gives up and closes the connection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return Outcome(response.status, time.perf_counter() - started)
    except TimeoutError:
        return Outcome(None, time.perf_counter() - started, f"no answer in {timeout_s:g} s (client gave up)")
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, time.perf_counter() - started, type(exc).__name__)
    finally:
        conn.close()


def probe(port: int, path: str, timeout_s: float = 2.0) -> str:
    """GET `path`: its status as text, or "no answer in N s" / the connection error's name."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except TimeoutError:
        return f"no answer in {timeout_s:g} s"
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def concurrently(n: int, call: Callable[[int], Outcome]) -> list[Outcome]:
    """`call(i)` for i in range(n) on n threads released together; the outcomes in order."""
    results: list[Outcome | None] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r if r is not None else Outcome(None, 0.0, "thread died") for r in results]


def statuses(outcomes: list[Outcome]) -> str:
    counts = Counter(str(o.status) if o.status is not None else o.error for o in outcomes)
    return ", ".join(f"{n}× {s}" for s, n in sorted(counts.items()))


# ---------------------------------------------------------------------------------------------- scenarios


@dataclass
class Cell:
    """What one server did in one scenario: the table's text, the raw numbers and the values tests use."""

    summary: str
    details: str = ""
    data: dict[str, object] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    title: str
    what: str  # one paragraph: what the scenario does
    setup: Setup
    run: Callable[[Server], Cell]
    limit_s: float  # per server, after start-up


ABANDON_CLIENTS, ABANDON_GIVE_UP_S, ABANDON_MODEL_S, ABANDON_THREADS = 20, 0.2, 0.5, 4


def abandoned(server: Server) -> Cell:
    """20 clients give up after 0.2 s on a 0.5 s model; then one normal request (2 rows)."""
    gave_up = concurrently(ABANDON_CLIENTS, lambda i: server.predict(1, ABANDON_GIVE_UP_S))
    normal = server.predict(2, 30.0)
    server.wait_scored_stable(quiet_s=1.5, cap_s=ABANDON_CLIENTS * ABANDON_MODEL_S + 5)
    scored = server.scored(rows=1)
    return Cell(
        f"scored {scored} of {ABANDON_CLIENTS}; next request {normal.describe()}",
        f"the {ABANDON_CLIENTS} clients: {statuses(gave_up)}; the model scored {scored} of them; the normal "
        f"request sent right after: {normal.describe()}.",
        {"scored": scored, "normal_status": normal.status, "normal_s": normal.seconds},
    )


DEADLINE_MODEL_S, DEADLINE_S = 1.0, 0.3


def deadline(server: Server) -> Cell:
    """`X-Request-Timeout: 0.3` on a running 1 s request, then on one queued behind a 1 s request."""
    header = {"X-Request-Timeout": str(DEADLINE_S)}
    running = server.predict(2, 10.0, header)
    time.sleep(max(0.0, DEADLINE_MODEL_S + 0.2 - running.seconds))  # let the model finish it
    blocker: list[Outcome] = []
    thread = threading.Thread(target=lambda: blocker.append(server.predict(3, 10.0)), daemon=True)
    thread.start()
    time.sleep(0.15)  # the blocker holds the (only) model slot
    queued = server.predict(1, 10.0, header)
    thread.join(15)
    server.wait_scored_stable(quiet_s=1.2, cap_s=5)
    queued_scored = server.scored(rows=1) > 0
    blocked = blocker[0].describe() if blocker else "no answer"
    return Cell(
        f"running: {running.describe()}; queued: {queued.describe()}, {'scored' if queued_scored else 'not scored'}",
        f"running case (1 s model): {running.describe()}; queued case: the request ahead of it {blocked}, the "
        f"queued one {queued.describe()}, the model {'did' if queued_scored else 'did not'} score it.",
        {"running_status": running.status, "running_s": running.seconds, "queued_status": queued.status,
         "queued_s": queued.seconds, "queued_scored": queued_scored},
    )  # fmt: skip


WEDGE_TIMEOUT_S = 2
#: Seconds after the blocking request was sent at which readiness and liveness are probed while it blocks.
WEDGE_PROBES_S = (WEDGE_TIMEOUT_S + 1.0, WEDGE_TIMEOUT_S + 3.0)


def health(server: Server) -> Cell:
    """One request blocks the only model slot past the request timeout; readiness and liveness before, twice
    while wedged, and after the release."""
    ready, live = server.target.health_paths

    def probes() -> tuple[str, str]:
        return probe(server.port, ready, 2.0), probe(server.port, live, 2.0)

    before = probes()
    blocked: list[Outcome] = []
    thread = threading.Thread(target=lambda: blocked.append(server.predict(1, 30.0)), daemon=True)
    sent = time.monotonic()
    thread.start()
    wedged = []
    for at in WEDGE_PROBES_S:
        time.sleep(max(0.0, sent + at - time.monotonic()))
        wedged.append(probes())
    server.release_file.write_text("go")
    thread.join(15)
    time.sleep(0.3)
    after = probes()
    request = blocked[0].describe() if blocked else "no answer"
    # gunicorn (DRUM 1.18.1) kills a worker that runs past its timeout and boots a new one: then nothing is wedged
    killed = server.log_tail(1 << 20).count("WORKER TIMEOUT")
    replaced = "worker killed at the timeout and replaced; " if killed else ""
    note = f" gunicorn logged WORKER TIMEOUT {killed}× (killed the wedged worker, booted a new one)." if killed else ""

    def seen(i: int) -> str:
        values = [w[i] for w in wedged]
        return values[0] if len(set(values)) == 1 else " then ".join(values)

    during = "; ".join(f"{at:g} s into the wedge {r}/{v}" for at, (r, v) in zip(WEDGE_PROBES_S, wedged, strict=True))
    return Cell(
        f"{replaced}ready {seen(0)}, live {seen(1)} while wedged; ready {after[0]} after",
        f"`{ready}` / `{live}`: before {before[0]}/{before[1]}; {during}; after the release {after[0]}/{after[1]}. "
        f"The blocked request: {request}.{note}",
        {"before": before, "wedged": wedged, "after": after, "request_status": blocked[0].status if blocked else None},
    )


def warmup(server: Server) -> Cell:
    """The first request after the server said ready, on a model whose first call takes 2 s."""
    first = server.predict(1, 30.0)
    second = server.predict(1, 30.0)
    return Cell(
        f"first request {first.describe()}",
        f"first request {first.describe()}, second {second.describe()}.",
        {"first_s": first.seconds, "first_status": first.status, "startup_s": server.startup_s},
    )


SIGTERM_REQUESTS, SIGTERM_AFTER_S, SIGTERM_WAIT_S = 8, 0.2, 30.0


def sigterm(server: Server) -> Cell:
    """8 requests on a 1 s model; SIGTERM to the server's main process 0.2 s later."""
    results: list[Outcome] = []

    def send() -> None:
        results.extend(concurrently(SIGTERM_REQUESTS, lambda i: server.predict(1, SIGTERM_WAIT_S)))

    runner = threading.Thread(target=send, daemon=True)
    runner.start()
    time.sleep(SIGTERM_AFTER_S)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = server.proc.wait(SIGTERM_WAIT_S)
    except subprocess.TimeoutExpired:
        code = None
    exit_s = time.monotonic() - signalled
    runner.join(SIGTERM_WAIT_S + 5)
    ok = sum(o.status == 200 for o in results)
    exited = f"exit {code} after {exit_s:.1f} s"
    if code is None:
        exited = f"still running {SIGTERM_WAIT_S:.0f} s after SIGTERM"
    return Cell(
        f"{ok} of {SIGTERM_REQUESTS} got 200; {exited}",
        f"answers: {statuses(results)}; the model was called {server.scored()} times; {exited}.",
        {"ok": ok, "exit_code": code, "exit_s": exit_s},
    )


BIG_BODY_BYTES, RSS_CAP = 300 * 10**6, 8 * 1024**3


def big_body_parts(
    drum_routes: bool, target_bytes: int = BIG_BODY_BYTES
) -> tuple[int, int, Callable[[], Iterator[bytes]]]:
    """(rows, exact length, a generator of the body's chunks) of a ~`target_bytes` CSV or V2 JSON body."""
    block_rows = 10_000
    sep = "\n" if drum_routes else ","
    block = (sep.join([ROW] * block_rows)).encode()
    blocks = max(1, target_bytes // (len(block) + 1))
    rows = blocks * block_rows
    if drum_routes:
        head, tail, joint = (CSV_HEADER + "\n").encode(), b"\n", b"\n"
    else:
        head = f'{{"inputs":[{{"name":"x","shape":[{rows},{N_FEATURES}],"datatype":"FP64","data":['.encode()
        tail, joint = b"]}]}", b","
    length = len(head) + blocks * len(block) + (blocks - 1) * len(joint) + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        for i in range(blocks):
            yield block if i == 0 else joint + block
        yield tail

    return rows, length, chunks


def big_body(server: Server, limit_s: float = 100.0) -> Cell:
    """One ~300 MB body: the answer and the peak RSS of the server's process tree (the script gives up past RSS_CAP)."""
    path, _, headers = server.predict_request(1)
    rows, length, chunks = big_body_parts(server.target.drum_routes)
    sampler = RssSampler(server.proc.pid, 0.05)
    idle = sampler.tree_rss()
    sampler.reset()
    started = time.perf_counter()
    note, status, sent = "", None, 0
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
        sock.sendall(head.encode())
        try:
            for chunk in chunks():
                if select.select([sock], [], [], 0)[0]:
                    note = "answered before the whole body was sent"
                    break
                sock.sendall(chunk)
                sent += len(chunk)
                if sampler.peak > RSS_CAP or time.perf_counter() - started > limit_s:
                    break
        except OSError as exc:
            note = f"connection {type(exc).__name__} after {sent / MB:.0f} MiB sent"
        sock.settimeout(0.25)
        answer = b""
        while time.perf_counter() - started < limit_s and sampler.peak <= RSS_CAP:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                note = note or type(exc).__name__
                break
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer:
                break
        seconds = time.perf_counter() - started
        with contextlib.suppress(ValueError, IndexError):
            status = int(answer.split(b" ", 2)[1])
        aborted = ""
        if status is None and sampler.peak > RSS_CAP:
            aborted = f"aborted by the script at RSS > {RSS_CAP / 1024**3:.0f} GiB"
        elif status is None and seconds >= limit_s:
            aborted = f"no answer in {limit_s:.0f} s"
    finally:
        sock.close()
        sampler.pause()
        sampler.stop()
    peak = sampler.peak / MB
    scored = server.scored()
    what = str(status) if status is not None else (aborted or note or "connection closed, no answer")
    read = ", read whole" if status == 200 else ""
    return Cell(
        f"{what}{read} after {seconds:.1f} s, peak RSS {peak:.0f} MB",
        f"a {length / 1e6:.0f} MB body ({rows:,} rows; {sent / 1e6:.0f} MB of it sent): {what} after "
        f"{seconds:.1f} s{'; ' + note if note and status is not None else ''}; server RSS {idle / MB:.0f} MB "
        f"idle, peak {peak:.0f} MB; model calls: {scored}.",
        {"status": status, "peak_mb": peak, "idle_mb": idle / MB, "seconds": seconds},
    )


FLOOD_CLIENTS, FLOOD_MODEL_S = 200, 0.2


def admission(server: Server) -> Cell:
    """200 concurrent requests on a 0.2 s model, each on its own connection."""
    outcomes = concurrently(FLOOD_CLIENTS, lambda i: server.predict(1, 90.0))
    by_status = Counter(o.status for o in outcomes)
    ok = [o.seconds for o in outcomes if o.status == 200]
    rejected = [o.seconds for o in outcomes if o.status == 503]
    max_ok = max(ok) if ok else 0.0
    summary = f"{by_status.get(503, 0)}× 503, {len(ok)}× 200 (slowest 200 after {max_ok:.1f} s)"
    details = f"answers: {statuses(outcomes)}; 200s took up to {max_ok:.2f} s"
    if rejected:
        details += f", the 503s up to {max(rejected):.2f} s"
    return Cell(summary, details + f"; the model was called {server.scored()} times.",
                {"counts": dict(by_status), "max_ok_s": max_ok})  # fmt: skip


TIMEOUT_PARAM = json.dumps({"type": "numeric", "payload": WEDGE_TIMEOUT_S})

SCENARIOS = [
    Scenario(
        "abandoned", "Abandoned requests",
        f"{ABANDON_CLIENTS} clients post a 1-row prediction at once to a model taking {ABANDON_MODEL_S} s and each "
        f"gives up after {ABANDON_GIVE_UP_S} s (socket closed); one normal request follows at once. Counted: the "
        "abandoned requests the model scored (after the work drained) and the normal request's latency (a server "
        f"that drops the abandoned ones answers it in about {2 * ABANDON_MODEL_S - ABANDON_GIVE_UP_S:.1f} s: "
        "the rest of the running ones, then its own; one that scores them all, after about "
        f"{ABANDON_CLIENTS * ABANDON_MODEL_S / ABANDON_THREADS + ABANDON_MODEL_S:.1f} s). "
        f"Concurrency {ABANDON_THREADS} everywhere: "
        + "; ".join(f"{SERVERS[k]} {concurrency_note(k, ABANDON_THREADS)}" for k in SERVERS) + ".",
        Setup({"GUAR_SECONDS": str(ABANDON_MODEL_S)}, ABANDON_THREADS), abandoned, 40,
    ),
    Scenario(
        "deadline", "Per-request deadline",
        f"`X-Request-Timeout: {DEADLINE_S}` on a request to a model taking {DEADLINE_MODEL_S} s (running), then on a "
        f"request sent 0.15 s after another {DEADLINE_MODEL_S} s request has taken the only model slot (queued); "
        "servers at their defaults (one request at a time). The peers do not know the header; it is sent anyway.",
        Setup({"GUAR_SECONDS": str(DEADLINE_MODEL_S)}), deadline, 30,
    ),
    Scenario(
        "health", "Truthful health",
        f"One request blocks the model (a file-based event) past the request timeout (drum and DRUM: runtime "
        f"parameter DRUM_CLIENT_REQUEST_TIMEOUT={WEDGE_TIMEOUT_S}; the peers have none); readiness and liveness "
        f"are probed (2 s client timeout) before, {' and '.join(f'{t:g}' for t in WEDGE_PROBES_S)} s after the "
        "blocking request was sent, and after the release. "
        "Probes: drum, MLServer and KServe `/v2/health/ready` and `/v2/health/live`; DRUM 1.18.1 `/health/` and "
        "`/ping/` (it has no others). Servers at their defaults (one model slot).",
        Setup({"GUAR_RELEASE_FILE": "{work}/release", "GUAR_BLOCK_MAX": "30"},
              server_env={k: {"MLOPS_RUNTIME_PARAM_DRUM_CLIENT_REQUEST_TIMEOUT": TIMEOUT_PARAM}
                          for k in ("drum", "drum-1.18.1")}),
        health, 40,
    ),  # fmt: skip
    Scenario(
        "warmup", "Warm-up",
        "A model whose first call takes 2 s and later ones 10 ms; the first request is sent as soon as the server "
        "answers its ready route (drum and DRUM `/ping/`, the peers `/v2/models/guarantee/ready`). drum: "
        "`DRUM_WARMUP_INPUT` (a 1-row CSV). DRUM 1.18.1, MLServer and KServe offer no warm-up setting (a model "
        "can warm itself in its load hook; this one does not).",
        Setup({"GUAR_SECONDS": "0.01", "GUAR_FIRST_SECONDS": "2"},
              server_env={"drum": {"DRUM_WARMUP_INPUT": "{work}/warmup.csv"}},
              files={"warmup.csv": CSV_HEADER + "\n" + ROW + "\n"}),
        warmup, 30,
    ),  # fmt: skip
    Scenario(
        "sigterm", "SIGTERM drain",
        f"{SIGTERM_REQUESTS} concurrent requests to a model taking 1 s, SIGTERM to the server's main process "
        f"{SIGTERM_AFTER_S} s after they were sent; servers at their defaults (one request at a time, so 1 runs "
        "and 7 wait). Counted: 200s, and the exit code and time.",
        Setup({"GUAR_SECONDS": "1"}), sigterm, 2 * SIGTERM_WAIT_S + 15,
    ),
    Scenario(
        "body", "Large body",
        f"One {BIG_BODY_BYTES / 1e6:.0f} MB body (CSV for drum and DRUM, one V2 JSON FP64 tensor for the peers), "
        "streamed with its Content-Length; the answer and the peak RSS of the server's process tree (psutil, every "
        f"50 ms). The script gives up past {RSS_CAP / 1024**3:.0f} GiB of RSS or 100 s. Servers at their defaults.",
        Setup({"GUAR_SECONDS": "0"}), big_body, 110,
    ),
    Scenario(
        "admission", "Admission limit",
        f"{FLOOD_CLIENTS} concurrent requests (one connection each) to a model taking {FLOOD_MODEL_S} s, servers "
        "at their defaults (drum: 1 executor thread, DRUM_FASTAPI_MAX_QUEUE=64). Counted: 503s, 200s and the "
        "slowest answer.",
        Setup({"GUAR_SECONDS": str(FLOOD_MODEL_S)}), admission, 100,
    ),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


def run_cell(target: Target, scenario: Scenario, work: Path) -> Cell:
    """Start `target` for `scenario` in `work`, run it within the scenario's time limit, stop the server."""
    work.mkdir(parents=True, exist_ok=True)
    server = Server(target, work, scenario.setup)
    try:
        if not server.ready:
            return Cell(f"did not start ({server.error[:80]})", server.error)
        result: list[Cell] = []
        errors: list[BaseException] = []

        def body() -> None:
            try:
                result.append(scenario.run(server))
            except Exception as exc:  # reported in the cell
                errors.append(exc)

        thread = threading.Thread(target=body, name=f"{scenario.name}-{target.key}", daemon=True)
        thread.start()
        thread.join(scenario.limit_s)
        if thread.is_alive():
            server.stop()
            thread.join(10)
            limit = f"{scenario.limit_s:.0f} s"
            return Cell(f"no result in {limit} (limit)", f"the scenario ran past {limit}; the server was stopped.")
        if errors:
            return Cell(f"script error: {type(errors[0]).__name__}", repr(errors[0]))
        cell = result[0]
        cell.data["startup_s"] = server.startup_s
        return cell
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    return (f"{os.cpu_count()} cores{' (' + cpu + ')' if cpu else ''}{mem}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")  # fmt: skip


def cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report(columns: dict[str, Target | str], scenarios: list[Scenario], cells: dict[tuple[str, str], Cell],
           command: str, elapsed_s: float) -> str:  # fmt: skip
    """The Markdown page: intro, one table, a paragraph of raw numbers per scenario."""
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "# Serving guarantees, measured against the peers",
        "",
        "What each server *did* in a few failure scenarios, measured by "
        "[`bench/guarantees.py`](../bench/guarantees.py), never what it claims. Every scenario starts each server "
        "afresh, one at a time, on the same small model written by the script (a `custom.py` for drum and DRUM, "
        "a custom `MLModel` runtime for MLServer, a `kserve.Model` for KServe) that counts the requests it scores, "
        "sleeps a set time and can block on a file. drum and DRUM are sent CSV on `/predict/`, MLServer and "
        f"KServe V2 JSON on `{V2_INFER}`. The peers' models block where they run, as their own scikit-learn "
        "runtimes do (MLServer: `async def predict` in its inference worker process; KServe: a plain "
        "`def predict`, which it calls on its event loop).",
        "",
        f"- Command: `{command}`",
        f"- Date: {today}; the run took {elapsed_s / 60:.1f} min",
        f"- Machine: {machine()}; other work may have run beside it",
        "- Servers: " + "; ".join(
            f"{SERVERS[k].split()[0]} {c.version} (`{c.executable}`)" if isinstance(c, Target)
            else f"{SERVERS[k]}: skipped, {c}"
            for k, c in columns.items()
        ),
        "",
        "## Scenarios",
        "",
    ]  # fmt: skip
    for i, scenario in enumerate(scenarios, 1):
        lines.append(f"{i}. **{scenario.title}** (`{scenario.name}`). {scenario.what}")
    lines += ["", "## Results", ""]
    lines.append("| Scenario | " + " | ".join(SERVERS[k] for k in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for scenario in scenarios:
        row = []
        for key, column in columns.items():
            if isinstance(column, str):
                row.append("skipped: not installed")
                continue
            cell = cells.get((scenario.name, key))
            row.append(cell_text(cell.summary) if cell else "not run (time budget)")
        lines.append(f"| {scenario.title} | " + " | ".join(row) + " |")
    lines += ["", "## Raw numbers", ""]
    for scenario in scenarios:
        lines += [f"### {scenario.title}", ""]
        parts = []
        for key, column in columns.items():
            if isinstance(column, str):
                parts.append(f"**{SERVERS[key]}**: skipped ({column}).")
                continue
            cell = cells.get((scenario.name, key))
            if cell is None:
                parts.append(f"**{SERVERS[key]}**: not run (the run's time budget was spent).")
                continue
            startup = cell.data.get("startup_s")
            ready = f" (ready {startup:.1f} s after start)" if isinstance(startup, float) else ""
            parts.append(f"**{SERVERS[key]}**{ready}: {cell.details or cell.summary}")
        lines += [f"- {part}" for part in parts] + [""]
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guarantees", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                        help=f"comma-separated, of {', '.join(SCENARIO_NAMES)}")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the Markdown report here (e.g. docs/guarantees.md)")
    parser.add_argument("--reference-venv", default=None,
                        help=f"venv with DRUM 1.18.1 (default: $DRUM_REFERENCE_VENV, else {DEFAULT_REFERENCE_VENV})")
    parser.add_argument("--peers", type=Path, default=None, help="the peers' venvs (default: .peers of this venv)")
    parser.add_argument("--budget", type=float, default=720.0, help="seconds; later cells are not run past it")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [k for k in keys if k not in SERVERS] + [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    found = targets(args.reference_venv, args.peers)
    columns = {k: found[k] for k in SERVERS if k in keys}
    scenarios = [s for s in SCENARIOS if s.name in names]
    command = ".venv/bin/python -m bench.guarantees " + shlex.join(argv if argv is not None else sys.argv[1:])
    if os.environ.get("DRUM_REFERENCE_VENV") and not args.reference_venv:
        command = f"DRUM_REFERENCE_VENV={os.environ['DRUM_REFERENCE_VENV']} " + command
    signal.signal(signal.SIGTERM, _interrupt)
    cells: dict[tuple[str, str], Cell] = {}
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="drum-guarantees-") as tmp:
            for scenario in scenarios:
                for key, column in columns.items():
                    if isinstance(column, str):
                        print(f"{scenario.name:10} {key:12} skipped: {column}", flush=True)
                        continue
                    if time.monotonic() - started > args.budget:
                        print(f"{scenario.name:10} {key:12} not run: budget of {args.budget:.0f} s spent", flush=True)
                        continue
                    t0 = time.monotonic()
                    cell = run_cell(column, scenario, Path(tmp) / f"{scenario.name}-{key}")
                    cells[(scenario.name, key)] = cell
                    print(f"{scenario.name:10} {key:12} {cell.summary}   [{time.monotonic() - t0:.0f} s]", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping servers", file=sys.stderr)
        for server in list(_RUNNING):
            server.stop(2.0)
        return 130
    finally:
        for server in list(_RUNNING):
            server.stop(2.0)
    elapsed = time.monotonic() - started
    text = report(columns, scenarios, cells, command, elapsed)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out} ({elapsed:.0f} s)")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
