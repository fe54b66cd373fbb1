"""XGBoost pickles (`.pkl`): a native `Booster`, or an sklearn `Pipeline` ending in XGBClassifier/XGBRegressor.

A bare XGBClassifier/XGBRegressor is an sklearn estimator and is served by the scikit-learn predictor,
as in DRUM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drum.model.artifacts.base import ArtifactPredictor, load_pickle, module_installed, modules_loaded
from drum.model.target import TargetType


class XGBoostPredictor(ArtifactPredictor):
    name = "xgboost"
    extension = ".pkl"
    extra = "xgboost"

    def framework_present(self) -> bool:
        try:
            import xgboost  # noqa: F401
        except ImportError:
            return False
        return True

    def can_load(self, path: str | Path) -> bool:
        # Loading is the same pickle.load as scikit-learn's, so only check that xgboost is installed
        # (without the slow import: a scikit-learn pickle must not pay for it).
        return self.supports_file(path) and module_installed("xgboost")

    def load(self, path: str | Path) -> Any:
        return load_pickle(path)

    def can_use(self, model: Any) -> bool:
        if not modules_loaded("xgboost") or not self.framework_present():
            return False
        try:  # DRUM needs scikit-learn here even for a Booster
            import xgboost
            from sklearn.pipeline import Pipeline
        except ImportError:
            return False
        if isinstance(model, Pipeline):
            return isinstance(model[-1], (xgboost.XGBClassifier, xgboost.XGBRegressor))
        return isinstance(model, xgboost.Booster)

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, Any]:
        import xgboost

        native = isinstance(model, xgboost.Booster)
        if native:
            data = xgboost.DMatrix(data)
        # DRUM passes `classes_` as is (a numpy array), which shows in its label mismatch message.
        model_labels = model.classes_ if hasattr(model, "classes_") else None
        if target_type.is_classification():
            return (model.predict(data) if native else model.predict_proba(data)), model_labels
        if target_type in (TargetType.REGRESSION, TargetType.ANOMALY, TargetType.GEO_POINT):
            return model.predict(data), model_labels
        raise self.unsupported_target(target_type)
