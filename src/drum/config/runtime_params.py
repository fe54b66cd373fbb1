"""Runtime parameters: ``MLOPS_RUNTIME_PARAM_<NAME>`` environment variables, as in DRUM 1.18.

Each variable holds JSON ``{"type": <type>, "payload": <value>}``. :class:`RuntimeParameters` reads
them; :func:`load_runtime_params_file` (``--runtime-params-file``) validates a YAML file of values
against ``runtimeParameterDefinitions`` in ``model-metadata.yaml`` and exports the variables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import Enum
from functools import reduce
from typing import Any

import yaml

from drum.config import schema_checks as sc
from drum.config.runtime_params_errors import (
    ErrorLoadingRuntimeParameter,
    InvalidEmptyYamlContent,
    InvalidInputFilePath,
    InvalidJsonException,
    InvalidRuntimeParam,
    InvalidYamlContent,
    RuntimeParameterException,
)

__all__ = [
    "RuntimeParameters",
    "RuntimeParameterTypes",
    "load_runtime_params_file",
    "RuntimeParameterException",
    "InvalidJsonException",
    "InvalidRuntimeParam",
    "InvalidInputFilePath",
    "InvalidEmptyYamlContent",
    "InvalidYamlContent",
    "ErrorLoadingRuntimeParameter",
]

MODEL_METADATA_FILENAME = "model-metadata.yaml"
DEFINITIONS_KEY = "runtimeParameterDefinitions"


class RuntimeParameterTypes(Enum):
    STRING = "string"
    BOOLEAN = "boolean"
    CREDENTIAL = "credential"
    DEPLOYMENT = "deployment"
    NUMERIC = "numeric"


def _payload_check(param_type: RuntimeParameterTypes, payload: sc.Check) -> sc.Check:
    return sc.mapping(sc.Key("payload", payload), sc.Key("type", sc.enum(param_type.value)))


def _typed_payload_check(param_type: RuntimeParameterTypes, min_value: Any = None, max_value: Any = None) -> sc.Check:
    """The check of ``{"type": ..., "payload": ...}`` for one type (bounds apply to numerics)."""
    payloads = {
        RuntimeParameterTypes.STRING: sc.string(),
        RuntimeParameterTypes.BOOLEAN: sc.boolean,
        RuntimeParameterTypes.NUMERIC: sc.number(float, gte=min_value, lte=max_value),
        RuntimeParameterTypes.CREDENTIAL: sc.mapping(sc.Key("credentialType", sc.string()), extra=sc.EXTRA_ALLOW),
        RuntimeParameterTypes.DEPLOYMENT: sc.string(),
    }
    return _payload_check(param_type, sc.one_of(sc.null, payloads[param_type]))


# Any type, tried in DRUM's order; alternatives nest pairwise as in DRUM's error messages.
_ANY_PAYLOAD_CHECK = reduce(
    sc.one_of,
    [
        _typed_payload_check(param_type)
        for param_type in (
            RuntimeParameterTypes.STRING,
            RuntimeParameterTypes.BOOLEAN,
            RuntimeParameterTypes.NUMERIC,
            RuntimeParameterTypes.CREDENTIAL,
            RuntimeParameterTypes.DEPLOYMENT,
        )
    ],
)


class RuntimeParameters:
    """Read the runtime parameters delivered to the model (``from drum import RuntimeParameters``)."""

    PARAM_PREFIX = "MLOPS_RUNTIME_PARAM"

    @classmethod
    def namespaced_param_name(cls, param_name: str) -> str:
        return f"{cls.PARAM_PREFIX}_{param_name}"

    @classmethod
    def has(cls, param_name: str) -> bool:
        """Whether the parameter's environment variable is set (its value is not checked)."""
        return cls.namespaced_param_name(param_name) in os.environ

    @classmethod
    def get(cls, key: str) -> Any:
        """The parameter's payload.

        Raises ``ValueError`` when it is not set, :class:`InvalidJsonException` when its value is not
        JSON and :class:`InvalidRuntimeParam` when the JSON does not match a parameter type.
        """
        env_name = cls.namespaced_param_name(key)
        if env_name not in os.environ:
            raise ValueError(f"Runtime parameter '{key}' does not exist!")
        return cls.parse_payload(os.environ[env_name])

    @staticmethod
    def parse_payload(raw: str) -> Any:
        """The payload of one `{"type": ..., "payload": ...}` value, with `get`'s errors."""
        try:
            env_value = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidJsonException(f"Invalid runtime parameter json payload. payload={raw}") from None
        try:
            checked = _ANY_PAYLOAD_CHECK(env_value)
        except sc.CheckError as exc:
            raise InvalidRuntimeParam(f"Invalid runtime parameter! env_value={env_value}, exception: {exc}, ") from None
        return checked["payload"]


@dataclass(frozen=True)
class _Definition:
    name: str
    type: RuntimeParameterTypes
    default: Any
    allow_empty: bool  # accepted and validated, but not enforced (as in DRUM)
    min_value: Any
    max_value: Any


_DEFINITION_CHECK = sc.mapping(
    sc.Key("fieldName", sc.string(), to_name="name"),
    sc.Key("type", sc.enum(*(t.value for t in RuntimeParameterTypes))),
    sc.Key("allowEmpty", sc.boolean, optional=True, default=True, to_name="allow_empty"),
    sc.Key("defaultValue", sc.any_value, optional=True, default=None, to_name="default"),
    sc.Key("minValue", sc.one_of(sc.number(float), sc.null), optional=True, default=None, to_name="min_value"),
    sc.Key("maxValue", sc.one_of(sc.number(float), sc.null), optional=True, default=None, to_name="max_value"),
    extra=sc.EXTRA_IGNORE,
)


def load_runtime_params_file(values_file: str, code_dir: str) -> None:
    """Validate the ``--runtime-params-file`` values and export them as ``MLOPS_RUNTIME_PARAM_*``.

    Every parameter defined in ``<code_dir>/model-metadata.yaml`` is exported, with its value from
    the file or its ``defaultValue`` (else null); values for undefined names are ignored.
    """
    if not values_file:
        raise InvalidInputFilePath("Empty runtime parameter values file path!")
    if not code_dir:
        raise InvalidInputFilePath("Empty code-dir path!")
    definitions = _read_definitions(code_dir)
    values = _read_values(values_file)
    for name, definition in definitions.items():
        value = values.get(name, definition.default)
        check = _typed_payload_check(definition.type, definition.min_value, definition.max_value)
        try:
            payload = check({"type": definition.type.value, "payload": value})
        except sc.CheckError as exc:
            raise ErrorLoadingRuntimeParameter(f"Failed to load runtime parameter '{name}'. {exc}") from None
        os.environ[RuntimeParameters.namespaced_param_name(name)] = json.dumps(payload)


def _read_definitions(code_dir: str) -> dict[str, _Definition]:
    try:
        with open(os.path.join(code_dir, MODEL_METADATA_FILENAME)) as file:
            metadata = yaml.safe_load(file)
    except yaml.YAMLError as exc:
        raise InvalidYamlContent(f"Invalid model-metadata YAML content! {exc}") from None
    except FileNotFoundError:
        raise InvalidInputFilePath(f"{MODEL_METADATA_FILENAME} must exist to use runtime parameters") from None
    if not metadata:
        raise InvalidEmptyYamlContent("Model-metadata YAML file is empty!")

    raw_definitions = metadata.get(DEFINITIONS_KEY) if isinstance(metadata, dict) else None
    if not raw_definitions:
        raise InvalidYamlContent(
            f"{MODEL_METADATA_FILENAME}: YAML file must contain at least one "
            f"parameter definition in the section '{DEFINITIONS_KEY}'"
        )
    if not isinstance(raw_definitions, (list, dict, str)):
        raw_definitions = [raw_definitions]  # DRUM iterates whatever is there; a scalar is one bad item

    definitions: dict[str, _Definition] = {}
    for raw in raw_definitions:
        try:
            fields = _DEFINITION_CHECK(raw)
        except sc.CheckError as exc:
            raise ErrorLoadingRuntimeParameter(f"Failed to load runtime parameter: {exc}") from None
        definition = _Definition(**{**fields, "type": RuntimeParameterTypes(fields["type"])})
        if definition.name in definitions:
            raise ErrorLoadingRuntimeParameter(
                f"Failed to load runtime parameter [{definition.name}], duplicated definition"
            )
        definitions[definition.name] = definition
    return definitions


def _read_values(values_file: str) -> dict:
    try:
        with open(values_file, encoding="utf-8") as file:
            values = yaml.safe_load(file)
    except yaml.YAMLError as exc:
        raise InvalidYamlContent(f"Invalid runtime parameter values YAML content! {exc}") from None
    except FileNotFoundError:
        raise InvalidInputFilePath(f"Runtime parameter values file does not exist! filepath: {values_file}") from None
    if not values:
        raise InvalidEmptyYamlContent("Runtime parameter values YAML file is empty!")
    if not isinstance(values, dict):
        raise InvalidYamlContent(
            "Invalid runtime parameter values YAML content! The file must map parameter names to values."
        )
    return values
