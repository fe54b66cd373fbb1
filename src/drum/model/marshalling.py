"""Turn a model's raw prediction array into DRUM's prediction frame, with DRUM's checks and messages.

Rules (DRUM 1.18.1, see docs/compatibility.md):
* classification columns take the request-label strings in the model's column order;
* without model labels columns are assigned positionally to the request labels;
* a single probability column with two labels is the probability of the *last* request label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from drum.config.boolean import to_bool
from drum.errors import DrumCommonException
from drum.model.fastcsv import column_index
from drum.model.target import PRED_COLUMN, TargetType


def request_labels(
    target_type: TargetType,
    positive_class_label: str | None,
    negative_class_label: str | None,
    class_labels: list[str] | None,
) -> list[str] | None:
    """The label order DRUM marshals with: `[positive, negative]` for binary, else class labels."""
    if positive_class_label is not None and negative_class_label is not None:
        return [positive_class_label, negative_class_label]
    return list(class_labels) if class_labels else None


def marshal_predictions(
    labels: list[str] | None,
    predictions: Any,
    target_type: TargetType,
    model_labels: Sequence[Any] | None = None,
) -> pd.DataFrame | np.ndarray:
    predictions = _two_dimensional(predictions)
    if target_type.is_classification():
        return _classification(target_type, predictions, labels, model_labels)
    if target_type.is_single_column():
        if predictions.shape[1] != 1:
            raise DrumCommonException(
                "Regression, Text Generation, Agentic Workflow and anomaly predictions must contain "
                f"only 1 column. Your predictions have {predictions.shape[1]} columns"
            )
        return pd.DataFrame(predictions, columns=column_index((PRED_COLUMN,)))
    return predictions


def _two_dimensional(predictions: Any) -> np.ndarray:
    if not isinstance(predictions, np.ndarray):
        raise DrumCommonException(f"predictions must return a np array, but received {type(predictions)}")
    if predictions.ndim == 1:
        predictions = predictions.reshape(-1, 1)
    if predictions.ndim != 2:
        raise DrumCommonException(
            "predictions must return a 2 dimensional array, but we received a "
            f"{predictions.ndim} dimensional array"
        )
    return predictions


def standardize_label(label: Any) -> Any:
    """Labels compare as floats when they parse, else as booleans, else as lower-case strings."""
    try:
        return float(label)
    except (ValueError, TypeError):
        pass
    try:
        return float(to_bool(label))
    except (ValueError, TypeError):
        pass
    return str(label).lower()


def _labels_in_model_order(labels: list[str], model_labels: Sequence[Any] | None) -> list[str]:
    if model_labels is None:
        return labels
    if {standardize_label(x) for x in labels} != {standardize_label(x) for x in model_labels}:
        raise DrumCommonException(
            f"Expected predictions to have columns {labels}, but encountered {model_labels}"
        )
    by_key = {}
    for label in labels:
        by_key.setdefault(standardize_label(label), label)
    return [by_key[standardize_label(m)] for m in model_labels]


def _classification(
    target_type: TargetType,
    predictions: np.ndarray,
    labels: list[str] | None,
    model_labels: Sequence[Any] | None,
) -> pd.DataFrame:
    labels = _labels_in_model_order(list(labels or []), model_labels)
    if predictions.shape[1] == 1:
        if len(labels) == 1:
            raise DrumCommonException("Classification problems must have more than one class label")
        if len(labels) != 2:
            raise DrumCommonException(
                "Only one dimension of probability returned, but there are "
                f"{len(labels)} class labels in this model"
            )
        p = predictions[:, [0]]  # keep the model's dtype (float32 from many frameworks), as DRUM does
        predictions = np.hstack([1 - p, p])
    if predictions.shape[1] != len(labels):
        raise DrumCommonException(
            "Your predictions must return the probability distribution for the correct number of class "
            f"labels. Expected {len(labels)} columns, but received {predictions.shape[1]}"
        )
    if (predictions < 0).any():
        raise DrumCommonException("Your prediction probabilities have negative values")
    if (predictions > 1).any():
        raise DrumCommonException("Your prediction probabilities have values greater than 1")
    if target_type != TargetType.MULTILABEL:
        good = np.isclose(predictions.sum(axis=1), 1)
        if not np.all(good):
            raise DrumCommonException(
                f"Your prediction probabilities do not add up to 1. \n{predictions[~good]}"
            )
    return pd.DataFrame(predictions, columns=_labels_index(labels))


def _labels_index(labels: list[Any]) -> pd.Index | list[Any]:
    """The cached column index of string labels (any other labels: the list, as given)."""
    if all(type(label) is str for label in labels):
        return column_index(tuple(labels))
    return labels


def split_extra_output(
    result: pd.DataFrame, labels: list[str] | None, target_name: str | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split a score hook's frame into prediction columns and `extraModelOutput` (DRUM §3.5)."""
    if labels:
        if len(result.columns) <= len(labels):
            return result, None
        columns = result.columns.tolist()
        if labels == columns:
            return result, None
        extra = result.drop(columns=labels)
        ordered = labels if len(labels) == 1 else [c for c in columns if c not in extra.columns]
        return result[ordered], extra
    if len(result.columns) <= 1:
        return result, None
    target = PRED_COLUMN
    if target_name:
        target = target_name
        if target not in result and len(target) >= 2 and target[0] == target[-1] == '"':
            target = target[1:-1]
    extra = result.drop(columns=[target])  # first, so a missing column fails with DRUM's KeyError text
    return result[[target]], extra
