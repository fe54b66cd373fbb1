"""A fast path for the small, plain numeric CSV bodies that most prediction requests carry.

`pandas.read_csv` costs ~0.5 ms even for one row (engine set-up, type inference, block building),
which dominates a small prediction. `read_plain_numeric_csv` parses only bodies whose result is
certain to equal `pandas.read_csv(io.BytesIO(body))`: a header of distinct, non-empty, unquoted
names and rows of plain decimal numbers, all with the header's number of fields, no blank lines,
no quotes, no whitespace, no missing values. Anything else returns None and pandas parses it.

Columns whose every value is an integer of at most 18 digits become int64, the rest float64
(pandas' inference for such data); floats are correctly rounded (pandas' default parser may differ
by one unit in the last place, far below the 1e-9 that predictions are compared at).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

#: Bodies above this size go to pandas, whose C parser is faster per value on large inputs.
MAX_FAST_BYTES = 65536

_INTEGER = re.compile(rb"-?\d{1,18}")
_NUMBER = re.compile(rb"-?(?:\d{1,18}|(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")
#: A header name pandas keeps verbatim: no quotes, no surrounding blanks, no special leading chars.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-:/\[\]()]*")


@dataclass(frozen=True)
class PlainTable:
    """A parsed plain numeric CSV: column names and one int64 or float64 array per column."""

    names: tuple[str, ...]
    columns: tuple[np.ndarray, ...]

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(c.dtype.str for c in self.columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    def frame(self) -> pd.DataFrame:
        """The frame `pandas.read_csv` gives for this table."""
        columns = _index(self.names)
        first = self.columns[0].dtype
        if all(c.dtype == first for c in self.columns):
            return pd.DataFrame(np.column_stack(self.columns), columns=columns)
        return pd.DataFrame(dict(zip(self.names, self.columns, strict=True)), columns=columns)

    @staticmethod
    def concat(tables: list[PlainTable]) -> PlainTable:
        """Rows of tables with the same names and dtypes, one after the other."""
        columns = tuple(np.concatenate(parts) for parts in zip(*(t.columns for t in tables), strict=True))
        return PlainTable(tables[0].names, columns)


@lru_cache(maxsize=256)
def _index(names: tuple[str, ...]) -> pd.Index:
    return pd.Index(list(names))


def read_plain_numeric_csv(data: bytes) -> pd.DataFrame | None:
    """The frame `pandas.read_csv` gives for a small plain numeric CSV, or None when not sure."""
    table = parse_plain_numeric_csv(data)
    return None if table is None else table.frame()


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
    try:
        header = lines[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    names = header.split(",")
    width = len(names)
    if len(set(names)) != width or not all(_NAME.fullmatch(name) for name in names):
        return None
    rows = [line.split(b",") for line in lines[1:]]
    if any(len(row) != width for row in rows):
        return None
    columns = list(zip(*rows, strict=True))
    arrays: list[np.ndarray] = []
    for values in columns:
        if all(_INTEGER.fullmatch(v) for v in values):
            arrays.append(np.array([int(v) for v in values], dtype=np.int64))
        elif all(_NUMBER.fullmatch(v) for v in values):
            arrays.append(np.array([float(v) for v in values], dtype=np.float64))
        else:
            return None
    return PlainTable(tuple(names), tuple(arrays))
