"""A fast path for the small, plain numeric CSV bodies that most prediction requests carry.

`pandas.read_csv` costs ~0.5 ms even for one row (engine set-up, type inference, block building),
which dominates a small prediction. `read_plain_numeric_csv` parses only bodies whose result is
certain to equal `pandas.read_csv(io.BytesIO(body))`: a header of distinct, non-empty, unquoted
names and rows of plain decimal numbers, all with the header's number of fields, no blank lines,
no quotes, no whitespace, no missing values. Anything else returns None and pandas parses it.

Columns whose every value is an integer of at most 18 digits become int64, the rest float64
(pandas' inference for such data); floats are correctly rounded (pandas' default parser may differ
by one unit in the last place, far below the 1e-9 that predictions are compared at).

Large bodies go to polars' multithreaded CSV reader where the server enabled it (`enable_polars`: polars is
loaded by the first large body, `load_polars`; `read_numeric_csv_polars`,
~2.5x faster than one `pandas.read_csv` on 2 cores). Its result is used only when it is certain to be
pandas' frame: a plain header, no quotes, every column Int64 or Float64 with no missing value and
every float finite (pandas and polars disagree on spellings of NaN such as "NAN"), else None. Its
floats are correctly rounded, so they may differ from pandas' by one unit in the last place.

Otherwise large bodies (`read_large_numeric_csv`) are parsed by pandas itself, in parallel: the records after
a plain header are cut at line ends into one part per CPU, each part is read by `pandas.read_csv`
(which releases the GIL while it tokenises and converts) with the header's names, in chunks of rows
(less parser memory than one whole read), and the columns are joined. Every value comes from
pandas' own parser, so it is bit for bit what one whole read gives; the result is used only when
every chunk has a plain row index and the same int64 / float64 dtype per column (pandas infers
types over all rows at once), else None.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Bodies above this size go to pandas: its C parser costs ~0.3 ms to start but less per value, and
#: overtakes this one at about 50 rows of 10 floats (measured).
MAX_FAST_BYTES = 8192
#: Bodies of at least this size are parsed by pandas in parallel parts (when more than one CPU).
MIN_PARALLEL_BYTES = 1 << 20
#: At most this many parts (and threads).
MAX_PARTS = 8
#: Each part is read from the body `READ_BYTES` at a time and tokenised in chunks of rows whose
#: tokenizer buffers fit in `TOKEN_BUFFER_BYTES`, at most `CHUNK_ROWS` rows. pandas' tokenizer holds a
#: chunk's text plus the last read, and 8-byte word pointers and offsets for its words plus one per byte
#: of the last read; it trims them after each chunk and grows them by doubling. Kept under the server's
#: mmap threshold (DRUM_MALLOC_MMAP_THRESHOLD, 2 MiB) even when doubled, they are reused from the heap
#: instead of being mapped, faulted in and unmapped again chunk after chunk (with pandas' own 256 KiB
#: reads and 16,384-row chunks: ~6,000 page faults in a 20 MB parse).
CHUNK_ROWS = 16384
READ_BYTES = 32768
TOKEN_BUFFER_BYTES = 1 << 20

_INTEGER = re.compile(rb"-?\d{1,18}")
_NUMBER = re.compile(rb"-?(?:\d{1,18}|(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")
_NUMBER_LINE = re.compile(rb"(?:%s)(?:,(?:%s))*" % (_NUMBER.pattern, _NUMBER.pattern))
_NOT_INTEGER = re.compile(rb"[.eE]")
#: A header name pandas keeps verbatim: no quotes, no surrounding blanks, no special leading chars.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-:/\[\]()]*")


class PlainTable:
    """A parsed plain numeric CSV: column names and its values, either as one (rows, columns) array of one
    dtype (`matrix`, when every column is int64 or every column float64) or as one int64 or float64 array
    per column (`columns`, views of `matrix` when there is one)."""

    __slots__ = ("names", "matrix", "_columns")

    def __init__(
        self, names: tuple[str, ...], columns: tuple[np.ndarray, ...] | None = None, matrix: np.ndarray | None = None
    ) -> None:
        self.names = names
        self.matrix = matrix
        self._columns = columns

    @property
    def columns(self) -> tuple[np.ndarray, ...]:
        if self._columns is None:
            assert self.matrix is not None
            self._columns = tuple(self.matrix.T)
        return self._columns

    @property
    def dtypes(self) -> tuple[str, ...]:
        if self.matrix is not None:
            return (self.matrix.dtype.str,) * len(self.names)
        return tuple(c.dtype.str for c in self.columns)

    def __len__(self) -> int:
        return len(self.matrix) if self.matrix is not None else len(self.columns[0])

    def frame(self) -> pd.DataFrame:
        """The frame `pandas.read_csv` gives for this table."""
        columns = column_index(self.names)
        if self.matrix is not None:
            return pd.DataFrame(self.matrix, columns=columns)
        first = self.columns[0].dtype
        if all(c.dtype == first for c in self.columns):
            return pd.DataFrame(np.column_stack(self.columns), columns=columns)
        return pd.DataFrame(dict(zip(self.names, self.columns, strict=True)), columns=columns)

    @staticmethod
    def concat(tables: list[PlainTable]) -> PlainTable:
        """Rows of tables with the same names and dtypes, one after the other."""
        if all(t.matrix is not None for t in tables):
            return PlainTable(tables[0].names, matrix=np.concatenate([t.matrix for t in tables]))
        columns = tuple(np.concatenate(parts) for parts in zip(*(t.columns for t in tables), strict=True))
        return PlainTable(tables[0].names, columns)


def column_dtypes(frame: pd.DataFrame) -> list[Any]:
    """The frame's column dtypes, from pandas' block arrays (`frame.dtypes` builds a Series, ~14 µs)."""
    try:
        return [array.dtype for array in frame._mgr.arrays]
    except AttributeError:  # another pandas layout
        return list(frame.dtypes)


@lru_cache(maxsize=256)
def column_index(names: tuple[str, ...]) -> pd.Index:
    """A frame's column index for these names, built once (pandas' string index costs ~35 µs per frame)."""
    return pd.Index(list(names))


def read_plain_numeric_csv(data: bytes) -> pd.DataFrame | None:
    """The frame `pandas.read_csv` gives for a plain numeric CSV (small, or large enough to parse in
    parallel), or None when not sure."""
    if len(data) >= MIN_PARALLEL_BYTES:
        frame = read_numeric_csv_polars(data)
        return read_large_numeric_csv(data) if frame is None else frame
    table = parse_plain_numeric_csv(data)
    return None if table is None else table.frame()


_polars: ModuleType | None = None
#: True in a process forked after polars' threads started: they are gone there, and a read would hang.
_forked_after_polars = False
#: Set by `enable_polars`: the first large body loads polars.
_polars_enabled = False
_polars_lock = threading.Lock()


def enable_polars() -> None:
    """Let large bodies be read by polars, loaded by the first of them (~0.2 s once, and ~40 MB of RSS
    that a server receiving no large body never pays). Called in the process that serves requests."""
    global _polars_enabled
    _polars_enabled = True


def _polars_module() -> ModuleType | None:
    """polars, loaded now if enabled and not yet loaded (once per process; None when it cannot be)."""
    global _polars_enabled
    if _polars is None and _polars_enabled:
        with _polars_lock:
            if _polars is None and _polars_enabled and not load_polars():
                _polars_enabled = False
                logger.info("polars is not available: large CSV bodies are read by pandas (DRUM_POLARS_CSV)")
    return _polars


def _forget_polars() -> None:
    global _polars, _forked_after_polars
    _polars, _forked_after_polars = None, True


def load_polars() -> bool:
    """Import polars and start its threads (one tiny read), so that `read_numeric_csv_polars` uses it;
    False when it is not installed or works not. Called once per serving process (by the first large body,
    see `enable_polars`), after any fork of the server's own: the import costs ~0.2 s. A process forked
    after it (by model code) reads with pandas: polars' threads do not survive a fork."""
    global _polars
    if _polars is None:
        if _forked_after_polars:
            return False
        try:
            import polars
        except ImportError:
            return False
        try:
            polars.read_csv(b"a,b\n1,2.5\n")
        except (Exception, polars.exceptions.PanicException) as exc:  # a panic is a BaseException
            logger.warning("polars does not work here (%s): large CSV bodies are read by pandas", exc)
            return False
        _polars = polars
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_polars)
    return True


def _plain_body(data: bytes) -> list[str] | None:
    """The column names of a body that starts with a plain header line and has no quote, or None."""
    header_end = data.find(b"\n")
    if header_end < 0 or b'"' in data:
        return None
    return _plain_names(data[:header_end])


def read_numeric_csv_polars(data: bytes) -> pd.DataFrame | None:
    """`pandas.read_csv(io.BytesIO(data))` of a plain numeric CSV read by polars, or None when polars is
    not loaded (`enable_polars`, `load_polars`) or the result may differ from pandas' (see the module docstring)."""
    pl = _polars_module()
    names = None if pl is None else _plain_body(data)
    if pl is None or names is None:
        return None
    try:
        table = pl.read_csv(data, has_header=True)
    except (Exception, pl.exceptions.PanicException):  # a panic is a BaseException
        return None
    types = table.dtypes
    if table.columns != names or table.height == 0 or any(t not in (pl.Int64, pl.Float64) for t in types):
        return None
    if any(table.null_count().row(0)):
        return None
    if all(t == pl.Float64 for t in types):
        block = table.to_numpy(order="fortran")  # a new array: the frame's one 2-D block, no copy there
        del table
        if not np.isfinite(block).all():
            return None
        return pd.DataFrame(block, columns=column_index(tuple(names)), copy=False)
    columns: dict[str, np.ndarray] = {}
    for name, kind in zip(names, types, strict=True):
        column = table.get_column(name).to_numpy(writable=True)
        if kind == pl.Float64 and not np.isfinite(column).all():
            return None
        columns[name] = column
    del table
    return pd.DataFrame(columns, columns=names, index=pd.RangeIndex(len(columns[names[0]])), copy=False)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_pool: ThreadPoolExecutor | None = None


def _parts_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        # One thread per CPU: more only contend (parts of concurrent requests queue for them).
        _pool = ThreadPoolExecutor(min(MAX_PARTS, _cpus()), thread_name_prefix="drum-csv")
    return _pool


class _Slice:
    """A read-only binary file over `view[start:stop]`: pandas reads a part without a copy of it, at
    most `READ_BYTES` per call (a short read is not the end: only an empty one is)."""

    def __init__(self, view: memoryview, start: int, stop: int) -> None:
        self.view, self.pos, self.stop = view, start, stop

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > READ_BYTES:
            size = READ_BYTES
        end = min(self.stop, self.pos + size)
        chunk = bytes(self.view[self.pos : end])
        self.pos = end
        return chunk

    def __iter__(self):  # pandas asks file-likes to be iterable; it only calls read()
        return iter(())


def _plain_names(header: bytes) -> list[str] | None:
    """The column names of a plain header line (at least two, distinct, verbatim for pandas), or None."""
    try:
        names = header.decode("ascii").split(",")
    except UnicodeDecodeError:
        return None
    if len(names) < 2 or len(set(names)) != len(names) or not all(_NAME.fullmatch(n) for n in names):
        return None
    return names


def _read_part(view: memoryview, start: int, stop: int, names: list[str]) -> list[pd.DataFrame] | None:
    """Records `view[start:stop]` (whole lines, no header) as pandas reads them, in row chunks (the
    tokenizer's buffers stay small: a whole read holds ~1.4x the text there); None when quoted."""
    if view.obj.find(b'"', start, stop) >= 0:
        return None
    rows = _chunk_rows(view.obj, start, stop, len(names))
    with pd.read_csv(_Slice(view, start, stop), header=None, names=names, chunksize=rows) as reader:
        return list(reader)


def _chunk_rows(data: bytes, start: int, stop: int, columns: int) -> int:
    """Rows per chunk whose tokenizer buffers stay within `TOKEN_BUFFER_BYTES` (row size sampled from the
    first `READ_BYTES` of the part), between 64 and `CHUNK_ROWS`."""
    sample = min(stop, start + READ_BYTES)
    row_bytes = (sample - start) / max(1, data.count(b"\n", start, sample))
    by_text = (TOKEN_BUFFER_BYTES - 2 * READ_BYTES) / max(1.0, row_bytes)
    by_words = (TOKEN_BUFFER_BYTES // 8 - READ_BYTES) / columns
    return max(64, min(CHUNK_ROWS, int(by_text), int(by_words)))


def _join_parts(names: list[str], parts: list[list[pd.DataFrame] | None]) -> pd.DataFrame | None:
    """One frame of the parts' rows, in order, when every part has a plain row index and the same int64
    or float64 dtype per column (else None: pandas infers types over all rows at once). Each part's
    frames are released as they are copied; an all-float64 body becomes one 2-D block (what the model
    reads without another copy)."""
    if any(part is None for part in parts):
        return None
    frames = [frame for part in parts if part is not None for frame in part]
    parts.clear()  # the frames are released one by one below
    if not frames:
        return None
    if not all(isinstance(f.index, pd.RangeIndex) and list(f.columns) == names for f in frames):
        return None
    dtypes = []
    for name in names:
        found = {f[name].dtype for f in frames}
        if len(found) != 1 or next(iter(found)) not in (np.int64, np.float64):
            return None
        dtypes.append(next(iter(found)))
    rows = sum(len(f) for f in frames)
    if all(d == np.float64 for d in dtypes):
        block = np.empty((len(names), rows), dtype=np.float64)
        at = 0
        while frames:
            frame = frames.pop(0)
            block[:, at : at + len(frame)] = frame.to_numpy().T
            at += len(frame)
        return pd.DataFrame(block.T, columns=column_index(tuple(names)), copy=False)
    columns: dict[str, np.ndarray] = {}
    for name in names:
        columns[name] = np.concatenate([f[name].to_numpy() for f in frames])
    return pd.DataFrame(columns, columns=names, index=pd.RangeIndex(rows), copy=False)


def read_large_numeric_csv(data: bytes, parts: int | None = None) -> pd.DataFrame | None:
    """`pandas.read_csv(io.BytesIO(data))` read as `parts` parts in parallel (default: one per CPU),
    or None when the body is not a plain numeric CSV of at least two columns or a part disagrees."""
    parts = min(parts or _cpus(), MAX_PARTS)
    names = None if parts < 2 else _plain_body(data)
    if names is None:
        return None
    bounds = [data.find(b"\n") + 1]
    size = len(data) - bounds[0]
    for k in range(1, parts):
        cut = data.find(b"\n", bounds[0] + size * k // parts)
        cut = len(data) if cut < 0 else cut + 1
        if cut > bounds[-1] and cut < len(data):
            bounds.append(cut)
    bounds.append(len(data))
    view = memoryview(data)
    pending = [
        _parts_pool().submit(_read_part, view, bounds[i], bounds[i + 1], names) for i in range(1, len(bounds) - 1)
    ]
    results: list[list[pd.DataFrame] | None] = []
    for job in [None, *pending]:  # wait for every part, even after a failure
        try:
            results.append(_read_part(view, bounds[0], bounds[1], names) if job is None else job.result())
        except Exception:  # pandas decides errors and their messages on the whole body
            results.append(None)
    del pending, job
    return _join_parts(names, results)


@lru_cache(maxsize=256)
def _table_names(header: bytes) -> tuple[str, ...] | None:
    """The column names of a header line pandas keeps as they are (distinct, `_NAME`s), else None."""
    try:
        names = tuple(header.decode("ascii").split(","))
    except UnicodeDecodeError:
        return None
    if len(set(names)) != len(names) or not all(_NAME.fullmatch(name) for name in names):
        return None
    return names


def parse_plain_numeric_csv(data: bytes) -> PlainTable | None:
    """`data` as a `PlainTable` when it is a small plain numeric CSV, else None."""
    if len(data) > MAX_FAST_BYTES or b'"' in data or b" " in data or b"\t" in data:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    if data.endswith(b"\n"):
        data = data[:-1]
    lines = data.split(b"\n")
    if len(lines) < 2:
        return None
    names = _table_names(lines[0])
    if names is None:
        return None
    width = len(names)
    body = lines[1:]
    for line in body:  # every value a number: one match per line (_INTEGER's values are _NUMBER's too)
        if not _NUMBER_LINE.fullmatch(line):
            return None
    rows = [line.split(b",") for line in body]
    if any(len(row) != width for row in rows):
        return None
    # A number is not _INTEGER's exactly when it has a point or an exponent: a column is int64 when none of
    # its values has, else float64 (pandas' types, as the per-column matching gave them).
    if not any(_NOT_INTEGER.search(line) for line in body):
        return PlainTable(names, matrix=_matrix(rows, int, np.int64))
    if len(rows) == 1:
        floats = [_NOT_INTEGER.search(value) is not None for value in rows[0]]
    else:
        floats = [any(_NOT_INTEGER.search(value) for value in column) for column in zip(*rows, strict=True)]
    if all(floats):
        return PlainTable(names, matrix=_matrix(rows, float, np.float64))
    arrays: list[np.ndarray] = []
    for j, is_float in enumerate(floats):
        kind, dtype = (float, np.float64) if is_float else (int, np.int64)
        arrays.append(np.array([kind(row[j]) for row in rows], dtype=dtype))
    return PlainTable(names, tuple(arrays))


def _matrix(rows: list[list[bytes]], kind: type, dtype: Any) -> np.ndarray:
    """Every value of `rows` converted by `kind`, as one (rows, columns) array."""
    return np.array([kind(value) for row in rows for value in row], dtype=dtype).reshape(len(rows), -1)
