"""The servers under test: how each is started, timed to its first successful /ping/, sampled and stopped.

Each server runs in its own process group (killed as a group at the end); its peak RSS is the sum
over the whole process tree (master + workers), sampled with psutil.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.workload import ModelKind

# Environment of the bench's own shell that must not leak into a server (settings chosen per server).
SCRUBBED_PREFIXES = ("DRUM_", "MLOPS_RUNTIME_PARAM_", "MLOPS_", "OTEL_")
SCRUBBED = ("MAX_WORKERS", "TARGET_TYPE", "CODE_DIR", "ADDRESS", "TARGET_NAME", "URL_PREFIX")
BATCHING_ENV = {"DRUM_BATCHING_MAX_ROWS": "256", "DRUM_BATCHING_MAX_WAIT_MS": "2"}


@dataclass(frozen=True)
class ServerSpec:
    """One column of the table: a `drum` executable and the environment it runs with."""

    name: str
    drum: str
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


def batching_supported(src: Path | None = None) -> bool:
    """Whether the settings table of `src` (default: the installed drum) declares adaptive batching."""
    if src is not None:
        settings = src / "drum" / "config" / "settings.py"
        return settings.exists() and "DRUM_BATCHING_MAX_ROWS" in settings.read_text()
    try:
        from drum.config.settings import SETTINGS
    except ImportError:
        return False
    return "DRUM_BATCHING_MAX_ROWS" in {s.name for s in SETTINGS}


def known_servers(
    reference_venv: str | None, ours: str | None = None, ours_src: Path | None = None, before_src: Path | None = None
) -> dict[str, ServerSpec | str]:
    """Every server name -> its spec, or the reason it cannot run here.

    `ours_src`: serve this project's servers from that source tree (put first on PYTHONPATH), e.g. a
    `git archive` of another commit, instead of the installed drum. `before_src`: also serve that source
    tree's FastAPI server at its defaults, as `fastapi-before` (before/after columns from one run).
    """
    ours = ours or str(Path(sys.executable).with_name("drum"))
    base = {"DRUM_SERVER_TYPE": "fastapi", **({"PYTHONPATH": str(ours_src.resolve())} if ours_src else {})}
    servers: dict[str, ServerSpec | str] = {}
    ref = Path(reference_venv) / "bin" / "drum" if reference_venv else None
    if ref and ref.exists():
        servers["drum-1.18.1"] = ServerSpec("drum-1.18.1", str(ref), note="DRUM 1.18.1, gunicorn, 1 sync worker")
    else:
        servers["drum-1.18.1"] = (
            f"no {ref}" if ref else "DRUM_REFERENCE_VENV is not set (a venv with datarobot-drum==1.18.1)"
        )
    if before_src is not None:
        servers["fastapi-before"] = ServerSpec(
            "fastapi-before", ours, {"DRUM_SERVER_TYPE": "fastapi", "PYTHONPATH": str(before_src.resolve())},
            f"defaults, served from {before_src}",
        )  # fmt: skip
    servers["fastapi"] = ServerSpec("fastapi", ours, base, "defaults (1 executor thread)")
    servers["fastapi-4threads"] = ServerSpec(
        "fastapi-4threads", ours, {**base, "DRUM_FASTAPI_EXECUTOR_WORKERS": "4"},
        "DRUM_FASTAPI_EXECUTOR_WORKERS=4",
    )  # fmt: skip
    if batching_supported(ours_src):
        servers["fastapi-batching"] = ServerSpec(
            "fastapi-batching", ours,
            {**base, "DRUM_FASTAPI_EXECUTOR_WORKERS": "1", **BATCHING_ENV},
            "1 executor thread, " + ", ".join(f"{k}={v}" for k, v in BATCHING_ENV.items()),
        )  # fmt: skip
    else:
        servers["fastapi-batching"] = "this build has no DRUM_BATCHING_* settings"
    servers["gunicorn"] = ServerSpec("gunicorn", ours, {**base, "DRUM_SERVER_TYPE": "gunicorn"},
                                     "legacy Flask under gunicorn")  # fmt: skip
    return servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout_s: float = 2.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", "/ping/")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


class RssSampler:
    """Samples the RSS summed over a process tree every `interval_s` while active (from `reset()` to
    `pause()`, so idle servers cost the machine nothing); `peak` since the last `reset()`."""

    def __init__(self, pid: int, interval_s: float = 0.05):
        self.pid, self.interval_s = pid, interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._active = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def tree_rss(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._active.wait(self.interval_s):
                with self._lock:
                    if self._active.is_set():
                        self.peak = max(self.peak, self.tree_rss())
                self._stop.wait(self.interval_s)

    def reset(self) -> None:
        with self._lock:
            self.peak = self.tree_rss()
            self._active.set()

    def pause(self) -> None:
        """Stop sampling; no sample lands after this returns."""
        with self._lock:
            self._active.clear()
            self.peak = max(self.peak, self.tree_rss())

    def stop(self) -> None:
        self._stop.set()
        self._active.set()
        self._thread.join(timeout=2)


class RunningServer:
    """A started server: port, start-up time, RSS sampler, log file."""

    def __init__(self, spec: ServerSpec, kind: ModelKind, code_dir: Path, work: Path, start_timeout_s: float = 120.0):
        self.spec, self.kind, self.port = spec, kind, free_port()
        self.log_path = work / f"{spec.name}-{kind.name}.log"
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(SCRUBBED_PREFIXES)}
        env.update({"PYTHONUNBUFFERED": "1", "HOME": str(home), "MAX_WORKERS": "1", **dict(kind.env), **spec.env})
        argv = [spec.drum, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{self.port}",
                "--target-type", kind.target_type, "--max-workers", "1"]  # fmt: skip
        with open(self.log_path, "wb") as log:
            log.write(("$ " + shlex.join(argv) + "\n").encode())
            log.flush()
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(argv, cwd=str(code_dir), env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.startup_s: float | None = None
        deadline = t0 + start_timeout_s
        while time.perf_counter() < deadline and self.proc.poll() is None:
            if _ping(self.port, timeout_s=1.0) == 200:
                self.startup_s = time.perf_counter() - t0
                break
            time.sleep(0.01)
        self.sampler = RssSampler(self.proc.pid)
        self.idle_rss = self.sampler.tree_rss()

    @property
    def ready(self) -> bool:
        return self.startup_s is not None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
        self.sampler.stop()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
