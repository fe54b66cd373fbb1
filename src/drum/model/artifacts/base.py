"""The interface every built-in artifact predictor implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from drum.errors import DrumCommonException
from drum.model.target import TargetType


class ArtifactPredictor(ABC):
    #: The name `/info/` reports as `predictor` (DRUM's names: scikit-learn, xgboost, torch, ...).
    name: str
    #: Artifact file extension, lower case.
    extension: str
    #: The pip extra that installs this framework.
    extra: str

    def supports_file(self, path: str | Path) -> bool:
        return str(path).lower().endswith(self.extension)

    @abstractmethod
    def framework_present(self) -> bool: ...

    def can_load(self, path: str | Path) -> bool:
        return self.supports_file(path) and self.framework_present()

    @abstractmethod
    def load(self, path: str | Path) -> Any: ...

    @abstractmethod
    def can_use(self, model: Any) -> bool: ...

    @abstractmethod
    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, list[Any] | None]:
        """Raw predictions and the model's own labels (None when the model has none)."""

    @staticmethod
    def check_labels(target_type: TargetType, class_labels: list[str] | None, binary: list | None) -> None:
        if target_type == TargetType.MULTICLASS and not class_labels:
            raise DrumCommonException(
                f"For `{target_type}` target, the model's class labels must be provided. found: {class_labels}"
            )
        if target_type == TargetType.BINARY and (binary is None or None in binary):
            raise DrumCommonException(
                f"For `{target_type.value}` target types both class labels must be provided. Found: {binary}"
            )
