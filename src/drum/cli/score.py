"""`drum score`: run the model on one input file and write (or print) what DRUM writes.

A structured CSV input larger than `DRUM_SCORE_CHUNK_BYTES` is read and scored chunk by chunk
(`drum.model.csv_chunks`), so memory stays bounded; the output file is the text that scoring the
whole file gives for a model that scores rows independently. On a terminal, a progress bar is drawn
on stderr while chunks are scored.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pandas as pd

from drum.cli.model_setup import load_predictor, model_config
from drum.cli.progress import ProgressBar
from drum.config.settings import get_setting
from drum.errors import DrumCommonException
from drum.model import codecs, csv_chunks
from drum.model.monitoring import attach_monitor
from drum.model.output import prediction_csv
from drum.model.predictor import PredictionInput, Predictor
from drum.model.target import TargetType
from drum.serving.request import parse_options_header

NONE_RESULT = "Return value from prediction is: None (NULL in R)"


# --- unstructured ---------------------------------------------------------------------------------


def _unstructured(predictor: Predictor, options: argparse.Namespace) -> tuple[bytes | str, str | None]:
    query = dict(urllib.parse.parse_qsl(options.query or ""))
    mimetype, params = parse_options_header(options.content_type)
    with open(options.input, "rb") as f:
        data, mimetype, charset = codecs.decode_unstructured(f.read(), mimetype, params.get("charset"))
    kwargs: dict = {"mimetype": mimetype}
    if charset is not None:
        kwargs["charset"] = charset
    kwargs["query"] = query
    value, extra = predictor.predict_unstructured(data, **kwargs)
    _, _, out_charset = codecs.encode_unstructured(value, extra)
    if isinstance(value, bytes):
        return value, None
    return (NONE_RESULT if value is None else value), out_charset


def _write_unstructured(value: bytes | str, charset: str | None, output: str) -> None:
    if isinstance(value, bytes):
        with open(output, "wb") as f:
            f.write(value)
    else:
        with open(output, "w", encoding=charset) as f:
            f.write(value)


# --- structured, whole file -----------------------------------------------------------------------


def _sparse_colnames(options: argparse.Namespace) -> list[str] | None:
    if not getattr(options, "sparse_column_file", None):
        return None
    with open(options.sparse_column_file, "rb") as f:
        return codecs.read_column_names(f.read())


def _score_whole(predictor: Predictor, options: argparse.Namespace) -> str:
    with open(options.input, "rb") as f:
        data = f.read()
    mimetype = codecs.mimetype_from_filename(options.input)
    if predictor.target_type == TargetType.TRANSFORM:
        out, _ = predictor.transform(data, mimetype)  # DRUM's score passes no sparse column names here
        return out.to_csv(index=False)
    result = predictor.predict(PredictionInput.from_file(data, mimetype, _sparse_colnames(options)))
    return prediction_csv(result)


# --- structured, in chunks ------------------------------------------------------------------------


def chunk_size(predictor: Predictor, options: argparse.Namespace) -> int:
    """Bytes of input per chunk, or 0 to score the file whole: Matrix Market input, a `read_input_data`
    hook (it reads any format) and files within DRUM_SCORE_CHUNK_BYTES are scored whole."""
    budget = get_setting("DRUM_SCORE_CHUNK_BYTES")
    if not budget or predictor.has_read_input_data_hook() or not predictor.reads_frames:
        return 0
    if codecs.mimetype_from_filename(options.input) == codecs.TEXT_MTX:
        return 0
    return budget if os.path.getsize(options.input) > budget else 0


def _chunk_output(predictor: Predictor, chunk: bytes, frame: pd.DataFrame, mimetype: str | None) -> pd.DataFrame:
    if predictor.target_type == TargetType.TRANSFORM:
        out, _ = predictor.transform_loaded(frame)
        return out
    result = predictor.predict_loaded(frame, PredictionInput.from_file(chunk, mimetype))
    predictions, extra = result.predictions, result.extra_model_output
    if extra is None:
        return predictions
    # Whole, the predictions' row labels 0..N-1 match both a new frame's and the input's index. Here a
    # new frame's extra output is labelled from 0, one keyed by the input's index from this chunk's offset.
    if not extra.index.equals(pd.RangeIndex(len(extra))):
        predictions.index = pd.RangeIndex(frame.index.start, frame.index.start + len(predictions))
    return predictions.join(extra)


def _numeric_kind(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _score_chunks_once(
    predictor: Predictor,
    path: str,
    budget: int,
    types: csv_chunks.ColumnTypes,
    out: IO[str],
    progress: ProgressBar,
    cast: dict[str, Any],
) -> dict[str, set[Any]]:
    """Score every chunk into `out`; returns the dtypes each numeric output column had."""
    mimetype = codecs.mimetype_from_filename(path)
    columns: list[Any] | None = None
    seen: dict[str, set[Any]] = {}
    offset = 0
    for chunk in csv_chunks.iter_chunks(path, budget):
        frame = csv_chunks.parse(chunk, types, offset)
        output = _chunk_output(predictor, chunk, frame, mimetype)
        if columns is None:
            columns = list(output.columns)
        elif list(output.columns) != columns:
            raise DrumCommonException(
                f"The model's output columns differ between chunks ({columns} and {list(output.columns)}); "
                "set DRUM_SCORE_CHUNK_BYTES=0 to score the input whole."
            )
        for name, dtype in output.dtypes.items():
            if _numeric_kind(dtype):
                seen.setdefault(name, set()).add(dtype)
        if cast:
            output = output.astype({k: v for k, v in cast.items() if k in output.columns})
        out.write(output.to_csv(index=False, header=offset == 0))
        offset += len(frame)
        progress.update(offset)
    return seen


def score_in_chunks(
    predictor: Predictor, path: str, budget: int, out_path: str, types: csv_chunks.ColumnTypes | None = None
) -> int:
    """Score `path` chunk by chunk into `out_path`; returns the number of chunks. If a numeric output column
    has different dtypes in different chunks (int here, float there), it is scored again with each chunk's
    column cast to the common dtype, so the text is what the whole file gives."""
    types = types if types is not None else csv_chunks.scan(path, budget)
    cast: dict[str, Any] = {}
    for _ in range(2):
        with ProgressBar(types.rows, "Scoring") as progress, open(out_path, "w", newline="") as out:
            seen = _score_chunks_once(predictor, path, budget, types, out, progress, cast)
        mixed = {name: np.result_type(*dtypes) for name, dtypes in seen.items() if len(dtypes) > 1}
        if not mixed or cast:
            break
        cast = mixed
    return types.chunks


@contextlib.contextmanager
def _replacing(path: str) -> Iterator[str]:
    """A new file next to `path` that replaces it only when scoring succeeded (as DRUM, which writes
    nothing on failure); devices and pipes (e.g. /dev/stdout) are written directly."""
    if os.path.exists(path) and not os.path.isfile(path):
        yield path
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=".drum-score-", suffix=".partial", dir=directory)
    os.close(fd)
    try:
        yield partial
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(partial, 0o666 & ~mask)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# --- showing the output on stdout ----------------------------------------------------------------


def show_csv(path: str, budget: int) -> str:
    """What DRUM prints without --output: `print(pd.read_csv(output))`. An output larger than the budget
    is read in chunks, keeping only the first and last rows, which are all pandas shows of a long frame."""
    if not budget or os.path.getsize(path) <= budget:
        return repr(pd.read_csv(path))
    try:
        types = csv_chunks.scan(path, budget, blank_rows=False)
    except csv_chunks.NotChunkable:
        return repr(pd.read_csv(path))
    max_rows = pd.get_option("display.max_rows")
    frames = (csv_chunks.parse(chunk, types, 0) for chunk in csv_chunks.iter_chunks(path, budget))
    if not max_rows or types.rows <= max_rows:
        return repr(pd.read_csv(path))  # few (if long) rows: read whole, exactly as DRUM
    keep = max_rows // 2 + 1
    head = tail = None
    offset = 0
    for frame in frames:
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        if head is None or len(head) < keep:
            head = frame.head(keep) if head is None else pd.concat([head, frame]).head(keep)
        tail = frame.tail(keep) if tail is None else pd.concat([tail, frame]).tail(keep)
    text = repr(pd.concat([head, tail]))
    shown = f"[{2 * keep} rows x {len(types.columns)} columns]"
    if text.endswith(shown):
        text = text[: -len(shown)] + f"[{types.rows} rows x {len(types.columns)} columns]"
    return text


def _show(path: str, unstructured: bool) -> str:
    if unstructured:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    return show_csv(path, get_setting("DRUM_SCORE_CHUNK_BYTES"))


# --- the command ----------------------------------------------------------------------------------


class PerfMarks:
    """DRUM's `--show-perf` report for `score`: full, init (model loading) and run times."""

    REPORTS = (
        ("Full time", "end", "start"),
        ("Init time (incl model loading)", "init", "start"),
        ("Run time (incl reading CSV)", "run", "init"),
    )

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = time.time()

    def report(self) -> str:
        lines = []
        for name, end, start in self.REPORTS:
            value = self.marks[end] - self.marks[start]
            lines.append(f"{name}:\n\tsec: min: {value:.2f}; avg: {value:.2f}; max: {value:.2f}")
        return "\n".join(lines)


def run(options: argparse.Namespace) -> int:
    perf = PerfMarks()
    perf.mark("start")
    config, _metadata = model_config(options)
    predictor = load_predictor(config)
    unstructured = config.target_type == TargetType.UNSTRUCTURED
    with tempfile.TemporaryDirectory(prefix="drum-score-") as directory:
        output = options.output or os.path.join(directory, "output")
        try:
            attach_monitor(predictor, options)
            perf.mark("init")
            if unstructured:
                _write_unstructured(*_unstructured(predictor, options), output)
            else:
                _score_structured(predictor, options, output)
            perf.mark("run")
        finally:
            predictor.terminate()
        perf.mark("end")
        if not options.output:
            print(_show(output, unstructured))
    if getattr(options, "show_perf", False):
        print(perf.report())
    return 0


def _score_structured(predictor: Predictor, options: argparse.Namespace, output: str) -> None:
    budget = chunk_size(predictor, options)
    if budget:
        try:
            types = csv_chunks.scan(options.input, budget)
        except csv_chunks.NotChunkable:
            types = None  # e.g. a blank first line: read whole, as DRUM does
        if types is not None:
            with _replacing(output) as partial:
                score_in_chunks(predictor, options.input, budget, partial, types)
            return
    csv_text = _score_whole(predictor, options)
    with open(output, "w", newline="") as f:
        f.write(csv_text)
