"""Chunked CSV reading (`drum score` on large inputs): chunks of whole records that, put together, are the
frame DRUM reads from the whole file — same values, dtypes and row index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drum.errors import DrumCommonException
from drum.model import codecs, csv_chunks


def _chunked(path, chunk_bytes: int) -> list[pd.DataFrame]:
    types = csv_chunks.scan(str(path), chunk_bytes)
    frames, offset = [], 0
    for chunk in csv_chunks.iter_chunks(str(path), chunk_bytes):
        frame = csv_chunks.parse(chunk, types, offset)
        offset += len(frame)
        frames.append(frame)
    assert types.rows == offset
    return frames


def _assert_reads_like_whole(tmp_path, text: str, chunk_bytes: int = 16, min_chunks: int = 2) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(text.encode())
    whole = codecs.read_structured_input(text.encode(), "text/csv")
    frames = _chunked(path, chunk_bytes)
    assert len(frames) >= min_chunks
    for frame in frames:  # every chunk on its own (the model sees one at a time) has the whole file's types
        assert list(frame.dtypes) == list(whole.dtypes)
    assert "".join(f.to_csv(header=False) for f in frames) == whole.to_csv(header=False)
    pd.testing.assert_frame_equal(pd.concat(frames), whole)


CASES = {
    "ints then a missing value (float everywhere)": "a,b\n" + "1,2\n" * 20 + "3,\n" + "4,5\n" * 20,
    "ints then a decimal": "a\n" + "1\n" * 20 + "1.5\n",
    "numbers then text (original tokens: 01, 1.50)": "a,b\n" + "01,1.50\n" * 20 + "x,y\n",
    "booleans then a missing value (objects)": "a,b\n" + "True,1\n" * 20 + ",2\n" + "False,3\n" * 5,
    "booleans and text": "a\n" + "True\n" * 20 + "maybe\n",
    "a column empty in some chunks": "a,b\n" + "1,\n" * 20 + "2,x\n" + "3,\n" * 20,
    "quoted fields with newlines and quotes": "a,b\n" + '1,"line one\nline ""two"""\n' * 20,
    "one column with blank lines (rows of missing values)": "a\n" + "1\n" * 10 + "\n\n" + "2\n" * 10 + "\n\n",
    "blank lines in a multi-column file": "a,b\n" + "1,2\n" * 10 + "\n\n" + "3,4\n" * 10,
    "CRLF line ends": "a,b\r\n" + "1,2\r\n" * 20 + "3,\r\n",
    "UTF-8 BOM and no final newline": "\ufeffa,b\n" + "1,x\n" * 20 + "2,y",
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_chunks_read_like_the_whole_file(tmp_path, text):
    _assert_reads_like_whole(tmp_path, text)


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_any_chunk_size(tmp_path, chunk_bytes):
    text = "a,b,c\n" + "".join(f'{i},"q {i}\nx",{i / 3 if i % 7 else ""}\n' for i in range(200))
    _assert_reads_like_whole(tmp_path, text, chunk_bytes, min_chunks=1)


def test_a_chunk_is_header_plus_whole_records(tmp_path):
    path = tmp_path / "input.csv"
    path.write_bytes(b'h1,h2\n1,"a\nb"\n2,c\n3,d\n')
    assert list(csv_chunks.iter_chunks(str(path), 4)) == [b'h1,h2\n1,"a\nb"\n', b"h1,h2\n2,c\n", b"h1,h2\n3,d\n"]


def test_a_file_that_starts_with_a_blank_line_is_not_split(tmp_path):
    path = tmp_path / "input.csv"
    path.write_bytes(b"\na,b\n1,2\n")
    with pytest.raises(csv_chunks.NotChunkable):
        list(csv_chunks.iter_chunks(str(path), 4))


def test_non_utf8_chunk_has_drums_error(tmp_path):
    types = csv_chunks.ColumnTypes(columns=["a"], kinds={"a": {"int", "text"}})
    with pytest.raises(DrumCommonException, match="Supplied CSV input file encoding must be UTF-8."):
        csv_chunks.parse(b"a\n\xff\xfe\n", types, 0)


DISPLAYED = {
    "floats": pd.DataFrame({"Predictions": np.random.default_rng(3).normal(size=500)}),
    "decimals only in the middle": pd.DataFrame({"Predictions": [1.0] * 200 + [1.123456] + [2.0] * 200}),
    "one column with a missing value (a blank line)": pd.DataFrame({"Predictions": [1] * 499 + [np.nan]}),
    "mixed columns": pd.DataFrame(
        {"a": range(300), "b": ["x"] * 299 + [None], "c": [True] * 300, "d": np.arange(300) * 1e6 / 7}
    ),
    "just over display.max_rows": pd.DataFrame({"a": [1] * 61}),
    "wide": pd.DataFrame({f"c{i}": np.random.default_rng(i).normal(size=200) for i in range(30)}),
}


@pytest.mark.parametrize("frame", DISPLAYED.values(), ids=DISPLAYED.keys())
def test_large_output_is_shown_as_drum_shows_it(tmp_path, frame):
    from drum.cli.score import show_csv

    path = tmp_path / "output.csv"
    frame.to_csv(path, index=False)
    assert show_csv(str(path), 256) == repr(pd.read_csv(path))
