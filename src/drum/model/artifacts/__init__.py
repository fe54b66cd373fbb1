"""Built-in ("drop-in") artifact predictors, tried in DRUM's order.

Each framework lives in its own module and imports its framework lazily, so a missing optional
extra only disables that framework.
"""

from __future__ import annotations

from drum.model.artifacts.base import ArtifactPredictor
from drum.model.artifacts.keras import KerasPredictor
from drum.model.artifacts.onnx import ONNXPredictor
from drum.model.artifacts.sklearn import SKLearnPredictor
from drum.model.artifacts.torch import PyTorchPredictor
from drum.model.artifacts.xgboost import XGBoostPredictor


def artifact_predictors() -> list[ArtifactPredictor]:
    """All built-in predictors in DRUM's lookup order (scikit-learn late: pipelines overlap with others)."""
    return [KerasPredictor(), XGBoostPredictor(), PyTorchPredictor(), SKLearnPredictor(), ONNXPredictor()]


__all__ = [
    "ArtifactPredictor",
    "KerasPredictor",
    "ONNXPredictor",
    "PyTorchPredictor",
    "SKLearnPredictor",
    "XGBoostPredictor",
    "artifact_predictors",
]
