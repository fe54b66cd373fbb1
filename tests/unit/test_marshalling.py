"""Output marshalling: label matching and ordering, the single-column rule, DRUM's validation messages."""

import numpy as np
import pandas as pd
import pytest

from drum.errors import DrumCommonException
from drum.model.marshalling import marshal_predictions, request_labels, split_extra_output
from drum.model.target import TargetType


def test_request_labels_binary_is_positive_then_negative():
    assert request_labels(TargetType.BINARY, "yes", "no", None) == ["yes", "no"]
    assert request_labels(TargetType.MULTICLASS, None, None, ["a", "b", "c"]) == ["a", "b", "c"]
    assert request_labels(TargetType.REGRESSION, None, None, None) is None


def test_regression_single_column_named_predictions():
    out = marshal_predictions(None, np.array([1, 2, 3]), TargetType.REGRESSION)
    assert list(out.columns) == ["Predictions"]
    assert out["Predictions"].tolist() == [1, 2, 3]


def test_regression_rejects_two_columns():
    with pytest.raises(DrumCommonException, match="must contain only 1 column. Your predictions have 2 columns"):
        marshal_predictions(None, np.ones((2, 2)), TargetType.REGRESSION)


def test_not_an_array_and_three_dims():
    with pytest.raises(DrumCommonException, match="predictions must return a np array, but received <class 'list'>"):
        marshal_predictions(None, [1.0], TargetType.REGRESSION)
    with pytest.raises(DrumCommonException, match="2 dimensional array, but we received a 3 dimensional"):
        marshal_predictions(None, np.ones((1, 1, 1)), TargetType.REGRESSION)


def test_model_labels_keep_model_order_with_request_strings():
    out = marshal_predictions(["1", "0"], np.array([[0.2, 0.8]]), TargetType.BINARY, model_labels=[0, 1])
    assert list(out.columns) == ["0", "1"]
    assert out.iloc[0].tolist() == [0.2, 0.8]


def test_labels_match_case_insensitively_and_as_booleans():
    out = marshal_predictions(["Yes", "No"], np.array([[0.3, 0.7]]), TargetType.BINARY, model_labels=["no", "yes"])
    assert list(out.columns) == ["No", "Yes"]
    out = marshal_predictions(["True", "False"], np.array([[0.3, 0.7]]), TargetType.BINARY, model_labels=[False, True])
    assert list(out.columns) == ["False", "True"]


def test_label_mismatch_message():
    with pytest.raises(DrumCommonException) as info:
        marshal_predictions(["a", "b"], np.array([[0.5, 0.5]]), TargetType.BINARY, model_labels=pd.Index(["a", "c"]))
    assert str(info.value) == (
        "Expected predictions to have columns ['a', 'b'], but encountered " + str(pd.Index(["a", "c"]))
    )


def test_without_model_labels_columns_are_positional():
    out = marshal_predictions(["yes", "no"], np.array([[0.9, 0.1]]), TargetType.BINARY)
    assert out.to_dict("records") == [{"yes": 0.9, "no": 0.1}]


def test_single_probability_column_is_the_last_label():
    """DRUM quirk: with [positive, negative] a single column is the negative class probability."""
    out = marshal_predictions(["yes", "no"], np.array([0.25, 1.0]), TargetType.BINARY)
    assert list(out.columns) == ["yes", "no"]
    assert out["no"].tolist() == [0.25, 1.0]
    assert out["yes"].tolist() == [0.75, 0.0]


def test_single_column_errors():
    with pytest.raises(DrumCommonException, match="must have more than one class label"):
        marshal_predictions(["a"], np.array([0.5]), TargetType.MULTICLASS)
    with pytest.raises(DrumCommonException, match="Only one dimension of probability returned, but there are 3"):
        marshal_predictions(["a", "b", "c"], np.array([0.5]), TargetType.MULTICLASS)


def test_column_count_and_probability_checks():
    with pytest.raises(DrumCommonException, match="Expected 3 columns, but received 2"):
        marshal_predictions(["a", "b", "c"], np.array([[0.5, 0.5]]), TargetType.MULTICLASS)
    with pytest.raises(DrumCommonException, match="have negative values"):
        marshal_predictions(["a", "b"], np.array([[-0.5, 1.5]]), TargetType.BINARY)
    with pytest.raises(DrumCommonException, match="values greater than 1"):
        marshal_predictions(["a", "b"], np.array([[1.5, 0.0]]), TargetType.BINARY)
    with pytest.raises(DrumCommonException, match="do not add up to 1"):
        marshal_predictions(["a", "b"], np.array([[0.5, 0.6]]), TargetType.MULTICLASS)


def test_multilabel_skips_sum_to_one():
    out = marshal_predictions(["a", "b"], np.array([[0.9, 0.9]]), TargetType.MULTILABEL)
    assert out.iloc[0].tolist() == [0.9, 0.9]


def test_split_extra_output_classification_keeps_frame_order():
    frame = pd.DataFrame({"extra": ["x"], "b": [0.4], "a": [0.6]})
    preds, extra = split_extra_output(frame, ["a", "b"], None)
    assert list(preds.columns) == ["b", "a"]
    assert list(extra.columns) == ["extra"]


def test_split_extra_output_single_column_uses_target_name():
    frame = pd.DataFrame({"completion": ["hi"], "score": [1]})
    preds, extra = split_extra_output(frame, None, '"completion"')
    assert list(preds.columns) == ["completion"] and list(extra.columns) == ["score"]
    preds, extra = split_extra_output(pd.DataFrame({"Predictions": [1], "x": [2]}), None, None)
    assert list(preds.columns) == ["Predictions"] and list(extra.columns) == ["x"]
    with pytest.raises(KeyError):
        split_extra_output(pd.DataFrame({"a": [1], "b": [2]}), None, None)
