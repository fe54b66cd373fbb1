"""Target types, with DRUM's values and enum repr (``TargetType.REGRESSION`` appears in messages)."""

from enum import Enum


class TargetType(Enum):
    BINARY = "binary"
    REGRESSION = "regression"
    ANOMALY = "anomaly"
    UNSTRUCTURED = "unstructured"
    MULTICLASS = "multiclass"
    TRANSFORM = "transform"
    TEXT_GENERATION = "textgeneration"
    GEO_POINT = "geopoint"
    VECTOR_DATABASE = "vectordatabase"
    AGENTIC_WORKFLOW = "agenticworkflow"
    MULTILABEL = "multilabel"

    def is_classification(self) -> bool:
        return self in (TargetType.BINARY, TargetType.MULTICLASS, TargetType.MULTILABEL)

    def is_single_column(self) -> bool:
        return self in SINGLE_COLUMN_TYPES

    def keeps_strings(self) -> bool:
        """Predictions of these types are not cast to float before encoding."""
        return self in STRING_OUTPUT_TYPES

    def needs_target_name(self) -> bool:
        return self in STRING_OUTPUT_TYPES - {TargetType.GEO_POINT}


SINGLE_COLUMN_TYPES = frozenset(
    {
        TargetType.REGRESSION,
        TargetType.ANOMALY,
        TargetType.TEXT_GENERATION,
        TargetType.GEO_POINT,
        TargetType.VECTOR_DATABASE,
        TargetType.AGENTIC_WORKFLOW,
    }
)
STRING_OUTPUT_TYPES = frozenset(
    {
        TargetType.TEXT_GENERATION,
        TargetType.GEO_POINT,
        TargetType.VECTOR_DATABASE,
        TargetType.AGENTIC_WORKFLOW,
    }
)
#: Name of the single prediction column.
PRED_COLUMN = "Predictions"
