"""The servers under test: how each is started, timed to its first ready answer, sampled and stopped.

This project's servers and DRUM 1.18.1 are `drum server` (ready: 200 from `/ping/`); the peers run from their
own venvs, which `bash tools/peers/setup.sh .venv` creates and lists in `.venv/.peers`: MLServer
(`mlserver start DIR`, `mlserver_sklearn.SKLearnModel`) and KServe (bench/peers/kserve_server.py), both ready
at the first 200 from `/v2/models/regression/ready` (their `/v2/health/ready` can answer before the model
is registered: MLServer loads models while its servers start). Each server runs in its own process group
(killed as a group at the end); its peak RSS is the sum over the whole process tree (master + workers,
MLServer's inference worker), sampled with psutil.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
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

from bench.workload import DRUM, REGRESSION, V1, V2, V2_INFER, V2_MODEL, ModelKind

# Environment of the bench's own shell that must not leak into a server (settings chosen per server).
SCRUBBED_PREFIXES = ("DRUM_", "MLOPS_RUNTIME_PARAM_", "MLOPS_", "OTEL_", "MLSERVER_", "KSERVE_")
SCRUBBED = ("MAX_WORKERS", "TARGET_TYPE", "CODE_DIR", "ADDRESS", "TARGET_NAME", "URL_PREFIX")
BATCHING_ENV = {"DRUM_BATCHING_MAX_ROWS": "256", "DRUM_BATCHING_MAX_WAIT_MS": "2"}
KSERVE_SCRIPT = Path(__file__).with_name("peers") / "kserve_server.py"
PEERS_SETUP = "bash tools/peers/setup.sh .venv"
#: MLServer's server settings beside the ports: its default of one inference worker process (beside the
#: process that serves HTTP), written out so the run records it.
MLSERVER_SETTINGS = {"parallel_workers": 1}


@dataclass(frozen=True)
class ServerSpec:
    """One column of the table: an executable, the environment it runs with and the protocol it is sent.

    `launcher`: `drum` (`drum` is a `drum` executable), `mlserver` (`drum` is MLServer's `mlserver`) or
    `kserve` (`drum` is the KServe venv's Python, running bench/peers/kserve_server.py). `protocol`: the
    workload protocol its cases are sent in (bench.workload.DRUM, V2 or V1)."""

    name: str
    drum: str
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    launcher: str = "drum"
    protocol: str = DRUM

    @property
    def ready_path(self) -> str:
        """What start-up waits for a 200 from."""
        return "/ping/" if self.launcher == "drum" else f"/v2/models/{V2_MODEL}/ready"

    def serves(self, kind: ModelKind) -> bool:
        """Whether this server can load `kind`'s model (the peers serve the Ridge only)."""
        return self.launcher == "drum" or kind.name == REGRESSION.name


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


def default_peers_file() -> Path:
    """`.peers` of the venv running the bench (tools/peers/setup.sh writes it)."""
    return Path(sys.prefix) / ".peers"


def read_peers(peers_file: Path) -> dict[str, str]:
    """Peer name -> its venv's Python (absolute; "" where setup could not install it). Raises OSError when
    the file is missing."""
    out: dict[str, str] = {}
    for line in peers_file.read_text().splitlines():
        name, sep, python = line.partition("=")
        if not sep:
            continue
        python = python.strip()
        if python and not Path(python).is_absolute():  # older setup.sh: relative to where it ran
            candidates = [Path.cwd() / python, Path(__file__).resolve().parents[1] / python]
            python = str(next((c for c in candidates if c.exists()), candidates[0]))
        out[name.strip()] = python
    return out


def dist_version(python: str, dist: str) -> str:
    """The version of `dist` installed in the venv of `python` (from its .dist-info), or "?"."""
    venv = Path(python).parent.parent
    normalized = dist.replace("-", "_").lower()
    for info in venv.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        if name.replace("-", "_").lower() == normalized:
            return version
    return "?"


def peer_servers(peers_file: Path | None = None) -> dict[str, ServerSpec | str]:
    """The peers' columns (`mlserver`, `kserve-v1`, `kserve-v2`) from `.peers`, or why each cannot run."""
    peers_file = peers_file or default_peers_file()
    names = {"mlserver": ["mlserver"], "kserve": ["kserve-v1", "kserve-v2"]}
    try:
        pythons = read_peers(peers_file)
    except OSError:
        return {col: f"{peers_file} is missing: run `{PEERS_SETUP}`" for cols in names.values() for col in cols}
    servers: dict[str, ServerSpec | str] = {}
    python = pythons.get("mlserver", "")
    executable = Path(python).with_name("mlserver") if python else None
    if executable is None:
        servers["mlserver"] = f"{peers_file} has no mlserver venv (setup could not install it): rerun `{PEERS_SETUP}`"
    elif not executable.exists():
        servers["mlserver"] = f"no {executable}: rerun `{PEERS_SETUP}`"
    else:
        servers["mlserver"] = ServerSpec(
            "mlserver", str(executable), {},
            f"MLServer {dist_version(python, 'mlserver')}, V2 JSON, mlserver_sklearn.SKLearnModel (numpy codec), "
            f"parallel_workers={MLSERVER_SETTINGS['parallel_workers']} (its default: 1 inference worker process)",
            launcher="mlserver", protocol=V2,
        )  # fmt: skip
    python = pythons.get("kserve", "")
    for col, protocol, label in (("kserve-v1", V1, "V1 JSON"), ("kserve-v2", V2, "V2 JSON")):
        if not python:
            servers[col] = f"{peers_file} has no kserve venv (setup could not install it): rerun `{PEERS_SETUP}`"
        elif not Path(python).exists():
            servers[col] = f"no {python}: rerun `{PEERS_SETUP}`"
        else:
            servers[col] = ServerSpec(
                col, python, {},
                f"KServe {dist_version(python, 'kserve')}, {label}, kserve.Model around joblib "
                "(bench/peers/kserve_server.py), 1 uvicorn worker",
                launcher="kserve", protocol=protocol,
            )  # fmt: skip
    return servers


def known_servers(
    reference_venv: str | None, ours: str | None = None, ours_src: Path | None = None, before_src: Path | None = None,
    peers_file: Path | None = None,
) -> dict[str, ServerSpec | str]:
    """Every server name -> its spec, or the reason it cannot run here.

    `ours_src`: serve this project's servers from that source tree (put first on PYTHONPATH), e.g. a
    `git archive` of another commit, instead of the installed drum. `before_src`: also serve that source
    tree's FastAPI server at its defaults, as `fastapi-before` (before/after columns from one run).
    `peers_file`: the peers' venvs (default: `.peers` of this Python's venv).
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
    # The same servers sent V2 JSON (the row* cases; DRUM's routes stay the other columns' business).
    servers["fastapi-v2"] = dataclasses.replace(servers["fastapi"], name="fastapi-v2", protocol=V2,
                                                note=f"defaults, V2 JSON {V2_INFER}")  # fmt: skip
    batching = servers["fastapi-batching"]
    servers["fastapi-batching-v2"] = (
        dataclasses.replace(batching, name="fastapi-batching-v2", protocol=V2, note=f"{batching.note}, V2 JSON")
        if isinstance(batching, ServerSpec) else batching
    )  # fmt: skip
    servers.update(peer_servers(peers_file))
    return servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout_s: float = 2.0, path: str = "/ping/") -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def process_tree(pid: int) -> list[psutil.Process]:
    """The process `pid` and all its descendants (none when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """The RSS summed over the process tree of `pid`, in bytes."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


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
        return tree_rss(self.pid)

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


class PeakRss:
    """The peak RSS of a process tree from the kernel's own high-water marks: `reset()` writes 5 to each
    process's /proc/PID/clear_refs (VmHWM becomes its RSS now), `pause()` sums their VmHWM. Exact, and
    nothing runs while a case does. `RssSampler`'s walk of /proc every 50 ms took a few ms of CPU on a
    2-core machine: at one connection it set the p99 of every server (1 KB unstructured requests: ~1.5 ms
    with it, 0.6-0.8 ms without, DRUM and drum alike). A process started during the case counts its peak
    since it started. `supported(pid)` says whether this kernel lets us reset the marks."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0

    @staticmethod
    def supported(pid: int) -> bool:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            return Path(f"/proc/{pid}/status").read_text().count("VmHWM:") == 1
        except OSError:
            return False

    def tree_rss(self) -> int:
        return tree_rss(self.pid)

    def reset(self) -> None:
        for p in process_tree(self.pid):
            with contextlib.suppress(OSError):
                Path(f"/proc/{p.pid}/clear_refs").write_text("5")
        self.peak = self.tree_rss()

    def pause(self) -> None:
        total = 0
        for p in process_tree(self.pid):
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{p.pid}/status").read_text()
                total += int(status.split("VmHWM:", 1)[1].split()[0]) * 1024
        self.peak = max(self.peak, total)

    def stop(self) -> None:
        pass


def mlserver_dir(root: Path, model: Path, http_port: int) -> Path:
    """`root` as an `mlserver start` directory: settings.json (free ports, MLSERVER_SETTINGS) and
    regression/model-settings.json (the joblib `model` with mlserver_sklearn)."""
    settings = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": free_port(), "metrics_port": free_port(),
                **MLSERVER_SETTINGS}  # fmt: skip
    model_settings = {"name": V2_MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
                      "parameters": {"uri": str(model.resolve())}}  # fmt: skip
    (root / V2_MODEL).mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (root / V2_MODEL / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    return root


def server_command(spec: ServerSpec, kind: ModelKind, code_dir: Path, work: Path, port: int,
                   array_model: Path | None = None) -> tuple[list[str], Path]:  # fmt: skip
    """The argv and working directory that start `spec` on `kind`'s model (`code_dir` for drum, the joblib
    `array_model` for the peers) on `port`."""
    if spec.launcher == "drum":
        argv = [spec.drum, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{port}",
                "--target-type", kind.target_type, "--max-workers", "1"]  # fmt: skip
        return argv, code_dir
    if not spec.serves(kind) or array_model is None:
        raise ValueError(f"{spec.name} serves only the regression model, from its joblib file")
    if spec.launcher == "mlserver":
        root = mlserver_dir(work / f"{spec.name}-{kind.name}", array_model, port)
        return [spec.drum, "start", str(root)], root
    if spec.launcher == "kserve":
        argv = [spec.drum, str(KSERVE_SCRIPT), "--model_name", V2_MODEL, "--model_path", str(array_model.resolve()),
                "--http_port", str(port), "--grpc_port", str(free_port())]  # fmt: skip
        return argv, work
    raise ValueError(f"unknown launcher {spec.launcher!r}")


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without what would change a server's behaviour (SCRUBBED), unbuffered, `home` as
    HOME, plus `extra`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"PYTHONUNBUFFERED": "1", "HOME": str(home), **extra})
    return env


def launch(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, float]:
    """Start `argv` in its own process group, its output (after the command line) in `log_path`; the
    process and its start time (perf_counter)."""
    with open(log_path, "wb") as log:
        log.write(("$ " + shlex.join(argv) + "\n").encode())
        log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    return proc, started


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL whatever is left of it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)


def log_tail(log_path: Path, n: int = 2000) -> str:
    """The last `n` bytes of a log file, as text ("" when it cannot be read)."""
    try:
        return log_path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


class RunningServer:
    """A started server: port, start-up time, its peak RSS meter, log file."""

    def __init__(self, spec: ServerSpec, kind: ModelKind, code_dir: Path, work: Path, start_timeout_s: float = 120.0,
                 array_model: Path | None = None):  # fmt: skip
        self.spec, self.kind, self.port = spec, kind, free_port()
        self.log_path = work / f"{spec.name}-{kind.name}.log"
        env = server_env(work / "home", MAX_WORKERS="1", **dict(kind.env), **spec.env)
        argv, cwd = server_command(spec, kind, code_dir, work, self.port, array_model)
        self.proc, t0 = launch(argv, cwd, env, self.log_path)
        self.startup_s: float | None = None
        deadline = t0 + start_timeout_s
        while time.perf_counter() < deadline and self.proc.poll() is None:
            if _ping(self.port, timeout_s=1.0, path=spec.ready_path) == 200:
                self.startup_s = time.perf_counter() - t0
                break
            time.sleep(0.01)
        pid = self.proc.pid
        self.sampler: PeakRss | RssSampler = PeakRss(pid) if PeakRss.supported(pid) else RssSampler(pid)
        self.idle_rss = self.sampler.tree_rss()

    @property
    def ready(self) -> bool:
        return self.startup_s is not None

    def log_tail(self, n: int = 2000) -> str:
        return log_tail(self.log_path, n)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
        self.sampler.stop()
        stop_group(self.proc, grace_s)
