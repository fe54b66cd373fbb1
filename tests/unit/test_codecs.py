"""Codecs: CSV/MTX reading rules, transform CSV/multipart encodings, unstructured payload rules."""

import io

import numpy as np
import pandas as pd
import pytest
from scipy.io import mmwrite
from scipy.sparse import csr_matrix

from drum.errors import DrumCommonException
from drum.model import codecs


def test_single_column_csv_keeps_blank_lines_as_missing():
    df = codecs.read_structured_input(b"a\n1\n\n3\n", None)
    assert df.shape == (3, 1)
    assert np.isnan(df["a"][1])


def test_multi_column_csv_skips_blank_lines():
    assert codecs.read_structured_input(b"a,b\n1,2\n\n3,4\n", "text/csv").shape == (2, 2)


def test_non_utf8_csv_error():
    with pytest.raises(DrumCommonException, match="Supplied CSV input file encoding must be UTF-8."):
        codecs.read_structured_input("a,b\né,1\n".encode("latin-1"), None)


def test_pandas_parser_error():
    with pytest.raises(DrumCommonException, match="Pandas failed to read input binary data"):
        codecs.read_structured_input(b'a,b\n"1,2\n3,4,5,6\n', None)


def test_mtx_reads_sparse_with_column_names():
    sink = io.BytesIO()
    mmwrite(sink, csr_matrix([[1.0, 0.0], [0.0, 2.0]]))
    df = codecs.read_structured_input(sink.getvalue(), "text/mtx", ["x", "y"])
    assert list(df.columns) == ["x", "y"] and hasattr(df, "sparse")
    assert codecs.read_column_names(b"x\ny \n") == ["x", "y"]


def test_mimetype_support_table():
    for supported in (None, "", "text/csv", "text/plain", "text/mtx"):
        assert codecs.is_mimetype_supported(supported)
    assert not codecs.is_mimetype_supported("application/json")
    assert codecs.mimetype_from_filename("a.mtx") == "text/mtx"
    assert codecs.mimetype_from_filename("a.csv") is None


def test_transform_csv_crlf_without_trailing_newline():
    df = pd.DataFrame({" a\nb ": [1, 2], "c": [3, 4]})
    assert codecs.transform_csv(df) == b"a\\nb,c\r\n1,3\r\n2,4"
    with pytest.raises(ValueError, match="Column name serialization check failed"):
        codecs.transform_csv(pd.DataFrame({" ": [1]}))


def test_transform_multipart_matches_multipart_encoder_layout():
    out = codecs.transform_multipart(pd.DataFrame({"a": [1]}), pd.Series([0], name="y"))
    boundary = out.content_type.split("boundary=")[1]
    assert out.content_type == f"multipart/form-data; boundary={boundary}"
    assert out.body == (
        f'--{boundary}\r\nContent-Disposition: form-data; name="X.format"\r\n\r\ncsv\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="X.transformed"; filename="X.transformed"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\na\r\n1\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="y.format"\r\n\r\ncsv\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="y.transformed"; filename="y.transformed"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\ny\r\n0\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def test_transform_multipart_sparse():
    sparse = pd.DataFrame.sparse.from_spmatrix(csr_matrix([[0.0, 1.0]]), columns=["p", "q"])
    out = codecs.transform_multipart(sparse, None)
    assert b'name="X.format"\r\n\r\nsparse\r\n' in out.body
    assert b"%%MatrixMarket" in out.body
    assert b'filename="X.colnames"\r\nContent-Type: application/octet-stream\r\n\r\np\nq\r\n' in out.body


def test_unstructured_decoding_rules():
    assert codecs.decode_unstructured(b"hi", None, None) == ("hi", "text/plain", "utf-8")
    assert codecs.decode_unstructured(b"{}", "application/json", None) == ("{}", "application/json", "utf-8")
    assert codecs.decode_unstructured("é".encode("latin-1"), "text/plain", "latin-1") == ("é", "text/plain", "latin-1")
    assert codecs.decode_unstructured(b"\x00", "application/octet-stream", None) == (
        b"\x00",
        "application/octet-stream",
        None,
    )


def test_unstructured_encoding_rules():
    assert codecs.encode_unstructured("hi", None) == (b"hi", "text/plain", "utf-8")
    assert codecs.encode_unstructured(None, None) == (None, "text/plain", "utf-8")
    assert codecs.encode_unstructured(b"\x01", None) == (b"\x01", "application/octet-stream", None)
    assert codecs.encode_unstructured("é", {"charset": "latin-1", "mimetype": "text/csv"}) == (
        "é".encode("latin-1"),
        "text/csv",
        "latin-1",
    )
