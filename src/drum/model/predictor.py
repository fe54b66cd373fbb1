"""`Predictor`: the user's model behind one framework-neutral API, shared by the server and `drum score`.

It loads hooks and the model once, then offers `predict`, `transform`, `predict_unstructured`, `chat`,
`models`, `info` and `capabilities`. It knows nothing about HTTP.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from scipy.sparse import issparse

from drum.config.runtime_params import RuntimeParameters
from drum.errors import DrumCommonException, DrumException, DrumSerializationError, DrumTransformException
from drum.model import codecs
from drum.model.artifacts import ArtifactPredictor, artifact_predictors
from drum.model.code_dir import RUNNING_LANG_MSG, find_model_artifact
from drum.model.compat import install_datarobot_drum_alias
from drum.model.custom_task import install_secrets
from drum.model.fastcsv import PlainTable, parse_plain_numeric_csv
from drum.model.hooks import Hooks, call, fail, load_hooks
from drum.model.marshalling import marshal_predictions, request_labels, split_extra_output
from drum.model.target import TargetType
from drum.model.typeschema import SchemaValidator
from drum.streams import ClosingIterator, close_all

logger = logging.getLogger("drum.model.predictor")

LLM_ID_CREATED = 1735689600  # Jan 1 2025, what DRUM reports for the LLM_ID model entry


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to load a model directory."""

    code_dir: str
    target_type: TargetType
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: list[str] | None = None
    language: str = "python"
    #: `typeSchema` of model-metadata.yaml; transform outputs are validated against it.
    type_schema: dict | None = None
    #: Where a CustomTask's user secrets come from (`--user-secrets-mount-path`, `--user-secrets-prefix`).
    user_secrets_mount_path: str | None = None
    user_secrets_prefix: str | None = None


@dataclass(frozen=True)
class PredictionInput:
    """One structured prediction's input as received: the payload and what DRUM knows about it."""

    binary_data: bytes
    mimetype: str | None
    charset: str | None = None
    sparse_colnames: list[str] | None = None
    #: DRUM's server passes `charset` to the `score` hook (None included); `drum score` does not.
    pass_charset: bool = True

    @classmethod
    def from_file(
        cls, binary_data: bytes, mimetype: str | None, sparse_colnames: list[str] | None = None
    ) -> PredictionInput:
        """The input `drum score` reads from a file: no charset, none passed to the hook."""
        return cls(binary_data, mimetype, None, sparse_colnames, pass_charset=False)

    def hook_kwargs(self, config: ModelConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments of the `score` hook, in DRUM's order: `binary_data`, `mimetype`,
        [`charset`], `sparse_colnames`, then `extra` (e.g. NIM's `base_url`, `openai_client`), `target_type`,
        `positive_class_label` + `negative_class_label` when both are set, `class_labels` when set."""
        kwargs: dict[str, Any] = {"binary_data": self.binary_data, "mimetype": self.mimetype}
        if self.pass_charset:
            kwargs["charset"] = self.charset
        kwargs["sparse_colnames"] = self.sparse_colnames
        if extra:
            kwargs.update(extra)
        kwargs["target_type"] = config.target_type
        if config.positive_class_label is not None and config.negative_class_label is not None:
            kwargs["positive_class_label"] = config.positive_class_label
            kwargs["negative_class_label"] = config.negative_class_label
        if config.class_labels:
            kwargs["class_labels"] = config.class_labels
        return kwargs


@dataclass
class PredictResponse:
    """A structured prediction: DRUM's prediction frame and the score hook's extra output, if any.
    `drum.model.output` turns it into the response body."""

    predictions: pd.DataFrame
    extra_model_output: pd.DataFrame | None = None


class PredictionMonitor(Protocol):
    """What the predictor tells a monitor (see `drum.model.monitoring.MLOpsMonitor`)."""

    #: Handed to `score_unstructured` as its `mlops` kwarg (`--monitor-embedded`), else None.
    embedded: Any

    def report_prediction(
        self, predictor: Predictor, inputs: PredictionInput, data: Any, response: PredictResponse, seconds: float
    ) -> None: ...

    def shutdown(self) -> None: ...


def _require_frame(value: Any, hook: str) -> pd.DataFrame:
    if not isinstance(value, pd.DataFrame):
        raise ValueError(f"{hook} must return a dataframe, but received {type(value)}")
    if len(value.shape) != 2:
        raise ValueError(f"{hook} must return a dataframe of dim 2, but received one with dims {value.shape}")
    return value


def _same_rows(data: Any, output: Any) -> None:
    if data.shape[0] != output.shape[0]:
        raise ValueError("Transformation resulted in different number of rows than original data")


class Predictor:
    """A loaded model directory. Construct, then `load()` once before serving."""

    #: Whether `predict_loaded`/`transform_loaded` take pandas frames (`drum score` then reads big inputs in
    #: chunks); False where the model's runtime reads the payload itself (R).
    reads_frames = True
    #: The payload formats the model reads without a `read_input_data` hook (`/capabilities/`).
    payload_formats: dict[str, None] = codecs.SUPPORTED_PAYLOAD_FORMATS

    def __init__(self, config: ModelConfig):
        self.config = config
        self.target_type = config.target_type
        self.hooks = Hooks()
        self.model: Any = None
        self.artifact_predictor: ArtifactPredictor | None = None
        self.target_name: str | None = None
        #: MLOps monitoring (`drum.model.monitoring`), attached by `drum server`/`drum score` when asked for.
        self.monitor: PredictionMonitor | None = None

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> Predictor:
        install_datarobot_drum_alias()
        code_dir = self.config.code_dir
        if self.target_type.needs_target_name():
            self.target_name = os.environ.get("TARGET_NAME")
            if not self.target_name:
                raise ValueError(
                    "Unexpected empty target name for text generation, vector database, or agentic "
                    "workflow target."
                )
        self.hooks = load_hooks(code_dir, self.target_type)
        if code_dir not in sys.path:
            sys.path.append(code_dir)
        try:
            self.model = self._load_model()
        except DrumException as exc:
            raise DrumSerializationError(f"An error occurred when loading your artifact: {exc}") from exc
        return self

    def _load_model(self) -> Any:
        if self.hooks.task_class is not None:
            return call("Failed to load custom task class.", self._load_task, self.hooks.task_class)
        load_model = self.hooks.get("load_model")
        if load_model is not None:
            model = call("'load_model' hook failed to load the model.", load_model, self.config.code_dir)
            if model is None:
                raise DrumCommonException("'load_model' hook failed to load model, None is returned.")
        else:
            model = self._load_artifact()
        needs_predictor = self.target_type not in (TargetType.UNSTRUCTURED, TargetType.TRANSFORM)
        if needs_predictor and not self.hooks.has("score") and not self.hooks.has("chat"):
            self.artifact_predictor = next((p for p in artifact_predictors() if p.can_use(model)), None)
            if self.artifact_predictor is None:
                raise DrumCommonException(
                    f"\n\n{RUNNING_LANG_MSG}\nCould not find any framework to handle loaded model and a "
                    "score hook is not provided"
                )
            self.artifact_predictor.prepare(model, self.target_type)
        if (
            self.target_type == TargetType.TRANSFORM
            and not self.hooks.has("transform")
            and "sklearn" not in str(type(model))
        ):
            raise DrumCommonException(
                "A transform task requires a user-defined transform hook for non-sklearn transformers"
            )
        return model

    def _load_task(self, task_class: type) -> Any:
        """`CustomTask.load(code_dir)` with the user secrets on it (their values masked in every output)."""
        task = task_class.load(self.config.code_dir)  # type: ignore[attr-defined]
        install_secrets(task, self.config.user_secrets_mount_path, self.config.user_secrets_prefix)
        return task

    def _load_artifact(self) -> Any:
        """Load the one top-level artifact with the first predictor (in DRUM's order) that can load it."""
        predictors = artifact_predictors()
        extensions = tuple(sorted({p.extension for p in predictors}))
        path = find_model_artifact(self.config.code_dir, extensions)
        supporting = [p for p in predictors if p.supports_file(path)]
        for predictor in supporting:
            if predictor.can_load(path):
                return call("Could not load model from the artifact file.", predictor.load, str(path))
        if supporting:
            # DRUM's text, with the extra that installs each framework instead of its requirement list.
            frameworks = "\n".join(f"Framework: {p.name}, requirements: {p.install_hint}" for p in supporting)
            raise DrumCommonException(
                "\nThe following frameworks support this model artifact\n"
                f"but could not load the model. Check if requirements are missing\n{frameworks}"
            )
        raise DrumCommonException(
            f"\n\n{RUNNING_LANG_MSG}\nCould not load model from artifact file {path}. "
            "No builtin support for this model was detected"
        )

    # --- structured ---------------------------------------------------------------------------

    @property
    def class_ordering(self) -> list[str] | None:
        c = self.config
        return request_labels(self.target_type, c.positive_class_label, c.negative_class_label, c.class_labels)

    def has_read_input_data_hook(self) -> bool:
        return self.hooks.has("read_input_data")

    def load_data(
        self, binary_data: bytes, mimetype: str | None, sparse_colnames: list[str] | None = None, try_hook=True
    ) -> Any:
        read_input_data = self.hooks.get("read_input_data")
        if read_input_data is not None and try_hook:
            return call("Model 'read_input_data' hook failed to read input data.", read_input_data, binary_data)
        return codecs.read_structured_input(binary_data, mimetype, sparse_colnames)

    def predict(self, inputs: PredictionInput) -> PredictResponse:
        """Structured prediction: read the input, then `predict_loaded`. A small plain numeric CSV the built-in
        reader would read is kept as a `PlainTable` when the artifact scores tables itself (framed anywhere
        a frame is due: hooks, the monitor, other artifacts)."""
        started = time.perf_counter()
        data = self.read_table(inputs) if self._takes_tables() else None
        if data is None:
            data = self.load_data(inputs.binary_data, inputs.mimetype, inputs.sparse_colnames)
        return self.predict_loaded(data, inputs, started=started)

    def read_table(self, inputs: PredictionInput) -> PlainTable | None:
        """The input as a `PlainTable` when `load_data` would read it with the built-in reader as a small plain
        numeric CSV (the table's `frame()` is what it reads), else None."""
        if inputs.mimetype == codecs.TEXT_MTX or self.hooks.has("read_input_data"):
            return None
        return parse_plain_numeric_csv(inputs.binary_data)

    def _takes_tables(self) -> bool:
        """Whether input reaches the artifact's own `predict` (no score hook or task) and it takes a
        `PlainTable` as the frame that table gives."""
        return (
            self.hooks.task_class is None and not self.hooks.has("score")
            and getattr(self.artifact_predictor, "takes_tables", False)
        )  # fmt: skip

    def prepare_data(self, inputs: PredictionInput) -> Any:
        """The model's input for a request: read (built-in reader or `read_input_data`), then `transform`."""
        data = self.load_data(inputs.binary_data, inputs.mimetype, inputs.sparse_colnames)
        return self.transform_input(data)

    def predict_loaded(self, data: Any, inputs: PredictionInput, started: float | None = None) -> PredictResponse:
        """`predict` on input already read (what `load_data` returns). `started` (perf_counter) is when the
        request's work began, for the monitor's timing."""
        started = time.perf_counter() if started is None else started
        response = self.predict_data(self.transform_input(data), inputs)
        if self.monitor is not None:
            frame = data.frame() if isinstance(data, PlainTable) else data
            self.monitor.report_prediction(self, inputs, frame, response, time.perf_counter() - started)
        return response

    def transform_input(self, data: Any) -> Any:
        """The `transform` hook's output for input read by `load_data` (the input itself without the hook)."""
        transform = self.hooks.get("transform")
        if transform is not None:
            if isinstance(data, PlainTable):
                data = data.frame()
            data = call("Model 'transform hook' failed to transform dataset.", transform, data, self.model)
            _require_frame(data, "transform")
        return data

    def extra_score_kwargs(self) -> dict[str, Any]:
        """Keyword arguments this predictor adds to the `score` hook's (none; NIM adds its client)."""
        return {}

    def predict_data(self, data: Any, inputs: PredictionInput) -> PredictResponse:
        """Score prepared input (`prepare_data`): score hook or artifact, post_process, DRUM's marshalling."""
        c = self.config
        # The score hook and post_process see labels as [negative, positive] (DRUM's get_request_labels).
        hook_labels = None
        if self.target_type.is_classification():
            hook_labels = c.class_labels or [c.negative_class_label, c.positive_class_label]
        extra = None
        score = self.hooks.get("score")
        if isinstance(data, PlainTable) and not self._takes_tables():
            data = data.frame()
        if self.hooks.task_class is not None:
            kwargs = inputs.hook_kwargs(c)
            method = self.model.predict_proba if self.target_type.is_classification() else self.model.predict
            result = call("Model 'score' hook failed to make predictions.",
                          lambda: _require_frame(method(data, **kwargs), "score"))  # fmt: skip
            frame = marshal_predictions(self.class_ordering, result.values, self.target_type, result.columns)
            return PredictResponse(frame)
        if score is not None:
            kwargs = inputs.hook_kwargs(c, self.extra_score_kwargs())
            result = call("Model 'score' hook failed to make predictions.", score, data, self.model, **kwargs)
            _require_frame(result, "score")
            result, extra = split_extra_output(result, hook_labels, self.target_name)
            predictions, model_labels = result.values, result.columns
        else:
            assert self.artifact_predictor is not None
            self.artifact_predictor.check_labels(
                self.target_type, c.class_labels, [c.negative_class_label, c.positive_class_label]
            )
            predictions, model_labels = call(
                "Failure when making predictions.",
                self.artifact_predictor.predict,
                data,
                self.model,
                self.target_type,
                hook_labels,
            )
        post_process = self.hooks.get("post_process")
        if post_process is not None:
            marshalled = marshal_predictions(hook_labels, predictions, self.target_type, model_labels)
            processed = call(
                "Model 'post_process' hook failed to post-process predictions.",
                post_process,
                marshalled,
                self.model,
            )
            if not isinstance(processed, pd.DataFrame):
                raise ValueError(f"Output of post_process hook must be a dataframe, not a {type(processed)}")
            predictions, model_labels = processed.values, processed.columns
        frame = marshal_predictions(self.class_ordering, predictions, self.target_type, model_labels)
        return PredictResponse(frame, extra)

    def transform(
        self,
        binary_data: bytes,
        mimetype: str | None,
        sparse_colnames: list[str] | None = None,
        target_binary_data: bytes | None = None,
        target_mimetype: str | None = None,
    ) -> tuple[pd.DataFrame, Any]:
        """Transform target type: returns (transformed X, target echoed unchanged); X is checked against
        the typeSchema output requirements (DrumSchemaValidationException)."""
        data = self.load_data(binary_data, mimetype, sparse_colnames)
        target = None
        if target_binary_data:
            target = self.load_data(target_binary_data, target_mimetype, try_hook=False)
        return self.transform_loaded(data, target)

    def transform_loaded(self, data: Any, target: Any = None) -> tuple[pd.DataFrame, Any]:
        """`transform` on input already read (what `load_data` returns)."""
        out, target = self._transform(data, target)
        if self.target_type == TargetType.TRANSFORM and self.config.type_schema:
            SchemaValidator(self.config.type_schema).validate_outputs(out)
        return out, target

    def _transform(self, data: Any, target: Any) -> tuple[pd.DataFrame, Any]:
        if self.hooks.task_class is not None:
            try:
                out = _require_frame(self.model.transform(data), "transform")
                _same_rows(out, data)
            except Exception as exc:  # noqa: BLE001
                fail(exc, "Model 'transform' hook failed to transform dataset.")
            return out, target
        hook = self.hooks.get("transform")
        if hook is not None:
            try:
                n_params = len(inspect.signature(hook).parameters)
                if n_params == 3:
                    out = hook(data, self.model, target)
                elif n_params == 2:
                    out = hook(data, self.model)
                else:
                    raise ValueError(f"Transform hook must take 2 or 3 arguments; hook provided takes {n_params}")
                if type(out) is tuple:
                    raise DrumTransformException("Transformation of the target variable is not supported by DRUM.")
            except Exception as exc:  # noqa: BLE001
                fail(exc, "Model 'transform hook' failed to transform dataset.")
            _require_frame(out, "transform")
            _same_rows(out, data)
            return out, target
        if "sklearn" in str(type(self.model)):
            try:
                transformed = self.model.transform(data)
                if issparse(transformed):
                    return pd.DataFrame.sparse.from_spmatrix(transformed), target
                return pd.DataFrame(transformed), target
            except Exception as exc:
                raise type(exc)(f"Couldn't naively apply transformer: {exc}") from None
        raise ValueError("Transform hook must be implemented for custom transforms, for non-sklearn transformer.")

    # --- unstructured, chat, models ----------------------------------------------------------------

    def predict_unstructured(self, data: str | bytes, **kwargs: Any) -> tuple[Any, dict | None]:
        """`score_unstructured`'s (value, kwargs), value str, bytes or None (DRUM's check and errors)."""
        return self._score_unstructured(data, kwargs, streams=False)

    def stream_unstructured(self, data: str | bytes, **kwargs: Any) -> tuple[Any, dict | None]:
        """As `predict_unstructured`, where the value may also be an iterator of str/bytes chunks, which the
        HTTP servers stream (drum's extension); predictors of other languages answer as they do."""
        if type(self).predict_unstructured is not Predictor.predict_unstructured:
            return self.predict_unstructured(data, **kwargs)
        return self._score_unstructured(data, kwargs, streams=True)

    def _score_unstructured(self, data: str | bytes, kwargs: dict[str, Any], streams: bool) -> tuple[Any, dict | None]:
        hook = self.hooks.get("score_unstructured")
        if hook is None:
            raise TypeError("'NoneType' object is not callable")
        if self.monitor is not None and self.monitor.embedded is not None:
            kwargs["mlops"] = self.monitor.embedded  # --monitor-embedded: the hook reports itself
        result = hook(self.model, data, **kwargs)
        single = not isinstance(result, tuple)
        pair = (result, None) if single else result
        if len(pair) != 2:
            raise ValueError(
                "In unstructured mode predictions of type tuple must have length = 2, but received "
                f"length = {len(pair)}"
            )
        value, extra = pair
        if streams and isinstance(value, Iterator) and isinstance(extra, (dict, type(None))):
            return value, extra
        if not isinstance(value, (bytes, str, type(None))) or not isinstance(extra, (dict, type(None))):
            if single:
                raise ValueError(
                    f"In unstructured mode single return value can be of type str/bytes, but received {type(value)}"
                )
            raise ValueError(
                "In unstructured mode tuple return value must be of type (str/bytes, dict) but received "
                f"({type(value)}, {type(extra)})"
            )
        return value, extra

    def supports_chat(self) -> bool:
        return self.hooks.has("chat")

    @staticmethod
    def association_id(params: dict) -> str:
        """`datarobot_association_id` from the request body, else a new UUID4 (never given to hooks)."""
        return params.get("datarobot_association_id") or str(uuid.uuid4())

    def chat(self, params: dict, headers: dict | None = None) -> Any:
        """Call the chat hook; returns a completion object or an iterator of chunks."""
        association_id = self.association_id(params)
        hook = self.hooks.get("chat")
        assert hook is not None
        if len(inspect.signature(hook).parameters) > 2:
            response = hook(params, self.model, headers=headers)
        else:
            response = hook(params, self.model)
        if getattr(response, "object", None) == "chat.completion":
            response.datarobot_association_id = association_id
            return response
        return tag_chunks(response, association_id)

    def models(self) -> dict:
        result: dict = {"object": "list", "data": []}
        hook = self.hooks.get("get_supported_llm_models")
        if hook is not None:
            for item in hook(self.model):
                if getattr(item, "object", None) == "model":
                    result["data"].append(item.to_dict())
        elif RuntimeParameters.has("LLM_ID"):
            result["data"].append(
                {"id": RuntimeParameters.get("LLM_ID"), "object": "model", "created": LLM_ID_CREATED,
                 "owned_by": "DataRobot"}
            )
        return result

    def terminate(self) -> None:
        """Release what the predictor holds when the server stops (flushes the MLOps reporter)."""
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            monitor.shutdown()

    # --- description -------------------------------------------------------------------------

    def info(self) -> dict:
        c = self.config
        info: dict = {"targetType": self.target_type.value, "codeDir": c.code_dir}
        if self.target_type == TargetType.BINARY:
            info["positiveClassLabel"] = c.positive_class_label
            info["negativeClassLabel"] = c.negative_class_label
        elif self.target_type == TargetType.MULTICLASS:
            info["classLabels"] = c.class_labels
        info["predictor"] = self.artifact_predictor.name if self.artifact_predictor else None
        return info

    def capabilities(self) -> dict:
        return {
            "supported_payload_formats": dict(self.payload_formats),
            "supported_methods": {"chat": self.supports_chat()},
        }



def tag_chunks(response: Any, association_id: str) -> Iterator[Any]:
    """Check that `response` streams chat completion chunks (DRUM's first-chunk peek) and tag each with
    the association id. Returns an iterator whose `close()` closes the hook's iterator (and `response`,
    e.g. an OpenAI `Stream`), so a client that goes away stops the work upstream."""
    it: Iterator[Any] | None = None
    try:
        it = iter(response)
        first = next(it)
        if type(first).__name__ != "ChatCompletionChunk" and getattr(first, "object", None) != (
            "chat.completion.chunk"
        ):
            raise Exception(f"First chunk does not look like chat completion chunk. str(chunk): '{first}'")
    except StopIteration:
        return iter(())
    except Exception as exc:
        with contextlib.suppress(Exception):
            close_all(it, response)
        raise Exception(
            f"Expected response to be ChatCompletion or Iterable[ChatCompletionChunk]. response type: "
            f"{type(response)}.response(str): {response}"
        ) from exc
    return ClosingIterator(_tagged(first, it, association_id), it, response)


def _tagged(first: Any, rest: Iterator[Any], association_id: str) -> Iterator[Any]:
    first.datarobot_association_id = association_id
    yield first
    for chunk in rest:
        chunk.datarobot_association_id = association_id
        yield chunk
