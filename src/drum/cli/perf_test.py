"""`drum perf-test`: start this drum's server with `--show-perf`, post CSV payloads of DRUM's sizes to
`/predict/`, read `/stats/` after each test case and print DRUM's table.

The server is whichever backend `DRUM_SERVER_TYPE` selects (FastAPI by default), with `--max-workers`
and `--production` passed on. Test cases are DRUM's: one row (100 iterations), 0.1 MB (50), 10 MB (5)
and 50 MB (1), or one case from `--samples`/`--iterations`. Each request is a new connection posting
the CSV as the multipart file `X`, timed by the client, as DRUM does.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psutil
from texttable import Texttable

from drum.cli.progress import ProgressBar
from drum.errors import DrumCommonException
from drum.model import codecs

REPORT_NAME = "Request time (s)"
NA_VALUE = "NA"
FAIL_VALUE = "Fail"
#: Environment marker of a perf-test server; its value is the pid of the perf-test that started it.
SERVER_MARKER = "__DRUM_PERF_TEST_SERVER__"
START_TIMEOUT = 60


class TestCaseTimeout(Exception):
    pass


@dataclass
class PerfTestCase:
    name: str
    samples: int
    iterations: int


@dataclass
class CaseResult:
    name: str
    samples: int
    iterations: int
    times: list[float] = field(default_factory=list)
    prediction_ok: bool = False
    prediction_error: str | None = None
    server_stats: str | None = None

    def report(self) -> dict[str, float]:
        series = pd.Series(self.times, dtype=float)
        return {"min": series.min(), "avg": series.mean(), "max": series.max(), "total": series.sum()}


# --- test data ------------------------------------------------------------------------------------


def samples_frame(df: pd.DataFrame, samples: int) -> pd.DataFrame:
    """`samples` rows: the first rows of `df`, or `df` repeated (DRUM's _get_samples_df)."""
    nrows = df.shape[0]
    if nrows >= samples:
        return df.head(n=samples)
    repeated = pd.concat([df] * int(samples / nrows), ignore_index=True)
    return pd.concat([repeated, df.head(n=samples % nrows)])


def _size_and_units(size: int) -> tuple[int, str]:
    return (size, "bytes") if size < 1024 else (int(size / 1024), "KB")


def test_cases(options: argparse.Namespace, input_df: pd.DataFrame) -> tuple[list[PerfTestCase], pd.DataFrame]:
    """DRUM's test cases and the frame they take their rows from."""
    file_size = os.stat(options.input).st_size
    sample_size = int(file_size / input_df.shape[0])
    if options.iterations is None and options.samples is None:
        samples_in_50mb = int(input_df.shape[0] * (50 * 1048576 / file_size)) + 1
        cases = [
            PerfTestCase("{} {}".format(*_size_and_units(sample_size)), 1, 100),
            PerfTestCase("0.1MB", int(samples_in_50mb / 500), 50),
            PerfTestCase("10MB", int(samples_in_50mb / 5), 5),
            PerfTestCase("50MB", samples_in_50mb, 1),
        ]
        return cases, samples_frame(input_df, samples_in_50mb)
    iterations = 1 if options.iterations is None else options.iterations
    samples = input_df.shape[0] if options.samples is None else options.samples
    name = "{} {}".format(*_size_and_units(samples * sample_size))
    return [PerfTestCase(name, samples, iterations)], input_df


def read_input(options: argparse.Namespace) -> pd.DataFrame:
    colnames = None
    if getattr(options, "sparse_column_file", None):
        with open(options.sparse_column_file, "rb") as f:
            colnames = codecs.read_column_names(f.read())
    with open(options.input, "rb") as f:
        return codecs.read_structured_input(f.read(), codecs.mimetype_from_filename(options.input), colnames)


# --- the server -----------------------------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(options: argparse.Namespace, host: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "drum", "server", "--code-dir", options.code_dir, "--address", f"{host}:{port}",
           "--logging-level", "warning", "--show-perf", "--target-type", options.target_type]
    if getattr(options, "production", False):
        cmd.append("--production")
    if getattr(options, "max_workers", 0):
        cmd += ["--max-workers", str(options.max_workers)]
    if options.positive_class_label is not None:
        cmd += ["--positive-class-label", options.positive_class_label]
    if options.negative_class_label is not None:
        cmd += ["--negative-class-label", options.negative_class_label]
    if options.class_labels:
        cmd += ["--class-labels", *options.class_labels]
    return cmd


def kill_leftover_servers() -> None:
    """Stop perf-test servers whose perf-test is gone (DRUM kills any it finds; a running perf-test's
    server is left alone here, so parallel perf-tests do not stop each other's servers)."""
    for proc in psutil.process_iter():
        try:
            owner = proc.environ().get(SERVER_MARKER)
        except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
        if owner and owner.isdigit() and not psutil.pid_exists(int(owner)):
            _stop_group(proc.pid)


def _stop_group(pid: int, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the server's process group (workers included), SIGKILL what is left after 10 s."""
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return
    if pgid == os.getpgrp():
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if child is not None:
                child.poll()  # reap it: a zombie still counts as a member of the group
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


class PerfServer:
    """`drum server` in its own process group; its output goes to a temp file (shown if it fails)."""

    def __init__(self, options: argparse.Namespace, verbose: bool) -> None:
        self.host = "localhost"
        self.port = free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        self.command = server_command(options, self.host, self.port)
        self.verbose = verbose
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.verbose:
            print("Running drum using: [{}]".format(" ".join(self.command)))
        env = {**os.environ, SERVER_MARKER: str(os.getpid())}
        self.process = subprocess.Popen(
            self.command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.url, "GET", "/")[0] == 200:
                    return
            time.sleep(0.5)
        message = "Error: server failed to start while running performance testing."
        output = self.output()
        raise DrumCommonException(f"{message}\n{output}" if output else message)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        print("Test is done, stopping drum server")
        if self.process is not None and self.process.poll() is None:
            _stop_group(self.process.pid, self.process)
        self.log.close()


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 3600) -> tuple[int, bytes]:
    """One request on a new connection (as `requests.post` without a session)."""
    host_port = url.split("://", 1)[1]
    connection = http.client.HTTPConnection(host_port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def multipart_file(name: str, content: bytes) -> tuple[bytes, str]:
    """The body `requests` sends for `files={name: content}`: filename = the field name."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n\r\n').encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- running and reporting ------------------------------------------------------------------------


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise TestCaseTimeout()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(int(seconds), 0))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Interrupt:
    """Ctrl+C while perf-test runs: KeyboardInterrupt, and a flag the request loop checks. A
    KeyboardInterrupt raised inside a finalizer (a response or socket closed by the garbage collector) is
    printed and dropped by Python; the flag still stops the test at the next request."""

    requested = False

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:
        cls.requested = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


def run_case(case: PerfTestCase, frame: pd.DataFrame, server: PerfServer, result: CaseResult,
             verbose: bool) -> None:
    print(f"Running test case: {case.name} - {case.samples} samples, {case.iterations} iterations")
    test_df = samples_frame(frame, case.samples)
    body, content_type = multipart_file("X", test_df.to_csv(index=False).encode("utf-8"))
    with ProgressBar(case.iterations, "Processing", unit="") as bar:
        for i in range(case.iterations):
            Interrupt.check()
            started = time.time()
            status, answer = request(server.url, "POST", "/predict/", body, {"Content-Type": content_type})
            result.times.append(time.time() - started)
            if not 200 <= status < 400:
                result.prediction_ok = False
                result.prediction_error = answer.decode("utf-8", errors="replace")
                if verbose:
                    print(f"Failed sending prediction request to server: {result.prediction_error}")
                return
            result.prediction_ok = True
            count = len(json.loads(answer)["predictions"])
            if count != test_df.shape[0]:
                print(f"Failed, number of predictions in response: {count} is not as expected: {test_df.shape[0]}")
                raise AssertionError(f"{count} predictions for {test_df.shape[0]} rows")
            bar.update(i + 1)
    status, answer = request(server.url, "GET", "/stats/")
    if status == 200:
        result.server_stats = answer.decode("utf-8")


def results_table(results: list[CaseResult], in_docker: bool = False, show_mem: bool = True,
                  show_inside_server: bool = False) -> str:
    """DRUM's PerfTestResultsFormatter table."""
    table = Texttable()
    table.set_deco(Texttable.HEADER)
    names = ["size", "samples", "iters", "min", "avg", "max", "total (s)"]
    types = ["t", "i", "i", "f", "f", "f", "f"]
    align = ["l", "r", "r", "r", "r", "r", "r"]
    if show_mem:
        if in_docker:
            names += ["container\nused (MB)", "container\nmax used (MB)", "container\nlimit (MB)",
                      "total physical (MB)"]
            types += ["f"] * 4
            align += ["r"] * 4
        else:
            names += ["used (MB)", "total physical (MB)"]
            types += ["f", "f"]
            align += ["r", "r"]
    if show_inside_server:
        names.append("prediction")
        types.append("f")
        align.append("r")
    table.set_cols_dtype(types)
    table.set_cols_align(align)
    with contextlib.suppress(Exception):
        table.set_max_width(shutil.get_terminal_size().columns)
    rows: list[list[Any]] = [names]
    for res in results:
        row: list[Any] = [res.name, res.samples, res.iterations]
        stats = None
        if res.prediction_ok:
            report = res.report()
            row += [report["min"], report["avg"], report["max"], report["total"]]
            stats = json.loads(res.server_stats) if res.server_stats else None
        else:
            row += [FAIL_VALUE] * 4
        if show_mem:
            mem = stats.get("mem_info") if stats else None
            if mem is None:
                row += [NA_VALUE] * (4 if in_docker else 2)
            elif in_docker:
                row += [mem.get("container_used", "N/A"), mem.get("container_max_used", "N/A"),
                        mem["container_limit"], mem["total"]]
            else:
                row += [mem["drum_rss"], mem["total"]]
        if show_inside_server:
            row.append(stats["time_info"]["run_predictor_total"]["avg"] if stats else NA_VALUE)
        rows.append(row)
    table.add_rows(rows)
    return table.draw()


def run(options: argparse.Namespace, argv: list[str] | None = None) -> int:
    input_df = read_input(options)
    print("DRUM performance test")
    print(f"Model:      {options.code_dir}")
    print(f"Data:       {options.input}")
    print(f"# Features: {len(input_df.columns)}")
    sys.stdout.flush()
    print("Preparing test data...")
    cases, frame = test_cases(options, input_df)
    kill_leftover_servers()
    server = PerfServer(options, bool(getattr(options, "verbose", False)))
    results: list[CaseResult] = []
    Interrupt.requested = False
    previous = signal.signal(signal.SIGINT, Interrupt.handler)
    try:
        server.start()
        print("\n\n")
        for case in cases:
            Interrupt.check()
            print(f"Running test case with timeout: {options.timeout}")
            result = CaseResult(case.name, case.samples, case.iterations)
            results.append(result)
            try:
                with _alarm(options.timeout):
                    run_case(case, frame, server, result, bool(getattr(options, "verbose", False)))
            except TestCaseTimeout:
                print(f"... timed out ({options.timeout}s)")
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - DRUM reports a failed case and goes on
                print(f"\ntest case failed with a message: {exc}")
    except KeyboardInterrupt:
        print("\nCtrl+C pressed, aborting test")
        server.stop()
        return 0
    except BaseException:
        server.stop()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    server.stop()
    print("\n" + results_table(results, show_inside_server=bool(getattr(options, "in_server", False))))
    return 0
