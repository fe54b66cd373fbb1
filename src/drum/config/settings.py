"""The one table of server settings. Each is read from a runtime parameter (`MLOPS_RUNTIME_PARAM_<NAME>`)
or, failing that, a plain environment variable of the same name.

Invalid values never crash the server: they log a warning naming the setting, the value and the
valid range, and the default is used. The README's settings table is generated from `SETTINGS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drum.config.boolean import to_bool
from drum.config.runtime_params import RuntimeParameters

logger = logging.getLogger("drum.config.settings")


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # "int" | "bool" | "str" | "choice"
    default: Any
    description: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None

    def valid_range(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.type == "int":
            return f"{self.minimum}..{self.maximum}"
        if self.type == "bool":
            return "true | false"
        return "any"

    def parse(self, raw: Any) -> Any:
        """Convert a raw value; raises ValueError when it is out of range."""
        if self.type == "int":
            value = int(float(raw)) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else None
            if value is None or (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise ValueError(raw)
            return value
        if self.type == "bool":
            return to_bool(raw)
        value = str(raw).strip()
        if self.choices is not None:
            value = value.lower()
            if value not in self.choices:
                raise ValueError(raw)
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DRUM_SERVER_TYPE", "choice", None,
        "HTTP server: fastapi/uvicorn (default) or the legacy Flask servers flask/werkzeug/gunicorn.",
        choices=("fastapi", "uvicorn", "flask", "werkzeug", "gunicorn"),
    ),
    Setting(
        "DRUM_FASTAPI_EXECUTOR_WORKERS", "int", 4,
        "Threads per worker process that run model hooks (predict, transform, ...).",
        minimum=1, maximum=256,
    ),
    Setting(
        "DRUM_FASTAPI_ENABLE_DOCS", "bool", False,
        "Serve Swagger UI at /docs and the OpenAPI description at /openapi.json.",
    ),
)
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _raw(name: str, environ: dict[str, str]) -> Any:
    if RuntimeParameters.namespaced_param_name(name) in environ:
        return RuntimeParameters.get(name)
    return environ.get(name)


def get_setting(name: str, environ: dict[str, str] | None = None, warn: Callable[[str], None] | None = None) -> Any:
    """The value of a declared setting: runtime parameter, else env var, else the default."""
    setting = _BY_NAME[name]
    env = dict(os.environ) if environ is None else environ
    try:
        raw = _raw(name, env)
    except Exception as exc:  # noqa: BLE001 - a malformed runtime parameter falls back like a bad value
        raw, error = None, exc
        (warn or logger.warning)(f"Ignoring runtime parameter {name}: {error}; using default {setting.default!r}")
    if raw is None or raw == "":
        return setting.default
    try:
        return setting.parse(raw)
    except (ValueError, TypeError):
        (warn or logger.warning)(
            f"Invalid value {raw!r} for {name} (valid: {setting.valid_range()}); using default {setting.default!r}"
        )
        return setting.default
