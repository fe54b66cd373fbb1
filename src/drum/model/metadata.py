"""model-metadata.yaml: strict parsing and validation, and target type / class label resolution.

Reproduces DRUM 1.18's ``read_model_metadata_yaml`` (strictyaml schema, so free-form sections keep
scalars as strings, exactly as DRUM's ``/info/`` shows them) and the server/score part of its
target type and class label resolution.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from strictyaml import (
    YAML,
    Bool,
    Enum,
    Int,
    Map,
    Optional,
    Seq,
    Str,
    StrictYAMLError,
    YAMLError,
    YAMLValidationError,
    load,
)
from strictyaml import Any as AnyYaml

from drum.config import schema_checks as sc
from drum.errors import DrumCommonException, DrumFormatSchemaException
from drum.model.target import TargetType

logger = logging.getLogger(__name__)

MODEL_METADATA_FILENAME = "model-metadata.yaml"

# ---------------------------------------------------------------------------------------------------
# typeSchema

INPUT_REQUIREMENTS = "input_requirements"
OUTPUT_REQUIREMENTS = "output_requirements"

_DATA_TYPE_VALUES = ["NUM", "TXT", "IMG", "DATE", "CAT", "DATE_DURATION", "COUNT_DICT", "GEO"]
_ALL_CONDITIONS = [
    "EQUALS",
    "IN",
    "NOT_EQUALS",
    "NOT_IN",
    "GREATER_THAN",
    "LESS_THAN",
    "NOT_GREATER_THAN",
    "NOT_LESS_THAN",
]


@dataclass(frozen=True)
class _FieldRule:
    conditions: list[str]
    input_values: list[str]
    output_values: list[str]


# Orders matter: strictyaml lists the allowed values in its error messages.
_TYPE_SCHEMA_FIELDS = {
    "data_types": _FieldRule(["EQUALS", "NOT_EQUALS", "IN", "NOT_IN"], _DATA_TYPE_VALUES, _DATA_TYPE_VALUES),
    "sparse": _FieldRule(
        ["EQUALS"], ["FORBIDDEN", "SUPPORTED", "REQUIRED"], ["NEVER", "DYNAMIC", "ALWAYS", "IDENTITY"]
    ),
    "number_of_columns": _FieldRule(_ALL_CONDITIONS, [], []),
    "contains_missing": _FieldRule(["EQUALS"], ["FORBIDDEN", "SUPPORTED"], ["NEVER", "DYNAMIC"]),
}


def _type_schema_validator() -> Map:
    """The first, shape-only pass over typeSchema; each item is revalidated per field afterwards."""
    requirements = Seq(Map({"field": Enum(list(_TYPE_SCHEMA_FIELDS)), "condition": Str(), "value": Str() | Seq(Str())}))
    return Map({Optional(INPUT_REQUIREMENTS): requirements, Optional(OUTPUT_REQUIREMENTS): requirements})


def _requirement_validator(field: str, requirement_type: str) -> Map:
    rule = _TYPE_SCHEMA_FIELDS[field]
    values = Enum(rule.input_values if requirement_type == INPUT_REQUIREMENTS else rule.output_values)
    if field == "data_types":
        value_validator = values | Seq(values)
    elif field == "number_of_columns":
        value_validator = Int() | Seq(Int())
    else:
        value_validator = values
    return Map({"field": Enum([field]), "condition": Enum(rule.conditions), "value": value_validator})


def _revalidate_type_schema(type_schema: YAML) -> None:
    """Check conditions and values of each requirement for its field (numbers become ints)."""
    for requirement_type in (INPUT_REQUIREMENTS, OUTPUT_REQUIREMENTS):
        for requirement in type_schema.get(requirement_type, []):
            field = requirement.data["field"]
            requirement.revalidate(_requirement_validator(field, requirement_type))


# ---------------------------------------------------------------------------------------------------
# The whole file

MODEL_METADATA_SCHEMA = Map(
    {
        "name": Str(),
        "type": Str(),
        "targetType": Str(),
        Optional("environmentID"): Str(),
        Optional("validation"): Map({"input": Str(), Optional("targetName"): Str()}),
        Optional("modelID"): Str(),
        Optional("description"): Str(),
        Optional("majorVersion"): Bool(),
        Optional("inferenceModel"): Map(
            {
                Optional("targetName"): Str(),
                Optional("positiveClassLabel"): Str(),
                Optional("negativeClassLabel"): Str(),
                Optional("classLabels"): Seq(Str()),
                Optional("classLabelsFile"): Str(),
                Optional("predictionThreshold"): Int(),
            }
        ),
        Optional("trainingModel"): Map({Optional("trainOnProject"): Str()}),
        Optional("hyperparameters"): AnyYaml(),
        Optional("typeSchema"): _type_schema_validator(),
        Optional("customPredictor"): AnyYaml(),
        Optional("runtimeParameterDefinitions"): AnyYaml(),
        Optional("userCredentialSpecifications"): Seq(
            Map({"key": Str(), "valueFrom": Str(), Optional("reminder"): Str()})
        ),
        Optional("lazyLoading"): AnyYaml(),
        Optional("inputSchema"): Map(
            {
                Optional("title"): Str(),
                "type": Str(),
                "properties": AnyYaml(),
                Optional("required"): Seq(Str()),
            }
        ),
    }
)


def read_model_metadata_yaml(code_dir: str | os.PathLike) -> dict | None:
    """Parse and validate ``<code_dir>/model-metadata.yaml``; ``None`` when there is none.

    Only ``model-metadata.yaml`` is read (not ``.yml``), as in DRUM. Schema violations are logged and
    end the process (``SystemExit(1)``); strict-YAML format errors raise
    :class:`DrumFormatSchemaException`; semantic errors raise :class:`DrumCommonException`.
    """
    path = Path(code_dir) / MODEL_METADATA_FILENAME
    if not path.exists():
        return None
    metadata = _parse_metadata(path.read_text(encoding="utf-8"))
    _check_inference_model(metadata)
    hyperparameters = metadata.get("hyperparameters")
    if hyperparameters:
        validate_hyperparameters(hyperparameters)
    input_schema = metadata.get("inputSchema")
    if input_schema:
        _check_input_schema(input_schema)
    return metadata


def _parse_metadata(text: str) -> dict:
    try:
        document = load(text, MODEL_METADATA_SCHEMA)
        if "typeSchema" in document:
            _revalidate_type_schema(document["typeSchema"])
        return document.data
    except YAMLValidationError as exc:
        if "found a blank string" in exc.problem:
            logger.error("The model_metadata.yaml file appears to be empty.")
        else:
            logger.error(exc, exc_info=True)
        raise SystemExit(1) from None
    except StrictYAMLError as exc:
        raise DrumFormatSchemaException(
            "\nStrictYAMLError: The current format does not comply with strict yaml rules."
            f" (Empty list on fields are not allowed)\n{exc}"
        ) from None
    except YAMLError as exc:
        logger.error(exc, exc_info=True)
        raise SystemExit(1) from None


def _require_keys(section: Mapping, *keys: str) -> None:
    missing = [key for key in keys if key not in section]
    if missing:
        raise DrumCommonException(
            f"The following keys are missing in {MODEL_METADATA_FILENAME} file.\nMissing keys: {missing}"
        )


def _check_inference_model(metadata: dict) -> None:
    """For ``type: inference`` classification models, the labels must be in ``inferenceModel``."""
    target_type = metadata["targetType"]
    if metadata["type"] != "inference":
        return
    if target_type == TargetType.BINARY.value:
        _require_keys(metadata, "inferenceModel")
        _require_keys(metadata["inferenceModel"], "positiveClassLabel", "negativeClassLabel")
    elif target_type in (TargetType.MULTICLASS.value, TargetType.MULTILABEL.value):
        _require_keys(metadata, "inferenceModel")
        inference_model = metadata["inferenceModel"]
        has_labels = "classLabels" in inference_model
        has_file = "classLabelsFile" in inference_model
        if has_labels and has_file:
            raise DrumCommonException(
                f"\nError - for {target_type} classification, either the class labels or a class labels "
                f"file should be provided in {MODEL_METADATA_FILENAME} file, but not both."
            )
        if not has_labels and not has_file:
            raise DrumCommonException(
                f"\nError - for {target_type} classification, either the class labels or a class labels "
                f"file must be provided in {MODEL_METADATA_FILENAME} file."
            )
        if has_file:
            # Read relative to the working directory, not the code dir (as DRUM does).
            labels = read_class_labels_file(inference_model["classLabelsFile"])
            if len(labels) < 2:
                raise DrumCommonException(f"{target_type} classification requires at least 2 labels.")
            inference_model["classLabels"] = labels
            inference_model["classLabelsFile"] = None


def read_class_labels_file(path: str | os.PathLike) -> list[str]:
    """Labels from a file, one per line (split on ``os.linesep``), empty lines dropped."""
    with open(path) as file:
        return [label for label in file.read().split(os.linesep) if label]


# ---------------------------------------------------------------------------------------------------
# hyperparameters

PARAM_NAME_MAX_LENGTH = 64
PARAM_SELECT_VALUE_MAX_LENGTH = 1024
PARAM_SELECT_NUM_VALUES_MAX_LENGTH = 24
PARAM_STRING_MAX_LENGTH = 1024

_PARAM_NAME_RE = re.compile(r"^([a-zA-Z]+[a-zA-Z_]*[a-zA-Z]+|[a-zA-Z]+)$")


def _hyperparameter_checks() -> dict[str, sc.Check]:
    name = sc.Key(
        "name",
        sc.with_message_prefix(sc.string(max_length=PARAM_NAME_MAX_LENGTH), "Invalid parameter name: "),
    )
    to_int = sc.number(int, convert=True)
    to_float = sc.number(float, convert=True)
    select_values = sc.list_of(
        sc.string(max_length=PARAM_SELECT_VALUE_MAX_LENGTH),
        min_length=1,
        max_length=PARAM_SELECT_NUM_VALUES_MAX_LENGTH,
    )

    def numeric(kind: str, convert: sc.Check) -> sc.Check:
        return sc.mapping(
            name,
            sc.Key("type", sc.enum(kind)),
            sc.Key("min", convert),
            sc.Key("max", convert),
            sc.Key("default", convert, optional=True),
        )

    multi_values = sc.mapping(
        sc.Key("int", sc.mapping(sc.Key("min", to_int), sc.Key("max", to_int)), optional=True),
        sc.Key("float", sc.mapping(sc.Key("min", to_float), sc.Key("max", to_float)), optional=True),
        sc.Key("select", sc.mapping(sc.Key("values", select_values)), optional=True),
    )
    return {
        "int": numeric("int", to_int),
        "float": numeric("float", to_float),
        "string": sc.mapping(
            name,
            sc.Key("type", sc.enum("string")),
            sc.Key("default", sc.string(allow_blank=True, max_length=PARAM_STRING_MAX_LENGTH), optional=True),
        ),
        "select": sc.mapping(
            name,
            sc.Key("type", sc.enum("select")),
            sc.Key("values", select_values),
            sc.Key("default", sc.string(max_length=PARAM_SELECT_VALUE_MAX_LENGTH), optional=True),
        ),
        "multi": sc.mapping(
            name,
            sc.Key("type", sc.enum("multi")),
            sc.Key("values", multi_values),
            sc.Key(
                "default",
                sc.one_of(sc.number(int), sc.number(float), sc.string(max_length=PARAM_SELECT_VALUE_MAX_LENGTH)),
                optional=True,
            ),
        ),
    }


_HYPERPARAMETER_CHECKS = _hyperparameter_checks()


def validate_hyperparameters(hyperparameters: Any) -> None:
    """Validate the ``hyperparameters`` section; any problem raises :class:`DrumCommonException`."""
    if not isinstance(hyperparameters, list):
        raise DrumCommonException(json.dumps(sc.CheckError("value is not a list", hyperparameters).as_dict(True)))
    try:
        for raw in hyperparameters:
            if not isinstance(raw, Mapping):
                raise sc.CheckError("value is not a dict", raw)
            param_type = raw.get("type")
            if not param_type:
                raise DrumCommonException('"type": "is required"')
            if not isinstance(param_type, str) or param_type not in _HYPERPARAMETER_CHECKS:
                raise DrumCommonException({"type": "is invalid"})
            param = _HYPERPARAMETER_CHECKS[param_type](raw)
            if param_type in ("int", "float"):
                _check_numeric_hyperparameter(param)
            elif param_type == "multi":
                _check_multi_hyperparameter(param)
            _check_hyperparameter_name(param["name"])
    except sc.CheckError as exc:
        raise DrumCommonException(json.dumps(exc.as_dict(value=True))) from None


def _check_hyperparameter_name(name: str) -> None:
    if _PARAM_NAME_RE.match(name) is None:
        raise DrumCommonException(
            f"Invalid param name: {name}. Only Eng characters and underscore are allowed. "
            "The parameter name should not start or end with the underscore."
        )


def _check_numeric_hyperparameter(param: Mapping) -> None:
    name, param_type, low, high = param["name"], param["type"], param["min"], param["max"]
    if low >= high:
        raise DrumCommonException(f"Invalid {param_type} parameter {name}: max must be greater than min")
    default = param.get("default")
    if default is not None and (default > high or default < low):
        raise DrumCommonException(f"Invalid {param_type} parameter {name}: values must be between [{low}, {high}]")


def _check_multi_hyperparameter(param: Mapping) -> None:
    for value_type, bounds in param["values"].items():
        if value_type in ("int", "float"):
            _check_numeric_hyperparameter({"name": f"{param['name']}__{value_type}", "type": value_type, **bounds})


# ---------------------------------------------------------------------------------------------------
# inputSchema


def _check_input_schema(schema: Mapping) -> None:
    """DRUM builds a pydantic model from ``inputSchema`` only to check it; we do the same."""
    try:
        _input_schema_model(schema)
    except Exception as exc:
        raise DrumCommonException(f"Error creating pydantic model from input schema: {exc}") from None


def _json_type_to_python(definition: Mapping) -> Any:
    if "anyOf" in definition:
        return Union[tuple(_json_type_to_python(option) for option in definition["anyOf"])]  # noqa: UP007
    types = {
        "string": str,
        "integer": int,
        "number": float,
        "boolean": bool,
        "array": list,
        "object": dict,
        "null": type(None),
    }
    return types.get(definition.get("type", "string"), str)


def _input_schema_model(schema: Mapping) -> type:
    from pydantic import create_model

    schema_type = schema.get("type")
    if schema_type != "object":
        raise ValueError(f"Only 'object' type schemas are supported, got '{schema_type}'")
    properties = schema.get("properties", {})
    if type(properties) is not dict:
        raise ValueError(f"'properties' must be a dictionary, got '{type(properties)}'")
    required = set(schema.get("required", []))
    fields = {
        name: (_json_type_to_python(definition), ... if name in required else definition.get("default"))
        for name, definition in properties.items()
    }
    return create_model("InputSchema", **fields)


# ---------------------------------------------------------------------------------------------------
# Target type and class labels (server / score)

MULTICLASS_MIN_LABELS = 2


@dataclass(frozen=True)
class ResolvedTarget:
    """The model's target type and the class labels that apply to it (``None`` where they don't)."""

    target_type: TargetType
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: list[str] | None = None


def resolve_target_and_labels(
    code_dir: str | os.PathLike,
    target_type: str | TargetType | None,
    positive_class_label: str | None = None,
    negative_class_label: str | None = None,
    class_labels: list[str] | None = None,
    class_labels_file: str | os.PathLike | None = None,
) -> ResolvedTarget:
    """Combine options (CLI or env) with ``<code_dir>/model-metadata.yaml`` as DRUM does for
    ``server`` and ``score``; see :func:`resolve_target_and_labels_from_metadata`."""
    return resolve_target_and_labels_from_metadata(
        read_model_metadata_yaml(code_dir),
        target_type,
        positive_class_label,
        negative_class_label,
        class_labels,
        class_labels_file,
    )


def resolve_target_and_labels_from_metadata(
    metadata: Mapping | None,
    target_type: str | TargetType | None,
    positive_class_label: str | None = None,
    negative_class_label: str | None = None,
    class_labels: list[str] | None = None,
    class_labels_file: str | os.PathLike | None = None,
) -> ResolvedTarget:
    """Target type and labels from the options and already-read metadata (``None``: no file).

    Raises :class:`DrumCommonException` with DRUM's messages when the target type or required
    labels are missing or the two sources disagree (multiclass labels are compared as sets).
    """
    class_labels = _labels_from_options(positive_class_label, negative_class_label, class_labels, class_labels_file)
    resolved_type = resolve_target_type(metadata, target_type)
    inference_model = (metadata or {}).get("inferenceModel")
    if not isinstance(inference_model, Mapping):
        inference_model = {}

    if resolved_type == TargetType.BINARY:
        positive, negative = _resolve_binary_labels(
            positive_class_label,
            negative_class_label,
            inference_model.get("positiveClassLabel"),
            inference_model.get("negativeClassLabel"),
        )
        return ResolvedTarget(resolved_type, positive_class_label=positive, negative_class_label=negative)
    if resolved_type in (TargetType.MULTICLASS, TargetType.MULTILABEL):
        labels = _resolve_class_labels(class_labels, inference_model.get("classLabels"))
        return ResolvedTarget(resolved_type, class_labels=labels)
    return ResolvedTarget(resolved_type)


def _labels_from_options(
    positive: str | None,
    negative: str | None,
    class_labels: list[str] | None,
    class_labels_file: str | os.PathLike | None,
) -> list[str] | None:
    """The label checks DRUM's argument parser makes; the labels file is read unless ``class_labels``
    is given (DRUM's parser stores the file's labels in ``class_labels`` and keeps the path too)."""
    if (positive is None) != (negative is None):
        raise DrumCommonException(
            "\nError - for binary classification case, both positive and negative class labels have to "
            "be provided. \nSee --help option for more information"
        )
    if class_labels is None and class_labels_file is not None:
        class_labels = read_class_labels_file(class_labels_file)
    if class_labels is not None and len(class_labels) < MULTICLASS_MIN_LABELS:
        raise DrumCommonException("Multiclass classification requires at least 2 labels.")
    return None if class_labels is None else list(class_labels)


def resolve_target_type(metadata: Mapping | None, option: str | TargetType | None) -> TargetType:
    from_options = None if option is None else TargetType(option)
    from_metadata = None if metadata is None else TargetType(metadata["targetType"])
    if from_options is None and from_metadata is None:
        raise DrumCommonException(
            "Target type is missing. It must be provided in --target-type argument, "
            "TARGET_TYPE env var or model config file."
        )
    if from_options is not None and from_metadata is not None and from_options != from_metadata:
        raise DrumCommonException(
            "Target type provided in --target-type argument doesn't match target type from model "
            "config file. Use either one of them or make them match."
        )
    return from_options if from_options is not None else from_metadata


def _resolve_binary_labels(
    positive: str | None, negative: str | None, metadata_positive: Any, metadata_negative: Any
) -> tuple[Any, Any]:
    # Truthiness, not None-ness, as in DRUM: an empty label counts as missing.
    if not (positive and negative) and not (metadata_positive and metadata_negative):
        raise DrumCommonException(
            "Positive/negative class labels are missing. They must be provided with either one: "
            "--positive-class-label/--negative-class-label arguments, environment variables, "
            "model config file."
        )
    if (
        positive
        and negative
        and metadata_positive
        and metadata_negative
        and (positive != metadata_positive or negative != metadata_negative)
    ):
        raise DrumCommonException(
            "Positive/negative class labels provided with command arguments or environment variable "
            "don't match values from model config file. Use either one of them or make them match."
        )
    return (
        positive if positive is not None else metadata_positive,
        negative if negative is not None else metadata_negative,
    )


def _resolve_class_labels(options: list[str] | None, from_metadata: Any) -> list[str]:
    if options is None and from_metadata is None:
        raise DrumCommonException(
            "Class labels are missing. They must be provided with either one: "
            "--class-labels/--class-labels-file arguments, environment variables, model config file."
        )
    if options and from_metadata and set(options) != set(from_metadata):
        raise DrumCommonException(
            "Class labels provided with command arguments or environment variable don't match values "
            "from model config file. Use either one of them or make them match."
        )
    return options if options is not None else list(from_metadata)
