"""Keras models saved as HDF5 (`.h5`).

Keras 3 loads legacy `.h5` files on any backend. When `KERAS_BACKEND` is unset, PyTorch is installed
and TensorFlow is not, the torch backend is chosen (set before keras is first imported), so
`drum[keras]` needs no TensorFlow; with TensorFlow installed keras keeps its default (TensorFlow, as
DRUM). Without keras 3, TensorFlow's bundled `tensorflow.keras` is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from drum.model.artifacts.base import ArtifactPredictor, module_installed, modules_loaded
from drum.model.target import TargetType


def import_keras() -> ModuleType | None:
    """The keras module to use, or None when neither keras nor tensorflow can be imported."""
    if (
        "KERAS_BACKEND" not in os.environ
        and "keras" not in sys.modules
        and module_installed("torch")
        and not module_installed("tensorflow")
    ):
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras

        keras.Model  # noqa: B018 - a keras 2 stub without a backend fails here
        return keras
    except Exception:  # noqa: BLE001 - a broken backend raises anything, not only ImportError
        pass
    try:
        from tensorflow import keras

        return keras
    except Exception:  # noqa: BLE001
        return None


class KerasPredictor(ArtifactPredictor):
    name = "keras"
    extension = ".h5"
    extra = "keras"

    def framework_present(self) -> bool:
        return import_keras() is not None

    def load(self, path: str | Path) -> Any:
        keras = import_keras()
        assert keras is not None
        return keras.models.load_model(str(path), compile=False)

    def can_use(self, model: Any) -> bool:
        if not modules_loaded("keras", "tensorflow") or not self.framework_present():
            return False
        try:
            from sklearn.pipeline import Pipeline
        except ImportError:
            return False
        keras = import_keras()
        assert keras is not None
        if isinstance(model, Pipeline):
            return isinstance(model[-1], keras.Model)
        return isinstance(model, keras.Model)

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, None]:
        return model.predict(data), None
