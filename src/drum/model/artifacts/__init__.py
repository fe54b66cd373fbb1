"""Built-in ("drop-in") artifact predictors, tried in DRUM's order.

Each framework lives in its own module and imports its framework lazily, so a missing optional
extra only disables that framework.
"""

from __future__ import annotations

from drum.model.artifacts.base import ArtifactPredictor
from drum.model.artifacts.sklearn import SKLearnPredictor


def artifact_predictors() -> list[ArtifactPredictor]:
    """All built-in predictors in DRUM's lookup order."""
    return [SKLearnPredictor()]


__all__ = ["ArtifactPredictor", "artifact_predictors"]
