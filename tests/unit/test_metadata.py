"""model-metadata.yaml parsing/validation and target type / class label resolution.

Expected values and messages were taken from DRUM 1.18.1 (datarobot-drum) on the same files.
"""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from drum.errors import DrumCommonException, DrumFormatSchemaException
from drum.model.metadata import (
    ResolvedTarget,
    read_class_labels_file,
    read_model_metadata_yaml,
    resolve_target_and_labels,
    resolve_target_and_labels_from_metadata,
)
from drum.model.target import TargetType

HEAD = "name: m\ntype: inference\ntargetType: regression\n"


def write_metadata(directory, text: str, name: str = "model-metadata.yaml"):
    (directory / name).write_text(textwrap.dedent(text))
    return directory


def read(tmp_path, text: str):
    return read_model_metadata_yaml(write_metadata(tmp_path, text))


def exits(tmp_path, text: str) -> None:
    with pytest.raises(SystemExit) as info:
        read(tmp_path, text)
    assert info.value.code == 1


# --------------------------------------------------------------------------------------------------
# Reading


def test_no_metadata_file_gives_none(tmp_path):
    assert read_model_metadata_yaml(tmp_path) is None
    assert read_model_metadata_yaml(str(tmp_path)) is None


def test_yml_extension_is_not_read(tmp_path):
    write_metadata(tmp_path, HEAD, name="model-metadata.yml")
    assert read_model_metadata_yaml(tmp_path) is None


def test_minimal(tmp_path):
    assert read(tmp_path, HEAD) == {"name": "m", "type": "inference", "targetType": "regression"}


def test_free_form_sections_keep_scalars_as_strings(tmp_path):
    metadata = read(
        tmp_path,
        HEAD
        + """\
customPredictor:
  a: 1
  b:
    - 1
    - 2.5
    - true
  c: null
  d: ~
  e:
lazyLoading:
  x: 1
runtimeParameterDefinitions:
  - fieldName: A
    type: numeric
    minValue: 1
""",
    )
    assert metadata["customPredictor"] == {"a": "1", "b": ["1", "2.5", "true"], "c": "null", "d": "~", "e": ""}
    assert metadata["lazyLoading"] == {"x": "1"}
    assert metadata["runtimeParameterDefinitions"] == [{"fieldName": "A", "type": "numeric", "minValue": "1"}]


def test_typed_fields(tmp_path):
    metadata = read(
        tmp_path,
        """\
name: my model
type: inference
targetType: multiclass
majorVersion: yes
environmentID: e
modelID: mid
description: d
validation:
  input: data.csv
  targetName: y
trainingModel:
  trainOnProject: p
userCredentialSpecifications:
  - key: a
    valueFrom: b
    reminder: c
inferenceModel:
  targetName: y
  classLabels:
    - a
    - b
    - 3
  predictionThreshold: 5
""",
    )
    assert metadata == {
        "name": "my model",
        "type": "inference",
        "targetType": "multiclass",
        "majorVersion": True,
        "environmentID": "e",
        "modelID": "mid",
        "description": "d",
        "validation": {"input": "data.csv", "targetName": "y"},
        "trainingModel": {"trainOnProject": "p"},
        "userCredentialSpecifications": [{"key": "a", "valueFrom": "b", "reminder": "c"}],
        "inferenceModel": {"targetName": "y", "classLabels": ["a", "b", "3"], "predictionThreshold": 5},
    }
    assert list(metadata)[:3] == ["name", "type", "targetType"]


def test_empty_file_logs_and_exits(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        exits(tmp_path, "")
    assert "The model_metadata.yaml file appears to be empty." in caplog.messages


@pytest.mark.parametrize(
    "text, logged",
    [
        ("   \n\n", "when expecting a mapping"),
        ("# hi\n", "when expecting a mapping"),
        ("type: inference\ntargetType: regression\n", "required key(s) 'name' not found"),
        ("name: m\ntype: inference\n", "required key(s) 'targetType' not found"),
        (HEAD + "foo: bar\n", "unexpected key not in schema 'foo'"),
        ("- a\n- b\n", "found a sequence"),
        (HEAD + "majorVersion: maybe\n", "when expecting a boolean value"),
        (HEAD + "inferenceModel:\n  predictionThreshold: 0.5\n", "when expecting an integer"),
        (HEAD + "inferenceModel:\n  foo: bar\n", "unexpected key not in schema 'foo'"),
        (HEAD + "validation:\n  targetName: y\n", "required key(s) 'input' not found"),
        (HEAD + "userCredentialSpecifications:\n  - key: a\n", "required key(s) 'valueFrom' not found"),
        (HEAD + "inputSchema:\n  type: object\n", "required key(s) 'properties' not found"),
        (HEAD + "a: b: c\n", "mapping values are not allowed here"),
        (HEAD + "inferenceModel:\n\ttargetName: y\n", "found character '\\t' that cannot start any token"),
    ],
)
def test_schema_violations_log_and_exit(tmp_path, caplog, text, logged):
    with caplog.at_level(logging.ERROR):
        exits(tmp_path, text)
    assert logged in caplog.text


@pytest.mark.parametrize(
    "text, problem",
    [
        (HEAD + "customPredictor: {a: 1}\n", "Found ugly disallowed JSONesque flow mapping"),
        (HEAD + "customPredictor:\n  a: [1, 2]\n", "Found ugly disallowed JSONesque flow mapping"),
        ("name: m\ntype: inference\ntargetType: multiclass\ninferenceModel:\n  classLabels: []\n", "flow mapping"),
        (HEAD + "name: n\n", "Duplicate key 'name' found"),
        (HEAD + "customPredictor: &a\n  x: 1\n", "Found confusing disallowed anchor token"),
        (HEAD + "customPredictor: !!str 1\n", "Found disallowed tag tokens"),
    ],
)
def test_strict_yaml_format_errors(tmp_path, text, problem):
    with pytest.raises(DrumFormatSchemaException) as info:
        read(tmp_path, text)
    message = str(info.value)
    assert message.startswith(
        "\nStrictYAMLError: The current format does not comply with strict yaml rules."
        " (Empty list on fields are not allowed)\n"
    )
    assert problem in message


# --------------------------------------------------------------------------------------------------
# inferenceModel rules (type: inference)


def test_binary_inference_labels(tmp_path):
    metadata = read(
        tmp_path,
        "name: m\ntype: inference\ntargetType: binary\ninferenceModel:\n"
        "  positiveClassLabel: yes\n  negativeClassLabel: 0\n",
    )
    assert metadata["inferenceModel"] == {"positiveClassLabel": "yes", "negativeClassLabel": "0"}


@pytest.mark.parametrize(
    "body, missing",
    [
        ("", "['inferenceModel']"),
        ("inferenceModel:\n  positiveClassLabel: a\n", "['negativeClassLabel']"),
        ("inferenceModel:\n  targetName: y\n", "['positiveClassLabel', 'negativeClassLabel']"),
    ],
)
def test_binary_inference_requires_labels(tmp_path, body, missing):
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, "name: m\ntype: inference\ntargetType: binary\n" + body)
    assert str(info.value) == f"The following keys are missing in model-metadata.yaml file.\nMissing keys: {missing}"


@pytest.mark.parametrize("target_type", ["binary", "multiclass", "multilabel"])
def test_training_models_need_no_labels(tmp_path, target_type):
    assert read(tmp_path, f"name: m\ntype: training\ntargetType: {target_type}\n")["targetType"] == target_type


@pytest.mark.parametrize("target_type", ["multiclass", "multilabel"])
def test_multiclass_inference_needs_labels_or_file(tmp_path, target_type):
    head = f"name: m\ntype: inference\ntargetType: {target_type}\n"
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, head)
    assert (
        str(info.value)
        == "The following keys are missing in model-metadata.yaml file.\nMissing keys: ['inferenceModel']"
    )
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, head + "inferenceModel:\n  targetName: y\n")
    assert str(info.value) == (
        f"\nError - for {target_type} classification, either the class labels or a class labels file "
        "must be provided in model-metadata.yaml file."
    )
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, head + "inferenceModel:\n  classLabels:\n    - a\n  classLabelsFile: labels.txt\n")
    assert str(info.value) == (
        f"\nError - for {target_type} classification, either the class labels or a class labels file "
        "should be provided in model-metadata.yaml file, but not both."
    )


def test_class_labels_file_is_read_relative_to_cwd_and_replaces_list(tmp_path, monkeypatch):
    code_dir = tmp_path / "model"
    code_dir.mkdir()
    work_dir = tmp_path / "cwd"
    work_dir.mkdir()
    (work_dir / "labels.txt").write_text("a\n\nb\nc\n")
    write_metadata(
        code_dir,
        "name: m\ntype: inference\ntargetType: multiclass\ninferenceModel:\n  classLabelsFile: labels.txt\n"
        "  targetName: y\n",
    )
    monkeypatch.chdir(work_dir)
    metadata = read_model_metadata_yaml(code_dir)
    assert metadata["inferenceModel"] == {"classLabelsFile": None, "targetName": "y", "classLabels": ["a", "b", "c"]}

    monkeypatch.chdir(code_dir)  # not next to the metadata: DRUM opens the path as given
    with pytest.raises(FileNotFoundError):
        read_model_metadata_yaml(code_dir)


def test_class_labels_file_needs_two_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.txt").write_text("a\n\n")
    with pytest.raises(DrumCommonException, match=r"^multilabel classification requires at least 2 labels\.$"):
        read(
            tmp_path,
            "name: m\ntype: inference\ntargetType: multilabel\ninferenceModel:\n  classLabelsFile: labels.txt\n",
        )


def test_invalid_target_type_is_not_checked_when_reading(tmp_path):
    assert read(tmp_path, "name: m\ntype: inference\ntargetType: foo\n")["targetType"] == "foo"


# --------------------------------------------------------------------------------------------------
# typeSchema

TYPE_SCHEMA_OK = """\
typeSchema:
  input_requirements:
    - field: data_types
      condition: IN
      value:
        - NUM
        - TXT
    - field: sparse
      condition: EQUALS
      value: SUPPORTED
    - field: number_of_columns
      condition: NOT_LESS_THAN
      value: 3
    - field: contains_missing
      condition: EQUALS
      value: FORBIDDEN
  output_requirements:
    - field: data_types
      condition: EQUALS
      value: NUM
    - field: sparse
      condition: EQUALS
      value: IDENTITY
    - field: contains_missing
      condition: EQUALS
      value: DYNAMIC
    - field: number_of_columns
      condition: IN
      value:
        - 1
        - 2
"""


def test_type_schema_valid_and_numbers_become_ints(tmp_path):
    schema = read(tmp_path, HEAD + TYPE_SCHEMA_OK)["typeSchema"]
    assert schema["input_requirements"][0] == {"field": "data_types", "condition": "IN", "value": ["NUM", "TXT"]}
    assert schema["input_requirements"][2] == {"field": "number_of_columns", "condition": "NOT_LESS_THAN", "value": 3}
    assert schema["output_requirements"][3]["value"] == [1, 2]
    assert schema["output_requirements"][1]["value"] == "IDENTITY"


def requirement(section: str, field: str, condition: str, value: str) -> str:
    return f"typeSchema:\n  {section}:\n    - field: {field}\n      condition: {condition}\n      value: {value}\n"


@pytest.mark.parametrize(
    "schema, logged",
    [
        (requirement("input_requirements", "colour", "EQUALS", "NUM"), "when expecting one of: data_types"),
        (requirement("input_requirements", "sparse", "IN", "SUPPORTED"), "when expecting one of: EQUALS"),
        (requirement("input_requirements", "sparse", "EQUALS", "NEVER"), "FORBIDDEN, SUPPORTED, REQUIRED"),
        (requirement("output_requirements", "sparse", "EQUALS", "SUPPORTED"), "NEVER, DYNAMIC, ALWAYS, IDENTITY"),
        (requirement("output_requirements", "contains_missing", "EQUALS", "ALWAYS"), "NEVER, DYNAMIC"),
        (requirement("input_requirements", "contains_missing", "EQUALS", "NEVER"), "FORBIDDEN, SUPPORTED"),
        (requirement("input_requirements", "number_of_columns", "EQUALS", "abc"), "when expecting an integer"),
        (requirement("input_requirements", "data_types", "EQUALS", "FOO"), "NUM, TXT, IMG, DATE, CAT"),
        (requirement("input_requirements", "data_types", "GREATER_THAN", "NUM"), "EQUALS, NOT_EQUALS, IN, NOT_IN"),
        ("typeSchema:\n  input_requirements:\n    - field: data_types\n      condition: IN\n"
         "      value:\n        - NUM\n        - FOO\n", "NUM, TXT, IMG"),
        (requirement("other_requirements", "sparse", "EQUALS", "SUPPORTED"), "unexpected key not in schema"),
        ("typeSchema:\n  input_requirements:\n    - field: sparse\n      condition: EQUALS\n", "'value' not found"),
    ],
)  # fmt: skip
def test_type_schema_errors_log_and_exit(tmp_path, caplog, schema, logged):
    with caplog.at_level(logging.ERROR):
        exits(tmp_path, HEAD + schema)
    assert logged in caplog.text


def test_type_schema_number_of_columns_accepts_any_integer_when_reading(tmp_path):
    schema = read(tmp_path, HEAD + requirement("input_requirements", "number_of_columns", "EQUALS", "-1"))
    assert schema["typeSchema"]["input_requirements"][0]["value"] == -1


# --------------------------------------------------------------------------------------------------
# hyperparameters

HYPERPARAMETERS_OK = """\
hyperparameters:
  - name: alpha
    type: int
    min: 1
    max: 10
    default: 2
  - name: beta_x
    type: float
    min: 0.1
    max: 1
  - name: s
    type: string
    default: ''
  - name: sel
    type: select
    values:
      - a
      - b
    default: a
  - name: mu
    type: multi
    values:
      int:
        min: 0
        max: 5
      float:
        min: 0.5
        max: 0.9
      select:
        values:
          - x
    default: 3
"""


def test_hyperparameters_valid_are_returned_as_strings(tmp_path):
    params = read(tmp_path, HEAD + HYPERPARAMETERS_OK)["hyperparameters"]
    assert params[0] == {"name": "alpha", "type": "int", "min": "1", "max": "10", "default": "2"}
    assert params[4]["values"]["int"] == {"min": "0", "max": "5"}


def hp(*lines: str) -> str:
    return HEAD + "hyperparameters:\n" + "".join(f"{line}\n" for line in lines)


@pytest.mark.parametrize(
    "text, message",
    [
        (hp("  - name: a", "    min: 1"), '"type": "is required"'),
        (hp("  - name: a", "    type: ''"), '"type": "is required"'),
        (hp("  - name: a", "    type: bool"), "{'type': 'is invalid'}"),
        (
            hp("  - name: a", "    type: int", "    min: x", "    max: 1.5"),
            json.dumps({"min": "value can't be converted to int, got 'x'",
                        "max": "value can't be converted to int, got '1.5'"}),
        ),
        (hp("  - name: a", "    type: int"), '{"min": "is required", "max": "is required"}'),
        (hp("  - name: a", "    type: int", "    min: 1", "    max: 2", "    description: hi"),
         '{"description": "description is not allowed key"}'),
        (hp("  - name: a", "    type: int", "    min: 5", "    max: 5"),
         "Invalid int parameter a: max must be greater than min"),
        (hp("  - name: a", "    type: int", "    min: 1", "    max: 5", "    default: 7"),
         "Invalid int parameter a: values must be between [1, 5]"),
        (hp("  - name: a", "    type: float", "    min: 1", "    max: 5", "    default: 0.5"),
         "Invalid float parameter a: values must be between [1.0, 5.0]"),
        (hp("  - name: a", "    type: float", "    min: 2", "    max: 1.5"),
         "Invalid float parameter a: max must be greater than min"),
        (hp("  - name: a", "    type: int", "    min: 1.0", "    max: 3"),
         '{"min": "value can\'t be converted to int, got \'1.0\'"}'),
        (hp("  - name: " + "a" * 65, "    type: string"),
         '{"name": "Invalid parameter name: String is longer than 64 characters"}'),
        (hp("  - type: string"), '{"name": "is required"}'),
        (hp("  - name: _a", "    type: string"),
         "Invalid param name: _a. Only Eng characters and underscore are allowed. "
         "The parameter name should not start or end with the underscore."),
        (hp("  - name: a1", "    type: string"), "Invalid param name: a1. Only Eng characters"),
        (hp("  - name: a", "    type: string", "    default: " + "x" * 1025),
         '{"default": "String is longer than 1024 characters, got \'' + "x" * 1025 + "'\"}"),
        (hp("  - name: a", "    type: select", "    values:", "      - ''", "      - b"),
         '{"values": {"0": "blank value is not allowed, got \'\'"}}'),
        (hp("  - name: a", "    type: select", "    values: abc"), '{"values": "value is not a list, got \'abc\'"}'),
        (hp("  - name: a", "    type: select", "    values:", *[f"      - v{i}" for i in range(25)]),
         '{"values": "list length is greater than 24, got [' + ", ".join(f"'v{i}'" for i in range(25)) + ']"}'),
        (hp("  - name: a", "    type: select", "    values:", "      - a", "    default: ''"),
         '{"default": "blank value is not allowed, got \'\'"}'),
        (hp("  - name: a", "    type: multi", "    values:", "      string:", "        min: 1"),
         '{"values": {"string": "string is not allowed key"}}'),
        (hp("  - name: a", "    type: multi", "    values:", "      int:", "        min: 3", "        max: 1"),
         "Invalid int parameter a__int: max must be greater than min"),
        (hp("  - name: a", "    type: multi", "    values:", "      float:", "        min: 3", "        max: 1"),
         "Invalid float parameter a__float: max must be greater than min"),
        (hp("  - name: a", "    type: multi", "    values:", "      int:", "        min: 1", "        max: 3",
            "    default:", "      - x"),
         json.dumps({"default": {"0": "value is not int, got ['x']", "1": "value is not float, got ['x']",
                                 "2": "value is not a string, got ['x']"}})),
        (hp("  - name: a", "    type: multi"), '{"values": "is required"}'),
        (hp("  - name: a", "    type: string", "  - name: b", "    type: int", "    min: 1"), '{"max": "is required"}'),
    ],
)  # fmt: skip
def test_hyperparameter_errors(tmp_path, text, message):
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, text)
    assert str(info.value).startswith(message)
    if not message.startswith("Invalid param name: a1"):
        assert str(info.value) == message


def test_hyperparameter_multi_default_too_long(tmp_path):
    text = hp(
        "  - name: a", "    type: multi", "    values:", "      int:", "        min: 1", "        max: 3",
        "    default: " + "y" * 1025,
    )  # fmt: skip
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, text)
    errors = json.loads(str(info.value))["default"]
    assert errors["0"].startswith("value can't be converted to int, got 'yyy")
    assert errors["1"].startswith("value can't be converted to float, got 'yyy")
    assert errors["2"].startswith("String is longer than 1024 characters, got 'yyy")


# --------------------------------------------------------------------------------------------------
# inputSchema


def test_input_schema_valid(tmp_path):
    metadata = read(
        tmp_path,
        HEAD
        + """\
inputSchema:
  title: t
  type: object
  properties:
    x:
      type: integer
    y:
      anyOf:
        - type: string
        - type: 'null'
      default: hi
  required:
    - x
""",
    )
    assert metadata["inputSchema"]["required"] == ["x"]
    assert metadata["inputSchema"]["properties"]["y"]["default"] == "hi"


@pytest.mark.parametrize(
    "schema, message",
    [
        ("  type: array\n  properties:\n    x:\n      type: integer\n",
         "Only 'object' type schemas are supported, got 'array'"),
        ("  type: object\n  properties: abc\n", "'properties' must be a dictionary, got '<class 'str'>'"),
        ("  type: object\n  properties:\n    x: integer\n", "'str' object has no attribute 'get'"),
    ],
)  # fmt: skip
def test_input_schema_errors(tmp_path, schema, message):
    with pytest.raises(DrumCommonException) as info:
        read(tmp_path, HEAD + "inputSchema:\n" + schema)
    assert str(info.value) == f"Error creating pydantic model from input schema: {message}"


# --------------------------------------------------------------------------------------------------
# Target type and label resolution

BINARY_MD = {"targetType": "binary", "inferenceModel": {"positiveClassLabel": "yes", "negativeClassLabel": "no"}}
MULTICLASS_MD = {"targetType": "multiclass", "inferenceModel": {"classLabels": ["a", "b", "c"]}}

TARGET_MISSING = (
    "Target type is missing. It must be provided in --target-type argument, TARGET_TYPE env var or model config file."
)
TARGET_MISMATCH = (
    "Target type provided in --target-type argument doesn't match target type from model config file. "
    "Use either one of them or make them match."
)
BINARY_MISSING = (
    "Positive/negative class labels are missing. They must be provided with either one: "
    "--positive-class-label/--negative-class-label arguments, environment variables, model config file."
)
BINARY_MISMATCH = (
    "Positive/negative class labels provided with command arguments or environment variable don't match "
    "values from model config file. Use either one of them or make them match."
)
LABELS_MISSING = (
    "Class labels are missing. They must be provided with either one: --class-labels/--class-labels-file "
    "arguments, environment variables, model config file."
)
LABELS_MISMATCH = (
    "Class labels provided with command arguments or environment variable don't match values from model "
    "config file. Use either one of them or make them match."
)


def resolve(metadata, target_type=None, positive=None, negative=None, labels=None, labels_file=None):
    return resolve_target_and_labels_from_metadata(metadata, target_type, positive, negative, labels, labels_file)


@pytest.mark.parametrize(
    "metadata, target_type, expected",
    [
        (None, "regression", TargetType.REGRESSION),
        (None, TargetType.ANOMALY, TargetType.ANOMALY),
        ({"targetType": "transform"}, None, TargetType.TRANSFORM),
        ({"targetType": "unstructured"}, "unstructured", TargetType.UNSTRUCTURED),
        ({"targetType": "textgeneration"}, None, TargetType.TEXT_GENERATION),
    ],
)
def test_target_type_sources(metadata, target_type, expected):
    assert resolve(metadata, target_type) == ResolvedTarget(expected)


def test_target_type_errors():
    with pytest.raises(DrumCommonException, match=f"^{TARGET_MISSING}$"):
        resolve(None)
    with pytest.raises(DrumCommonException) as info:
        resolve({"targetType": "regression"}, "binary", "a", "b")
    assert str(info.value) == TARGET_MISMATCH
    with pytest.raises(ValueError, match=r"'foo' is not a valid TargetType"):
        resolve({"targetType": "foo"})
    with pytest.raises(ValueError, match=r"'foo' is not a valid TargetType"):
        resolve(None, "foo")


@pytest.mark.parametrize(
    "metadata, positive, negative, expected",
    [
        (None, "yes", "no", ("yes", "no")),
        (BINARY_MD, None, None, ("yes", "no")),
        (BINARY_MD, "yes", "no", ("yes", "no")),
        # Empty option labels count as missing, so the metadata ones are not compared...
        (BINARY_MD, "", "", ("", "")),
        # ...and incomplete metadata labels are not compared either.
        ({"targetType": "binary", "inferenceModel": {"positiveClassLabel": "p"}}, "yes", "no", ("yes", "no")),
    ],
)
def test_binary_labels(metadata, positive, negative, expected):
    resolved = resolve(metadata, "binary", positive, negative, labels=None)
    assert (resolved.positive_class_label, resolved.negative_class_label) == expected
    assert resolved.class_labels is None


@pytest.mark.parametrize(
    "metadata, positive, negative, message",
    [
        (None, None, None, BINARY_MISSING),
        ({"targetType": "binary"}, None, None, BINARY_MISSING),
        ({"targetType": "binary", "inferenceModel": {"positiveClassLabel": "yes"}}, None, None, BINARY_MISSING),
        (None, "", "", BINARY_MISSING),
        (BINARY_MD, "no", "yes", BINARY_MISMATCH),
        (BINARY_MD, "yes", "maybe", BINARY_MISMATCH),
    ],
)
def test_binary_label_errors(metadata, positive, negative, message):
    with pytest.raises(DrumCommonException) as info:
        resolve(metadata, "binary", positive, negative)
    assert str(info.value) == message


@pytest.mark.parametrize("target_type", ["multiclass", "multilabel"])
@pytest.mark.parametrize(
    "metadata_labels, labels, expected",
    [
        (None, ["c", "b", "a"], ["c", "b", "a"]),
        (["a", "b", "c"], None, ["a", "b", "c"]),
        (["a", "b", "c"], ["c", "b", "a"], ["c", "b", "a"]),  # compared as sets; option order wins
    ],
)
def test_multiclass_labels(target_type, metadata_labels, labels, expected):
    metadata = {"targetType": target_type}
    if metadata_labels is not None:
        metadata["inferenceModel"] = {"classLabels": metadata_labels}
    resolved = resolve(metadata, None, labels=labels)
    assert resolved == ResolvedTarget(TargetType(target_type), class_labels=expected)


def test_multiclass_label_errors():
    with pytest.raises(DrumCommonException) as info:
        resolve(None, "multiclass")
    assert str(info.value) == LABELS_MISSING
    with pytest.raises(DrumCommonException) as info:
        resolve({"targetType": "multilabel"})
    assert str(info.value) == LABELS_MISSING
    with pytest.raises(DrumCommonException) as info:
        resolve(MULTICLASS_MD, labels=["a", "b", "x"])
    assert str(info.value) == LABELS_MISMATCH
    with pytest.raises(DrumCommonException) as info:
        resolve(MULTICLASS_MD, labels=["a", "b"])
    assert str(info.value) == LABELS_MISMATCH


@pytest.mark.parametrize("target_type", ["regression", "anomaly", "unstructured", "transform", "textgeneration"])
def test_labels_cleared_for_other_target_types(target_type):
    resolved = resolve(BINARY_MD | {"targetType": target_type}, None, "yes", "no")
    assert resolved == ResolvedTarget(TargetType(target_type))
    assert resolve(None, target_type, labels=["a", "b"]) == ResolvedTarget(TargetType(target_type))


def test_option_level_label_checks(tmp_path):
    with pytest.raises(DrumCommonException, match="both positive and negative class labels have to be provided"):
        resolve(None, "binary", "yes", None)
    with pytest.raises(DrumCommonException, match=r"^Multiclass classification requires at least 2 labels\.$"):
        resolve(None, "multiclass", labels=["a"])


def test_class_labels_file_option(tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("x\n\ny\nz\n")
    assert read_class_labels_file(labels_file) == ["x", "y", "z"]
    resolved = resolve(None, "multiclass", labels_file=str(labels_file))
    assert resolved.class_labels == ["x", "y", "z"]
    # Labels already read from the file by the argument parser are used as they are.
    assert resolve(None, "multiclass", labels=["p", "q"], labels_file=str(labels_file)).class_labels == ["p", "q"]
    labels_file.write_text("x\n")
    with pytest.raises(DrumCommonException, match=r"^Multiclass classification requires at least 2 labels\.$"):
        resolve(None, "multiclass", labels_file=str(labels_file))


def test_resolve_reads_metadata_from_code_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    write_metadata(
        tmp_path,
        "name: m\ntype: inference\ntargetType: multiclass\ninferenceModel:\n  classLabelsFile: labels.txt\n",
    )
    resolved = resolve_target_and_labels(tmp_path, None, None, None, None, None)
    assert resolved == ResolvedTarget(TargetType.MULTICLASS, class_labels=["a", "b", "c"])
    with pytest.raises(DrumCommonException, match=f"^{TARGET_MISSING}$"):
        resolve_target_and_labels(tmp_path / "missing", None, None, None, None, None)
