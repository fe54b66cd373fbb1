"""Read a large CSV file in chunks of whole records that parse as they would in the whole file.

`drum score` reads inputs (and shows outputs) larger than its memory budget chunk by chunk. Each
chunk is the header plus whole records (a newline inside a quoted field never ends a chunk), parsed
as DRUM parses request bytes (`codecs.read_structured_input`). pandas infers column types per
chunk, so a first pass (`scan`) learns what every column is in the whole file, and `parse` then
gives each chunk the whole file's types: an integer column with a missing value somewhere is float
everywhere, a column with text somewhere is text everywhere (the original tokens, e.g. `01`), a
boolean column with a missing value somewhere holds objects. Chunks get the whole file's row index.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from drum.errors import DrumCommonException
from drum.model import codecs

QUOTE = ord('"')

KEEP, FLOAT, TEXT, OBJECT = "keep", "float", "text", "object"


class NotChunkable(Exception):
    """The file cannot be split safely (e.g. no header line); read it whole instead."""


def _record_end(buffer: bytes | bytearray, start: int, stop: int) -> int:
    """Position after the last newline in buffer[start:stop] that ends a record (even number of quote
    characters since `start`, which is a record start), or -1."""
    pos = stop
    while True:
        newline = buffer.rfind(b"\n", start, pos)
        if newline < 0:
            return -1
        if buffer.count(b'"', start, newline) % 2 == 0:
            return newline + 1
        pos = newline


def _first_record_end(buffer: bytes | bytearray) -> int:
    """Position after the first newline that ends a record, or -1."""
    quotes = 0
    pos = 0
    while True:
        newline = buffer.find(b"\n", pos)
        if newline < 0:
            return -1
        quotes += buffer.count(b'"', pos, newline)
        if quotes % 2 == 0:
            return newline + 1
        pos = newline + 1


def iter_chunks(path: str, chunk_bytes: int) -> Iterator[bytes]:
    """Header + whole records, about `chunk_bytes` of records each (at least one record). Blank lines
    never make a chunk of their own (they are rows of a one-column file): they join the chunk before."""
    for chunk in iter_chunk_ranges(path, chunk_bytes):
        yield chunk.header + chunk.body


@dataclass
class ChunkRange:
    """One chunk of `iter_chunks`: the file's header, and the chunk's records at bytes [start, stop)."""

    header: bytes
    start: int
    stop: int
    body: bytes


def iter_chunk_ranges(path: str, chunk_bytes: int) -> Iterator[ChunkRange]:
    """`iter_chunks`' chunks with where their records lie in the file (for readers that seek to them)."""
    pending: ChunkRange | None = None
    position = 0
    for header, body in _raw_chunks(path, chunk_bytes):
        position = position or len(header)
        start, position = position, position + len(body)
        if pending is not None and not body.strip():
            pending = ChunkRange(header, pending.start, position, pending.body + body)
            continue
        if pending is not None:
            yield pending
        pending = ChunkRange(header, start, position, body)
    if pending is not None:
        yield pending


def _raw_chunks(path: str, chunk_bytes: int) -> Iterator[tuple[bytes, bytes]]:
    with open(path, "rb") as f:
        buffer = bytearray(f.read(max(chunk_bytes, 65536)))
        end = _first_record_end(buffer)
        while end < 0:
            more = f.read(max(chunk_bytes, 65536))
            if not more:
                raise NotChunkable("no complete header line")
            buffer += more
            end = _first_record_end(buffer)
        header = bytes(buffer[:end])
        if not header.strip():
            raise NotChunkable("the file starts with a blank line")
        del buffer[:end]
        eof = False
        while True:
            while not eof and len(buffer) < chunk_bytes:
                more = f.read(chunk_bytes - len(buffer))
                eof = not more
                buffer += more
            if eof and len(buffer) <= chunk_bytes:
                if buffer:
                    yield header, bytes(buffer)
                return
            cut = _record_end(buffer, 0, chunk_bytes)
            while cut < 0:  # a record longer than a chunk: read on to its end
                cut = _first_record_end(buffer)
                if cut < 0:
                    more = f.read(chunk_bytes)
                    if not more:
                        cut = len(buffer)
                    buffer += more
            yield header, bytes(buffer[:cut])
            del buffer[:cut]


def _kind(series: pd.Series) -> str:
    missing = series.isna()
    if missing.all():
        return "empty"
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) == "boolean":
        return "bool"
    return "text"


@dataclass
class ColumnTypes:
    """What each column is in the whole file (from `scan`), and how many rows it has."""

    columns: list[str] = field(default_factory=list)
    rows: int = 0
    chunks: int = 0
    kinds: dict[str, set[str]] = field(default_factory=dict)
    missing: dict[str, bool] = field(default_factory=dict)
    #: Blank lines of a one-column file are rows (DRUM's input reading), else skipped (`pd.read_csv`).
    blank_rows: bool = True

    def add(self, frame: pd.DataFrame) -> None:
        if self.chunks == 0:
            self.columns = list(frame.columns)
        elif list(frame.columns) != self.columns:
            raise NotChunkable("chunks have different columns")
        self.chunks += 1
        self.rows += len(frame)
        for name in self.columns:
            series = frame[name]
            self.kinds.setdefault(name, set()).add(_kind(series))
            self.missing[name] = self.missing.get(name, False) or bool(series.isna().any())

    def target(self, name: str) -> str:
        """KEEP, FLOAT (int chunks become float), TEXT (non-text chunks are re-read as text) or OBJECT
        (bool chunks become objects, for the missing values elsewhere)."""
        kinds = self.kinds.get(name, set())
        present = kinds - {"empty"}
        if not present:
            return KEEP
        if present == {"bool"}:
            return OBJECT if self.missing.get(name) else KEEP
        if len(kinds) == 1:
            return KEEP
        if present <= {"int", "float"}:
            return FLOAT
        return TEXT


def read_frame(data: bytes, dtype: dict[str, object] | None = None, blank_rows: bool = True) -> pd.DataFrame:
    """`codecs.read_structured_input` for CSV, optionally with per-column dtypes (same errors). With
    `blank_rows=False`, plain `pd.read_csv` (blank lines are skipped also in a one-column file)."""
    if not dtype and blank_rows:
        return codecs.read_structured_input(data, "text/csv")
    try:
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=dtype)
        except UnicodeDecodeError:
            raise DrumCommonException("Supplied CSV input file encoding must be UTF-8.") from None
        if frame.shape[1] == 1 and blank_rows:
            frame = pd.read_csv(io.BytesIO(data), skip_blank_lines=False, dtype=dtype)
        return frame
    except pd.errors.ParserError:
        raise DrumCommonException(f"Pandas failed to read input binary data {data!r}") from None


def scan(path: str, chunk_bytes: int, blank_rows: bool = True) -> ColumnTypes:
    """First pass: the whole file's column types and row count, one chunk in memory at a time."""
    types = ColumnTypes(blank_rows=blank_rows)
    for chunk in iter_chunks(path, chunk_bytes):
        types.add(read_frame(chunk, blank_rows=blank_rows))
    return types


def parse(data: bytes, types: ColumnTypes, offset: int) -> pd.DataFrame:
    """One chunk, with the whole file's column types and row index (starting at `offset`)."""
    frame = read_frame(data, blank_rows=types.blank_rows)
    reread: dict[str, object] = {}
    cast: dict[str, object] = {}
    for name in types.columns:
        if name not in frame:
            continue
        target, kind = types.target(name), _kind(frame[name])
        if target == FLOAT and kind == "int":
            reread[name] = "float64"
        elif target == TEXT and kind != "text":
            reread[name] = str
        elif target == OBJECT and kind == "bool" and frame[name].dtype != object:
            cast[name] = object
    if reread:
        frame = read_frame(data, reread, types.blank_rows)
    if cast:
        frame = frame.astype(cast)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame
