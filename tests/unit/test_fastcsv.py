"""The plain numeric CSV fast path gives exactly what pandas.read_csv gives, or declines."""

import collections
import io
import itertools
import os
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from drum.model import codecs
from drum.model.fastcsv import MAX_FAST_BYTES, read_plain_numeric_csv


def pandas_read(body: bytes) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(body))
    return pd.read_csv(io.BytesIO(body), skip_blank_lines=False) if df.shape[1] == 1 else df


@pytest.mark.parametrize(
    "body",
    [
        b"a,b\n1,2\n",
        b"a,b\n1,2.5\n3,4\n",
        b"f0,f1\r\n0.1,-2e-3\r\n.5,5.\r\n",
        b"x\n-0\n007\n123456789012345678\n",
        b"x,y\n1e400,-1e-400\n",
        b"NA,nan,None\n1,2,3",
        b"a.1,c-d,e/f\n3.14159265358979323846,2,1E+5\n",
    ],
)
def test_fast_path_equals_pandas(body):
    got = read_plain_numeric_csv(body)
    assert got is not None
    pd.testing.assert_frame_equal(got, pandas_read(body), check_exact=False, rtol=1e-15)
    pd.testing.assert_frame_equal(codecs.read_structured_input(body, "text/csv"), pandas_read(body))


@pytest.mark.parametrize(
    "body",
    [
        b"a,b\n1,\n",  # missing value
        b"a,b\n1,NA\n",  # NA string
        b'a,b\n"1",2\n',  # quotes
        b"a,a\n1,2\n",  # duplicate names (pandas renames)
        b",b\n1,2\n",  # unnamed column
        b"a,b\n1, 2\n",  # whitespace
        b"a,b\n1,2\n\n3,4\n",  # blank line
        b"a\n1\n\n",  # single column, trailing blank line is a missing value
        b"a,b\n1,2,3\n",  # more fields than names (index column)
        b"a,b\n+1,2\n",  # explicit plus
        b"a,b\n1234567890123456789,2\n",  # beyond the int64 fast path
        b"a,b\ninf,2\n",
        b"a,b\nTrue,2\n",
        b"a,b\n1\r2\n",
        "é,b\n1,2\n".encode(),
        b"a,b\n",  # no rows
        b"a,b\n" + b"1,2\n" * (MAX_FAST_BYTES // 4),  # large: pandas' C parser
    ],
)
def test_fast_path_declines_anything_unusual(body):
    assert read_plain_numeric_csv(body) is None


def test_fast_path_matches_pandas_on_random_numeric_tables():
    rng = random.Random(7)
    tokens = ["0", "1", "-1", "12", "007", "1.5", "-2.25", ".5", "5.", "1e5", "1E-3", "2.5e+10", "-.5e2", "0.1"]
    names = ["a", "b", "f0", "x_1", "NA", "A", "B1"]
    for _ in range(500):
        width, height = rng.randint(1, 4), rng.randint(1, 5)
        pool = rng.sample(tokens, 3)
        lines = [",".join(rng.sample(names, width))]
        lines += [",".join(rng.choice(pool) for _ in range(width)) for _ in range(height)]
        for end, newline in itertools.product(("", "\n"), ("\n", "\r\n")):
            body = (newline.join(lines) + end).encode()
            got = read_plain_numeric_csv(body)
            assert got is not None
            pd.testing.assert_frame_equal(got, pandas_read(body), check_exact=False, rtol=1e-15)


# --- large bodies: pandas in parallel parts ------------------------------------------------------


def _random_numeric_csv(rng: random.Random, rows: int, width: int, kinds: str) -> bytes:
    """Columns of the given kinds: i int, f float (repr, exponents, negatives), m mixed, n with NaNs."""
    makers = {
        "i": lambda: str(rng.randint(-(10**12), 10**12)),
        "f": lambda: rng.choice([repr(rng.gauss(0, 10) ** 3), f"{rng.uniform(-1, 1):.6e}", f"{rng.random():.3f}",
                                 repr(rng.uniform(-1e300, 1e300)), "-0.0", ".5", "5."]),
        "m": lambda: str(rng.randint(-9, 9)) if rng.random() < 0.95 else "2.5",
        "n": lambda: "" if rng.random() < 0.05 else str(rng.randint(0, 99)),
    }  # fmt: skip
    cols = [makers[kinds[i % len(kinds)]] for i in range(width)]
    lines = [",".join(f"c{i}" for i in range(width))]
    lines += [",".join(make() for make in cols) for _ in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert type(got.index) is type(want.index) and got.columns.dtype == want.columns.dtype
    for name in want.columns:  # bit for bit, NaNs and signed zeros included
        assert got[name].to_numpy().tobytes() == want[name].to_numpy().tobytes()


@pytest.mark.parametrize(("rows", "width", "kinds", "parts", "chunk_rows", "read_bytes"), [
    (3000, 10, "f", 2, 16384, 65536), (3000, 10, "f", 2, 100, 65536), (2000, 7, "if", 3, 64, 65536),
    (1500, 40, "ifmn", 4, 16384, 65536), (20000, 2, "fi", 8, 16384, 65536), (20000, 3, "if", 2, 999, 65536),
    (5, 3, "f", 8, 16384, 65536), (3000, 10, "f", 2, 8192, 7), (2000, 7, "ifmn", 3, 100, 1000),
])  # fmt: skip
def test_large_reader_gives_pandas_frame_bit_for_bit(rows, width, kinds, parts, chunk_rows, read_bytes, monkeypatch):
    """Any chunk size and any read size (reads end mid-number and mid-line) give pandas' frame."""
    from drum.model import fastcsv
    from drum.model.fastcsv import read_large_numeric_csv

    monkeypatch.setattr(fastcsv, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(fastcsv, "READ_BYTES", read_bytes)
    body = _random_numeric_csv(random.Random(rows * width), rows, width, kinds)
    got = read_large_numeric_csv(body, parts)
    assert got is not None
    _assert_same_frame(got, pd.read_csv(io.BytesIO(body)))


def test_large_reader_is_used_for_large_bodies(monkeypatch):
    from drum.model import fastcsv

    monkeypatch.setattr(fastcsv, "_polars", None)  # polars not loaded: pandas in parts
    body = _random_numeric_csv(random.Random(1), 60000, 10, "f")
    assert len(body) >= fastcsv.MIN_PARALLEL_BYTES
    _assert_same_frame(codecs.read_structured_input(body, "text/csv"), pd.read_csv(io.BytesIO(body)))


@pytest.mark.parametrize(
    "body",
    [
        b"a\n" + b"1\n" * 50,  # one column: blank lines count there
        b'a,b\n"1",2\n' + b"1,2\n" * 50,
        b"a,a\n" + b"1,2\n" * 50,
        b"a, b\n" + b"1,2\n" * 50,
        b"a,b\r\n" + b"1,2\r\n" * 50,
        b"a,b\n1,2,3\n" + b"1,2\n" * 50,  # implicit index
        b"a,b\n" + b"1,2\n" * 50 + b"1,2,3\n" + b"1,2\n" * 50,  # too many fields
        b"a,b\n" + b"1,2\n" * 50 + b"x,2\n",  # text
        b"a,b\n" + b"1,2\n" * 50 + b"True,2\n",
        b"a,b\n" + b"1,2\n" * 50 + b"1.5,2\n",  # int in one part, float in another
        b"a,b\n" + b"1,2\n" * 50 + b"99999999999999999999,2\n",
        b"a,b\n" + b"1,\xff\n" * 50,
        b"a,b",
    ],
)
@pytest.mark.parametrize("chunk_rows", [16384, 7])
def test_large_reader_declines_when_not_sure(body, chunk_rows, monkeypatch):
    from drum.model import fastcsv

    monkeypatch.setattr(fastcsv, "CHUNK_ROWS", chunk_rows)
    assert fastcsv.read_large_numeric_csv(body, 2) is None


def test_large_reader_declines_on_one_cpu():
    from drum.model.fastcsv import read_large_numeric_csv

    assert read_large_numeric_csv(b"a,b\n" + b"1,2\n" * 50, 1) is None


def test_large_float_body_is_one_block_the_model_reads_without_a_copy():
    from drum.model.fastcsv import read_large_numeric_csv

    body = _random_numeric_csv(random.Random(7), 3000, 6, "f")
    frame = read_large_numeric_csv(body, 3)
    assert frame is not None
    matrix = frame.to_numpy()
    assert all(np.shares_memory(matrix, frame[name].to_numpy()) for name in frame.columns)


@pytest.mark.parametrize("cut", ["no trailing newline", "blank line", "trailing blank lines"])
def test_large_reader_agrees_with_pandas_on_line_ends(cut):
    from drum.model.fastcsv import read_large_numeric_csv

    body = _random_numeric_csv(random.Random(3), 4000, 4, "fi")
    if cut == "no trailing newline":
        body = body.rstrip(b"\n")
    elif cut == "blank line":
        lines = body.split(b"\n")
        body = b"\n".join(lines[:1500] + [b""] + lines[1500:])
    else:
        body += b"\n\n"
    got = read_large_numeric_csv(body, 3)
    assert got is not None
    _assert_same_frame(got, pd.read_csv(io.BytesIO(body)))


@pytest.mark.parametrize(("row", "columns", "expected"), [
    (b"1,2\n", 2, 16384),  # tiny rows: the row cap
    (b",".join([b"0.1234567890123456"] * 10) + b"\n", 10, (2**20 - 2 * 32768) // 190),  # bounded by text
    (b",".join([b"1"] * 500) + b"\n", 500, (2**17 - 32768) // 500),  # many short words: bounded by words
    (b",".join([b"1.5"] * 20000) + b"\n", 20000, 64),  # huge rows: the floor
])  # fmt: skip
def test_chunk_rows_keep_tokenizer_buffers_small(row, columns, expected):
    from drum.model.fastcsv import _chunk_rows

    data = row * 400
    assert _chunk_rows(data, 0, len(data), columns) == pytest.approx(expected, rel=0.01)


# --- large bodies: polars ------------------------------------------------------------------------


@pytest.fixture
def polars_loaded(monkeypatch):
    from drum.model import fastcsv

    monkeypatch.setattr(fastcsv, "_polars", None)
    assert fastcsv.load_polars()  # a dependency: installed with drum
    return fastcsv


def _assert_pandas_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """pandas' frame: same names, index and dtypes, integers equal, floats equal within one unit in the
    last place (polars rounds correctly, pandas' default parser may not)."""
    assert list(got.columns) == list(want.columns) and got.columns.dtype == want.columns.dtype
    assert type(got.index) is pd.RangeIndex and got.index.equals(want.index)
    assert list(got.dtypes) == list(want.dtypes)
    for name in want.columns:
        a, b = got[name].to_numpy(), want[name].to_numpy()
        if a.dtype == np.int64:
            assert np.array_equal(a, b)
        else:
            np.testing.assert_array_max_ulp(a, b, maxulp=1)
            assert np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize(("rows", "width", "kinds"), [
    (3000, 10, "f"), (2000, 7, "if"), (20000, 2, "fi"), (5, 3, "f"), (500, 40, "ifm"),
])  # fmt: skip
def test_polars_reader_gives_pandas_frame(polars_loaded, rows, width, kinds):
    body = _random_numeric_csv(random.Random(rows + width), rows, width, kinds)
    got = polars_loaded.read_numeric_csv_polars(body)
    assert got is not None
    _assert_pandas_frame(got, pd.read_csv(io.BytesIO(body)))


def test_polars_float_frame_is_one_writable_block(polars_loaded):
    body = _random_numeric_csv(random.Random(5), 3000, 6, "f")
    frame = polars_loaded.read_numeric_csv_polars(body)
    assert frame is not None
    matrix = frame.to_numpy()
    assert all(np.shares_memory(matrix, frame[name].to_numpy()) for name in frame.columns)
    frame.iloc[0, 0] = 1.0  # the model may write into its input
    mixed = polars_loaded.read_numeric_csv_polars(_random_numeric_csv(random.Random(6), 300, 4, "if"))
    assert mixed is not None
    mixed.iloc[0, 0] = 7


_TOKENS = ["1", "-2", "007", "3.5", "-.5", "5.", "1e5", "2E-3", "+1.5", "+2", "", "nan", "NaN", "NAN", "-nan",
           "inf", "-Infinity", "INF", "NA", "x", "True", " 1", "1 ", "0x1", "1_000", "9223372036854775807",
           "9223372036854775808", "-9223372036854775809", "1e400", "1e-400", "--5", "1d5"]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_polars_reader_is_pandas_or_declines_on_odd_values(polars_loaded, seed):
    """Tables of plain numbers with an odd token here and there (before and after polars' 100 rows of
    type inference): whatever polars accepts is exactly what pandas gives."""
    rng = random.Random(seed)
    width, rows = rng.randint(2, 4), rng.choice([20, 150])
    lines = [",".join(f"c{i}" for i in range(width))]
    for _ in range(rows):
        values = [rng.choice(["4", "-1", "0.25", "6e1"][: 1 + i % 4]) for i in range(width)]
        if rng.random() < 0.03:
            values[rng.randrange(width)] = rng.choice(_TOKENS)
        lines.append(",".join(values))
    body = ("\n".join(lines) + rng.choice(["\n", "", "\n\n"])).encode()
    got = polars_loaded.read_numeric_csv_polars(body)
    if got is not None:
        _assert_pandas_frame(got, pd.read_csv(io.BytesIO(body)))


@pytest.mark.parametrize(
    "body",
    [
        b"a,b\n" + b"1.5,2\n" * 200 + b"NAN,2\n",  # pandas: text; polars: NaN
        b"a,b\n" + b"1.5,2\n" * 200 + b"nan,2\n",
        b"a,b\n" + b"1.5,2\n" * 200 + b"inf,2\n",
        b"a,b\n" + b"1.5,2.5\n" * 200 + b"NAN,2.5\n",  # all floats: one block
        b"a,b\n" + b"1.5,2.5\n" * 200 + b"-inf,2.5\n",
        b"a,b\n" + b"1.5,2\n" * 200 + b",2\n",  # missing value
        b"a,b\n" + b"1,2\n" * 200 + b"1.5,2\n",  # int inferred, float later
        b"a,b\n" + b"1,2\n" * 200 + b"99999999999999999999,2\n",
        b"a,b\n" + b"1,2\n" * 50 + b"\n" + b"1,2\n" * 50,  # a blank line: pandas skips it
        b"a,b\n" + b"1,2\n" * 50 + b"1,2,3\n",
        b"a,b\n" + b"1,2\n" * 50 + b"1\n",
        b"a,b\n1,2,3\n" + b"1,2\n" * 50,  # implicit index
        b'a,b\n"1",2\n' + b"1,2\n" * 50,
        b"a,a\n" + b"1,2\n" * 50,
        b"a, b\n" + b"1,2\n" * 50,
        b"a,b\n" + b"true,2\n" * 50,
        b"a,b\n" + b"1, 2\n" * 50,
        b"a,b\n" + b"1,\xff\n" * 50,
        b"a,b\n",
        b"a\n" + b"1\n" * 50,
    ],
)
def test_polars_reader_declines_when_not_sure(polars_loaded, body):
    assert polars_loaded.read_numeric_csv_polars(body) is None


def test_polars_reader_is_off_until_loaded(monkeypatch):
    from drum.model import fastcsv

    monkeypatch.setattr(fastcsv, "_polars", None)
    assert fastcsv.read_numeric_csv_polars(b"a,b\n1,2\n") is None


def test_large_bodies_go_to_polars_then_to_pandas_parts(polars_loaded, monkeypatch):
    calls: list[str] = []
    parts = polars_loaded.read_large_numeric_csv
    monkeypatch.setattr(polars_loaded, "read_large_numeric_csv", lambda data: calls.append("parts") or parts(data))
    body = _random_numeric_csv(random.Random(1), 60000, 10, "f")
    assert len(body) >= polars_loaded.MIN_PARALLEL_BYTES
    _assert_pandas_frame(codecs.read_structured_input(body, "text/csv"), pd.read_csv(io.BytesIO(body)))
    assert calls == []
    blank = body.replace(b"\n", b"\n\n", 1)  # polars declines a blank line; the parts read it as pandas does
    _assert_same_frame(codecs.read_structured_input(blank, "text/csv"), pd.read_csv(io.BytesIO(blank)))
    assert calls == ["parts"]


@pytest.mark.parametrize(("target", "predictor", "setting", "loads"), [
    ("REGRESSION", True, None, True), ("BINARY", True, "true", True), ("UNSTRUCTURED", True, None, False),
    ("REGRESSION", False, None, False), ("REGRESSION", True, "false", False),
])  # fmt: skip
def test_csv_reader_is_loaded_for_structured_models_only(monkeypatch, target, predictor, setting, loads):
    from types import SimpleNamespace

    from drum.cli import server
    from drum.config.settings import Settings
    from drum.model.target import TargetType

    calls: list[bool] = []
    monkeypatch.setattr(server, "enable_polars", lambda: calls.append(True))
    enabled = Settings.read({} if setting is None else {"DRUM_POLARS_CSV": setting}).polars_csv
    context = SimpleNamespace(predictor=object() if predictor else None, target_type=TargetType[target])
    server.load_csv_reader(context, enabled)  # type: ignore[arg-type]
    assert calls == ([True] if loads else [])


def test_load_polars_without_polars_or_with_a_broken_one(monkeypatch, caplog):
    import sys
    from types import SimpleNamespace

    from drum.model import fastcsv

    monkeypatch.setattr(fastcsv, "_polars", None)
    monkeypatch.setitem(sys.modules, "polars", None)  # not installed: import fails
    assert fastcsv.load_polars() is False

    class Panic(BaseException):
        pass

    def broken(data):
        raise Panic("illegal instruction")

    fake = SimpleNamespace(read_csv=broken, exceptions=SimpleNamespace(PanicException=Panic))
    monkeypatch.setitem(sys.modules, "polars", fake)
    assert fastcsv.load_polars() is False
    assert "polars does not work here" in caplog.text
    assert fastcsv._polars is None and fastcsv.read_numeric_csv_polars(b"a,b\n1,2\n") is None


FORK_PROBE = """
import os, sys
from drum.model import fastcsv

assert fastcsv.load_polars()
body = b"a,b\\n" + b"0.123456789,42\\n" * 80000
assert len(body) >= fastcsv.MIN_PARALLEL_BYTES
pid = os.fork()
if pid == 0:  # polars' threads are gone here: the reader must not touch polars (a read would hang)
    frame = fastcsv.read_plain_numeric_csv(body)
    ok = frame is not None and frame.shape == (80000, 2) and not fastcsv.load_polars()
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), fastcsv.read_numeric_csv_polars(body) is not None)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_process_forked_after_polars_started_reads_with_pandas():
    import signal

    probe = subprocess.Popen([sys.executable, "-c", FORK_PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = probe.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(probe.pid, signal.SIGKILL)  # the hung child too
        probe.communicate()
        pytest.fail("the forked child hung reading with polars")
    assert probe.returncode == 0, stderr[-2000:]
    assert stdout.split() == ["0", "True"]  # the child read with pandas; the parent still uses polars


def _reference_plain_table(data: bytes):
    """The fast path's first form, one regex match per value: names and (dtype, values) per column."""
    import re

    integer = re.compile(rb"-?\d{1,18}")
    number = re.compile(rb"-?(?:\d{1,18}|(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")
    name = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-:/\[\]()]*")
    if len(data) > MAX_FAST_BYTES or b'"' in data or b" " in data or b"\t" in data:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    lines = (data[:-1] if data.endswith(b"\n") else data).split(b"\n")
    if len(lines) < 2:
        return None
    try:
        names = lines[0].decode("ascii").split(",")
    except UnicodeDecodeError:
        return None
    if len(set(names)) != len(names) or not all(name.fullmatch(n) for n in names):
        return None
    rows = [line.split(b",") for line in lines[1:]]
    if any(len(row) != len(names) for row in rows):
        return None
    columns = []
    for values in zip(*rows, strict=True):
        if all(integer.fullmatch(v) for v in values):
            columns.append(np.array([int(v) for v in values], dtype=np.int64))
        elif all(number.fullmatch(v) for v in values):
            columns.append(np.array([float(v) for v in values], dtype=np.float64))
        else:
            return None
    return tuple(names), columns


def test_plain_tables_are_the_per_value_matchings_tables_bit_for_bit():
    """One match per line and one conversion per table give the names, dtypes and values (bit for bit) of
    matching every value, and decline the same bodies."""
    from drum.model.fastcsv import parse_plain_numeric_csv

    rng = random.Random(11)
    kinds: dict[str, int] = collections.Counter()
    good = ["0", "-0", "7", "-12", "007", "123456789012345678", "1.5", "-2.25", ".5", "5.", "1e5", "1E-3",
            "2.5e+10", "-.5e2", "0.1", "-0.0", "1e400", "3.14159265358979323846"]  # fmt: skip
    bad = ["", "+1", "1234567890123456789", "inf", "nan", "1.2.3", "e5", "1e", "-", ".", "1_0", "0x1", "é"]
    names = ["a", "b", "f0", "x_1", "A", "B1", "a a", "1x"]
    for trial in range(3000):
        width, height = rng.randint(1, 5), rng.randint(1, 4)
        pool = rng.sample(good, 4) + (rng.sample(bad, 1) if trial % 4 == 0 else [])
        lines = [",".join(rng.choice(names) for _ in range(width)) if trial % 7 == 0 else ",".join(
            rng.sample(names[:6], width))]  # fmt: skip
        lines += [",".join(rng.choice(pool) for _ in range(width + (trial % 29 == 0))) for _ in range(height)]
        body = ("\n".join(lines) + rng.choice(["", "\n"])).encode()
        want, got = _reference_plain_table(body), parse_plain_numeric_csv(body)
        kinds[want is None and "declined" or "".join(sorted({c.dtype.kind for c in want[1]}))] += 1
        if want is None:
            assert got is None, body
            continue
        assert got is not None and got.names == want[0], body
        for column, expected in zip(got.columns, want[1], strict=True):
            assert column.dtype == expected.dtype and column.tobytes() == expected.tobytes(), body
    assert min(kinds[k] for k in ("declined", "i", "f", "fi")) > 100, kinds  # every outcome, often
