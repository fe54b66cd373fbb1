"""scikit-learn pickles (`.pkl`): any estimator or pipeline.

A plain estimator fitted on a DataFrame (it has `feature_names_in_`) spends most of a small prediction
checking the frame's feature names. When a frame's columns are exactly those names and its dtypes plain
numpy numbers, `ArrayTwin` hands the same array that scikit-learn would make of the frame
(`np.asarray(frame)`) to a shallow copy of the estimator without `feature_names_in_`: the same
arithmetic on the same array (predictions identical to the bit), and no warning. Any other frame, and any
estimator that is not a plain scikit-learn one (pipelines, meta-estimators, a categorical preprocessor),
goes through scikit-learn's own checks.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from drum.model.artifacts.base import ArtifactPredictor, load_pickle, modules_loaded
from drum.model.fastcsv import PlainTable, column_dtypes, column_index
from drum.model.target import TargetType

logger = logging.getLogger("drum.model.sklearn")

#: Attributes of estimators that hold other estimators or column logic (their predict reads the frame).
COMPOSITE_ATTRIBUTES = ("steps", "transformers", "estimators", "estimator", "base_estimator", "_preprocessor")
#: dtype kinds a frame may have for the array path: bool, signed and unsigned integers, floats.
PLAIN_KINDS = frozenset("biuf")


class ArrayTwin:
    """A scikit-learn estimator's twin that predicts on the array of a frame with exactly its feature names
    (see the module docstring); `None` from `for_model` when the estimator does not qualify."""

    def __init__(self, model: Any, twin: Any) -> None:
        self.model = model
        self.twin = twin
        self.names = [str(n) for n in model.feature_names_in_]
        self.index_names = tuple(self.names)
        self.index = column_index(self.index_names)

    @classmethod
    def for_model(cls, model: Any, method: str) -> ArrayTwin | None:
        names = getattr(model, "feature_names_in_", None)
        if names is None or not type(model).__module__.startswith("sklearn."):
            return None
        if any(getattr(model, attr, None) is not None for attr in COMPOSITE_ATTRIBUTES):
            return None
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            return None
        try:
            twin = copy.copy(model)
            del twin.feature_names_in_
        except (AttributeError, TypeError):
            return None
        candidate = cls(model, twin)
        return candidate if candidate._agrees(method) else None

    def _agrees(self, method: str) -> bool:
        """Both estimators give bit-identical answers on a probe frame, without a warning (else no twin).
        Runs at load time (`prepare`): `catch_warnings` is process-wide, no request runs yet."""
        import pandas as pd

        rng = np.random.default_rng(0)
        probe = pd.DataFrame(rng.normal(size=(5, len(self.names))), columns=self.names)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                expected = getattr(self.model, method)(probe)
                array = self.array_of(probe)
                got = getattr(self.twin, method)(array) if array is not None else None
        except Exception as exc:  # noqa: BLE001 - the probe may not suit the model: then no twin
            logger.debug("No array path for %s: %r", type(self.model).__name__, exc)
            return False
        same = isinstance(got, np.ndarray) and isinstance(expected, np.ndarray) and got.dtype == expected.dtype
        return same and not caught and np.array_equal(got, expected, equal_nan=True)

    def array_of(self, data: Any) -> np.ndarray | None:
        """The array scikit-learn would make of `data` (`np.asarray`, as `to_numpy()` gives it for plain numpy
        dtypes) when `data` is a frame that the twin may score, else None."""
        import pandas as pd

        if type(data) is PlainTable:  # its frame's `to_numpy()`, when that frame qualifies
            matrix = data.matrix
            if matrix is None or data.names != self.index_names or matrix.dtype.kind not in PLAIN_KINDS:
                return None
            return matrix
        if type(data) is not pd.DataFrame or not data.columns.equals(self.index):
            return None
        if not all(isinstance(t, np.dtype) and t.kind in PLAIN_KINDS for t in column_dtypes(data)):
            return None
        return data.to_numpy()


class SKLearnPredictor(ArtifactPredictor):
    name = "scikit-learn"
    extension = ".pkl"
    extra = "sklearn"
    #: `predict` takes a `PlainTable` (scored as its matrix by the array twin, else as its frame).
    takes_tables = True

    def __init__(self) -> None:
        self._twin: ArrayTwin | None = None

    def framework_present(self) -> bool:
        try:
            import sklearn.base  # noqa: F401
        except ImportError:
            return False
        return True

    def can_load(self, path: str | Path) -> bool:
        # As in DRUM: any pickle loads (even without scikit-learn), so a `score` hook can use any object.
        return self.supports_file(path)

    def load(self, path: str | Path) -> Any:
        return load_pickle(path)

    def can_use(self, model: Any) -> bool:
        if not modules_loaded("sklearn") or not self.framework_present():
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def prepare(self, model: Any, target_type: TargetType) -> None:
        method = "predict_proba" if target_type.is_classification() else "predict"
        self._twin = ArrayTwin.for_model(model, method)
        if self._twin is not None:
            logger.debug("%s: frames with exactly its feature names are scored as arrays", type(model).__name__)

    def _call(self, model: Any, method: str, data: Any) -> Any:
        twin = self._twin
        array = twin.array_of(data) if twin is not None and twin.model is model else None
        if array is None:
            return getattr(model, method)(data.frame() if isinstance(data, PlainTable) else data)
        return getattr(twin.twin, method)(array)  # type: ignore[union-attr]

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, list[Any] | None]:
        if target_type.is_classification():
            model_labels = list(model.classes_) if hasattr(model, "classes_") else None
            return self._call(model, "predict_proba", data), model_labels
        if target_type in (TargetType.REGRESSION, TargetType.ANOMALY, TargetType.GEO_POINT):
            return self._call(model, "predict", data), None
        raise self.unsupported_target(target_type)
