"""typeSchema validation of data frames (``model-metadata.yaml``), reproducing DRUM 1.18.1.

``SchemaValidator`` turns the ``typeSchema`` mapping (as read by
:func:`drum.model.metadata.read_model_metadata_yaml`) into one validator per requirement and checks
input or output frames against them, with DRUM's type-detection heuristics, log lines and messages:
a mismatch raises :class:`DrumSchemaValidationException` (``strict``) or is only logged.
"""

from __future__ import annotations

import base64
import copy
import logging
import numbers
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from enum import Enum, auto
from io import BytesIO
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from drum.errors import DrumSchemaValidationException
from drum.model.target import TargetType

try:  # Pillow decides what an image is, as in DRUM; without it a file-signature check stands in.
    from PIL import Image as _PilImage
except ImportError:  # pragma: no cover - depends on the environment
    _PilImage = None

logger = logging.getLogger(__name__)

_E = TypeVar("_E", bound="_NamedEnum")

BOOLEAN_WARNING = (
    "Boolean values were present in the data, which are passed as numeric input in DataRobot.  "
    "You may need to convert boolean values to integers/floats for your model"
)
DEFAULT_TYPE_SCHEMA_WARNING = (
    "WARNING: No type schema provided. For transforms, we enforce using the default type schema to ensure there are "
    "no conflicts with other tasks downstream. Disable strict validation if you do not want to use the default type "
    "schema."
)
OUTPUT_REQUIREMENTS_ERROR = (
    "Specifying output_requirements in model_metadata.yaml is only valid for custom transform tasks."
)

# DRUM's resource/default_typeschema/model-metadata.yaml, as read_model_metadata_yaml returns it.
DEFAULT_TYPE_SCHEMA: dict[str, list[dict[str, Any]]] = {
    "input_requirements": [
        {"field": "data_types", "condition": "IN", "value": ["NUM", "CAT", "TXT", "DATE", "DATE_DURATION"]},
        {"field": "sparse", "condition": "EQUALS", "value": "FORBIDDEN"},
        {"field": "contains_missing", "condition": "EQUALS", "value": "FORBIDDEN"},
    ],
    "output_requirements": [{"field": "data_types", "condition": "EQUALS", "value": "NUM"}],
}


def default_type_schema() -> dict[str, list[dict[str, Any]]]:
    """A fresh copy of DRUM's default transform type schema."""
    return copy.deepcopy(DEFAULT_TYPE_SCHEMA)


# ---------------------------------------------------------------------------------------------------
# Vocabulary


class _NamedEnum(Enum):
    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_string(cls: type[_E], enum_str: Any) -> _E:
        for member in cls:
            if member is enum_str or str(member) == enum_str:
                return member
        raise ValueError(f"No enum value matches: {enum_str!r}")


class RequirementTypes(_NamedEnum):
    INPUT_REQUIREMENTS = auto()
    OUTPUT_REQUIREMENTS = auto()

    def __str__(self) -> str:
        return self.name.lower()


class Conditions(_NamedEnum):
    EQUALS = auto()
    IN = auto()
    NOT_EQUALS = auto()
    NOT_IN = auto()
    GREATER_THAN = auto()
    LESS_THAN = auto()
    NOT_GREATER_THAN = auto()
    NOT_LESS_THAN = auto()

    @classmethod
    def single_value_conditions(cls) -> list[Conditions]:
        return [
            cls.EQUALS,
            cls.NOT_EQUALS,
            cls.GREATER_THAN,
            cls.NOT_GREATER_THAN,
            cls.LESS_THAN,
            cls.NOT_LESS_THAN,
        ]


class Values(_NamedEnum):
    NUM = auto()
    TXT = auto()
    CAT = auto()
    IMG = auto()
    DATE = auto()
    DATE_DURATION = auto()
    COUNT_DICT = auto()
    GEO = auto()

    FORBIDDEN = auto()
    SUPPORTED = auto()
    REQUIRED = auto()

    NEVER = auto()
    DYNAMIC = auto()
    ALWAYS = auto()
    IDENTITY = auto()

    @classmethod
    def input_values(cls) -> list[Values]:
        return [cls.FORBIDDEN, cls.SUPPORTED, cls.REQUIRED]

    @classmethod
    def output_values(cls) -> list[Values]:
        return [cls.NEVER, cls.DYNAMIC, cls.ALWAYS, cls.IDENTITY]


class Fields(_NamedEnum):
    DATA_TYPES = auto()
    SPARSE = auto()
    NUMBER_OF_COLUMNS = auto()
    CONTAINS_MISSING = auto()

    def __str__(self) -> str:
        return self.name.lower()


RawValue = str | int | Values
Value = Values | int


# ---------------------------------------------------------------------------------------------------
# Frame inspection (DRUM's heuristics)


def is_sparse_dataframe(frame: pd.DataFrame) -> bool:
    """DRUM's test: the ``.sparse`` accessor exists (every column sparse, or no columns at all)."""
    return hasattr(frame, "sparse")


def _is_object_like(dtype: Any) -> bool:
    """What ``select_dtypes("O")`` counts: object, and (pandas 3, for compatibility) the NaN-backed ``str``."""
    if isinstance(dtype, pd.StringDtype):
        return getattr(dtype, "na_value", pd.NA) is not pd.NA
    return dtype == np.dtype("O")


def is_text(column: pd.Series) -> bool:
    """Text: a string column where >=75% of rows contain whitespace and >=5% (or >=60) values are unique."""
    if (
        pd.api.types.is_string_dtype(column)
        and pd.api.types.infer_dtype(column) != "boolean"
        and pd.api.types.infer_dtype(column) != "bytes"
    ):
        rows = column.shape[0]
        pct_rows_with_whitespace = (column.str.count(r"\s") > 0).sum() / rows
        unique = column.nunique()
        return bool(pct_rows_with_whitespace >= 0.75 and (unique / rows >= 0.05 or unique >= 60))
    return False


_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x02\x00",  # CUR
    b"icns",
    b"8BPS",  # PSD
    b"DDS ",
    b"qoif",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000
    b"\xff\x4f\xff\x51",
    b"\x01\xda",  # SGI
    b"%!PS",  # EPS
    b"\xc5\xd0\xd3\xc6",
    b"#define",  # XBM
    b"/* XPM */",
)


def _open_image(data: bytes) -> object:
    if _PilImage is not None:
        return _PilImage.open(BytesIO(data))
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    is_netpbm = len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace()
    is_pcx = len(data) > 1 and data[0] == 10 and data[1] in (0, 2, 3, 5)
    if not (is_webp or is_netpbm or is_pcx or data.startswith(_IMAGE_SIGNATURES)):
        raise ValueError("cannot identify image file")
    return data


def is_img(column: pd.Series) -> bool:
    """Image: every value is NaN or base64 of an image, and not every value is NaN."""

    def convert(value: Any) -> Any:
        if isinstance(value, numbers.Number) and np.isnan(value):
            return np.nan
        return _open_image(base64.b64decode(value))

    try:
        result = [convert(value) for value in column]
        return not all(isinstance(value, numbers.Number) for value in result)
    except Exception:
        return False


def is_integer_numeric(column: pd.Series) -> bool:
    """Integer-valued columns (floats included: NaN makes pandas store integers as floats) may be categorical."""
    try:
        return bool(np.all(column == column.astype(pd.Int64Dtype())))
    except Exception:
        return False


def _count_columns(frame: pd.DataFrame, test: Callable[[pd.Series], bool]) -> int:
    if len(frame.index) == 0:
        # DRUM counts with ``frame.apply(test, result_type="expand")``, which on a frame without rows returns
        # the frame itself; the count then comes from indexing the columns with their own labels.
        return len(frame.columns[list(frame.columns)])
    return sum(test(frame.iloc[:, position]) for position in range(frame.shape[1]))


def _list_str(values: Sequence[Any]) -> str:
    return ", ".join(sorted(str(value) for value in values))


# ---------------------------------------------------------------------------------------------------
# Validators, one per requirement


class BaseValidator(ABC):
    """One ``{field, condition, value}`` requirement; :meth:`validate` returns the error messages."""

    def __init__(self, condition: Conditions, values: list[RawValue]):
        if len(values) > 1 and condition in Conditions.single_value_conditions():
            raise DrumSchemaValidationException(f"{condition} only accepts a single value for: {values}")
        self.condition = condition
        self.values: list[Value] = [value if isinstance(value, int) else Values.from_string(value) for value in values]

    @abstractmethod
    def validate(self, dataframe: pd.DataFrame) -> list[str]:
        raise NotImplementedError


class DataTypes(BaseValidator):
    """``data_types``: NUM, TXT, CAT, IMG, DATE are detected; DATE_DURATION, COUNT_DICT, GEO are not checked."""

    _SKIP_VALIDATION = frozenset({"DATE_DURATION", "COUNT_DICT", "GEO"})

    def __init__(self, condition: Conditions, values: list[RawValue]):
        kept = [value for value in dict.fromkeys(values) if str(value) not in self._SKIP_VALIDATION]
        if not kept:
            logger.info(
                "Values (%s) specified do not have runtime validation in DRUM, only within DataRobot.",
                _list_str(kept),
            )
        super().__init__(condition, kept)

    def _types_present(self, frame: pd.DataFrame) -> tuple[dict[Values, Any], bool]:
        """The detected types and whether every numeric column is integer-valued (NUM then counts as CAT)."""
        if is_sparse_dataframe(frame):
            # Only numbers make a sparse matrix.
            types = {Values.NUM: True, Values.TXT: False, Values.IMG: False, Values.CAT: False, Values.DATE: False}
            return types, False
        num_bool_columns = frame.select_dtypes("boolean").shape[1]
        num_txt_columns = _count_columns(frame, is_text)
        num_img_columns = _count_columns(frame, is_img)
        num_obj_columns = sum(_is_object_like(dtype) for dtype in frame.dtypes)
        if num_bool_columns > 0:
            logger.warning(BOOLEAN_WARNING)
        num_possible_numeric_categorical = _count_columns(frame, is_integer_numeric)
        num_numeric = frame.select_dtypes(np.number).shape[1]
        types = {
            Values.NUM: num_numeric > 0 or num_bool_columns > 0,
            Values.TXT: num_txt_columns > 0,
            Values.IMG: num_img_columns > 0,
            # DRUM keeps the difference itself: any non-zero count (even negative) makes CAT present.
            Values.CAT: num_obj_columns - num_img_columns,
            Values.DATE: frame.select_dtypes("datetime").shape[1] > 0,
        }
        return types, num_possible_numeric_categorical == num_numeric

    def validate(self, dataframe: pd.DataFrame) -> list[str]:
        if not self.values:
            logger.info("Skipping type validation")
            return []
        types, numbers_are_categorical = self._types_present(dataframe)
        types_present = [value for value, present in types.items() if present]

        base_error = f"Datatypes incorrect. Data has types: {_list_str(types_present)}"
        errors = {
            Conditions.EQUALS: f"{base_error}, but expected types to exactly match: {_list_str(self.values)}",
            Conditions.NOT_EQUALS: f"{base_error}, but expected {self.values[0]} to NOT be present.",
            Conditions.IN: f"{base_error}, which includes values that are not in {_list_str(self.values)}.",
            Conditions.NOT_IN: f"{base_error}, but expected no types in: {_list_str(self.values)} to be present",
        }

        def remap(value: Value) -> Value:
            # TXT is treated as CAT, and so is NUM when every numeric column holds integers.
            if value == Values.TXT or (value == Values.NUM and numbers_are_categorical):
                return Values.CAT
            return value

        expected = [remap(value) for value in self.values]
        present = [remap(value) for value in types_present]
        tests: dict[Conditions, Callable[[], bool]] = {
            Conditions.EQUALS: lambda: set(expected) == set(present),
            Conditions.NOT_EQUALS: lambda: expected[0] not in present,
            Conditions.IN: lambda: set(present).issubset(set(expected)),
            Conditions.NOT_IN: lambda: all(value not in expected for value in present),
        }
        if not tests[self.condition]():
            return [errors[self.condition]]
        return []


class Sparsity(BaseValidator):
    """``sparse``: FORBIDDEN/SUPPORTED/REQUIRED for inputs, NEVER/DYNAMIC/ALWAYS/IDENTITY for outputs."""

    _SPARSE_ALLOWED = (Values.DYNAMIC, Values.ALWAYS, Values.IDENTITY, Values.SUPPORTED, Values.REQUIRED)
    _DENSE_ALLOWED = (Values.NEVER, Values.DYNAMIC, Values.IDENTITY, Values.FORBIDDEN, Values.SUPPORTED)

    def validate(self, dataframe: pd.DataFrame) -> list[str]:
        sparse = is_sparse_dataframe(dataframe)
        value = self.values[0]
        io_type = "input" if value in Values.input_values() else "output"
        if sparse and value not in self._SPARSE_ALLOWED:
            return [f"Sparse {io_type} data found, however value is set to {value}, expecting dense"]
        if not sparse and value not in self._DENSE_ALLOWED:
            return [f"Dense {io_type} data found, however value is set to {value}, expecting sparse"]
        return []


class NumColumns(BaseValidator):
    """``number_of_columns``: every condition, one int (or a list for IN / NOT_IN)."""

    _OPERATORS: dict[Conditions, Callable[[Any, Any], bool]] = {
        Conditions.EQUALS: operator.eq,
        Conditions.NOT_EQUALS: operator.ne,
        Conditions.IN: lambda n, values: n in values,
        Conditions.NOT_IN: lambda n, values: n not in values,
        Conditions.GREATER_THAN: operator.gt,
        Conditions.NOT_GREATER_THAN: operator.le,
        Conditions.LESS_THAN: operator.lt,
        Conditions.NOT_LESS_THAN: operator.ge,
    }
    _ZERO_ALLOWED = (Conditions.NOT_IN, Conditions.NOT_EQUALS, Conditions.NOT_LESS_THAN, Conditions.GREATER_THAN)

    def __init__(self, condition: Conditions, values: list[RawValue]):
        super().__init__(condition, values)
        if not all(value >= 0 for value in values):  # type: ignore[operator]
            raise ValueError("The value for number of columns can not be negative")
        if 0 in values and condition not in self._ZERO_ALLOWED:
            raise ValueError(f"Value of 0 is not supported for {condition}")

    def validate(self, dataframe: pd.DataFrame) -> list[str]:
        n_columns = len(dataframe.columns)
        test_value: Any = self.values
        if self.condition in Conditions.single_value_conditions():
            test_value = self.values[0]
        if not self._OPERATORS[self.condition](n_columns, test_value):
            return [
                f"Incorrect number of columns. {n_columns} received. However, the schema dictates that number of "
                f"columns should be {self.condition} {test_value}"
            ]
        return []


class ContainsMissing(BaseValidator):
    """``contains_missing``: FORBIDDEN (input) / NEVER (output) reject NaN; sparse frames never count as missing."""

    def validate(self, dataframe: pd.DataFrame) -> list[str]:
        any_missing = False if is_sparse_dataframe(dataframe) else bool(dataframe.isna().any().any())
        value = self.values[0]
        io_type = "Input" if value in Values.input_values() else "Output"
        if any_missing and value in (Values.NEVER, Values.FORBIDDEN):
            return [f"{io_type} contains missing values, which the supplied task schema does not allow"]
        return []


_VALIDATOR_CLASSES: dict[Fields, type[BaseValidator]] = {
    Fields.DATA_TYPES: DataTypes,
    Fields.SPARSE: Sparsity,
    Fields.NUMBER_OF_COLUMNS: NumColumns,
    Fields.CONTAINS_MISSING: ContainsMissing,
}


# ---------------------------------------------------------------------------------------------------
# The schema


class SchemaValidator:
    """Validators for the ``input_requirements`` and ``output_requirements`` of a ``typeSchema``.

    ``use_default_type_schema`` substitutes :data:`DEFAULT_TYPE_SCHEMA` when ``type_schema`` is empty (DRUM does
    this for transform models in ``fit`` when validation is strict). Requirements that DRUM rejects
    (unknown field/condition/value, several values for a single-value condition, bad column counts) raise
    from the constructor with DRUM's exception and message.
    """

    def __init__(
        self,
        type_schema: Mapping[str, Any] | None,
        use_default_type_schema: bool = False,
        strict: bool = True,
        verbose: bool = False,
    ):
        self.using_default_type_schema = bool(use_default_type_schema and not type_schema)
        if self.using_default_type_schema:
            type_schema = default_type_schema()
        type_schema = type_schema or {}
        self._input_validators = [
            self._get_validator(req) for req in type_schema.get(str(RequirementTypes.INPUT_REQUIREMENTS), [])
        ]
        self._output_validators = [
            self._get_validator(req) for req in type_schema.get(str(RequirementTypes.OUTPUT_REQUIREMENTS), [])
        ]
        self.strict = strict
        self._verbose = verbose

    @staticmethod
    def _get_validator(requirement: Mapping[str, Any]) -> BaseValidator:
        field = Fields.from_string(requirement["field"])
        condition = Conditions.from_string(requirement["condition"])
        values = requirement["value"]
        if not isinstance(values, list):
            values = [values]
        return _VALIDATOR_CLASSES[field](condition, values)

    @property
    def has_input_requirements(self) -> bool:
        return bool(self._input_validators)

    @property
    def has_output_requirements(self) -> bool:
        return bool(self._output_validators)

    def validate_inputs(self, dataframe: pd.DataFrame) -> bool:
        """Check input data against ``input_requirements``."""
        return self._run_validate(dataframe, self._input_validators, "input")

    def validate_outputs(self, dataframe: pd.DataFrame) -> bool:
        """Check output data (e.g. a transform's result) against ``output_requirements``."""
        return self._run_validate(dataframe, self._output_validators, "output")

    def _run_validate(self, dataframe: pd.DataFrame, validators: list[BaseValidator], step_label: str) -> bool:
        errors: list[str] = []
        for validator in validators:
            errors.extend(validator.validate(dataframe))
        if not validators:
            if self._verbose:
                logger.info("No type schema for %s provided.", step_label)
            return True
        if not errors:
            if self._verbose:
                logger.info("Schema validation completed for task %s.", step_label)
            return True
        logger.error("Schema validation found mismatch between %s dataset and the supplied schema", step_label)
        for error in errors:
            logger.error(error)
        if self.strict:
            raise DrumSchemaValidationException(f"schema validation failed for {step_label}:\n {errors}")
        return False

    def validate_type_schema(self, target_type: TargetType | str) -> None:
        """``output_requirements`` are only allowed for transform models (checked by ``fit`` and ``push``)."""
        if TargetType(target_type) != TargetType.TRANSFORM and self._output_validators:
            logger.error(OUTPUT_REQUIREMENTS_ERROR)
            raise DrumSchemaValidationException(OUTPUT_REQUIREMENTS_ERROR)
