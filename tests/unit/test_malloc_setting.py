"""DRUM_MALLOC_MMAP_THRESHOLD: the FastAPI app fixes glibc's mmap threshold to the setting, or leaves
glibc's dynamic threshold alone when it is 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drum.cli.parser import parse_args
from drum.cli.server import app_config
from drum.servers.fastapi import app as fastapi_app


@pytest.mark.parametrize(("value", "expected"), [(None, [2097152]), ("1048576", [1048576]), ("0", [])])
def test_mmap_threshold_follows_the_setting(monkeypatch, tmp_path, value, expected):
    if value is None:
        monkeypatch.delenv("DRUM_MALLOC_MMAP_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("DRUM_MALLOC_MMAP_THRESHOLD", value)
    calls: list[int] = []
    monkeypatch.setattr(fastapi_app, "fix_mmap_threshold", lambda threshold: calls.append(threshold) or True)
    (tmp_path / "custom.py").write_text("def load_model(code_dir):\n    return 1\n")
    argv = ["server", "--code-dir", str(tmp_path), "--address", "127.0.0.1:0", "--target-type", "regression"]
    options = parse_args(argv, environ={})
    config = app_config(options, load=lambda: None)  # type: ignore[arg-type, return-value]
    fastapi_app.create_app(config)
    assert calls == expected


PROBE = """
import ctypes, resource, sys
from drum.servers.fastapi.malloc import fix_mmap_threshold

assert fix_mmap_threshold(int(sys.argv[1]))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]


def faults_of_a_fresh_block(size):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


faults_of_a_fresh_block(2 << 20)
print(faults_of_a_fresh_block(2 << 20))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize(("threshold", "reused"), [(4 << 20, True), (1 << 20, False)])
def test_blocks_below_the_threshold_are_reused_not_faulted_in_again(threshold, reused):
    out = subprocess.run([sys.executable, "-c", PROBE, str(threshold)], capture_output=True, text=True, check=True)
    faults = int(out.stdout)
    assert (faults < 64) is reused, faults  # a 2 MiB block faulted in afresh takes ~512 pages
