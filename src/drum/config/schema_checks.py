"""Small composable validators whose failures read exactly like DRUM's.

DRUM validates runtime parameters and hyperparameter definitions with the ``trafaret`` library and
puts ``str(error)`` (or ``json.dumps(error.as_dict(value=True))``) into its exception messages. These
checks reproduce the same decisions and the same error text and nesting (``{'payload':
DataError('...')}``, ``{0: ..., 1: ...}`` for alternatives) without the dependency.

A check is a callable ``value -> value`` that raises :class:`CheckError`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], Any]

_NO_VALUE: Any = object()


class CheckError(ValueError):
    """A failed check: ``error`` is a message or a mapping of nested failures by key or index."""

    def __init__(self, error: str | dict, value: Any = _NO_VALUE):
        super().__init__(error)
        self.error = error
        self.value = value

    def __str__(self) -> str:
        return str(self.error)

    def __repr__(self) -> str:
        # Nested failures print as trafaret's DataError does; DRUM's messages contain this text.
        return f"DataError({str(self)!r})"

    def as_dict(self, value: bool = False) -> str | dict:
        """The failure as plain data; with ``value`` leaf messages end with ``, got <repr>``."""
        if isinstance(self.error, dict):
            return {key: err.as_dict(value) for key, err in self.error.items()}
        if value and self.value is not _NO_VALUE:
            return f"{self.error}, got {self.value!r}"
        return self.error


def any_value(value: Any) -> Any:
    return value


def null(value: Any) -> None:
    if value is not None:
        raise CheckError("value should be None", value)
    return None


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CheckError("value should be True or False", value)
    return value


def string(allow_blank: bool = False, max_length: int | None = None) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise CheckError("value is not a string", value)
        if not value:
            if allow_blank:
                return value
            raise CheckError("blank value is not allowed", value)
        if max_length is not None and len(value) > max_length:
            raise CheckError(f"String is longer than {max_length} characters", value)
        return value

    return check


def number(
    kind: type[int] | type[float] = float,
    gte: Any = None,
    lte: Any = None,
    convert: bool = False,
) -> Check:
    """A number or a string convertible to ``kind``, within ``[gte, lte]``.

    The converted number is returned with ``convert``, else the value is returned unchanged.
    Bounds may be given as numeric strings; messages show them as given.
    """
    low = None if gte is None else float(gte)
    high = None if lte is None else float(lte)
    type_name = kind.__name__

    def check(value: Any) -> Any:
        num = value if isinstance(value, kind) else _to_number(value, kind, type_name)
        if low is not None and num < low:
            raise CheckError(f"value is less than {gte}", value)
        if high is not None and num > high:
            raise CheckError(f"value is greater than {lte}", value)
        return num if convert else value

    return check


def _to_number(value: Any, kind: type, type_name: str) -> Any:
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise CheckError("value is not int", value)
    if not isinstance(value, (str, bytes, numbers.Real)):
        raise CheckError(f"value is not {type_name}", value)
    try:
        return kind(value)
    except ValueError:
        raise CheckError(f"value can't be converted to {type_name}", value) from None


def enum(*variants: Any) -> Check:
    def check(value: Any) -> Any:
        if value not in variants:
            raise CheckError("value doesn't match any variant", value)
        return value

    return check


def one_of(*checks: Check) -> Check:
    """The result of the first check that passes; else the failures of all, by position."""

    def check(value: Any) -> Any:
        errors: dict[int, CheckError] = {}
        for index, candidate in enumerate(checks):
            try:
                return candidate(value)
            except CheckError as exc:
                errors[index] = exc
        raise CheckError(errors)

    return check


def list_of(item: Check, min_length: int = 0, max_length: int | None = None) -> Check:
    def check(value: Any) -> list:
        if not isinstance(value, list):
            raise CheckError("value is not a list", value)
        if len(value) < min_length:
            raise CheckError(f"list length is less than {min_length}", value)
        if max_length is not None and len(value) > max_length:
            raise CheckError(f"list length is greater than {max_length}", value)
        result, errors = [], {}
        for index, element in enumerate(value):
            try:
                result.append(item(element))
            except CheckError as exc:
                errors[index] = exc
        if errors:
            raise CheckError(errors)
        return result

    return check


def with_message_prefix(inner: Check, prefix: str) -> Check:
    """Failures of ``inner`` become one message ``prefix + str(failure)`` (without the value)."""

    def check(value: Any) -> Any:
        try:
            return inner(value)
        except CheckError as exc:
            raise CheckError(f"{prefix}{exc}") from None

    return check


@dataclass(frozen=True)
class Key:
    """One key of a :func:`mapping`: its check, whether it may be absent, its default, its new name."""

    name: str
    check: Check = any_value
    optional: bool = False
    default: Any = _NO_VALUE
    to_name: str | None = None


EXTRA_FORBID = "forbid"
EXTRA_ALLOW = "allow"
EXTRA_IGNORE = "ignore"


def mapping(*keys: Key, extra: str = EXTRA_FORBID) -> Check:
    """A mapping with the given keys; unknown keys are forbidden, kept as-is or ignored."""

    def check(value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise CheckError("value is not a dict", value)
        result: dict = {}
        errors: dict = {}
        for key in keys:
            if key.name in value or key.default is not _NO_VALUE:
                try:
                    result[key.to_name or key.name] = key.check(value.get(key.name, key.default))
                except CheckError as exc:
                    errors[key.name] = exc
            elif not key.optional:
                errors[key.name] = CheckError("is required")
        if extra != EXTRA_IGNORE:
            known = {key.name for key in keys}
            for name in value:
                if name in known:
                    continue
                if extra == EXTRA_ALLOW:
                    result[name] = value[name]
                else:
                    errors[name] = CheckError(f"{name} is not allowed key")
        if errors:
            raise CheckError(errors)
        return result

    return check
