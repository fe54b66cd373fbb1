"""V2 requests merged by adaptive batching without a frame per request: `request_table` gives exactly
`request_frame`'s frame (or declines), and the outputs of a merged frame cut into rows answer as each
request's own frame does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from drum.serving import v2

NAMES = np.array(["a", "b", "c"], dtype=object)


def ctx(names: np.ndarray | None = NAMES) -> SimpleNamespace:
    model = SimpleNamespace(feature_names_in_=names) if names is not None else SimpleNamespace()
    return SimpleNamespace(model=SimpleNamespace(model=model))


def tensor(shape: list[int], datatype: str, data: list, name: str = "x") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


TAKEN = [
    [tensor([2, 3], "FP64", [1.5, 2, 3, 4, 5, 6])],
    [tensor([1, 3], "FP32", [0.1, 0.2, 0.3])],
    [tensor([2, 3], "INT64", [[1, 2, 3], [4, 5, 6]])],
    [tensor([1, 3], "BOOL", [True, False, True])],
    [tensor([1, 3], "BYTES", ["p", "q", "r"])],
]
DECLINED = [
    ([tensor([2, 2], "FP64", [1, 2, 3, 4])], False, NAMES),  # not the model's width
    ([tensor([3], "FP64", [1, 2, 3])], False, NAMES),  # one column
    ([tensor([2], "FP64", [1, 2], "a"), tensor([2], "FP64", [3, 4], "b")], False, NAMES),  # named columns
    ([tensor([2, 1], "FP64", [1, 2])], True, np.array(["a"], dtype=object)),  # a pandas-codec column
    ([tensor([1, 3], "FP64", [1, 2, 3])], False, None),  # no feature names
]


@pytest.mark.parametrize("inputs", TAKEN)
def test_a_table_frames_as_the_request_frame(inputs):
    table = v2.request_table(ctx(), inputs)
    assert table is not None
    pd.testing.assert_frame_equal(table.frame(), v2.request_frame(ctx(), inputs), check_exact=True)


@pytest.mark.parametrize(("inputs", "table", "names"), DECLINED)
def test_anything_else_is_declined(inputs, table, names):
    assert v2.request_table(ctx(names), inputs, table) is None
    v2.request_frame(ctx(names), inputs, table)  # still a frame, the usual way


def test_errors_are_the_request_frames():
    bad = [tensor([2, 3], "FP64", [1.0])]
    with pytest.raises(v2.V2Error) as frame_error:
        v2.request_frame(ctx(), bad)
    with pytest.raises(v2.V2Error) as table_error:
        v2.request_table(ctx(), bad)
    assert str(table_error.value) == str(frame_error.value) and table_error.value.status == frame_error.value.status


@pytest.mark.parametrize(
    "merged",
    [
        pd.DataFrame({"Predictions": [0.5, 1.25, -3.0, 7.0]}),
        pd.DataFrame({"no": np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32), "yes": [0.9, 0.8, 0.7, 0.6]}),
        pd.DataFrame({"label": ["x", "y", "z", "w"], "n": [1, 2, 3, 4]}),
    ],
)
def test_a_merged_frames_rows_answer_as_each_requests_own_frame(merged):
    names, arrays = v2.output_columns(merged)
    start = 0
    for size, body in ((1, {"id": "r1"}), (2, {"outputs": [{"name": str(merged.columns[-1])}]}), (1, {})):
        request = v2.InferRequest("m", {"inputs": [], **body})
        alone = merged.iloc[start : start + size].reset_index(drop=True)
        got = request.answer_columns(names, [array[start : start + size] for array in arrays])
        want = request.answer(alone)
        assert (got.status, got.body, got.content_type) == (want.status, want.body, want.content_type)
        start += size
