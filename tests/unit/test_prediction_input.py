"""`PredictionInput`: the typed input of a structured prediction and the exact kwargs of the `score` hook."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from drum.model.predictor import ModelConfig, PredictionInput, Predictor, PredictResponse
from drum.model.target import TargetType

RECORDING_MODEL = """
    import pandas as pd

    CALLS = []


    def load_model(code_dir):
        return "model"


    def score(data, model, **kwargs):
        CALLS.append((list(data.columns), model, list(kwargs.items())))
        return pd.DataFrame({"Predictions": [1.0] * len(data)})
"""


def _predictor(tmp_path: Path, config: ModelConfig | None = None, cls: type[Predictor] = Predictor) -> Predictor:
    (tmp_path / "custom.py").write_text(textwrap.dedent(RECORDING_MODEL))
    predictor = cls(config or ModelConfig(str(tmp_path), TargetType.REGRESSION))
    return predictor.load()


def _calls(predictor: Predictor) -> list[tuple[list[str], Any, list[tuple[str, Any]]]]:
    return predictor.hooks.get("score").__globals__["CALLS"]


def test_server_input_passes_charset_even_when_none():
    config = ModelConfig("/m", TargetType.REGRESSION)
    kwargs = PredictionInput(b"x\n1\n", "text/csv", None, None).hook_kwargs(config)
    assert list(kwargs.items()) == [
        ("binary_data", b"x\n1\n"),
        ("mimetype", "text/csv"),
        ("charset", None),
        ("sparse_colnames", None),
        ("target_type", TargetType.REGRESSION),
    ]


def test_file_input_passes_no_charset():
    config = ModelConfig("/m", TargetType.REGRESSION)
    kwargs = PredictionInput.from_file(b"x\n1\n", None, ["x"]).hook_kwargs(config)
    assert list(kwargs) == ["binary_data", "mimetype", "sparse_colnames", "target_type"]
    assert kwargs["sparse_colnames"] == ["x"]


def test_labels_and_extra_kwargs_follow_drum_order():
    binary = ModelConfig("/m", TargetType.BINARY, positive_class_label="yes", negative_class_label="no")
    extra = {"base_url": "http://b", "openai_client": 1}
    kwargs = PredictionInput(b"", "text/plain", "utf-8").hook_kwargs(binary, extra)
    assert list(kwargs) == [
        "binary_data", "mimetype", "charset", "sparse_colnames", "base_url", "openai_client", "target_type",
        "positive_class_label", "negative_class_label",
    ]
    assert (kwargs["positive_class_label"], kwargs["negative_class_label"]) == ("yes", "no")
    multiclass = ModelConfig("/m", TargetType.MULTICLASS, class_labels=["a", "b", "c"])
    kwargs = PredictionInput(b"", None).hook_kwargs(multiclass)
    assert list(kwargs)[-2:] == ["target_type", "class_labels"] and kwargs["class_labels"] == ["a", "b", "c"]
    assert "positive_class_label" not in kwargs


def test_input_is_frozen():
    inputs = PredictionInput(b"x\n1\n", None)
    with pytest.raises(AttributeError):
        inputs.mimetype = "text/csv"  # type: ignore[misc]


def test_score_hook_receives_exactly_the_input_kwargs(tmp_path):
    predictor = _predictor(tmp_path)
    inputs = PredictionInput(b"x,y\n1,2\n", "text/csv", "utf-8", None)
    response = predictor.predict(inputs)
    assert response.predictions["Predictions"].tolist() == [1.0]
    [(columns, model, kwargs)] = _calls(predictor)
    assert (columns, model) == (["x", "y"], "model")
    assert kwargs == list(inputs.hook_kwargs(predictor.config).items())
    assert [k for k, _ in kwargs] == ["binary_data", "mimetype", "charset", "sparse_colnames", "target_type"]


def test_prepare_then_predict_data_gives_the_hook_the_same_kwargs(tmp_path):
    predictor = _predictor(tmp_path)
    inputs = PredictionInput.from_file(b"x\n1\n2\n", None)
    predictor.predict_data(predictor.prepare_data(inputs), inputs)
    predictor.predict_loaded(pd.DataFrame({"x": [1]}), inputs)
    first, second = _calls(predictor)
    assert first[2] == second[2] == [
        ("binary_data", b"x\n1\n2\n"), ("mimetype", None), ("sparse_colnames", None),
        ("target_type", TargetType.REGRESSION),
    ]


def test_extra_score_kwargs_reach_the_hook(tmp_path):
    class WithClient(Predictor):
        def extra_score_kwargs(self) -> dict[str, Any]:
            return {"base_url": "http://backend:9999", "openai_client": "client"}

    predictor = _predictor(tmp_path, cls=WithClient)
    predictor.predict(PredictionInput(b"x\n1\n", None))
    [(_, _, kwargs)] = _calls(predictor)
    assert [k for k, _ in kwargs] == [
        "binary_data", "mimetype", "charset", "sparse_colnames", "base_url", "openai_client", "target_type",
    ]
    assert dict(kwargs)["base_url"] == "http://backend:9999"


def test_monitor_gets_the_typed_input(tmp_path):
    predictor = _predictor(tmp_path)
    seen: list[tuple[PredictionInput, Any, PredictResponse]] = []

    class Monitor:
        embedded = None

        def report_prediction(self, predictor, inputs, data, response, seconds) -> None:
            seen.append((inputs, data, response))

        def shutdown(self) -> None:
            pass

    predictor.monitor = Monitor()
    inputs = PredictionInput(b"x\n1\n2\n", "text/csv")
    response = predictor.predict(inputs)
    [(reported, data, reported_response)] = seen
    assert reported is inputs and reported_response is response
    assert data["x"].tolist() == [1, 2]
