"""The scikit-learn array path: bit-identical predictions, the same errors, no warning, and only where exact."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from drum.model.artifacts.sklearn import ArrayTwin, SKLearnPredictor
from drum.model.target import TargetType

COLUMNS = [f"x{i}" for i in range(6)]


def _data(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)
    return frame, frame.to_numpy() @ rng.normal(size=len(COLUMNS))


def _prepared(model, target: TargetType) -> SKLearnPredictor:
    predictor = SKLearnPredictor()
    predictor.prepare(model, target)
    return predictor


@pytest.mark.parametrize(
    "make, target",
    [
        (lambda: Ridge(), TargetType.REGRESSION),
        (lambda: KNeighborsRegressor(3), TargetType.REGRESSION),
        (lambda: GradientBoostingRegressor(n_estimators=5), TargetType.REGRESSION),
        (lambda: LogisticRegression(), TargetType.BINARY),
        (lambda: DecisionTreeClassifier(max_depth=3), TargetType.BINARY),
    ],
)
def test_twin_predictions_identical_to_scikit_learn(make, target):
    frame, y = _data()
    model = make().fit(frame, y > 0 if target.is_classification() else y)
    predictor = _prepared(model, target)
    assert predictor._twin is not None, "a plain estimator fitted with feature names gets the array path"
    method = "predict_proba" if target.is_classification() else "predict"
    for rows in (1, 3, 50):
        test, _ = _data(rows, seed=rows)
        ints = test.round().astype("int64")  # an integer frame: the same conversion as scikit-learn's
        for sample in (test, ints, test.iloc[::-1]):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the array path warns about nothing
                got, _ = predictor.predict(sample, model, target, None)
            expected = getattr(model, method)(sample)
            assert got.dtype == expected.dtype
            assert np.array_equal(got, expected), "predictions differ from scikit-learn's"


def test_other_frames_take_scikit_learns_own_path():
    frame, y = _data()
    model = Ridge().fit(frame, y)
    predictor = _prepared(model, TargetType.REGRESSION)
    twin = predictor._twin
    assert twin is not None
    assert twin.array_of(frame[COLUMNS[::-1]]) is None  # another column order: scikit-learn's check
    assert twin.array_of(frame.rename(columns={"x0": "other"})) is None
    assert twin.array_of(frame.astype({"x0": "Float64"})) is None  # an extension dtype
    assert twin.array_of(frame.to_numpy()) is None
    with pytest.raises(ValueError, match="feature names"):  # scikit-learn's own error, unchanged
        predictor.predict(frame.rename(columns={"x0": "other"}), model, TargetType.REGRESSION, None)


def test_errors_are_scikit_learns():
    frame, y = _data()
    model = Ridge().fit(frame, y)
    predictor = _prepared(model, TargetType.REGRESSION)
    bad = frame.iloc[:2].copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError) as ours:
        predictor.predict(bad, model, TargetType.REGRESSION, None)
    with pytest.raises(ValueError) as theirs:
        model.predict(bad)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), Ridge()),  # the pipeline's steps may read the frame
        lambda: RandomForestClassifier(n_estimators=3),  # holds other estimators
    ],
)
def test_composite_estimators_keep_scikit_learns_path(make):
    frame, y = _data()
    model = make().fit(frame, y > 0 if "Classifier" in type(make()).__name__ else y)
    assert ArrayTwin.for_model(model, "predict") is None


def test_models_fitted_without_names_have_no_twin():
    frame, y = _data()
    model = Ridge().fit(frame.to_numpy(), y)
    assert ArrayTwin.for_model(model, "predict") is None


def test_twin_is_for_the_prepared_model_only():
    frame, y = _data()
    first, other = Ridge().fit(frame, y), Ridge(alpha=5).fit(frame, y)
    predictor = _prepared(first, TargetType.REGRESSION)
    got, _ = predictor.predict(frame, other, TargetType.REGRESSION, None)
    assert np.array_equal(got, other.predict(frame))


def test_the_array_is_the_one_scikit_learn_makes():
    frame, y = _data()
    twin = ArrayTwin.for_model(Ridge().fit(frame, y), "predict")
    assert twin is not None
    mixed = frame.astype({"x1": "int64", "x2": "int32", "x3": "float32"})
    mixed["x4"] = mixed["x4"] > 0
    for sample in (frame, frame.iloc[::-1], frame.iloc[:1], mixed, frame[COLUMNS].copy()):
        got, want = twin.array_of(sample), np.asarray(sample)
        assert got is not None and got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)


def test_a_plain_table_is_scored_as_its_frame():
    """A `PlainTable` (a small CSV or V2 tensor) reaches the estimator as the array its frame would give, or,
    where the twin declines that frame, as the frame itself: the same predictions to the bit either way."""
    from drum.model.fastcsv import PlainTable

    frame, y = _data()
    model = Ridge().fit(frame, y)
    predictor = _prepared(model, TargetType.REGRESSION)
    assert predictor._twin is not None
    rows = frame.to_numpy()[:5]
    tables = [
        PlainTable(tuple(COLUMNS), matrix=rows),  # the twin's matrix
        PlainTable(tuple(COLUMNS), matrix=rows.astype(np.float32)),
        PlainTable(tuple(COLUMNS), tuple(rows.T)),  # per-column arrays: scored as the frame
    ]
    reordered = PlainTable(tuple(reversed(COLUMNS)), matrix=rows)  # the frame: scikit-learn's own path and error
    assert predictor._twin.array_of(tables[0]) is rows
    for table in (tables[2], reordered):
        assert predictor._twin.array_of(table) is None
    errors = []
    for data in (reordered, reordered.frame()):
        with pytest.raises(ValueError) as caught:
            predictor.predict(data, model, TargetType.REGRESSION, None)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "same order" in errors[0]
    for table in tables:
        got, _ = predictor.predict(table, model, TargetType.REGRESSION, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want, _ = predictor.predict(table.frame(), model, TargetType.REGRESSION, None)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
