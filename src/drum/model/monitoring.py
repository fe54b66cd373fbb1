"""MLOps monitoring (DRUM §5.7) with DataRobot's `datarobot-mlops` package, an optional extra.

`--monitor` reports every structured prediction: `report_deployment_stats(num_predictions,
execution_time_ms)` and `report_predictions_data(features_df, predictions, class_names)`, with the
input re-read from the request bytes as DRUM does. The time is the prediction's own (measured where
the predictor runs, on the server's executor thread), not the time it waited for a thread.
`--monitor-embedded` hands the `MLOps` object to `score_unstructured` as its `mlops` kwarg. The
reporter is shut down (and flushed) when the server stops or `drum score` ends.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import threading
from typing import TYPE_CHECKING, Any

from drum.errors import DrumCommonException
from drum.model import codecs

if TYPE_CHECKING:
    from drum.model.predictor import PredictionInput, Predictor, PredictResponse

logger = logging.getLogger("drum.model.monitoring")
INSTALL_HINT = "pip install 'drum[mlops]'"


def requested(options: argparse.Namespace) -> bool:
    """Monitoring asked for (`--monitor` or `--monitor-embedded`) with a deployment id."""
    if not (getattr(options, "monitor", False) or getattr(options, "monitor_embedded", False)):
        return False
    if not getattr(options, "deployment_id", None):
        logger.info("Deployment id not set, monitoring will be disabled.")
        return False
    return True


def mlops_class() -> Any:
    """`datarobot_mlops.mlops.MLOps`, or a DrumCommonException that names the extra to install."""
    try:
        from datarobot_mlops.mlops import MLOps
    except ImportError as exc:
        raise DrumCommonException(
            "MLOps monitoring (--monitor, --monitor-embedded) needs the datarobot-mlops package, which is "
            f"not installed: {INSTALL_HINT}  ({exc})"
        ) from None
    return MLOps


def check_available(options: argparse.Namespace) -> None:
    """Fail early (before a server starts) when monitoring is requested but the package is missing."""
    if requested(options):
        mlops_class()


class MLOpsMonitor:
    """One `MLOps` reporter for a loaded predictor; thread-safe (predictions run on several threads)."""

    def __init__(self, mlops: Any, report_structured: bool) -> None:
        self.mlops = mlops
        self.report_structured = report_structured
        #: DRUM hands its MLOps object to score_unstructured whenever monitoring is on.
        self.embedded: Any = mlops
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.shutdown)

    def report_prediction(
        self, predictor: Predictor, inputs: PredictionInput, data: Any, response: PredictResponse, seconds: float
    ) -> None:
        """Report one structured prediction: its count and time, and the request's features re-read."""
        if not self.report_structured or self._closed:
            return
        predictions = response.predictions
        class_names = None
        if len(predictions.columns) == 1:
            values = predictions[predictions.columns[0]].tolist()
        else:
            values = predictions.values.tolist()
            class_names = list(predictions.columns)
        try:
            features = codecs.read_structured_input(inputs.binary_data, inputs.mimetype)
        except Exception as exc:  # noqa: BLE001 - DRUM fails the request here; we report the stats only
            logger.warning("MLOps: could not re-read the request's features (%s); reporting stats only", exc)
            features = None
        with self._lock:
            if self._closed:
                return
            self.mlops.report_deployment_stats(num_predictions=len(predictions), execution_time_ms=seconds * 1000)
            if features is not None:
                self.mlops.report_predictions_data(features_df=features, predictions=values, class_names=class_names)

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.mlops.shutdown()
        except Exception:  # noqa: BLE001 - at exit, a failing reporter must not hide the real outcome
            logger.exception("MLOps reporter failed to shut down")


def create_monitor(options: argparse.Namespace) -> MLOpsMonitor | None:
    """DRUM's MLOps set-up: deployment and model id, the channel from --monitor-settings (else the API
    spooler to --webserver with --api-token, reporting asynchronously), then `init()`."""
    if not requested(options):
        return None
    mlops = mlops_class()()
    mlops.set_deployment_id(options.deployment_id)
    if getattr(options, "model_id", None):
        mlops.set_model_id(options.model_id)
    if getattr(options, "monitor_settings", None):
        mlops.set_channel_config(options.monitor_settings)
    else:
        if not getattr(options, "webserver", None) or not getattr(options, "api_token", None):
            raise DrumCommonException("MLOps monitoring without --monitor-settings needs --webserver and --api-token")
        mlops.set_api_spooler(mlops_service_url=options.webserver, mlops_api_token=options.api_token)
        mlops.set_async_reporting()
    mlops.init()
    return MLOpsMonitor(mlops, report_structured=bool(getattr(options, "monitor", False)))


def attach_monitor(predictor: Predictor, options: argparse.Namespace) -> None:
    """Give `predictor` its MLOps monitor when the options ask for one (`predictor.terminate()` flushes it)."""
    monitor = create_monitor(options)
    if monitor is not None:
        predictor.monitor = monitor
