"""DRUM's boolean parsing of option and environment values (trafaret ``ToBool`` semantics)."""

from typing import Any

TRUE_VALUES = frozenset({"t", "true", "y", "yes", "on", "1", "1.0"})
FALSE_VALUES = frozenset({"false", "n", "no", "off", "0", "none", "0.0"})


def to_bool(value: Any) -> bool:
    """Parse ``value`` as DRUM does: ``None`` is false, bools pass through, anything else goes
    through ``str(value).strip().lower()``; unrecognised text raises ``ValueError``.

    Note that, as in DRUM, ``"f"`` is *not* accepted while ``"none"``, ``"1.0"`` and ``"0.0"`` are.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError("value can't be converted to Bool")
