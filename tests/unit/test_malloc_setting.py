"""DRUM_MALLOC_MMAP_THRESHOLD: the serving runtime fixes glibc's mmap threshold to the setting, or leaves
glibc's dynamic threshold alone when it is 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drum.config.server_config import ServerConfig
from drum.model.target import TargetType
from drum.serving import runtime as runtime_module
from drum.serving.handlers import ServingContext


@pytest.mark.parametrize(("value", "expected"), [(None, [2097152]), ("1048576", [1048576]), ("0", [])])
def test_mmap_threshold_follows_the_setting(monkeypatch, value, expected):
    env = {} if value is None else {"DRUM_MALLOC_MMAP_THRESHOLD": value}
    calls: list[int] = []
    monkeypatch.setattr(runtime_module, "fix_mmap_threshold", lambda threshold: calls.append(threshold) or True)
    options = type("Options", (), {"code_dir": ".", "address": "127.0.0.1:0"})()
    config = ServerConfig.from_options(options, env)
    runtime = runtime_module.Runtime(config, lambda: ServingContext(None, TargetType.REGRESSION, "."))
    runtime.start()
    runtime.stop()
    assert calls == expected


PROBE = """
import ctypes, resource, sys
from drum.serving.malloc import fix_mmap_threshold

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
from drum.serving.malloc import fix_mmap_threshold

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
