"""The CustomTask interface of DRUM 1.18.1 (`datarobot_drum.custom_task_interfaces`).

A code dir whose `custom.py` defines a class `CustomTask` (a subclass of one of the interfaces below)
is trained by `drum fit` (`CustomTask().fit(...)`, then `save` pickles it to `drum_artifact.pkl`) and
served by `drum score` / `drum server` (`CustomTask.load(code_dir)`, then `predict`, `predict_proba` for
classification, or `transform`). User secrets reach the task as `self.secrets` (`drum.model.user_secrets`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator
from typing import Any

from drum.errors import DrumSerializationError
from drum.model.user_secrets import AbstractSecret, load_secrets, scrub_outputs, unscrub_outputs

logger = logging.getLogger("drum.model.custom_task")

#: The file `Serializable.save` writes and `load` reads, in the artifact directory.
ARTIFACT_FILE = "drum_artifact.pkl"
#: The name of the class `custom.py` defines to use this interface.
CUSTOM_TASK_CLASS = "CustomTask"


class Serializable:
    default_artifact_filename = ARTIFACT_FILE

    def save(self, artifact_directory: str) -> Serializable:
        """Pickle this task into `artifact_directory`; returns self (for chaining)."""
        self.save_task(artifact_directory)
        return self

    def save_task(self, artifact_directory: str, exclude: list[str] | None = None) -> None:
        """Pickle this task to `drum_artifact.pkl`, with the attributes named in `exclude` set to None in the
        pickle (e.g. a Keras model saved separately) and restored on the object afterwards."""
        kept: dict[str, Any] = {}
        try:
            for name in exclude or []:
                try:
                    kept[name] = getattr(self, name)
                except AttributeError:
                    raise DrumSerializationError(f"The object named {name} passed in exclude= was not found") from None
                setattr(self, name, None)
            with open(os.path.join(artifact_directory, Serializable.default_artifact_filename), "wb") as f:
                pickle.dump(self, f)
        finally:
            for name, value in kept.items():
                setattr(self, name, value)

    @classmethod
    def load(cls, artifact_directory: str) -> Any:
        """The task pickled in `artifact_directory`."""
        return cls.load_task(artifact_directory)

    @classmethod
    def load_task(cls, artifact_directory: str) -> Any:
        """Unpickle `drum_artifact.pkl`; it must hold an instance of `cls`. Attributes excluded by
        `save_task` must be loaded by the caller afterwards."""
        with open(os.path.join(artifact_directory, Serializable.default_artifact_filename), "rb") as f:
            task = pickle.load(f)
        if not isinstance(task, cls):
            raise DrumSerializationError(f"load_task method must return a {cls.__name__} class")
        return task


class CustomTaskInterface(Serializable):
    _secrets: dict[str, Any] | None = None

    @property
    def secrets(self) -> dict[str, Any]:
        """The user secrets by key (e.g. `self.secrets["DB"].password`); {} when there are none."""
        return self._secrets or {}

    @secrets.setter
    def secrets(self, secrets: dict[str, Any] | None) -> None:
        self._secrets = secrets

    def fit(self, X: Any, y: Any, parameters: dict | None = None, row_weights: Any = None,  # noqa: N803
            **kwargs: Any) -> CustomTaskInterface:  # fmt: skip
        """Train on X (a DataFrame) and y (None for anomaly detection); `drum fit` also passes
        `output_dir` and `class_order` as keywords."""
        raise NotImplementedError()

    @staticmethod
    def log_message(message: str) -> None:
        """Deprecated in DRUM: use the logging module."""
        logger.info(message)


class EstimatorInterface(CustomTaskInterface):
    def predict(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        """A DataFrame of predictions (regression: one column, "Predictions")."""
        raise NotImplementedError()


class BinaryEstimatorInterface(EstimatorInterface):
    def predict(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        """Not used: classification tasks implement `predict_proba`."""

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        """A DataFrame with one probability column per class label."""
        raise NotImplementedError()


class RegressionEstimatorInterface(EstimatorInterface):
    pass


class MulticlassEstimatorInterface(EstimatorInterface):
    def predict(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        """Not used: classification tasks implement `predict_proba`."""

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        """A DataFrame with one probability column per class label."""
        raise NotImplementedError()


class AnomalyEstimatorInterface(EstimatorInterface):
    pass


class TransformerInterface(CustomTaskInterface):
    def transform(self, X: Any) -> Any:  # noqa: N803
        """The transformed DataFrame (same rows)."""
        raise NotImplementedError()


def is_custom_task_class(cls: Any) -> bool:
    """`cls` implements the interface: drum's own, or the real `datarobot_drum` package's when the
    user's environment has it installed."""
    return isinstance(cls, type) and any(
        base.__name__ == "CustomTaskInterface"
        and (base is CustomTaskInterface or base.__module__.startswith("datarobot_drum."))
        for base in cls.__mro__
    )


def install_secrets(task: Any, mount_path: str | None, prefix: str | None) -> dict[str, AbstractSecret]:
    """Load the user secrets into a loaded task and mask their values in every output from now on (as
    DRUM's model load); returns them."""
    secrets = load_secrets(mount_path, prefix)
    scrub_outputs(secrets.values())
    task.secrets = secrets
    return secrets


@contextlib.contextmanager
def secrets_injection_context(task: Any, mount_path: str | None, prefix: str | None) -> Iterator[None]:
    """The secrets on `task` and their values masked in every output for the duration (DRUM's fit)."""
    secrets = load_secrets(mount_path, prefix)
    task.secrets = secrets
    try:
        scrub_outputs(secrets.values())
        yield
    finally:
        task.secrets = None
        unscrub_outputs()
