"""Runtime parameters: env encoding, RuntimeParameters API, the values-file loader, to_bool.

Expected messages were taken from DRUM 1.18.1 (datarobot-drum) on the same inputs.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

import drum
from drum.config import runtime_params as rp
from drum.config.boolean import to_bool
from drum.config.runtime_params import RuntimeParameters, load_runtime_params_file
from drum.config.runtime_params_errors import (
    ErrorLoadingRuntimeParameter,
    InvalidEmptyYamlContent,
    InvalidInputFilePath,
    InvalidJsonException,
    InvalidRuntimeParam,
    InvalidYamlContent,
    RuntimeParameterException,
)

PREFIX = "MLOPS_RUNTIME_PARAM_"


@pytest.fixture(autouse=True)
def _clean_runtime_params(monkeypatch):
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def set_param(monkeypatch, name: str, value) -> None:
    monkeypatch.setenv(PREFIX + name, value if isinstance(value, str) else json.dumps(value))


# --------------------------------------------------------------------------------------------------
# RuntimeParameters


def test_public_import_and_names():
    assert drum.RuntimeParameters is RuntimeParameters
    assert RuntimeParameters.PARAM_PREFIX == "MLOPS_RUNTIME_PARAM"
    assert RuntimeParameters.namespaced_param_name("ab_C") == "MLOPS_RUNTIME_PARAM_ab_C"


def test_has_checks_presence_only(monkeypatch):
    assert not RuntimeParameters.has("P")
    set_param(monkeypatch, "P", "not even json")
    assert RuntimeParameters.has("P")
    assert not RuntimeParameters.has("p")  # names are case sensitive


def test_get_missing_raises_value_error():
    with pytest.raises(ValueError, match=r"^Runtime parameter 'NOPE' does not exist!$"):
        RuntimeParameters.get("NOPE")


@pytest.mark.parametrize(
    "env_value, expected",
    [
        ({"type": "string", "payload": "abc"}, "abc"),
        ({"type": "string", "payload": None}, None),
        ({"type": "boolean", "payload": True}, True),
        ({"type": "boolean", "payload": False}, False),
        ({"type": "boolean", "payload": None}, None),
        ({"type": "numeric", "payload": None}, None),
        ({"type": "credential", "payload": None}, None),
        ({"type": "deployment", "payload": "dep-1"}, "dep-1"),
        ({"type": "deployment", "payload": None}, None),
    ],
)
def test_get_returns_payload(monkeypatch, env_value, expected):
    set_param(monkeypatch, "P", env_value)
    assert RuntimeParameters.get("P") == expected


@pytest.mark.parametrize(
    "payload, expected_type",
    [(5, int), (5.5, float), ("5.5", str), ("1e3", str), (" 5 ", str), ("nan", str), (True, bool)],
)
def test_numeric_payload_is_returned_unchanged(monkeypatch, payload, expected_type):
    set_param(monkeypatch, "N", {"type": "numeric", "payload": payload})
    value = RuntimeParameters.get("N")
    assert value == payload
    assert type(value) is expected_type


def test_credential_payload_keeps_extra_keys_credential_type_first(monkeypatch):
    set_param(monkeypatch, "C", {"type": "credential", "payload": {"a": 1, "credentialType": "s3"}})
    value = RuntimeParameters.get("C")
    assert value == {"credentialType": "s3", "a": 1}
    assert list(value) == ["credentialType", "a"]


@pytest.mark.parametrize("raw", ["{bad", "", "  ", "[1,"])
def test_get_invalid_json(monkeypatch, raw):
    set_param(monkeypatch, "P", raw)
    with pytest.raises(InvalidJsonException) as info:
        RuntimeParameters.get("P")
    assert str(info.value) == f"Invalid runtime parameter json payload. payload={raw}"


@pytest.mark.parametrize(
    "env_value, detail",
    [
        ({"type": "string", "payload": ""}, "blank value is not allowed"),
        ({"type": "string", "payload": 5}, "value is not a string"),
        ({"type": "string"}, "is required"),
        ({"type": "string", "payload": "a", "extra": 1}, "extra is not allowed key"),
        ({"type": "boolean", "payload": "true"}, "value should be True or False"),
        ({"type": "boolean", "payload": 1}, "value should be True or False"),
        ({"type": "numeric", "payload": "abc"}, "t be converted to float"),
        ({"type": "numeric", "payload": [1]}, "value is not float"),
        ({"type": "credential", "payload": {"a": 1}}, "is required"),
        ({"type": "credential", "payload": {"credentialType": 5}}, "value is not a string"),
        ({"type": "credential", "payload": "x"}, "value is not a dict"),
        ({"type": "deployment", "payload": ""}, "blank value is not allowed"),
        ({"type": "unknown", "payload": "d"}, "match any variant"),
        ({"payload": "d"}, "is required"),
    ],
)
def test_get_invalid_payload(monkeypatch, env_value, detail):
    set_param(monkeypatch, "P", env_value)
    with pytest.raises(InvalidRuntimeParam) as info:
        RuntimeParameters.get("P")
    message = str(info.value)
    assert message.startswith(f"Invalid runtime parameter! env_value={env_value}, exception: {{0: DataError(")
    assert message.endswith(", ")
    assert detail in message


def test_get_invalid_payload_exact_trafaret_message(monkeypatch):
    # The five types are tried in order (string, boolean, numeric, credential, deployment) and
    # their failures nest pairwise, exactly as DRUM prints them.
    set_param(monkeypatch, "P", [1, 2])
    with pytest.raises(InvalidRuntimeParam) as info:
        RuntimeParameters.get("P")
    assert str(info.value) == (
        "Invalid runtime parameter! env_value=[1, 2], exception: "
        "{0: DataError('{0: DataError(\\'{0: DataError(\"{0: DataError(\\\\\\'value is not a dict\\\\\\'), "
        "1: DataError(\\\\\\'value is not a dict\\\\\\')}\"), 1: DataError(\\\\\\'value is not a dict\\\\\\')}\\'), "
        "1: DataError(\\'value is not a dict\\')}'), 1: DataError('value is not a dict')}, "
    )


def test_json_nan_is_not_a_payload(monkeypatch):
    set_param(monkeypatch, "P", "NaN")
    with pytest.raises(InvalidRuntimeParam, match=r"^Invalid runtime parameter! env_value=nan, "):
        RuntimeParameters.get("P")


def test_exception_hierarchy():
    for exc in (
        InvalidJsonException,
        InvalidRuntimeParam,
        InvalidInputFilePath,
        InvalidEmptyYamlContent,
        InvalidYamlContent,
        ErrorLoadingRuntimeParameter,
    ):
        assert issubclass(exc, RuntimeParameterException)
        assert getattr(rp, exc.__name__) is exc  # re-exported by the runtime_params module


# --------------------------------------------------------------------------------------------------
# load_runtime_params_file

DEFINITIONS = """
name: m
type: inference
targetType: regression
runtimeParameterDefinitions:
  - fieldName: S
    type: string
    defaultValue: hello
    description: ignored
  - fieldName: S2
    type: string
  - fieldName: B
    type: boolean
    defaultValue: true
  - fieldName: N
    type: numeric
    minValue: 1
    maxValue: 100
    defaultValue: 5
  - fieldName: NF
    type: numeric
    minValue: 0.5
    maxValue: 1.5
  - fieldName: C
    type: credential
    credentialType: s3
  - fieldName: D
    type: deployment
"""


def write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def code_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    write(directory / "model-metadata.yaml", DEFINITIONS)
    return directory


def load(tmp_path, code_dir, values: str) -> dict[str, dict]:
    load_runtime_params_file(write(tmp_path / "values.yaml", values), str(code_dir))
    return {k[len(PREFIX) :]: json.loads(v) for k, v in os.environ.items() if k.startswith(PREFIX)}


def test_loader_exports_defaults_and_ignores_undefined(tmp_path, code_dir):
    exported = load(tmp_path, code_dir, "UNDEFINED: 1\n")
    assert exported == {
        "S": {"payload": "hello", "type": "string"},
        "S2": {"payload": None, "type": "string"},
        "B": {"payload": True, "type": "boolean"},
        "N": {"payload": 5, "type": "numeric"},
        "NF": {"payload": None, "type": "numeric"},
        "C": {"payload": None, "type": "credential"},
        "D": {"payload": None, "type": "deployment"},
    }
    assert "MLOPS_RUNTIME_PARAM_UNDEFINED" not in os.environ
    # The exported JSON is what DRUM writes (payload first), and RuntimeParameters reads it back.
    assert os.environ["MLOPS_RUNTIME_PARAM_N"] == '{"payload": 5, "type": "numeric"}'
    assert RuntimeParameters.get("S") == "hello"


def test_loader_exports_values(tmp_path, code_dir):
    exported = load(
        tmp_path,
        code_dir,
        """
        S: abc
        S2: def
        B: false
        N: 100
        NF: '1.2'
        C:
          credentialType: s3
          key: v
        D: dep1
        """,
    )
    assert {name: value["payload"] for name, value in exported.items()} == {
        "S": "abc",
        "S2": "def",
        "B": False,
        "N": 100,
        "NF": "1.2",  # numeric strings are kept as strings
        "C": {"credentialType": "s3", "key": "v"},
        "D": "dep1",
    }
    assert RuntimeParameters.get("C") == {"credentialType": "s3", "key": "v"}


def test_loader_explicit_null_overrides_default(tmp_path, code_dir):
    assert load(tmp_path, code_dir, "S: null\n")["S"] == {"payload": None, "type": "string"}


def or_null(message: str) -> str:
    """How DRUM prints a failed ``Null | <type>`` payload check whose message has no quote."""
    return f"DataError(\"{{0: DataError('value should be None'), 1: DataError('{message}')}}\")"


@pytest.mark.parametrize(
    "values, name, detail",
    [
        ("N: 101\n", "N", or_null("value is greater than 100")),
        ("N: 0\n", "N", or_null("value is less than 1")),
        ("NF: 1.6\n", "NF", or_null("value is greater than 1.5")),
        ("NF: 0.4\n", "NF", or_null("value is less than 0.5")),
        ("B: 'true'\n", "B", or_null("value should be True or False")),
        ("S: 5\n", "S", or_null("value is not a string")),
        ("S: ''\n", "S", or_null("blank value is not allowed")),
        ("C: abc\n", "C", or_null("value is not a dict")),
        ("D:\n  - a\n", "D", or_null("value is not a string")),
        (
            "N: abc\n",
            "N",
            "DataError('{0: DataError(\\'value should be None\\'), "
            "1: DataError(\"value can\\'t be converted to float\")}')",
        ),
        (
            "C:\n  key: v\n",
            "C",
            "DataError('{0: DataError(\\'value should be None\\'), "
            "1: DataError(\"{\\'credentialType\\': DataError(\\'is required\\')}\")}')",
        ),
    ],
)
def test_loader_rejects_invalid_values(tmp_path, code_dir, values, name, detail):
    with pytest.raises(ErrorLoadingRuntimeParameter) as info:
        load(tmp_path, code_dir, values)
    assert str(info.value) == f"Failed to load runtime parameter '{name}'. {{'payload': {detail}}}"


def test_loader_exports_parameters_before_the_failing_one(tmp_path, code_dir):
    with pytest.raises(ErrorLoadingRuntimeParameter):
        load(tmp_path, code_dir, "N: 101\n")
    assert RuntimeParameters.get("S") == "hello"  # defined before N: exported, as DRUM does
    assert not RuntimeParameters.has("NF")


@pytest.mark.parametrize(
    "values, expected", [("N: '50'\n", "50"), ("N: true\n", True), ("N: 1\n", 1), ("N: 100.0\n", 100.0)]
)
def test_loader_numeric_bounds_are_inclusive_and_values_not_coerced(tmp_path, code_dir, values, expected):
    payload = load(tmp_path, code_dir, values)["N"]["payload"]
    assert payload == expected
    assert type(payload) is type(expected)


def test_loader_bool_accepts_yaml_booleans(tmp_path, code_dir):
    assert load(tmp_path, code_dir, "B: yes\n")["B"]["payload"] is True


@pytest.mark.parametrize(
    "definitions, values, message",
    [
        (
            "  - fieldName: A\n    type: numeric\n    defaultValue: 10\n    maxValue: 5\n",
            "B: 1\n",
            "Failed to load runtime parameter 'A'. {'payload': DataError(\"{0: DataError('value should be None'), "
            "1: DataError('value is greater than 5')}\")}",
        ),
        (
            "  - fieldName: A\n    type: numeric\n    minValue: 1.0\n",
            "A: 0\n",
            "Failed to load runtime parameter 'A'. {'payload': DataError(\"{0: DataError('value should be None'), "
            "1: DataError('value is less than 1.0')}\")}",
        ),
        (
            "  - fieldName: A\n    type: numeric\n    minValue: null\n    maxValue: 3\n",
            "A: 4\n",
            "Failed to load runtime parameter 'A'. {'payload': DataError(\"{0: DataError('value should be None'), "
            "1: DataError('value is greater than 3')}\")}",
        ),
        (
            "  - fieldName: A\n    type: string\n  - fieldName: A\n    type: numeric\n",
            "A: x\n",
            "Failed to load runtime parameter [A], duplicated definition",
        ),
        ("  - type: string\n", "A: x\n", "Failed to load runtime parameter: {'fieldName': DataError('is required')}"),
        ("  - fieldName: A\n", "A: x\n", "Failed to load runtime parameter: {'type': DataError('is required')}"),
        (
            "  - fieldName: A\n    type: int\n",
            "A: x\n",
            "Failed to load runtime parameter: {'type': DataError(\"value doesn't match any variant\")}",
        ),
        (
            "  - fieldName: 5\n    type: string\n",
            "A: x\n",
            "Failed to load runtime parameter: {'fieldName': DataError('value is not a string')}",
        ),
        (
            "  - fieldName: A\n    type: string\n    allowEmpty: maybe\n",
            "A: x\n",
            "Failed to load runtime parameter: {'allowEmpty': DataError('value should be True or False')}",
        ),
        (
            "  - fieldName: A\n    type: numeric\n    minValue: [1]\n",
            "A: 1\n",
            "Failed to load runtime parameter: {'minValue': DataError(\"{0: DataError('value is not float'), "
            "1: DataError('value should be None')}\")}",
        ),
        (
            "  - fieldName: A\n    type: numeric\n    minValue: abc\n",
            "A: 1\n",
            "Failed to load runtime parameter: {'minValue': DataError('{0: DataError(\"value can\\'t be converted "
            "to float\"), 1: DataError(\\'value should be None\\')}')}",
        ),
        ("  - abc\n", "A: 1\n", "Failed to load runtime parameter: value is not a dict"),
    ],
)
def test_loader_definition_errors(tmp_path, definitions, values, message):
    write(tmp_path / "model-metadata.yaml", "runtimeParameterDefinitions:\n" + definitions)
    with pytest.raises(ErrorLoadingRuntimeParameter) as info:
        load_runtime_params_file(write(tmp_path / "values.yaml", values), str(tmp_path))
    assert str(info.value) == message


def test_loader_allow_empty_is_not_enforced(tmp_path):
    write(
        tmp_path / "model-metadata.yaml",
        "runtimeParameterDefinitions:\n  - fieldName: A\n    type: string\n    allowEmpty: false\n",
    )
    load_runtime_params_file(write(tmp_path / "values.yaml", "OTHER: 1\n"), str(tmp_path))
    assert RuntimeParameters.get("A") is None


@pytest.mark.parametrize(
    "metadata, error, message",
    [
        ("name: x\n", InvalidYamlContent, None),
        ("runtimeParameterDefinitions: []\n", InvalidYamlContent, None),
        ("- a\n", InvalidYamlContent, None),
        ("", InvalidEmptyYamlContent, "Model-metadata YAML file is empty!"),
        ("a: [1,\n", InvalidYamlContent, "Invalid model-metadata YAML content! while parsing a flow node"),
    ],
)
def test_loader_metadata_errors(tmp_path, metadata, error, message):
    write(tmp_path / "model-metadata.yaml", metadata)
    with pytest.raises(error) as info:
        load_runtime_params_file(write(tmp_path / "values.yaml", "A: 1\n"), str(tmp_path))
    expected = message or (
        "model-metadata.yaml: YAML file must contain at least one parameter definition "
        "in the section 'runtimeParameterDefinitions'"
    )
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize(
    "values, error, message",
    [
        ("", InvalidEmptyYamlContent, "Runtime parameter values YAML file is empty!"),
        ("# only a comment\n", InvalidEmptyYamlContent, "Runtime parameter values YAML file is empty!"),
        ("a: [1,\n", InvalidYamlContent, "Invalid runtime parameter values YAML content! while parsing"),
        ("- a\n", InvalidYamlContent, "Invalid runtime parameter values YAML content!"),
    ],
)
def test_loader_values_file_errors(tmp_path, code_dir, values, error, message):
    with pytest.raises(error) as info:
        load(tmp_path, code_dir, values)
    assert str(info.value).startswith(message)
    assert not any(name.startswith(PREFIX) for name in os.environ)


def test_loader_missing_paths(tmp_path, code_dir):
    values = write(tmp_path / "values.yaml", "A: 1\n")
    with pytest.raises(InvalidInputFilePath, match=r"^Empty runtime parameter values file path!$"):
        load_runtime_params_file("", str(code_dir))
    with pytest.raises(InvalidInputFilePath, match=r"^Empty code-dir path!$"):
        load_runtime_params_file(values, "")
    with pytest.raises(InvalidInputFilePath) as info:
        load_runtime_params_file(str(tmp_path / "nope.yaml"), str(code_dir))
    assert str(info.value) == f"Runtime parameter values file does not exist! filepath: {tmp_path / 'nope.yaml'}"
    with pytest.raises(InvalidInputFilePath, match=r"^model-metadata.yaml must exist to use runtime parameters$"):
        load_runtime_params_file(values, str(tmp_path / "nodir"))


def test_loader_reads_definitions_before_values(tmp_path):
    # Both files are bad: the metadata error wins, as in DRUM.
    with pytest.raises(InvalidInputFilePath, match="model-metadata.yaml must exist"):
        load_runtime_params_file(str(tmp_path / "nope.yaml"), str(tmp_path))


# --------------------------------------------------------------------------------------------------
# to_bool


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Y", "t", "on", "On", " yes ", "1.0", 1, 1.0, True])
def test_to_bool_true(value):
    assert to_bool(value) is True


@pytest.mark.parametrize(
    "value", ["0", "false", "False", "no", "N", "off", "OFF", "none", "None", "0.0", 0, 0.0, False, None]
)
def test_to_bool_false(value):
    assert to_bool(value) is False


@pytest.mark.parametrize("value", ["f", "F", "", "2", "1.00", "maybe", 2, "tru"])
def test_to_bool_rejects(value):
    with pytest.raises(ValueError, match=r"^value can't be converted to Bool$"):
        to_bool(value)
