"""Shared fixtures: model directories written from text, and real `drum server` processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
import requests

DRUM = [sys.executable, "-m", "drum"]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_model(directory: Path, files: dict[str, str]) -> Path:
    """Write `{relative path: text}` into `directory` (text is dedented)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return directory


def runtime_param(value: object, type_: str = "string") -> str:
    import json

    return json.dumps({"type": type_, "payload": value})


def poll_until(produce: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.05) -> T:
    """Call `produce` until `done` holds for its value or `timeout` seconds pass; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = produce()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


ADDRESS_IN_USE = ("address already in use", "connection in use")


class PortTaken(RuntimeError):
    """The server could not bind its port: another process took it after `free_port()` chose it."""


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` or one of its descendants holds a listening TCP socket on `port`."""
    try:
        root = psutil.Process(pid)
        for proc in (root, *root.children(recursive=True)):
            for conn in proc.net_connections("tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    except psutil.Error:
        return False
    return False


@dataclass
class DrumServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    prefix: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + self.prefix + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def wait_ready(self, deadline: float) -> None:
        """Poll `/ping/` until this server answers; raise with the server log if it exits or `deadline` passes.

        Another test's server may have taken the port between `free_port()` and our bind (gunicorn even
        retries the bind for seconds), so an answer counts only once this process tree holds the listening
        socket; a lost port raises `PortTaken`, and `start_server` starts again on a new one.
        """
        port = int(self.url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log()
                error = PortTaken if any(text in log.lower() for text in ADDRESS_IN_USE) else RuntimeError
                raise error(f"drum server exited with {self.process.returncode}:\n{log}")
            if "connection in use" in self.log().lower():  # gunicorn retrying a bind it will not get
                self.stop()
                raise PortTaken(f"port {port} was taken:\n{self.log()}")
            try:
                requests.get(self.url + self.prefix + "/ping/", timeout=1)
                if listens_on(self.process.pid, port):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"drum server did not start in time:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10) -> str:
        """The log once `pattern` (a multiline regex) matches it: some lines (the access log) are written
        after the response was sent. Returns the log as it is at `timeout` otherwise."""
        import re

        return poll_until(self.log, lambda log: re.search(pattern, log, re.M) is not None, timeout)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.session.close()
        return self.process.returncode


def start_server(
    code_dir: Path,
    args: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    prefix: str = "",
    wait: bool = True,
    timeout: float = 60,
) -> DrumServer:
    full_env = {**os.environ, **(env or {})}
    for attempt in range(3):
        port = free_port()
        cmd = [*DRUM, "server", "--code-dir", str(code_dir), "--address", f"127.0.0.1:{port}", *args]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
            )
        server = DrumServer(f"http://127.0.0.1:{port}", process, log_path, prefix)
        if not wait:
            return server
        try:
            server.wait_ready(time.monotonic() + timeout)
            return server
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def drum_server(tmp_path: Path) -> Iterator[Callable[..., DrumServer]]:
    """`drum_server(code_dir, *args, env=..., prefix=...)` starts a server; all are stopped afterwards."""
    servers: list[DrumServer] = []

    def start(code_dir: Path, *args: str, **kwargs) -> DrumServer:
        log_path = tmp_path / f"server-{len(servers)}.log"
        server = start_server(code_dir, list(args), log_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., Path]:
    """`model_dir({"custom.py": "..."}, name="m")` writes a model directory and returns its path."""
    counter = iter(range(1000))

    def make(files: dict[str, str], name: str | None = None) -> Path:
        return write_model(tmp_path / (name or f"model{next(counter)}"), files)

    return make


def run_drum(*args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: str | None = None):
    """Run the `drum` command line to completion."""
    return subprocess.run(
        [*DRUM, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )
