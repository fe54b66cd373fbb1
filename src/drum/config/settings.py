"""The one table of server settings. Each is read from a runtime parameter (`MLOPS_RUNTIME_PARAM_<NAME>`)
or, failing that, a plain environment variable of the same name.

A runtime parameter holds either DRUM's JSON payload (`{"type": "string", "payload": "fastapi"}`) or a
plain value (`fastapi`, `4`), as a plain environment variable does. An invalid value logs one warning
naming the setting, the value and the valid range, and the default is used; the few settings whose
`invalid` is "error" (the server type, TLS files) stop the server at start-up instead.
docs/settings.md's table is generated from `SETTINGS`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from drum.config.boolean import to_bool
from drum.config.runtime_params import RuntimeParameters, RuntimeParameterTypes
from drum.config.runtime_params_errors import RuntimeParameterException
from drum.errors import DrumCommonException

logger = logging.getLogger("drum.config.settings")


class SettingError(DrumCommonException):
    """A setting whose invalid value stops the server at startup (server type, TLS files)."""


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # "int" | "bool" | "str" | "choice" | "path" (must exist) | "secret" (never logged)
    default: Any
    description: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None
    #: What an invalid value does: "default" (a warning, then the default) or "error" (start-up fails).
    invalid: str = "default"

    def valid_range(self) -> str:
        if self.choices:
            return ", ".join(self.choices)
        if self.type == "int":
            return f"{self.minimum}..{self.maximum}"
        if self.type == "bool":
            return "true, false"
        if self.type == "path":
            return "an existing file"
        return "any"

    def parse(self, raw: Any) -> Any:
        """Convert a raw value; raises ValueError when it is out of range."""
        if self.type == "int":
            value = int(float(raw)) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else None
            if value is None or (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise ValueError(raw)
            return value
        if self.type == "bool":
            return to_bool(raw)
        value = str(raw).strip()
        if self.type == "path" and not os.path.isfile(value):
            raise SettingError(f"{self.name}: file not found: {value}")
        if self.choices is not None:
            value = value.lower()
            if value not in self.choices:
                raise ValueError(raw)
        return value


GiB = 1024**3


def setting(name: str, kind: str, default: Any, description: str, **limits: Any) -> Any:
    """A field of `Settings`: its default, with the `Setting` that declares it as metadata."""
    return field(default=default, metadata={"setting": Setting(name, kind, default, description, **limits)})


@dataclass(frozen=True)
class Settings:
    """Every setting of the table, read and validated at once by `Settings.read` (one field per setting)."""

    server_type: str | None = setting(
        "DRUM_SERVER_TYPE", "choice", None,
        "HTTP server: fastapi/uvicorn (default); flask/werkzeug (Flask dev server) or gunicorn (Flask "
        "under gunicorn) need `pip install 'drum[flask]'` and log a deprecation warning. Unset: FastAPI, "
        "or Flask for a code dir with only custom_flask.py.",
        choices=("fastapi", "uvicorn", "flask", "werkzeug", "gunicorn"), invalid="error",
    )
    fastapi_enabled: bool = setting(
        "DRUM_FASTAPI_ENABLED", "bool", True,
        "Rollout flag. When DRUM_SERVER_TYPE is unset, false selects the legacy Flask server instead of "
        "FastAPI. An explicit DRUM_SERVER_TYPE always wins.",
    )
    executor_workers: int = setting(
        "DRUM_FASTAPI_EXECUTOR_WORKERS", "int", 1,
        "Threads per worker process that run model hooks (predict, transform, ...). 1 (DRUM's "
        "one-request-at-a-time behaviour) is fastest for CPU-bound models, whose threads would only "
        "contend for the GIL; raise it for models that wait on I/O (hooks must then be thread-safe). "
        "Scale CPU-bound models with --max-workers instead.",
        minimum=1, maximum=256,
    )
    batching_max_rows: int = setting(
        "DRUM_BATCHING_MAX_ROWS", "int", 0,
        "Adaptive batching (FastAPI, per worker process): concurrent structured predictions (/predict/, "
        "/predictions/, /invocations; V2 /infer with each other) with the same content type and query are "
        "merged into one model call of at most this many rows and the predictions split back per request; "
        "a request that fails, fails alone. A request that finds the model idle is never held back. 0 turns "
        "batching off. Models whose hooks need per-request data are not batched (see DRUM_BATCHING_ALLOW_HOOKS).",
        minimum=0, maximum=10_000_000,
    )
    batching_max_wait_ms: int = setting(
        "DRUM_BATCHING_MAX_WAIT_MS", "int", 5,
        "Adaptive batching with 2+ executor threads: how long queued requests wait for more company while "
        "another batch runs, before a free thread takes them anyway. With one thread a batch starts as "
        "soon as the previous one ends.",
        minimum=0, maximum=10000,
    )
    batching_allow_hooks: bool = setting(
        "DRUM_BATCHING_ALLOW_HOOKS", "bool", False,
        "Also batch models with hooks that may need per-request data: read_input_data, transform, or a "
        "score hook that reads its keyword arguments (binary_data, mimetype, ...). read_input_data and "
        "transform still run per request; the merged score call gets the first request's keyword "
        "arguments. Only for hooks that treat rows independently.",
    )
    inline_prediction_max_us: int = setting(
        "DRUM_INLINE_PREDICTION_MAX_US", "int", 1000,
        "FastAPI: small structured predictions (/predict/, V2 /infer; bodies up to 64 KiB) of a scikit-learn "
        "or XGBoost artifact without per-request hooks run on the event loop instead of a prediction "
        "thread, once the last 32 predictions each took at most this many microseconds (with adaptive "
        "batching: only a batch of one), at most 0.5 ms of them per turn of the loop (later ones queue for "
        "the next turns); one slower call sends the next ones back to the threads. Skipping the thread hop "
        "is most of a 1-row request's cost. 0 turns it off.",
        minimum=0, maximum=100_000,
    )
    warmup_input: str | None = setting(
        "DRUM_WARMUP_INPUT", "path", None,
        "`drum server`: a file each worker process scores through the normal route (/predict/, "
        "/transform/ or /predictUnstructured/ by target type) DRUM_WARMUP_REQUESTS times after loading the "
        "model and before it accepts connections, logging how long it took; a failing warm-up stops the "
        "server (exit 1) with the model's error.",
    )
    warmup_requests: int = setting(
        "DRUM_WARMUP_REQUESTS", "int", 1,
        "How many times each worker scores DRUM_WARMUP_INPUT before serving.",
        minimum=1, maximum=100_000,
    )
    gil_switch_interval_us: int = setting(
        "DRUM_GIL_SWITCH_INTERVAL_US", "int", 500,
        "FastAPI: Python's thread switch interval in microseconds (sys.setswitchinterval): the longest "
        "the event loop waits for the GIL while a prediction thread runs Python code, so /ping and other "
        "health routes stay fast under load. 0 keeps Python's default (5000).",
        minimum=0, maximum=100_000,
    )
    malloc_mmap_threshold: int = setting(
        "DRUM_MALLOC_MMAP_THRESHOLD", "int", 2_097_152,
        "FastAPI: glibc's mmap threshold in bytes (mallopt; the trim threshold is set to 4x it). Blocks "
        "from this size up are mapped and given back to the system when freed (large request bodies are "
        "kept for reuse within DRUM_FASTAPI_BODY_BUFFER_SIZE); "
        "smaller ones (most of a CSV parser's buffers) are reused from request to request, each thread's "
        "heap keeping at most 4x this much free. The default keeps a 100,000-row CSV request within about "
        "2.6x its body (1 MiB: 2.1x, ~15% slower; 4 MiB: 3.6x). 0 keeps glibc's dynamic thresholds: large "
        "requests then never fault in fresh memory (~15% faster again) but each thread keeps several "
        "times the largest body.",
        minimum=0, maximum=1_073_741_824,
    )
    polars_csv: bool = setting(
        "DRUM_POLARS_CSV", "bool", True,
        "`drum server`: read large plain numeric CSV bodies (1 MiB and up) with polars' multithreaded "
        "reader when polars is installed (it is a dependency): ~2.5x faster than pandas on 2 cores, same "
        "frame. polars is loaded by the first such body (~0.2 s once, and ~40 MB of RSS a server without "
        "large bodies never pays); it reads with one thread per CPU in each worker process (polars' own "
        "POLARS_MAX_THREADS lowers that); a model whose forked processes use polars themselves needs "
        "false (or multiprocessing's spawn start method). false: such bodies are read by pandas in "
        "parallel parts.",
    )
    openblas_thread_timeout: int = setting(
        "DRUM_OPENBLAS_THREAD_TIMEOUT", "int", 4,
        "`drum server`: the OPENBLAS_THREAD_TIMEOUT it sets (unless already set) before NumPy loads. "
        "OpenBLAS' idle threads spin for 2^N CPU cycles after each BLAS call; its default (N=28, ~0.1 s) "
        "keeps a core busy after every prediction, which slows request parsing and other workers on small "
        "machines. Results do not change. 0 leaves OpenBLAS' default.",
        minimum=0, maximum=30,
    )
    max_queue: int = setting(
        "DRUM_FASTAPI_MAX_QUEUE", "int", 64,
        "Requests per worker process that may wait for an executor thread; beyond executor threads + this "
        "queue, prediction requests get 503 with Retry-After.",
        minimum=0, maximum=100_000,
    )
    max_upload_size: int = setting(
        "DRUM_FASTAPI_MAX_UPLOAD_SIZE", "int", 104_857_600,
        "Largest request body in bytes (413 above it, also for chunked bodies). 0 disables the limit.",
        minimum=0, maximum=64 * GiB,
    )
    body_buffer_size: int = setting(
        "DRUM_FASTAPI_BODY_BUFFER_SIZE", "int", 20_971_520,
        "Bytes of large request bodies (256 KiB and up) one worker process receives and holds at once. A "
        "request that would go past it is read only once earlier large requests are answered (its client "
        "waits, TCP backpressure), in arrival order; a larger body is read when it is alone. The default "
        "holds two 10 MB bodies, one handled while the next arrives: bodies read at once share the event "
        "loop, so each arrives later (10 MB bodies on 8 connections: p99 152 ms with 64 MiB, 75 ms with "
        "20 MiB). The memory of answered bodies of 1 MiB and up is kept for the next ones, up to this many "
        "bytes: no page faults or zeroing per large request (10 MB bodies on 8 connections: 1.5x the "
        "requests/s), and none of a virtual machine's costs for memory given back to its host while idle. "
        "0: no bound (every body is read at once) and no memory kept.",
        minimum=0, maximum=64 * GiB,
    )
    request_timeout: int = setting(
        "DRUM_CLIENT_REQUEST_TIMEOUT", "int", 600,
        "Seconds a request may run before it is answered 504. 0 disables the timeout. FastAPI: a client may "
        "ask for less with an X-Request-Timeout: SECONDS header (capped by this); a request still queued at "
        "its deadline is never run.",
        minimum=0, maximum=3600,
    )
    max_header_size: int = setting(
        "DRUM_MAX_HEADER_SIZE", "int", 65536,
        "FastAPI: largest request target plus headers in bytes; a larger request head gets 431 and the "
        "connection is closed before the rest is read (uvicorn's httptools parser has no limit of its own: an "
        "8 MB header was read whole). 0: no limit.",
        minimum=0, maximum=64 * 1024 * 1024,
    )
    request_read_timeout: int = setting(
        "DRUM_REQUEST_READ_TIMEOUT", "int", 30,
        "FastAPI: seconds a client may take to send a request's head (request line and headers), and to send "
        "each further KiB of its body; then it gets 408 and the connection is closed (a connection that sends "
        "nothing is closed silently). Slow clients (slowloris, a byte at a time) cannot hold connections, "
        "memory or the body budget. Waits drum causes itself (a full body budget, pipelining) do not count. "
        "0: no limit.",
        minimum=0, maximum=3600,
    )
    v2_protocol: bool = setting(
        "DRUM_V2_PROTOCOL", "bool", True,
        "Serve the Open Inference Protocol's REST routes (/v2/health/*, /v2/models/{name}[/ready|/infer]) "
        "beside DRUM's (docs/usage.md).",
    )
    fast_routes: bool = setting(
        "DRUM_FASTAPI_FAST_ROUTES", "bool", True,
        "FastAPI: answer DRUM's own routes in one ASGI layer that does what DRUM's middleware, Starlette's "
        "router and the route do, in the same order (about a third less time per small request), while "
        "nothing else wraps them: no middleware from custom_fastapi.py, no CORS, no OpenAPI docs. Other "
        "paths always take the whole stack. false: every request takes the whole stack.",
    )
    enable_docs: bool = setting(
        "DRUM_FASTAPI_ENABLE_DOCS", "bool", False,
        "Serve Swagger UI at /docs and the OpenAPI description at /openapi.json.",
    )
    uvicorn_loop: str = setting(
        "DRUM_UVICORN_LOOP", "choice", "auto",
        "Event loop: auto (uvloop when installed), asyncio, or uvloop (falls back to asyncio with a "
        "warning when uvloop is not installed).",
        choices=("auto", "asyncio", "uvloop"),
    )
    uvicorn_keep_alive: int = setting(
        "DRUM_UVICORN_KEEP_ALIVE", "int", 5,
        "Seconds an idle keep-alive connection stays open.",
        minimum=1, maximum=3600,
    )
    uvicorn_graceful_timeout: int = setting(
        "DRUM_UVICORN_GRACEFUL_TIMEOUT", "int", 30,
        "On SIGTERM: seconds to let in-flight requests finish before the worker stops.",
        minimum=1, maximum=3600,
    )
    backlog: int = setting(
        "DRUM_WEBSERVER_BACKLOG", "int", 2048,
        "Listen backlog of the server socket.",
        minimum=1, maximum=10000,
    )
    uvicorn_max_requests: int = setting(
        "DRUM_UVICORN_MAX_REQUESTS", "int", 0,
        "Recycle a worker process after this many requests (only with 2+ workers, which are supervised "
        "and replaced). 0 disables recycling.",
        minimum=0, maximum=100_000,
    )
    access_log: bool = setting(
        "DRUM_ACCESS_LOG", "bool", True,
        "One line per request on stdout in gunicorn's access-log format.",
    )
    json_logging: bool = setting(
        "DRUM_JSON_LOGGING", "bool", False,
        "Log records as one JSON object per line (timestamp, level, logger, message, module, function, "
        "line, request_id, exception) instead of DRUM's text format.",
    )
    metrics_enabled: bool = setting(
        "DRUM_METRICS_ENABLED", "bool", False,
        "Serve Prometheus metrics at /metrics (needs `pip install 'drum[metrics]'`), summed over workers.",
    )
    cors_enabled: bool = setting(
        "DRUM_CORS_ENABLED", "bool", False,
        "Add CORS middleware (allowed origins from DRUM_CORS_ORIGINS; credentials are never allowed).",
    )
    cors_origins: str = setting(
        "DRUM_CORS_ORIGINS", "str", "*",
        "Comma-separated allowed origins for CORS, e.g. http://localhost:3000,https://app.example.com.",
    )
    ssl_certfile: str | None = setting(
        "DRUM_SSL_CERTFILE", "path", None,
        "PEM certificate: serve HTTPS. A missing file is a startup error.",
    )
    ssl_keyfile: str | None = setting(
        "DRUM_SSL_KEYFILE", "path", None,
        "PEM private key for DRUM_SSL_CERTFILE. A missing file is a startup error.",
    )
    ssl_keyfile_password: str | None = setting(
        "DRUM_SSL_KEYFILE_PASSWORD", "secret", None,
        "Password of the private key; read from the environment only, never logged.",
    )
    ssl_ca_certs: str | None = setting(
        "DRUM_SSL_CA_CERTS", "path", None,
        "CA bundle to verify client certificates (mutual TLS; clients must present a certificate).",
    )
    # OpenAI-compatible backends (--gpu-predictor nim|vllm --sidecar) and DRUM's NIM watchdog.
    openai_host: str = setting(
        "OPENAI_HOST", "str", "localhost",
        "--gpu-predictor nim or vllm: host of the OpenAI-compatible backend (NIM: runtime parameter "
        "DR_NIM_SERVER_HOST wins).",
    )
    openai_port: int = setting(
        "OPENAI_PORT", "int", 9999,
        "--gpu-predictor nim or vllm: port of the backend (NIM: runtime parameter DR_NIM_SERVER_PORT "
        "wins).",
        minimum=1, maximum=65535,
    )
    openai_client_timeout: int = setting(
        "DRUM_OPENAI_CLIENT_TIMEOUT", "int", 3600,
        "--gpu-predictor nim or vllm: seconds the OpenAI client waits for the backend (predictions, chat, "
        "/models).",
        minimum=1, maximum=86400,
    )
    direct_access_timeout: int = setting(
        "NIM_DIRECT_ACCESS_REQUEST_TIMEOUT", "int", 3600,
        "/directAccess/ and /nim/: seconds to connect to the backend and between bytes of its answer; "
        "then 504.",
        minimum=1, maximum=86400,
    )
    nim_watchdog: bool = setting(
        "USE_NIM_WATCHDOG", "bool", False,
        "Each worker polls its own /info/; after NIM_WATCHDOG_MAX_ATTEMPTS failed polls it logs an error "
        "and /, /ping/ and /health/ answer 513 until a poll succeeds. It never kills a process (drum "
        "starts none).",
    )
    nim_watchdog_request_timeout: int = setting(
        "NIM_WATCHDOG_REQUEST_TIMEOUT", "int", 120,
        "Seconds the watchdog waits for /info/.",
        minimum=1, maximum=3600,
    )
    nim_watchdog_max_attempts: int = setting(
        "NIM_WATCHDOG_MAX_ATTEMPTS", "int", 3,
        "Consecutive failed watchdog polls (back-off 4*attempt^2 s) before the worker reports unhealthy.",
        minimum=1, maximum=1000,
    )
    nim_watchdog_interval: int = setting(
        "NIM_WATCHDOG_INTERVAL", "int", 10,
        "Seconds between watchdog polls while /info/ answers (DRUM: fixed 10).",
        minimum=1, maximum=3600,
    )
    # Legacy Flask backend under gunicorn (DRUM_SERVER_TYPE=gunicorn); DRUM 1.18's names and ranges.
    gunicorn_worker_class: str = setting(
        "DRUM_GUNICORN_WORKER_CLASS", "choice", "sync",
        "gunicorn only: worker class, sync or gevent (gevent needs `pip install 'drum[flask]'`).",
        choices=("sync", "gevent"),
    )
    gunicorn_worker_connections: int = setting(
        "DRUM_WORKER_CONNECTIONS", "int", 5,
        "gunicorn only: simultaneous connections per gevent worker.",
        minimum=1, maximum=10000,
    )
    gunicorn_max_requests: int = setting(
        "DRUM_GUNICORN_MAX_REQUESTS", "int", 0,
        "gunicorn only: restart a worker after this many requests. 0 disables it.",
        minimum=0, maximum=10000,
    )
    gunicorn_max_requests_jitter: int = setting(
        "DRUM_GUNICORN_MAX_REQUESTS_JITTER", "int", 0,
        "gunicorn only: random extra requests (0..jitter) added to DRUM_GUNICORN_MAX_REQUESTS per worker.",
        minimum=1, maximum=10000,
    )
    gunicorn_graceful_timeout: int = setting(
        "DRUM_GUNICORN_GRACEFUL_TIMEOUT", "int", 299,
        "gunicorn only: on SIGTERM, seconds to let in-flight requests finish.",
        minimum=1, maximum=3600,
    )
    gunicorn_keep_alive: int = setting(
        "DRUM_GUNICORN_KEEP_ALIVE", "int", 0,
        "gunicorn only: seconds an idle keep-alive connection stays open (0: close after each response).",
        minimum=0, maximum=3600,
    )
    gunicorn_log_level: str = setting(
        "DRUM_GUNICORN_LOG_LEVEL", "choice", "info",
        "gunicorn only: log level of gunicorn's own logger.",
        choices=("debug", "info", "warning", "error", "critical"),
    )
    score_chunk_bytes: int = setting(
        "DRUM_SCORE_CHUNK_BYTES", "int", 33_554_432,
        "`drum score` only: a CSV input larger than this many bytes is read and scored in chunks of about "
        "this size (bounded memory; the output equals scoring it whole for models that score rows "
        "independently). 0 always scores the input whole.",
        minimum=0, maximum=1024 * GiB,
    )

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None, warn: Callable[[str], None] | None = None) -> Settings:
        """Every setting's value from `environ` (default: the process environment); invalid values warn
        once each (or raise `SettingError`, see `Setting.invalid`)."""
        env = os.environ if environ is None else environ
        return cls(**{f.name: get_setting(f.metadata["setting"].name, env, warn) for f in fields(cls)})


SETTINGS: tuple[Setting, ...] = tuple(f.metadata["setting"] for f in fields(Settings))
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def runtime_param_value(raw: str) -> Any:
    """The value of a setting's `MLOPS_RUNTIME_PARAM_*` variable: the payload of DRUM's JSON
    `{"type": ..., "payload": ...}`, else the text itself as a plain value (`fastapi`, `4`, `true`).
    Raises ValueError, with a readable reason, for a JSON object that is not a valid payload."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(value, dict):
        return raw
    if "payload" not in value or "type" not in value:
        raise ValueError('a JSON object needs "type" and "payload" keys, e.g. {"type": "string", "payload": "x"}')
    try:
        return RuntimeParameters.parse_payload(raw)
    except RuntimeParameterException:
        types = ", ".join(t.value for t in RuntimeParameterTypes)
        raise ValueError(f'its "type" must be one of {types}, with a payload of that type') from None


def _raw(name: str, environ: Mapping[str, str]) -> tuple[Any, str]:
    """The raw value of a setting and the variable it came from (runtime parameter first)."""
    namespaced = RuntimeParameters.namespaced_param_name(name)
    if namespaced in environ:
        return runtime_param_value(environ[namespaced]), namespaced
    return environ.get(name), name


def get_setting(
    name: str, environ: Mapping[str, str] | None = None, warn: Callable[[str], None] | None = None
) -> Any:
    """The value of a declared setting: runtime parameter, else env var, else the default."""
    setting = _BY_NAME[name]
    env = os.environ if environ is None else environ
    warn = warn or logger.warning
    try:
        raw, source = _raw(name, env)
    except ValueError as exc:
        source = RuntimeParameters.namespaced_param_name(name)
        shown = "<hidden>" if setting.type == "secret" else repr(env[source])
        return _invalid(setting, f"Invalid value {shown} for {source}: {exc}", warn)
    if raw is None or raw == "":
        return setting.default
    try:
        return setting.parse(raw)
    except (ValueError, TypeError):
        shown = "<hidden>" if setting.type == "secret" else repr(raw)
        return _invalid(setting, f"Invalid value {shown} for {source} (valid: {setting.valid_range()})", warn)


def _invalid(setting: Setting, message: str, warn: Callable[[str], None]) -> Any:
    if setting.invalid == "error":
        raise SettingError(message)
    warn(f"{message}; using default {setting.default!r}")
    return setting.default


def settings_table() -> str:
    """The settings table of docs/settings.md, generated from `SETTINGS`."""
    rows = ["| Setting | Type | Default | Valid | Invalid value | Meaning |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        default = "unset" if s.default is None else str(s.default).lower() if s.type == "bool" else str(s.default)
        invalid = "start-up error" if s.invalid == "error" or s.type == "path" else "warning, default"
        rows.append(f"| `{s.name}` | {s.type} | {default} | {s.valid_range()} | {invalid} | {s.description} |")
    return "\n".join(rows)
