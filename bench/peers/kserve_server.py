"""The KServe columns of the benchmark: a `kserve.Model` around a joblib scikit-learn model, served on V1 and V2.

KServe's own `sklearnserver` is not on PyPI; this is its model class cut down to the same steps: `load` reads
the joblib file, `predict` turns the request into a numpy array (`get_predict_input`: V1 `instances`, or the
first V2 input tensor), calls the model's `predict` and answers with `get_predict_response` (V1
`{"predictions": [...]}`, V2 one output tensor). Run by the KServe venv's Python (bench/servers.py):

    .venv/peers/kserve/bin/python bench/peers/kserve_server.py --model_name regression \\
        --model_path model.joblib --http_port 8080 --grpc_port 8081

Every other flag is KServe's own parser with its defaults (1 uvicorn worker, gRPC on, latency logging on).
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
import kserve
from kserve import logging as kserve_logging
from kserve.errors import InferenceError
from kserve.utils.utils import get_predict_input, get_predict_response


class JoblibModel(kserve.Model):
    """A scikit-learn estimator from a joblib file, predicting on the request's array."""

    def __init__(self, name: str, model_path: str) -> None:
        super().__init__(name)
        self.model_path = model_path
        self._model: Any = None

    def load(self) -> bool:
        self._model = joblib.load(self.model_path)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        try:
            instances = get_predict_input(payload)
            return get_predict_response(payload, self._model.predict(instances), self.name)
        except Exception as exc:  # what sklearnserver does: the protocol's error answer
            raise InferenceError(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_path", required=True, help="the joblib file")
    args, _ = parser.parse_known_args()
    if args.configure_logging:
        kserve_logging.configure_logging(args.log_config_file)
    model = JoblibModel(args.model_name, args.model_path)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
