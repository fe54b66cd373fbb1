"""R models (`custom.R` hooks and/or one `.rds` artifact) as DRUM 1.18.1's R predictor serves them.

R reads the payload (`read.csv(check.names=FALSE)`, `Matrix::readMM`, or the `read_input_data` hook),
then `transform(data, model)`, `score(data, model, list(positive_class_label=, negative_class_label=,
class_labels=))` or the model's own `predict(model, data[, type="prob"])`, and `post_process(predictions,
model)`. The data frame comes back to pandas, R's sanitised class names (`make.names`) are mapped back to
the labels, and DRUM's marshalling checks apply as for Python models.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix

from drum.errors import DrumCommonException
from drum.model import codecs
from drum.model.marshalling import marshal_predictions, split_extra_output
from drum.model.predictor import ModelConfig, PredictionInput, Predictor, PredictResponse
from drum.model.r_bridge import RSession
from drum.model.target import PRED_COLUMN, TargetType
from drum.model.typeschema import SchemaValidator


def custom_r_file(code_dir: str) -> str | None:
    """`custom.R`, else `custom.r`, at the top of the code dir (as DRUM's R predictor looks)."""
    for name in ("custom.R", "custom.r"):
        path = os.path.join(code_dir, name)
        if os.path.isfile(path):
            return path
    return None


class RPredictor(Predictor):
    """A loaded R model directory; every R call goes through the process's one `RSession`."""

    #: `drum score` reads R inputs whole (R parses the payload itself).
    reads_frames = False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.r: RSession | None = None
        self.hook_names: set[str] = set()

    def load(self) -> RPredictor:
        self.r = r = RSession.get()
        code_dir, target = self.config.code_dir, self.target_type.value
        custom = custom_r_file(code_dir)
        self.hook_names = r.call("init", code_dir, target, custom, then=_strings)
        if self.target_type == TargetType.UNSTRUCTURED:
            for hook in ("load_model", "score_unstructured"):
                if hook not in self.hook_names:
                    raise DrumCommonException(f"In 'unstructured' mode hook '{hook}' must be provided.")
        r.call("load_model_into_session", code_dir, target)
        return self

    def has_read_input_data_hook(self) -> bool:
        return "read_input_data" in self.hook_names

    # --- structured -----------------------------------------------------------------------------

    def predict(self, inputs: PredictionInput) -> PredictResponse:
        r, c = self._session(), self.config
        result = r.call(
            "predict", inputs.binary_data, inputs.mimetype, inputs.sparse_colnames, self.target_type.value,
            c.positive_class_label, c.negative_class_label, c.class_labels, then=self._predictions,
        )  # fmt: skip
        if isinstance(result, tuple):  # numeric: the usual columns go straight to DRUM's marshalling
            names, values = result
            labels = self.class_ordering
            if (labels and set(names) == set(labels)) or (not labels and len(names) == 1):
                return PredictResponse(marshal_predictions(labels, values, self.target_type, names))
            result = pd.DataFrame(values, columns=names)
        frame, extra = result, None
        if self.target_type.is_classification():
            frame, extra = self._labelled(frame)
        elif self.target_type == TargetType.REGRESSION:
            frame, extra = split_extra_output(frame, None, PRED_COLUMN)
        predictions = marshal_predictions(self.class_ordering, frame.values, self.target_type, frame.columns)
        return PredictResponse(predictions, extra)

    def _predictions(self, result: Any) -> tuple[list[str], np.ndarray] | pd.DataFrame:
        """The glue's predictions (in R's thread): numeric columns as (names, a rows × columns array, copied out
        of R), else a pandas frame."""
        if str(result[0][0]) == "numeric":
            names = [str(n) for n in result[1]]
            values = np.frombuffer(result[2].memoryview(), dtype=float).reshape(len(names), int(result[3][0])).T
            return names, values.copy()
        frame = self._session().to_pandas(result[1])
        if not isinstance(frame, pd.DataFrame):
            raise DrumCommonException(
                f"Expected predictions type: {pd.DataFrame}, actual: {type(frame)}. Are you trying to run binary "
                "classification without class labels provided?"
            )
        return frame.reset_index(drop=True)

    def _labelled(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Map R's sanitised class-name columns (`X1`, `a.b`) back to the labels; other columns are extra
        output (DRUM's `_replace_sanitized_class_names`)."""
        labels = self.class_ordering
        if not labels:
            raise DrumCommonException("Class labels not available for classification.")
        columns = [str(c) for c in frame.columns]
        if set(columns) == set(labels):
            return frame, None
        sanitized = self._session().make_names(labels)
        if set(sanitized) <= set(columns):
            if len(set(sanitized)) != len(sanitized):
                raise DrumCommonException("Class label names are ambiguous.")
            mapping = dict(zip(sanitized, labels, strict=True))
        elif any(c.startswith("X") for c in columns):
            numeric = {}
            for column in columns:
                if column.startswith("X"):
                    try:
                        numeric[float(column[1:])] = column
                    except ValueError:
                        pass
            try:
                wanted = {float(label): label for label in labels}
            except ValueError:
                return frame, None
            if not set(wanted) <= set(numeric):
                return frame, None
            mapping = {numeric[value]: label for value, label in wanted.items()}
        else:
            return frame, None
        ordered = [c for c in columns if c in mapping]
        extra = frame.drop(columns=ordered) if len(ordered) < len(columns) else None
        return frame[ordered].rename(columns=mapping), extra

    def transform(
        self, binary_data: bytes, mimetype: str | None, sparse_colnames: list[str] | None = None,
        target_binary_data: bytes | None = None, target_mimetype: str | None = None,
    ) -> tuple[pd.DataFrame, Any]:  # fmt: skip
        r = self._session()
        frame = r.call("transform", binary_data, mimetype, sparse_colnames, target_binary_data or None,
                       then=lambda out: _transformed(r, out))  # fmt: skip
        if self.target_type == TargetType.TRANSFORM and self.config.type_schema:
            SchemaValidator(self.config.type_schema).validate_outputs(frame)
        target_frame = None
        if target_binary_data:
            target_frame = codecs.read_structured_input(target_binary_data, target_mimetype)
        return frame, target_frame

    # --- unstructured --------------------------------------------------------------------------------

    def predict_unstructured(self, data: str | bytes, **kwargs: Any) -> tuple[Any, dict | None]:
        r = self._session()
        arguments = {key: value for key, value in kwargs.items() if value is not None and key != "mlops"}
        return r.call("unstructured", data, arguments,
                      then=lambda result: (_from_r(result[0]), _kwargs_from_r(result[1])))  # fmt: skip

    def supports_chat(self) -> bool:
        return False

    def info(self) -> dict:
        info = super().info()
        info.pop("predictor", None)  # DRUM's R predictor reports none
        return info

    def capabilities(self) -> dict:
        return {"supported_payload_formats": {"csv": None, "mtx": None}, "supported_methods": {"chat": False}}

    def _session(self) -> RSession:
        assert self.r is not None, "load() first"
        return self.r


def _strings(values: Any) -> set[str]:
    return {str(v) for v in values}


def _transformed(r: RSession, out: Any) -> pd.DataFrame:
    """The glue's transform result (a data frame, or a sparse matrix as 1-based triplets) as pandas."""
    values = dict(zip(out.names, out, strict=True))
    if bool(values["sparse"][0]):
        shape = (int(values["nrow"][0]), int(values["ncol"][0]))
        rows, cols = np.asarray(values["i"], dtype=int) - 1, np.asarray(values["j"], dtype=int) - 1
        matrix = coo_matrix((np.asarray(values["x"], dtype=float), (rows, cols)), shape=shape)
        names = values.get("colnames")
        names = None if names is None or names is r.ri.NULL else [str(n) for n in names]
        return pd.DataFrame.sparse.from_spmatrix(matrix, columns=names)
    return r.to_pandas(values["frame"]).reset_index(drop=True)


def _from_r(value: Any) -> str | bytes | None:
    from rpy2.rinterface import NULL, ByteSexpVector, StrSexpVector

    if value is NULL or value is None:
        return None
    if isinstance(value, ByteSexpVector):
        return bytes(value)
    if isinstance(value, StrSexpVector):
        return str(value[0])
    raise DrumCommonException(f"Can not convert R value {value} type {type(value)}")


def _kwargs_from_r(value: Any) -> dict | None:
    from rpy2.rinterface import NULL

    if value is NULL or value is None:
        return None
    return {str(k): _from_r(v) for k, v in zip(value.names, value, strict=True)}
