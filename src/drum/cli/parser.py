"""The ``drum`` command line: DRUM 1.18.1's sub-commands and flags, env-var injection and option checks.

Three steps turn an argv into options, as DRUM does them:

1. :func:`inject_env_args` appends the flags that environment variables stand for (``CODE_DIR`` becomes
   ``--code-dir ...``, ``SHOW_STACKTRACE=1`` becomes ``--show-stacktrace``) so that argparse types and
   checks apply to them too;
2. the argparse tree of :func:`build_parser` parses the result (``dest`` names are DRUM's);
3. :func:`parse_args` then exports ``ADDRESS``, resolves ``max_workers`` and runs DRUM's option checks,
   which print a message and exit with DRUM's status codes.

Loading ``--runtime-params-file`` and ``--lazy-loading-file`` is left to the caller.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NoReturn
from urllib.parse import urlparse

import drum
from drum.config.boolean import FALSE_VALUES, TRUE_VALUES, to_bool
from drum.errors import DrumCommonException

PROG = "drum"

SCORE = "score"
FIT = "fit"
PERF_TEST = "perf-test"
VALIDATION = "validation"
SERVER = "server"
NEW = "new"
NEW_MODEL = "model"
PUSH = "push"
RAY_SERVE = "ray-serve"
#: Key of the ``drum new model`` parser in the table of sub-parsers.
NEW_MODEL_KEY = f"{NEW} {NEW_MODEL}"

TARGET_TYPES = (
    "binary",
    "regression",
    "anomaly",
    "unstructured",
    "multiclass",
    "transform",
    "textgeneration",
    "geopoint",
    "vectordatabase",
    "agenticworkflow",
    "multilabel",
)
UNSTRUCTURED = "unstructured"
ANOMALY = "anomaly"
TRANSFORM = "transform"
LOG_LEVELS = ("all", "debug", "info", "warn", "warning", "error", "critical", "fatal")
LANGUAGES = ("python", "r", "java", "other")
GPU_PREDICTORS = ("triton", "nim", "vllm")

#: Environment variables injected as ``--flag VALUE`` (in this order, as DRUM does).
VALUE_ENV_VARS = (
    "TARGET_TYPE",
    "CODE_DIR",
    "NEGATIVE_CLASS_LABEL",
    "POSITIVE_CLASS_LABEL",
    "CLASS_LABELS_FILE",
    "CLASS_LABELS",
    "ADDRESS",
    "MAX_WORKERS",
    "DEPLOYMENT_CONFIG",
    "USER_SECRETS_PREFIX",
    "USER_SECRETS_MOUNT_PATH",
)
#: Environment variables injected as a bare ``--flag`` when their boolean value is true.
BOOL_ENV_VARS = (
    "WITH_ERROR_SERVER",
    "SHOW_STACKTRACE",
    "PRODUCTION",
    "MONITOR",
    "MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS",
    "SKIP_PREDICT",
    "ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS",
)
_ENV_FLAG_NAMES = {
    "MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS": "--monitor-embedded",
    "ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS": "--allow-dr-api-access",
}
# An env var of one of these pairs is not injected when the other flag is on the command line.
# DRUM only ever checks the first pair (its loop returns early), so MONITOR and
# MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS may both be injected and argparse then rejects the pair.
_ENV_EXCLUSIVE_PAIR = ("CLASS_LABELS", "CLASS_LABELS_FILE")

_MIN_CLASS_LABELS = 2
_TOO_FEW_LABELS = "Multiclass classification requires at least 2 labels."
_BOTH_BINARY_LABELS = (
    "\nError - for binary classification case, both positive and negative class labels have to be "
    "provided. \nSee --help option for more information"
)
_BOTH_LABEL_SOURCES = (
    "\nError - for multiclass classification, either the class labels or a class labels file should "
    "be provided, but not both.\nSee --help option for more information"
)
_DEFAULT_CONTENT_TYPE = "text/plain; charset=utf8"

Parsers = dict[str, argparse.ArgumentParser]


# --------------------------------------------------------------------------------------------------
# argparse value types and actions
# --------------------------------------------------------------------------------------------------


def _existing_file(arg: str) -> str:
    if not os.path.exists(arg):
        raise argparse.ArgumentTypeError(f"The file {arg} does not exist!")
    return os.path.realpath(os.path.abspath(arg))


def _existing_dir(arg: str) -> str:
    if not os.path.isdir(arg):
        raise argparse.ArgumentTypeError(f"The path {arg} is not a directory!")
    return os.path.realpath(os.path.abspath(arg))


def _existing_output_dir(arg: str) -> str:
    if not os.path.isdir(arg):
        raise argparse.ArgumentTypeError(
            f"The path {arg} is not a directory! For custom tasks, the output directory will consist "
            "of the artifacts usable for making predictions. "
        )
    return os.path.realpath(os.path.abspath(arg))


def _non_existing_path(arg: str) -> str:
    if os.path.exists(arg):
        raise argparse.ArgumentTypeError(f"The path {arg} already exists! Please provide a non existing path!")
    return os.path.abspath(arg)


def _positive_int(arg: str) -> int:
    value = int(arg)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


# argparse names the type in "invalid <type> value: 'x'".
_positive_int.__name__ = "int"


def _exit_with_usage(parser: argparse.ArgumentParser, message: str, status: int) -> NoReturn:
    """Like ``parser.error`` but with DRUM's exit status for errors it raised as exceptions."""
    parser.print_usage(sys.stderr)
    parser.exit(status, f"{parser.prog}: error: {message}\n")


class _ClassLabelsAction(argparse.Action):
    """``--class-labels L1 L2 ...``: at least two labels, not together with ``--class-labels-file``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, "class_labels_file", None) is not None:
            parser.error(f"argument --class-labels-file: {_BOTH_LABEL_SOURCES}")
        labels = list(values)
        if len(labels) < _MIN_CLASS_LABELS:
            # DRUM fails here with a traceback and status 1; we keep the status, not the traceback.
            _exit_with_usage(parser, f"argument {option_string}: {_TOO_FEW_LABELS}", 1)
        setattr(namespace, self.dest, labels)


class _ClassLabelsFileAction(argparse.Action):
    """``--class-labels-file F``: reads newline-separated labels into ``class_labels``.

    The file's absolute path is kept in ``class_labels_file``.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, "class_labels_file", None) is None and namespace.class_labels is not None:
            parser.error(f"argument --class-labels: {_BOTH_LABEL_SOURCES}")
        path = str(values)
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            _exit_with_usage(parser, f"argument {option_string}: cannot read {path}: {exc.strerror}", 1)
        labels = [line.rstrip("\r") for line in text.split("\n")]
        labels = [label for label in labels if label]
        if len(labels) < _MIN_CLASS_LABELS:
            _exit_with_usage(parser, f"argument {option_string}: {_TOO_FEW_LABELS}", 1)
        namespace.class_labels = labels
        setattr(namespace, self.dest, os.path.realpath(os.path.abspath(path)))


# --------------------------------------------------------------------------------------------------
# Flags, one function per group, registered on the sub-parsers that have them (as in DRUM)
# --------------------------------------------------------------------------------------------------


def _add_code_dir(parser: argparse.ArgumentParser, *, new_template: bool) -> None:
    parser.add_argument(
        "-cd",
        "--code-dir",
        default=None,
        required=True,
        type=_non_existing_path if new_template else _existing_dir,
        help="Directory to use for creating the new template (must not exist)"
        if new_template
        else "Custom model code dir. The argument can also be provided by setting CODE_DIR env var.",
    )


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", default=False, help="Show verbose output")


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        default=None,
        required=True,
        type=_existing_file,
        help="Path to an input dataset (CSV, or .mtx for sparse data)",
    )


def _add_binary_labels(parser: argparse.ArgumentParser, *, fit: bool) -> None:
    fit_note = (
        " If you do not provide these labels, but your dataset is classification, DRUM will choose the labels for you."
        if fit
        else ""
    )
    for side, env in (("positive", "POSITIVE_CLASS_LABEL"), ("negative", "NEGATIVE_CLASS_LABEL")):
        parser.add_argument(
            f"--{side}-class-label",
            default=None,
            type=str,
            help=f"{side.capitalize()} class label for a binary classification case. "
            f"The argument can also be provided by setting {env} env var.{fit_note}",
        )


def _add_class_labels(parser: argparse.ArgumentParser, *, fit: bool) -> None:
    order_note = " Labels should be in the order as the predicted probabilities produced by the model."
    fit_note = (
        " If you do not provide these labels, but your dataset is classification, DRUM will choose the labels for you."
        if fit
        else ""
    )
    parser.add_argument(
        "--class-labels",
        default=None,
        nargs="+",
        action=_ClassLabelsAction,
        help="The class labels for a multiclass/multilabel classification case. The argument can also "
        "be provided by setting CLASS_LABELS env var (whitespace separated)." + order_note + fit_note,
    )
    parser.add_argument(
        "--class-labels-file",
        default=None,
        action=_ClassLabelsFileAction,
        help="A file containing newline separated class labels for a multiclass classification case. "
        "The argument can also be provided by setting CLASS_LABELS_FILE env var." + order_note + fit_note,
    )


def _add_logging_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logging-level",
        required=False,
        choices=LOG_LEVELS,
        default="warning",
        help="Logging level to use",
    )


def _add_docker(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "--docker",
        default=None,
        required=False,
        help=f"Docker image to use to run {PROG} in the {command} mode, or a directory containing a "
        "Dockerfile which is built into an image. If the code dir contains requirements.txt, the "
        "dependencies are installed into the image (Python/R models, build-context directories only); "
        "use --skip-deps-install to skip this.",
    )
    parser.add_argument(
        "--skip-deps-install",
        default=False,
        action="store_true",
        required=False,
        help="Skip installing the code dir's requirements.txt during the image build (needs --docker).",
    )
    parser.add_argument(
        "--memory",
        default=None,
        required=False,
        help="Amount of memory the docker container may use, passed to docker run as both --memory and "
        "--memory-swap. b, k, m, g suffixes are supported",
    )


def _add_output(parser: argparse.ArgumentParser, command: str) -> None:
    if command == SCORE:
        parser.add_argument(
            "--output",
            default=None,
            type=os.path.abspath,
            help="Path to a csv file to output predictions",
        )
    else:
        parser.add_argument(
            "--output",
            default=None,
            type=_existing_output_dir,
            help="DRUM will copy the contents of code_dir and create the model artifact in the output folder",
        )


def _add_show_perf(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-perf", action="store_true", default=False, help="Show performance stats")


def _add_fit_only(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=False)
    target.add_argument(
        "--target",
        type=str,
        required=False,
        help="Which column to use as the target. Argument is mutually exclusive with --target-csv.",
    )
    target.add_argument(
        "--target-csv",
        type=_existing_file,
        required=False,
        help="A file containing the target values. Argument is mutually exclusive with --target.",
    )
    weights = parser.add_mutually_exclusive_group(required=False)
    weights.add_argument(
        "--row-weights",
        type=str,
        required=False,
        default=None,
        help="A column name of row weights in your training dataframe. "
        "Argument is mutually exclusive with --row-weights-csv",
    )
    weights.add_argument(
        "--row-weights-csv",
        type=_existing_file,
        required=False,
        default=None,
        help="A one column csv file to be parsed as row weights. Argument is mutually exclusive with --row-weights",
    )
    parser.add_argument(
        "--skip-predict",
        required=False,
        default=False,
        action="store_true",
        help="Do not check predictions of the fitted model (by default DRUM serves the output and "
        "predicts with it). The argument can also be provided by setting SKIP_PREDICT env var.",
    )
    parser.add_argument(
        "--num-rows",
        default="ALL",
        help="Number of rows to use for testing the fit functionality. Set to ALL to use all rows.",
    )


def _add_sparse_column_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sparse-column-file",
        default=None,
        type=_existing_file,
        help="Column names for a sparse .mtx input (which has none), one per line; the number of "
        "lines must match the number of columns of the .mtx file exactly.",
    )


def _add_parameter_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameter-file",
        default=None,
        type=_existing_file,
        help="Task parameters stored in a JSON file: a single mapping of parameter names to values. "
        "Without it, the defaults of the hyperparameters in model-metadata.yaml are used.",
    )


def _add_perf_test_only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--samples", type=int, default=None, help="Number of samples")
    parser.add_argument("-i", "--iterations", type=int, default=None, help="Number of iterations")
    parser.add_argument("--timeout", type=int, default=600, help="Test case timeout")
    parser.add_argument("--in-server", action="store_true", default=False, help="Show performance inside server")
    parser.add_argument("--url", default=None, help="Run performance against the given prediction server (unused)")


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=None,
        required=True,
        help="Prediction server address host[:port]. The argument can also be provided by setting ADDRESS env var.",
    )


def _add_ray_serve_only(parser: argparse.ArgumentParser) -> None:
    replicas = parser.add_mutually_exclusive_group()
    replicas.add_argument("--num-replicas", type=int, default=None, help="Replicas of the model (default 1)")
    replicas.add_argument(
        "--autoscaling", default=None, metavar="MIN:MAX",
        help="Let Ray Serve scale the replicas between MIN and MAX with the load",
    )  # fmt: skip
    parser.add_argument(
        "--ray-address", default=None,
        help="The Ray cluster to join: 'auto' (a cluster started with `ray start` on this machine) or its "
        "address; default: start a local one for this command",
    )  # fmt: skip


def _add_ray_score(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray-address", default=None,
        help="Score with Ray Data on this Ray cluster ('local' starts one for this command, 'auto' joins the "
        "one on this machine): one loaded model per actor, the output in input order (pip install 'drum[ray]')",
    )  # fmt: skip
    parser.add_argument(
        "--ray-batch-rows", type=int, default=None,
        help="Rows per Ray Data batch (default: chunks of DRUM_SCORE_CHUNK_BYTES)",
    )  # fmt: skip


def _add_production(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--production",
        action="store_true",
        default=False,
        help="[DEPRECATED] Run the prediction server in production mode (requires --max-workers). "
        "The argument can also be provided by setting PRODUCTION env var.",
    )


def _add_reload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reload",
        action="store_true",
        default=False,
        help="Development (not in DRUM): restart the server when a file in the code dir changes (FastAPI, one "
        "worker; watchfiles, as uvicorn --reload). Not with --max-workers > 1 or --production.",
    )


def _add_max_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-workers",
        type=_positive_int,
        default=0,
        help="Max number of workers in server. The argument can also be provided by setting MAX_WORKERS env var.",
    )


def _add_with_error_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--with-error-server",
        action="store_true",
        default=False,
        help="Start server even if pipeline initialization fails (every route then answers 513). "
        "The argument can also be provided by setting WITH_ERROR_SERVER env var.",
    )


def _add_language(parser: argparse.ArgumentParser, *, new_template: bool) -> None:
    parser.add_argument(
        "--language",
        choices=[lang for lang in LANGUAGES if not (new_template and lang == "java")],
        default=None,
        required=new_template,
        help="Language to use for the new model template"
        if new_template
        else "Language of the model, overrides detection from the code dir",
    )


def _add_show_stacktrace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--show-stacktrace",
        action="store_true",
        default=False,
        help="Show stacktrace when error happens. The argument can also be provided by setting "
        "SHOW_STACKTRACE env var.",
    )


def _add_monitoring(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--monitor",
        action="store_true",
        help="Monitor predictions using DataRobot MLOps. The argument can also be provided by setting "
        "MONITOR env var. Monitoring can not be used in unstructured mode.",
    )
    group.add_argument(
        "--monitor-embedded",
        action="store_true",
        help="Give unstructured models an MLOps object to report statistics with. The argument can "
        "also be provided by setting the 'MLOPS_REPORTING_FROM_UNSTRUCTURED_MODELS' env var.",
    )
    parser.add_argument(
        "--deployment-id",
        default=environ.get("DEPLOYMENT_ID", environ.get("MLOPS_DEPLOYMENT_ID")),
        help="Deployment id to use for monitoring model predictions (env: DEPLOYMENT_ID)",
    )
    parser.add_argument(
        "--model-id",
        default=environ.get("MODEL_ID", environ.get("MLOPS_MODEL_ID")),
        help="MLOps model id to use for monitoring predictions (env: MODEL_ID)",
    )
    parser.add_argument(
        "--monitor-settings",
        default=environ.get("MONITOR_SETTINGS"),
        help="MLOps setting to use for connecting with the MLOps Agent (env: MONITOR_SETTINGS)",
    )


def _add_dr_api_access(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--allow-dr-api-access",
        action="store_true",
        default=False,
        help="Give the model an initialised DataRobot client (needs --webserver and --api-token). The "
        "argument can also be provided by setting ALLOW_DR_API_ACCESS_FOR_ALL_CUSTOM_MODELS env var.",
    )
    parser.add_argument(
        "--webserver",
        default=environ.get("EXTERNAL_WEB_SERVER_URL"),
        help="DataRobot external web server URL (env: EXTERNAL_WEB_SERVER_URL)",
    )
    parser.add_argument("--api-token", default=environ.get("API_TOKEN"), help="DataRobot API token (env: API_TOKEN)")


def _add_gpu_predictor(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--gpu-predictor",
        choices=GPU_PREDICTORS,
        required=False,
        help=f"Choose the GPU predictor to serve models. Options: {list(GPU_PREDICTORS)}",
    )
    parser.add_argument(
        "--sidecar",
        action="store_true",
        default=False,
        help="DRUM runs as a sidecar, proxying/monitoring requests to a model container.",
    )
    parser.add_argument(
        "--triton-host",
        default=environ.get("TRITON_HOST", "http://localhost"),
        help="NVIDIA Triton Inference Server URL (env: TRITON_HOST)",
    )
    parser.add_argument(
        "--triton-http-port",
        default=environ.get("TRITON_HTTP_PORT", "8000"),
        help="NVIDIA Triton Inference Server HTTP port (env: TRITON_HTTP_PORT)",
    )
    parser.add_argument(
        "--triton-grpc-port",
        default=environ.get("TRITON_GRPC_PORT", "8001"),
        help="NVIDIA Triton Inference Server GRPC port (env: TRITON_GRPC_PORT)",
    )


def _add_target_type(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-type",
        required=False,
        choices=TARGET_TYPES,
        default=None,
        help="Target type. The argument can also be provided by setting TARGET_TYPE env var.",
    )


def _add_unstructured(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--query",
        default=None,
        help="Additional query params for unstructured mode, e.g. 'a=1&b=2'. (Simulates http request query params.)",
    )
    parser.add_argument(
        "--content-type",
        default=None,
        help="Content type for unstructured mode. (Simulates http request Content-Type header, "
        f"default: '{_DEFAULT_CONTENT_TYPE}')",
    )


def _add_deployment_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deployment-config",
        default=None,
        type=_existing_file,
        help="Deployment configuration file; predictions are then returned in DataRobot PPS format. "
        "The argument can also be provided by setting DEPLOYMENT_CONFIG env var.",
    )


def _add_strict_validation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--disable-strict-validation",
        action="store_true",
        default=False,
        help="Disable strict schema validation and only warn if issues are found.",
    )


def _add_fit_metadata(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--enable-fit-metadata",
        action="store_true",
        default=False,
        help="Generate a report from prediction runtime metrics (ie memory usage).",
    )


def _add_user_secrets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user-secrets-mount-path",
        default=None,
        help="The directory where secrets are stored (env: USER_SECRETS_MOUNT_PATH)",
    )
    parser.add_argument(
        "--user-secrets-prefix",
        default=None,
        help="The env var prefix added to user secrets env vars (env: USER_SECRETS_PREFIX)",
    )


def _add_runtime_params_file(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--runtime-params-file",
        default=environ.get("RUNTIME_PARAMS_FILE"),
        required=False,
        type=_existing_file,
        help="Path to a runtime parameter values file. (env: RUNTIME_PARAMS_FILE)",
    )


def _add_lazy_loading_file(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--lazy-loading-file",
        default=environ.get("LAZY_LOADING_FILE"),
        required=False,
        type=_existing_file,
        help="Path to a lazy loading values file. (env: LAZY_LOADING_FILE)",
    )


# --------------------------------------------------------------------------------------------------
# The parser tree
# --------------------------------------------------------------------------------------------------

_SERVER_DESCRIPTION = """
Serve the given model over a REST API on the host and port of --address.

Routes (prefix them with the URL_PREFIX env var if set):
  GET  /              liveness check
  GET  /ping/         liveness check
  GET  /health/       readiness: 200 once the model is loaded
  POST /predict/      structured predictions; send the data as the form field X or as the body
  POST /predictUnstructured/   unstructured models

Example:
  curl -X POST --form "X=@data_file.csv" localhost:6789/predict/
"""

_PERF_TEST_DESCRIPTION = """
Test the performance of an inference model: serve it with the server sub-command, send requests of
several sizes (from one row up to about 50MB) and measure how long each takes. The summary shows,
per request size: size, samples, iters, min/avg/max time (seconds), memory used by drum (MB), the
container memory limit (MB) when run in docker and the total physical memory (MB).
"""

_VALIDATION_DESCRIPTION = """
Validate the model with the checks DataRobot runs before a model can be deployed:

  * null value imputation: each feature of the dataset is set to missing in turn and fed to the model.

Example:
  drum validation --code-dir ~/user_code_dir/ --input 10k.csv \\
        --positive-class-label yes --negative-class-label no
"""

_PUSH_DESCRIPTION = """
Submit the contents of a code directory as a custom model (or task) to DataRobot. The DataRobot
client must be configured (DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN, or
~/.config/datarobot/drconfig.yaml), and model-metadata.yaml in the code dir says what to create. The
model is first checked locally (score or fit on validation.input).
"""


def _build(environ: Mapping[str, str]) -> tuple[argparse.ArgumentParser, Parsers]:
    """The top-level parser and every sub-parser by name (``drum new model`` is ``"new model"``)."""
    main = argparse.ArgumentParser(prog=PROG, description="Run user model")
    main.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {drum.__version__} (DRUM {drum.DRUM_COMPAT_VERSION} compatible)",
    )
    commands = main.add_subparsers(dest="subparser_name", help="Commands")
    raw = argparse.RawDescriptionHelpFormatter
    p: Parsers = {
        SCORE: commands.add_parser(
            SCORE,
            help="Run predictions in batch mode",
            description="Score an input file using the given model.",
        ),
        FIT: commands.add_parser(FIT, help="Fit your model to your data"),
        PERF_TEST: commands.add_parser(
            PERF_TEST, help="Run performance tests", description=_PERF_TEST_DESCRIPTION, formatter_class=raw
        ),
        VALIDATION: commands.add_parser(
            VALIDATION,
            help="Run validation checks against the model",
            description=_VALIDATION_DESCRIPTION,
            formatter_class=raw,
        ),
        SERVER: commands.add_parser(
            SERVER, help="serve the model via REST APIs", description=_SERVER_DESCRIPTION, formatter_class=raw
        ),
        NEW: commands.add_parser(
            NEW, help="Create new model/env template", description="Create new model/env template"
        ),
    }
    new_commands = p[NEW].add_subparsers(dest="new_mode", help="Commands")
    p[NEW_MODEL_KEY] = new_commands.add_parser(NEW_MODEL, help="Create a new modeling code directory template")
    p[PUSH] = commands.add_parser(
        PUSH, help="Add your modeling code into DataRobot", description=_PUSH_DESCRIPTION, formatter_class=raw
    )
    p[RAY_SERVE] = commands.add_parser(
        RAY_SERVE,
        help="serve the model on a Ray cluster (Ray Serve), with drum server's flags and routes",
        description="Deploy the model as a Ray Serve application whose replicas each run drum's FastAPI app "
        "(pip install 'drum[ray]'). docs/ray.md.",
    )
    # perf-test and validation have no --logging-level; validation has no --verbose either.
    p[PERF_TEST].set_defaults(logging_level="warning", verbose=False)
    p[VALIDATION].set_defaults(logging_level="warning", verbose=False)

    def on(*names: str) -> list[tuple[str, argparse.ArgumentParser]]:
        return [(name, p[name]) for name in names]

    # Registration order follows DRUM, so that usage lines list the flags in the same order.
    for name, parser in on(SCORE, PERF_TEST, SERVER, FIT, NEW_MODEL_KEY, VALIDATION, PUSH, RAY_SERVE):
        _add_code_dir(parser, new_template=name == NEW_MODEL_KEY)
    for _, parser in on(SCORE, SERVER, FIT, NEW, NEW_MODEL_KEY, PUSH, PERF_TEST, RAY_SERVE):
        _add_verbose(parser)
    for _, parser in on(SCORE, PERF_TEST, FIT, VALIDATION):
        _add_input(parser)
    for name, parser in on(SCORE, PERF_TEST, SERVER, FIT, VALIDATION, RAY_SERVE):
        _add_binary_labels(parser, fit=name == FIT)
    for name, parser in on(SCORE, PERF_TEST, SERVER, FIT, VALIDATION, RAY_SERVE):
        _add_class_labels(parser, fit=name == FIT)
    for _, parser in on(SCORE, SERVER, FIT, NEW, NEW_MODEL_KEY, PUSH, RAY_SERVE):
        _add_logging_level(parser)
    for name, parser in on(SCORE, PERF_TEST, SERVER, FIT, VALIDATION, PUSH):
        _add_docker(parser, name)
    for name, parser in on(SCORE, FIT):
        _add_output(parser, name)
    for _, parser in on(SCORE, SERVER, RAY_SERVE):
        _add_show_perf(parser)
    _add_fit_only(p[FIT])
    for _, parser in on(FIT, SCORE):
        _add_sparse_column_file(parser)
    _add_parameter_file(p[FIT])
    _add_perf_test_only(p[PERF_TEST])
    _add_address(p[SERVER])
    _add_address(p[RAY_SERVE])
    for _, parser in on(SERVER, PERF_TEST):
        _add_production(parser)
    for _, parser in on(SERVER, PERF_TEST):
        _add_max_workers(parser)
    _add_with_error_server(p[SERVER])
    _add_reload(p[SERVER])
    _add_with_error_server(p[RAY_SERVE])
    _add_ray_serve_only(p[RAY_SERVE])
    _add_ray_score(p[SCORE])
    for name, parser in on(NEW_MODEL_KEY, SERVER, SCORE, PERF_TEST, VALIDATION, RAY_SERVE):
        _add_language(parser, new_template=name == NEW_MODEL_KEY)
    for _, parser in on(SCORE, PERF_TEST, SERVER, FIT, VALIDATION, NEW_MODEL_KEY, RAY_SERVE):
        _add_show_stacktrace(parser)
    for _, parser in on(SCORE, SERVER, RAY_SERVE):
        _add_monitoring(parser, environ)
        _add_dr_api_access(parser, environ)
        _add_gpu_predictor(parser, environ)
    for _, parser in on(SCORE, PERF_TEST, SERVER, FIT, VALIDATION, RAY_SERVE):
        _add_target_type(parser)
    for _, parser in on(SCORE, PERF_TEST, SERVER, VALIDATION, RAY_SERVE):
        _add_unstructured(parser)
    _add_deployment_config(p[SERVER])
    _add_deployment_config(p[RAY_SERVE])
    for _, parser in on(FIT, PUSH):
        _add_strict_validation(parser)
    for _, parser in on(FIT, PUSH):
        _add_fit_metadata(parser)
    for _, parser in on(FIT, SCORE, SERVER, PUSH, RAY_SERVE):
        _add_user_secrets(parser)
    for _, parser in on(SCORE, PERF_TEST, SERVER, VALIDATION, RAY_SERVE):
        _add_runtime_params_file(parser, environ)
    for _, parser in on(SCORE, SERVER, VALIDATION, RAY_SERVE):
        _add_lazy_loading_file(parser, environ)
    return main, p


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """DRUM's argparse tree. ``environ`` (default ``os.environ``) supplies the env-based defaults
    (``RUNTIME_PARAMS_FILE``, ``DEPLOYMENT_ID``, ``API_TOKEN``, ``TRITON_HOST``, ...)."""
    return _build(os.environ if environ is None else environ)[0]


# --------------------------------------------------------------------------------------------------
# Env-var -> flag injection
# --------------------------------------------------------------------------------------------------


def env_var_flag(name: str) -> str:
    """The flag an injected environment variable stands for (``CODE_DIR`` -> ``--code-dir``)."""
    return _ENV_FLAG_NAMES.get(name, "--" + name.lower().replace("_", "-"))


@lru_cache(maxsize=1)
def _options_by_command() -> dict[str, dict[str, tuple[str, ...]]]:
    """For each top-level sub-command: every option string -> all option strings of its action."""
    table: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, parser in _build({})[1].items():
        if name == NEW_MODEL_KEY:
            continue
        options: dict[str, tuple[str, ...]] = {}
        for action in parser._actions:
            for option in action.option_strings:
                options[option] = tuple(action.option_strings)
        table[name] = options
    return table


def _is_flag_given(args: Sequence[str], flag: str, options: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether ``flag`` (or one of its aliases, ``--flag=value``, or an abbreviation argparse would
    resolve to it) is among ``args``."""
    aliases = options.get(flag, (flag,))
    long_options = [option for option in options if option.startswith("--")]
    for arg in args:
        if arg == "--":
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in aliases:
            return True
        if name.startswith("--") and name not in options:
            candidates = [option for option in long_options if option.startswith(name)]
            if len(candidates) == 1 and candidates[0] in aliases:
                return True
    return False


def _invalid_bool_env(name: str, value: str) -> NoReturn:
    accepted = ", ".join(sorted(TRUE_VALUES)) + " / " + ", ".join(sorted(FALSE_VALUES))
    sys.stderr.write(
        f"{PROG}: error: environment variable {name}={value!r} is not a valid boolean "
        f"(accepted, case-insensitive: {accepted})\n"
    )
    raise SystemExit(1)


def inject_env_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Return ``argv`` (without the program name) extended with the flags that env vars stand for.

    As in DRUM: only for the sub-command in ``argv[0]``, only set and non-empty variables, only flags
    that this sub-command has and that ``argv`` does not already give. ``CLASS_LABELS`` is split on
    whitespace; ``CLASS_LABELS`` and ``CLASS_LABELS_FILE`` are skipped when the other flag is given.
    Boolean variables add their flag only when true; an invalid boolean exits with status 1.
    """
    environ = os.environ if environ is None else environ
    args = list(argv)
    if not args:
        return args
    options = _options_by_command().get(args[0])
    if options is None:
        return args
    for name in VALUE_ENV_VARS + BOOL_ENV_VARS:
        value = environ.get(name)
        if not value:
            continue
        flag = env_var_flag(name)
        if flag not in options or _is_flag_given(args, flag, options):
            continue
        if name in _ENV_EXCLUSIVE_PAIR:
            other = _ENV_EXCLUSIVE_PAIR[1 - _ENV_EXCLUSIVE_PAIR.index(name)]
            if _is_flag_given(args, env_var_flag(other), options):
                continue
        if name in BOOL_ENV_VARS:
            try:
                enabled = to_bool(value)
            except ValueError:
                _invalid_bool_env(name, value)
            if enabled:
                args.append(flag)
        elif name == "CLASS_LABELS":
            args.extend([flag, *value.split()])
        else:
            args.extend([flag, value])
    return args


# --------------------------------------------------------------------------------------------------
# Post-parse steps
# --------------------------------------------------------------------------------------------------


def resolve_max_workers(options: argparse.Namespace) -> None:
    """Set ``options.max_workers`` as DRUM does: the runtime parameter ``CUSTOM_MODEL_WORKERS`` when
    present, else the int of ``--max-workers`` (0 when not given), 1 for sub-commands without it.

    Call it again after loading a runtime-params file: DRUM's server parses its options twice, so a
    ``CUSTOM_MODEL_WORKERS`` from that file takes effect too.
    """
    from drum.config.runtime_params import RuntimeParameters

    if RuntimeParameters.has("CUSTOM_MODEL_WORKERS"):
        value = RuntimeParameters.get("CUSTOM_MODEL_WORKERS")
        try:
            options.max_workers = int(value)
        except (TypeError, ValueError):
            print(f"Runtime parameter CUSTOM_MODEL_WORKERS must be an integer, got {value!r}.")
            raise SystemExit(1) from None
    elif getattr(options, "max_workers", None) is None:
        options.max_workers = 1
    else:
        options.max_workers = int(options.max_workers)


def check_unstructured_only_options(options: argparse.Namespace, target_type: str | None) -> None:
    """DRUM's check, once the target type is resolved (CLI/env or model-metadata.yaml): ``--query`` and
    ``--content-type`` are for unstructured models only; unstructured defaults the content type.

    Raises :class:`drum.errors.DrumCommonException` with DRUM's message.
    """
    if target_type != UNSTRUCTURED:
        if getattr(options, "query", None):
            raise DrumCommonException("--query argument can be used only with --target-type unstructured")
        if getattr(options, "content_type", None):
            raise DrumCommonException("--content-type argument can be used only with --target-type unstructured")
    elif hasattr(options, "content_type") and options.content_type is None:
        options.content_type = _DEFAULT_CONTENT_TYPE


def _abort(message: str | None = None, help_of: argparse.ArgumentParser | None = None) -> NoReturn:
    if message is not None:
        print(message)
    if help_of is not None:
        help_of.print_help()
    raise SystemExit(1)


def _report_missing(parser: argparse.ArgumentParser, header: list[str], missing: list[str], footer: str) -> NoReturn:
    print("\n")
    for line in header:
        print(line)
    for option in missing:
        print(f"  {option}")
    print("\n")
    print(footer)
    print("\n")
    _abort(help_of=parser)


def _check_binary_labels(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    positive = getattr(options, "positive_class_label", None)
    negative = getattr(options, "negative_class_label", None)
    if (positive is None) != (negative is None):
        given = "--positive-class-label" if positive is not None else "--negative-class-label"
        parser.error(f"argument {given}: {_BOTH_BINARY_LABELS}")


def _verify_monitoring(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    missing: list[str] = []
    if options.monitor or options.monitor_embedded:
        if options.model_id is None:
            missing.append("--model-id")
        if options.deployment_id is None:
            missing.append("--deployment-id")
    if options.monitor:
        if options.target_type == UNSTRUCTURED:
            _abort("Error: MLOps monitoring can not be used in unstructured mode.")
        if options.monitor_settings is None:
            missing.append("--monitor-settings")
    elif options.monitor_embedded:
        if options.target_type != UNSTRUCTURED:
            _abort("Error: MLOps embedded monitoring is supported for unstructured modes only.")
        if options.webserver is None:
            missing.append("--webserver")
        if options.api_token is None:
            missing.append("--api-token")
    if missing:
        _report_missing(
            parser,
            [
                "Error: MLOps Monitoring requires all monitoring options to be present.",
                "Note: The following MLOps monitoring option(s) is/are missing:",
            ],
            missing,
            "These options can also be obtained via environment variables",
        )


def _verify_dr_api_access(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not options.allow_dr_api_access:
        return
    missing = [
        option
        for option, value in (("--webserver", options.webserver), ("--api-token", options.api_token))
        if value is None
    ]
    if missing:
        _report_missing(
            parser,
            ["Error: DataRobot APIs access requires certain option(s) that are missing.", "Missing options:"],
            missing,
            "These options can also be obtained via environment variables.",
        )


def _verify_triton(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    host = urlparse(options.triton_host)
    if not (host.scheme and host.netloc):
        print("Error: Triton Host URL must contain scheme and netloc")
        parser.print_help()
        print("\n")
        raise SystemExit(1)
    try:
        ports_ok = int(options.triton_http_port) > 0 and int(options.triton_grpc_port) > 0
    except (TypeError, ValueError):
        ports_ok = False
    if not ports_ok:
        print("Error: Triton HTTP port or GRPc port configuration is incorrect. Value should be a positive integer.")
        print("\n")
        _abort(help_of=parser)
    if options.triton_http_port == options.triton_grpc_port:
        print("Error: Triton HTTP port or GRPc port configuration is incorrect. Ports can't be the same.")
        print("\n")
        _abort(help_of=parser)


def _verify_options(options: argparse.Namespace, main: argparse.ArgumentParser, parsers: Parsers) -> None:
    """DRUM's ``verify_options``: print a message (and maybe help) to stdout, exit 1."""
    command = options.subparser_name
    if not command:
        _abort(help_of=main)
    if command == NEW:
        if not options.new_mode:
            _abort(help_of=parsers[NEW])
    elif command in (SERVER, PERF_TEST):
        if command == PERF_TEST and options.target_type == UNSTRUCTURED:
            _abort("Performance testing is not implemented for unstructured models.")
        if options.production and options.max_workers == 0:
            _abort("Production mode requires a non-zero number of workers [--max-workers > 0].")
    elif command == FIT:
        if options.target_type == ANOMALY:
            if options.target or options.target_csv:
                _abort(
                    "Arguments '--target' and '--target-csv' are mutually exclusive with "
                    f"'{options.target_type}' target type."
                )
        elif options.target_type != TRANSFORM and not (options.target or options.target_csv):
            _abort(
                f"With target type '{options.target_type}', target feature has to be provided using "
                "'--target' or '--target-csv' argument."
            )

    if getattr(options, "skip_deps_install", False) and options.docker is None:
        _abort("Argument '--skip-deps-install' can only be used together with '--docker'.")

    if command == RAY_SERVE:
        if options.num_replicas is not None and options.num_replicas < 1:
            _abort("--num-replicas must be at least 1.")
        if options.autoscaling is not None:
            low, _, high = options.autoscaling.partition(":")
            if not (low.isdigit() and high.isdigit() and 0 <= int(low) <= int(high) and int(high) >= 1):
                _abort(f"--autoscaling takes MIN:MAX replicas (0 <= MIN <= MAX, MAX >= 1): {options.autoscaling!r}.")
    if command in (SERVER, SCORE, RAY_SERVE):
        parser = parsers[command]
        _verify_monitoring(options, parser)
        _verify_dr_api_access(options, parser)
        _verify_triton(options, parser)
    else:
        # Other sub-commands have no monitoring flags; DRUM defines them as off.
        options.monitor = False
        options.monitor_embedded = False
        options.model_id = None
        options.deployment_id = None
        options.monitor_settings = None


def parse_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Parse a ``drum`` command line as DRUM 1.18.1 does.

    ``argv`` excludes the program name (default ``sys.argv[1:]``); ``environ`` defaults to
    ``os.environ``. Injects env-var flags, parses, exports ``ADDRESS`` to ``os.environ``, resolves
    ``max_workers`` and runs DRUM's option checks. Errors exit: 2 for argparse errors, 1 for DRUM's
    checks (message on stdout, as DRUM prints it).
    """
    environ = os.environ if environ is None else environ
    args = list(sys.argv[1:] if argv is None else argv)
    main, parsers = _build(environ)
    args = inject_env_args(args, environ)
    options = main.parse_args(args)

    if options.subparser_name:
        _check_binary_labels(options, parsers[options.subparser_name])

    if getattr(options, "address", None):
        os.environ["ADDRESS"] = options.address
    resolve_max_workers(options)
    _verify_options(options, main, parsers)
    return options


__all__ = [
    "BOOL_ENV_VARS",
    "VALUE_ENV_VARS",
    "build_parser",
    "check_unstructured_only_options",
    "env_var_flag",
    "inject_env_args",
    "parse_args",
    "resolve_max_workers",
]
