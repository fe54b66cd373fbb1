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


PARSE_PROBE = """
import random, resource, sys
from drum.model import fastcsv
from drum.servers.fastapi.malloc import fix_mmap_threshold

assert fix_mmap_threshold(2 << 20)  # the server's default
if len(sys.argv) > 1:  # pandas' own read size and fixed 16,384-row chunks
    fastcsv.READ_BYTES, fastcsv.CHUNK_ROWS, fastcsv.TOKEN_BUFFER_BYTES = 262144, 16384, 1 << 40
rng = random.Random(0)
names = [f"x{i}" for i in range(10)]
rows = "".join(",".join(repr(rng.gauss(0, 1)) for _ in names) + "\\n" for _ in range(40000))
body = (",".join(names) + "\\n" + rows).encode()
view, start = memoryview(body), body.find(b"\\n") + 1
pool = fastcsv._parts_pool()


def parse_twice_at_once():
    other = pool.submit(fastcsv._read_part, view, start, len(body), names)
    assert fastcsv._read_part(view, start, len(body), names) and other.result()


for _ in range(3):  # every pool thread has parsed once
    parse_twice_at_once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
parse_twice_at_once()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_parallel_csv_parts_reuse_the_parser_buffers():
    """The CSV parser's buffers stay under the server's mmap threshold: two ~8 MB parts parsed at once,
    after a first parse, fault in next to nothing (pandas' own 256 KiB reads: thousands of pages)."""
    run = [sys.executable, "-c", PARSE_PROBE]
    faults = int(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    assert faults < 500, faults
    old = int(subprocess.run([*run, "old"], capture_output=True, text=True, check=True).stdout)
    assert old > 2 * max(faults, 500), (old, faults)  # the probe sees the difference it guards
