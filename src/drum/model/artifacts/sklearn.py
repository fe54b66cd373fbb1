"""scikit-learn pickles (`.pkl`): any estimator or pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drum.model.artifacts.base import ArtifactPredictor, load_pickle, modules_loaded
from drum.model.target import TargetType


class SKLearnPredictor(ArtifactPredictor):
    name = "scikit-learn"
    extension = ".pkl"
    extra = "sklearn"

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

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, list[Any] | None]:
        if target_type.is_classification():
            model_labels = list(model.classes_) if hasattr(model, "classes_") else None
            return model.predict_proba(data), model_labels
        if target_type in (TargetType.REGRESSION, TargetType.ANOMALY, TargetType.GEO_POINT):
            return model.predict(data), None
        raise self.unsupported_target(target_type)
