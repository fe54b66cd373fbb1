"""Payload codecs: structured input (CSV, Matrix Market) in, transform multipart and unstructured payloads
out. Structured predictions become bodies in `drum.model.output`.

Everything here works on bytes and DataFrames; nothing knows about HTTP frameworks.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from dataclasses import dataclass

import pandas as pd
from scipy.io import mmread, mmwrite
from scipy.sparse import issparse

from drum.errors import DrumInputError
from drum.model.fastcsv import read_plain_numeric_csv

logger = logging.getLogger("drum.model.codecs")

TEXT_MTX = "text/mtx"
TEXT_PLAIN = "text/plain"
APPLICATION_JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
DEFAULT_CHARSET = "utf-8"

#: Request mimetypes the built-in reader understands, mapped to DRUM payload formats.
MIMETYPE_TO_FORMAT: dict[str | None, str] = {
    None: "csv",
    "": "csv",
    "text/csv": "csv",
    TEXT_PLAIN: "csv",
    TEXT_MTX: "mtx",
}
#: What `/capabilities/` reports for Python models, in DRUM's order.
SUPPORTED_PAYLOAD_FORMATS: dict[str, None] = {"csv": None, "mtx": None}


def is_mimetype_supported(mimetype: str | None) -> bool:
    return MIMETYPE_TO_FORMAT.get(mimetype) in SUPPORTED_PAYLOAD_FORMATS


def mimetype_from_filename(filename: str | None) -> str | None:
    """DRUM decides the mimetype of an uploaded file by its extension alone: `.mtx` or nothing."""
    if not filename:
        return None
    return TEXT_MTX if os.path.splitext(filename)[1] == ".mtx" else None


def read_column_names(data: bytes) -> list[str]:
    """Column names for sparse input: one per line (`X.colnames`, `--sparse-column-file`)."""
    return [line.strip().decode("utf-8") for line in io.BytesIO(data).readlines()]


def read_structured_input(
    data: bytes, mimetype: str | None, sparse_colnames: list[str] | None = None
) -> pd.DataFrame:
    """Parse request bytes as DRUM does: Matrix Market to a sparse frame, anything else as CSV."""
    try:
        if mimetype == TEXT_MTX:
            try:
                matrix = mmread(io.BytesIO(data))
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                raise DrumInputError(f"Failed to read Matrix Market input: {exc}") from None
            return pd.DataFrame.sparse.from_spmatrix(matrix, columns=sparse_colnames)
        fast = read_plain_numeric_csv(data)
        if fast is not None:
            return fast
        try:
            df = pd.read_csv(io.BytesIO(data))
        except UnicodeDecodeError:
            logger.error("A non UTF-8 encoding was encountered while opening the data.")
            raise DrumInputError("Supplied CSV input file encoding must be UTF-8.") from None
        if df.shape[1] == 1:
            # A single column: blank lines are missing values, not separators.
            df = pd.read_csv(io.BytesIO(data), skip_blank_lines=False)
        return df
    except pd.errors.EmptyDataError as exc:  # "No columns to parse from file", as DRUM says
        raise DrumInputError(str(exc)) from None
    except pd.errors.ParserError:
        raise DrumInputError(f"Pandas failed to read input binary data {excerpt(data)}") from None


#: How much of an unreadable payload an error message quotes.
EXCERPT_BYTES = 256


def excerpt(data: bytes) -> str:
    """`data!r` as DRUM quotes it, cut to `EXCERPT_BYTES` (a 100 MB body must not come back in the error)."""
    if len(data) <= EXCERPT_BYTES:
        return repr(data)
    return f"{data[:EXCERPT_BYTES]!r}... ({len(data)} bytes)"


# --- transform responses --------------------------------------------------------------------------


def is_sparse_frame(df: pd.DataFrame) -> bool:
    return hasattr(df, "sparse") or (df.size > 0 and issparse(df.iloc[0].values[0]))


def _serialisable_columns(df: pd.DataFrame) -> pd.DataFrame:
    columns = [str(name).strip().replace("\n", "\\n") for name in df.columns.values]
    columns = [name for name in columns if name]
    if len(columns) != df.shape[1]:
        raise ValueError(
            f"Column name serialization check failed, deserializing column names resulted in {len(columns)}, "
            f"expected {df.shape[1]}\nEnsure there are no column names made up entirely of whitespace"
        )
    df = df.copy(deep=False)
    df.columns = columns
    return df


def transform_csv(df: pd.DataFrame) -> bytes:
    """CSV with CRLF line ends and no trailing line end (DRUM strips it for R clients)."""
    df = _serialisable_columns(df)
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\r\n")
    return buf.getvalue()[:-2].encode("utf-8")


def transform_mtx(df: pd.DataFrame) -> tuple[bytes, bytes]:
    """Matrix Market bytes of a sparse frame and its newline-joined column names."""
    df = _serialisable_columns(df)
    sink = io.BytesIO()
    mmwrite(sink, df.sparse.to_coo())
    return sink.getvalue(), "\n".join(str(c) for c in df.columns.values).encode("utf-8")


@dataclass(frozen=True)
class Multipart:
    body: bytes
    content_type: str


def encode_multipart(fields: list[tuple[str, bytes, str | None]]) -> Multipart:
    """Encode `(name, value, filename)` fields as requests_toolbelt's MultipartEncoder does.

    Fields with a filename are sent as `application/octet-stream` files, the rest as plain values.
    """
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value, filename in fields:
        if filename is None:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        else:
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
                f"\r\nContent-Type: {OCTET_STREAM}\r\n\r\n"
            )
        parts.append(head.encode("utf-8") + value + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return Multipart(b"".join(parts), f"multipart/form-data; boundary={boundary}")


def transform_multipart(out_x: pd.DataFrame, out_y: pd.DataFrame | pd.Series | None) -> Multipart:
    """The `/transform/` response: X as CSV or sparse MTX (+ column names), y echoed as CSV."""
    fields: list[tuple[str, bytes, str | None]] = []
    if is_sparse_frame(out_x):
        payload, colnames = transform_mtx(out_x)
        fields += [("X.format", b"sparse", None), ("X.transformed", payload, "X.transformed")]
        fields.append(("X.colnames", colnames, "X.colnames"))
    else:
        fields += [("X.format", b"csv", None), ("X.transformed", transform_csv(out_x), "X.transformed")]
    if out_y is not None:
        y_frame = out_y.to_frame() if isinstance(out_y, pd.Series) else out_y
        fields += [("y.format", b"csv", None), ("y.transformed", transform_csv(y_frame), "y.transformed")]
    return encode_multipart(fields)


# --- unstructured payloads ------------------------------------------------------------------------


def is_text_mimetype(mimetype: str) -> bool:
    return mimetype.startswith("text/") or mimetype == APPLICATION_JSON


def decode_unstructured(
    data: bytes, mimetype: str | None, charset: str | None
) -> tuple[str | bytes, str, str | None]:
    """Textual mimetypes become `str` (default charset utf-8); others stay bytes."""
    mimetype = mimetype or TEXT_PLAIN
    if is_text_mimetype(mimetype):
        charset = charset or DEFAULT_CHARSET
        return data.decode(charset), mimetype, charset
    return data, mimetype, charset


def encode_unstructured(
    data: str | bytes | None, kwargs: dict | None
) -> tuple[bytes | None, str, str | None]:
    """The hook's return value to `(body, mimetype, charset)` with DRUM's defaults."""
    kwargs = kwargs or {}
    if isinstance(data, (str, type(None))):
        mimetype = kwargs.get("mimetype", TEXT_PLAIN)
        charset = kwargs.get("charset", DEFAULT_CHARSET)
        return (None if data is None else data.encode(charset)), mimetype, charset
    return data, kwargs.get("mimetype", OCTET_STREAM), kwargs.get("charset")

