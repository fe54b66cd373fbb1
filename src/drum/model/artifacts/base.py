"""The interface every built-in artifact predictor implements, and helpers they share."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from drum.errors import DrumCommonException
from drum.model.target import TargetType

#: Top-level module of a framework -> the extra that installs it (used in "install it" hints).
FRAMEWORK_EXTRAS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "torch": "torch",
    "keras": "keras",
    "tensorflow": "keras",
    "onnxruntime": "onnx",
}


def install_hint(extra: str) -> str:
    return f"pip install 'drum[{extra}]'"


def modules_loaded(*names: str) -> bool:
    """Whether any of these top-level modules is imported.

    A model object of a framework cannot exist unless its module was imported (unpickling imports it),
    so "can use" checks look here first instead of importing a heavy framework just to answer no.
    """
    return any(sys.modules.get(name) is not None for name in names)


def module_installed(name: str) -> bool:
    """Whether a top-level module can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def load_pickle(path: str | Path) -> Any:
    """DRUM's pickle loading (latin1 first); a missing framework module names the extra to install."""
    with open(path, "rb") as f:
        try:
            try:
                return pickle.load(f, encoding="latin1")
            except TypeError:
                f.seek(0)
                return pickle.load(f)
        except ModuleNotFoundError as exc:
            extra = FRAMEWORK_EXTRAS.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            raise ModuleNotFoundError(f"{exc.msg}; install it with: {install_hint(extra)}", name=exc.name) from None


class ArtifactPredictor(ABC):
    #: The name `/info/` reports as `predictor` (DRUM's names: scikit-learn, xgboost, torch, ...).
    name: str
    #: Artifact file extension, lower case.
    extension: str
    #: Whether `predict` also takes a `fastcsv.PlainTable` (standing for its frame).
    takes_tables: bool = False
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

    def prepare(self, model: Any, target_type: TargetType) -> None:
        """Called once at load time, before any request, with the model this predictor will score."""
        return None

    @property
    def install_hint(self) -> str:
        return install_hint(self.extra)

    def unsupported_target(self, target_type: TargetType) -> DrumCommonException:
        return DrumCommonException(
            f"Target type '{target_type.value}' is not supported by '{type(self).__name__}' predictor"
        )

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
