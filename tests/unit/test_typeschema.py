"""typeSchema validation of data frames (model-metadata.yaml ``typeSchema``).

Expected results and messages were taken from DRUM 1.18.1's ``typeschema_validation`` on the same frames.
"""

from __future__ import annotations

import logging
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from drum.errors import DrumSchemaValidationException
from drum.model.metadata import read_model_metadata_yaml
from drum.model.target import TargetType
from drum.model.typeschema import (
    DEFAULT_TYPE_SCHEMA,
    OUTPUT_REQUIREMENTS_ERROR,
    SchemaValidator,
    default_type_schema,
    is_img,
    is_sparse_dataframe,
    is_text,
)

# A 1x1 PNG, base64 encoded.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAAAAgABVKJPXQAAAABJRU5ErkJggg=="
WORDS = [f"alpha beta {i}" for i in range(20)]


def frame(name: str) -> pd.DataFrame:
    frames: dict[str, Any] = {
        "num": lambda: pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": [1.1, 2.0, 3.0]}),
        "int": lambda: pd.DataFrame({"a": [1, 2, 3]}),
        "mixed": lambda: pd.DataFrame({"a": [1.5, 2.5, 3.5], "c": ["x", "y", "z"]}),
        "cat": lambda: pd.DataFrame({"c": ["x", "y", "z"]}),
        "txt": lambda: pd.DataFrame({"t": WORDS}),
        "txtnum": lambda: pd.DataFrame({"t": WORDS, "n": np.arange(20) + 0.5}),
        "date": lambda: pd.DataFrame({"d": pd.to_datetime(["2020-01-01", "2020-02-01"]), "n": [0.5, 1.5]}),
        "img": lambda: pd.DataFrame({"i": [PNG, np.nan], "n": [1.5, 2.5]}),
        "bool": lambda: pd.DataFrame({"b": pd.array([True, False], dtype="boolean"), "n": [0.5, 1.5]}),
        "missing": lambda: pd.DataFrame({"a": [1.5, np.nan]}),
        "sparse": lambda: pd.DataFrame.sparse.from_spmatrix(sp.csr_matrix(np.array([[0, 1.5], [2.5, 0]]))),
    }
    return frames[name]()


def req(field: str, condition: str, value: Any) -> dict[str, Any]:
    return {"field": field, "condition": condition, "value": value}


def failure(step: str, *errors: str) -> str:
    return f"schema validation failed for {step}:\n {list(errors)}"


def dtypes_error(present: str, tail: str) -> str:
    return f"Datatypes incorrect. Data has types: {present}{tail}"


# (requirement, frame, error or None); each is checked as input and as output requirement.
CASES: list[tuple[dict[str, Any], str, str | None]] = [
    # data_types
    (req("data_types", "EQUALS", "NUM"), "num", None),
    (
        req("data_types", "EQUALS", "NUM"),
        "mixed",
        dtypes_error("CAT, NUM", ", but expected types to exactly match: NUM"),
    ),
    (
        req("data_types", "EQUALS", "DATE"),
        "date",
        dtypes_error("DATE, NUM", ", but expected types to exactly match: DATE"),
    ),
    (req("data_types", "EQUALS", "NUM"), "bool", None),
    (req("data_types", "EQUALS", "NUM"), "sparse", None),
    (req("data_types", "EQUALS", "CAT"), "sparse", dtypes_error("NUM", ", but expected types to exactly match: CAT")),
    (req("data_types", "IN", ["NUM", "CAT"]), "mixed", None),
    (req("data_types", "IN", ["NUM", "TXT"]), "txtnum", None),  # TXT counts as CAT
    (req("data_types", "IN", ["DATE", "NUM"]), "date", None),
    (
        req("data_types", "IN", ["NUM"]),
        "mixed",
        dtypes_error("CAT, NUM", ", which includes values that are not in NUM."),
    ),
    (
        req("data_types", "IN", ["NUM", "CAT"]),
        "img",
        dtypes_error("IMG, NUM", ", which includes values that are not in CAT, NUM."),
    ),
    (req("data_types", "IN", ["IMG", "NUM"]), "img", None),
    (req("data_types", "NOT_EQUALS", "CAT"), "num", None),
    (
        req("data_types", "NOT_EQUALS", "NUM"),
        "mixed",
        dtypes_error("CAT, NUM", ", but expected NUM to NOT be present."),
    ),
    (
        req("data_types", "NOT_EQUALS", "TXT"),
        "txtnum",
        dtypes_error("CAT, NUM, TXT", ", but expected TXT to NOT be present."),
    ),
    (req("data_types", "NOT_IN", ["IMG", "DATE"]), "mixed", None),
    (
        req("data_types", "NOT_IN", ["DATE", "IMG"]),
        "date",
        dtypes_error("DATE, NUM", ", but expected no types in: DATE, IMG to be present"),
    ),
    (
        req("data_types", "NOT_IN", "NUM"),
        "sparse",
        dtypes_error("NUM", ", but expected no types in: NUM to be present"),
    ),
    # Integer-only numbers count as CAT, so NUM and CAT requirements both accept them.
    (req("data_types", "EQUALS", "CAT"), "int", None),
    (req("data_types", "EQUALS", "NUM"), "int", None),
    # Values without runtime validation are ignored.
    (req("data_types", "EQUALS", "GEO"), "mixed", None),
    (req("data_types", "IN", ["NUM", "COUNT_DICT"]), "num", None),
    # sparse
    (req("sparse", "EQUALS", "FORBIDDEN"), "num", None),
    (
        req("sparse", "EQUALS", "FORBIDDEN"),
        "sparse",
        "Sparse input data found, however value is set to FORBIDDEN, expecting dense",
    ),
    (req("sparse", "EQUALS", "SUPPORTED"), "num", None),
    (req("sparse", "EQUALS", "SUPPORTED"), "sparse", None),
    (req("sparse", "EQUALS", "REQUIRED"), "sparse", None),
    (
        req("sparse", "EQUALS", "REQUIRED"),
        "num",
        "Dense input data found, however value is set to REQUIRED, expecting sparse",
    ),
    (req("sparse", "EQUALS", "NEVER"), "num", None),
    (
        req("sparse", "EQUALS", "NEVER"),
        "sparse",
        "Sparse output data found, however value is set to NEVER, expecting dense",
    ),
    (req("sparse", "EQUALS", "DYNAMIC"), "num", None),
    (req("sparse", "EQUALS", "DYNAMIC"), "sparse", None),
    (req("sparse", "EQUALS", "IDENTITY"), "num", None),
    (req("sparse", "EQUALS", "IDENTITY"), "sparse", None),
    (req("sparse", "EQUALS", "ALWAYS"), "sparse", None),
    (
        req("sparse", "EQUALS", "ALWAYS"),
        "num",
        "Dense output data found, however value is set to ALWAYS, expecting sparse",
    ),
    # contains_missing
    (req("contains_missing", "EQUALS", "FORBIDDEN"), "num", None),
    (
        req("contains_missing", "EQUALS", "FORBIDDEN"),
        "missing",
        "Input contains missing values, which the supplied task schema does not allow",
    ),
    (req("contains_missing", "EQUALS", "FORBIDDEN"), "sparse", None),  # implicit zeros are not missing
    (req("contains_missing", "EQUALS", "SUPPORTED"), "missing", None),
    (req("contains_missing", "EQUALS", "NEVER"), "num", None),
    (
        req("contains_missing", "EQUALS", "NEVER"),
        "missing",
        "Output contains missing values, which the supplied task schema does not allow",
    ),
    (req("contains_missing", "EQUALS", "DYNAMIC"), "missing", None),
]

_COLUMNS = "Incorrect number of columns. 2 received. However, the schema dictates that number of columns should be"
for _condition, _passing, _failing in [
    ("EQUALS", 2, 3),
    ("NOT_EQUALS", 3, 2),
    ("GREATER_THAN", 1, 2),
    ("LESS_THAN", 3, 2),
    ("NOT_GREATER_THAN", 2, 1),
    ("NOT_LESS_THAN", 2, 3),
    ("IN", [1, 2], [1, 3]),
    ("NOT_IN", [0, 3], [2]),
]:
    CASES.append((req("number_of_columns", _condition, _passing), "num", None))
    CASES.append((req("number_of_columns", _condition, _failing), "num", f"{_COLUMNS} {_condition} {_failing}"))
CASES += [
    (req("number_of_columns", "GREATER_THAN", 0), "num", None),
    (req("number_of_columns", "IN", 2), "sparse", None),
    (req("number_of_columns", "NOT_IN", 2), "num", f"{_COLUMNS} NOT_IN [2]"),
]


@pytest.mark.parametrize("step", ["input", "output"])
@pytest.mark.parametrize(("requirement", "frame_name", "error"), CASES)
def test_requirement(requirement: dict[str, Any], frame_name: str, error: str | None, step: str) -> None:
    validator = SchemaValidator({f"{step}_requirements": [requirement]})
    validate = validator.validate_inputs if step == "input" else validator.validate_outputs
    data = frame(frame_name)
    if error is None:
        assert validate(data) is True
        return
    with pytest.raises(DrumSchemaValidationException) as info:
        validate(data)
    assert str(info.value) == failure(step, error)
    # The other direction has no requirements, so anything passes.
    other = validator.validate_outputs if step == "input" else validator.validate_inputs
    assert other(data) is True


def test_all_errors_are_listed_in_one_exception() -> None:
    schema = {
        "output_requirements": [
            req("sparse", "EQUALS", "NEVER"),
            req("number_of_columns", "EQUALS", 1),
            req("data_types", "EQUALS", "CAT"),
        ]
    }
    with pytest.raises(DrumSchemaValidationException) as info:
        SchemaValidator(schema).validate_outputs(frame("sparse"))
    assert str(info.value) == failure(
        "output",
        "Sparse output data found, however value is set to NEVER, expecting dense",
        "Incorrect number of columns. 2 received. However, the schema dictates that number of columns should be"
        " EQUALS 1",
        "Datatypes incorrect. Data has types: NUM, but expected types to exactly match: CAT",
    )


def test_not_strict_logs_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    validator = SchemaValidator({"input_requirements": [req("sparse", "EQUALS", "FORBIDDEN")]}, strict=False)
    with caplog.at_level(logging.ERROR):
        assert validator.validate_inputs(frame("sparse")) is False
    assert [r.getMessage() for r in caplog.records] == [
        "Schema validation found mismatch between input dataset and the supplied schema",
        "Sparse input data found, however value is set to FORBIDDEN, expecting dense",
    ]


def test_empty_schema_accepts_anything() -> None:
    for schema in ({}, None, {"input_requirements": []}):
        validator = SchemaValidator(schema)
        assert validator.validate_inputs(frame("sparse")) is True
        assert validator.validate_outputs(frame("missing")) is True
        assert not validator.has_input_requirements and not validator.has_output_requirements


def test_boolean_columns_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        SchemaValidator({"input_requirements": [req("data_types", "EQUALS", "NUM")]}).validate_inputs(frame("bool"))
    assert "Boolean values were present in the data" in caplog.text


# ---------------------------------------------------------------------------------------------------
# Default schema (transform models in `fit` when no typeSchema is given and validation is strict)


def test_default_type_schema() -> None:
    assert default_type_schema() == DEFAULT_TYPE_SCHEMA
    assert default_type_schema() is not DEFAULT_TYPE_SCHEMA
    validator = SchemaValidator({}, use_default_type_schema=True)
    assert validator.using_default_type_schema
    assert validator.validate_inputs(frame("mixed")) is True
    assert validator.validate_outputs(frame("num")) is True
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_inputs(frame("sparse"))
    assert str(info.value) == failure(
        "input", "Sparse input data found, however value is set to FORBIDDEN, expecting dense"
    )
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_inputs(frame("missing"))
    assert str(info.value) == failure(
        "input", "Input contains missing values, which the supplied task schema does not allow"
    )
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_outputs(frame("mixed"))
    assert str(info.value) == failure(
        "output", "Datatypes incorrect. Data has types: CAT, NUM, but expected types to exactly match: NUM"
    )


def test_given_schema_wins_over_default() -> None:
    validator = SchemaValidator({"input_requirements": [req("sparse", "EQUALS", "REQUIRED")]}, True)
    assert not validator.using_default_type_schema
    assert validator.validate_inputs(frame("sparse")) is True
    assert validator.validate_outputs(frame("mixed")) is True


# ---------------------------------------------------------------------------------------------------
# Invalid requirements and output_requirements for non-transform models


@pytest.mark.parametrize(
    ("requirement", "exception", "message"),
    [
        (
            req("number_of_columns", "GREATER_THAN", [1, 2]),
            DrumSchemaValidationException,
            "GREATER_THAN only accepts a single value for: [1, 2]",
        ),
        (
            req("data_types", "NOT_EQUALS", ["NUM", "CAT"]),
            DrumSchemaValidationException,
            "NOT_EQUALS only accepts a single value for: ['NUM', 'CAT']",
        ),
        (
            req("sparse", "EQUALS", ["NEVER", "ALWAYS"]),
            DrumSchemaValidationException,
            "EQUALS only accepts a single value for: ['NEVER', 'ALWAYS']",
        ),
        (req("number_of_columns", "EQUALS", -1), ValueError, "The value for number of columns can not be negative"),
        (req("number_of_columns", "EQUALS", 0), ValueError, "Value of 0 is not supported for EQUALS"),
        (req("number_of_columns", "IN", [0, 1]), ValueError, "Value of 0 is not supported for IN"),
        (req("number_of_columns", "EQUALS", "3"), ValueError, "No enum value matches: '3'"),
        (req("data_types", "EQUALS", "FOO"), ValueError, "No enum value matches: 'FOO'"),
        (req("data_types", "MAYBE", "NUM"), ValueError, "No enum value matches: 'MAYBE'"),
        (req("DATA_TYPES", "EQUALS", "NUM"), ValueError, "No enum value matches: 'DATA_TYPES'"),
    ],
)
def test_invalid_requirement(requirement: dict[str, Any], exception: type[Exception], message: str) -> None:
    with pytest.raises(exception) as info:
        SchemaValidator({"input_requirements": [requirement]})
    assert str(info.value) == message


def test_equals_with_two_data_types_is_rejected() -> None:
    with pytest.raises(DrumSchemaValidationException, match="^EQUALS only accepts a single value for: "):
        SchemaValidator({"input_requirements": [req("data_types", "EQUALS", ["NUM", "CAT"])]})
    # Ignored values do not count towards the limit.
    SchemaValidator({"input_requirements": [req("data_types", "EQUALS", ["NUM", "GEO"])]})


def test_output_requirements_only_for_transform() -> None:
    validator = SchemaValidator({"output_requirements": [req("data_types", "EQUALS", "NUM")]})
    validator.validate_type_schema(TargetType.TRANSFORM)
    validator.validate_type_schema("transform")
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_type_schema(TargetType.REGRESSION)
    assert str(info.value) == OUTPUT_REQUIREMENTS_ERROR
    assert str(info.value) == (
        "Specifying output_requirements in model_metadata.yaml is only valid for custom transform tasks."
    )
    SchemaValidator({"input_requirements": [req("sparse", "EQUALS", "FORBIDDEN")]}).validate_type_schema("binary")


# ---------------------------------------------------------------------------------------------------
# Type detection


def test_is_text() -> None:
    assert is_text(pd.Series(WORDS))
    assert not is_text(pd.Series(["x", "y"]))  # no whitespace
    assert not is_text(pd.Series(["same words"] * 100))  # 1% unique
    assert is_text(pd.Series([f"w {i % 60}" for i in range(2000)]))  # 3% unique but 60 distinct values
    assert not is_text(pd.Series([1.5, 2.5]))


def test_is_img() -> None:
    assert is_img(pd.Series([PNG, PNG]))
    assert is_img(pd.Series([PNG, np.nan]))
    assert not is_img(pd.Series([np.nan, np.nan], dtype=object))
    assert not is_img(pd.Series(["test", "abcd"]))  # valid base64, not an image
    assert not is_img(pd.Series([PNG, "x"]))
    assert not is_img(pd.Series([1, 2]))


def test_is_sparse_dataframe() -> None:
    assert is_sparse_dataframe(frame("sparse"))
    assert not is_sparse_dataframe(frame("num"))
    # DRUM's test: the `.sparse` accessor exists, also for a frame without columns.
    assert is_sparse_dataframe(pd.DataFrame(index=[0, 1]))


def test_integer_numbers_with_text_count_as_categorical() -> None:
    data = pd.DataFrame({"i": [1.0, np.nan, 3.0], "c": ["x", "y", "z"]})
    validator = SchemaValidator({"input_requirements": [req("data_types", "EQUALS", "CAT")]})
    assert validator.validate_inputs(data) is True


def test_frame_without_rows_fails_like_drum() -> None:
    """DRUM counts column types with `DataFrame.apply`, which breaks on frames without rows."""
    validator = SchemaValidator({"input_requirements": [req("data_types", "EQUALS", "NUM")]})
    with pytest.raises(IndexError, match="arrays used as indices must be of integer or boolean type"):
        validator.validate_inputs(pd.DataFrame({"a": pd.Series([], dtype=float)}))


# ---------------------------------------------------------------------------------------------------
# From model-metadata.yaml


def test_schema_read_from_model_metadata(tmp_path) -> None:
    (tmp_path / "model-metadata.yaml").write_text(
        textwrap.dedent(
            """\
            name: t
            type: training
            targetType: transform
            typeSchema:
              input_requirements:
                - field: data_types
                  condition: IN
                  value:
                    - NUM
                    - CAT
                - field: number_of_columns
                  condition: NOT_LESS_THAN
                  value: 2
              output_requirements:
                - field: sparse
                  condition: EQUALS
                  value: NEVER
                - field: number_of_columns
                  condition: IN
                  value:
                    - 1
                    - 2
            """
        )
    )
    type_schema = read_model_metadata_yaml(tmp_path)["typeSchema"]
    validator = SchemaValidator(type_schema)
    validator.validate_type_schema(TargetType.TRANSFORM)
    assert validator.validate_inputs(frame("mixed")) is True
    assert validator.validate_outputs(frame("num")) is True
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_inputs(frame("cat"))
    assert str(info.value) == failure(
        "input",
        "Incorrect number of columns. 1 received. However, the schema dictates that number of columns should be"
        " NOT_LESS_THAN 2",
    )
    with pytest.raises(DrumSchemaValidationException) as info:
        validator.validate_outputs(frame("sparse"))
    assert str(info.value) == failure(
        "output", "Sparse output data found, however value is set to NEVER, expecting dense"
    )
