"""Load the user's `custom.py` and call its hooks with DRUM's signatures and error wrapping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from drum.errors import BaseCustomUserError, DrumCommonException, DrumPythonModelAdapterError
from drum.model.code_dir import CUSTOM_FILE, RUNNING_LANG_MSG, find_unique_file
from drum.model.compat import install_datarobot_drum_alias
from drum.model.custom_task import CUSTOM_TASK_CLASS, is_custom_task_class
from drum.model.module_loader import import_from_file
from drum.model.target import TargetType

logger = logging.getLogger("drum.model.hooks")

UNSTRUCTURED_HOOKS = ("init", "load_model", "score_unstructured")
STRUCTURED_HOOKS = (
    "init",
    "read_input_data",
    "load_model",
    "transform",
    "score",
    "post_process",
    "fit",
    "chat",
    "get_supported_llm_models",
)


@dataclass
class Hooks:
    """The hook functions found in `custom.py` (missing hooks are absent from `functions`), or its
    `CustomTask` class (`drum.model.custom_task`), which then replaces the hooks."""

    path: Path | None = None
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    task_class: type | None = None

    def get(self, name: str) -> Callable[..., Any] | None:
        return self.functions.get(name)

    def has(self, name: str) -> bool:
        return name in self.functions


def fail(exc: Exception, message: str) -> NoReturn:
    """DRUM's wrapping: user errors pass through, anything else becomes an adapter error."""
    if isinstance(exc, BaseCustomUserError):
        logger.info("%s User-raised error: %r", message, exc)
        raise exc
    logger.exception("%s Exception: %r", message, exc)
    raise DrumPythonModelAdapterError(f"{message} Exception: {exc!r}") from exc


def call(message: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a hook; on failure raise DRUM's wrapped error with `message` as context."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        fail(exc, message)


def _import_custom(path: Path) -> Any:
    try:
        return import_from_file(path, "custom")
    except ImportError as exc:
        logger.error("Could not load hooks: %s", exc)
        raise DrumCommonException(
            f"\n\n{RUNNING_LANG_MSG}\nFailed loading hooks from [{path}] : {exc}"
        ) from exc


def load_hooks(code_dir: str | Path, target_type: TargetType) -> Hooks:
    """Find `custom.py` recursively, import it as module `custom`, call `init(code_dir=...)`; a module with
    a `CustomTask` class uses the CustomTask interface instead (no hooks, no `init`), as DRUM."""
    path = find_unique_file(code_dir, CUSTOM_FILE)
    if path is None:
        logger.info("No %s file detected in %s", CUSTOM_FILE, code_dir)
        return Hooks()
    logger.info("Detected %s .. trying to load hooks", path)
    install_datarobot_drum_alias()
    module = _import_custom(path)
    task_class = getattr(module, CUSTOM_TASK_CLASS, None)
    if task_class:
        if not is_custom_task_class(task_class):
            raise DrumCommonException("The CustomTask class must inherit from the CustomTaskInterface")
        return Hooks(path, {}, task_class)
    names = UNSTRUCTURED_HOOKS if target_type == TargetType.UNSTRUCTURED else STRUCTURED_HOOKS
    functions = {name: getattr(module, name) for name in names if getattr(module, name, None) is not None}
    if target_type == TargetType.UNSTRUCTURED and "score_unstructured" not in functions:
        raise DrumCommonException("In 'unstructured' mode hook 'score_unstructured' must be provided.")
    hooks = Hooks(path, functions)
    init = hooks.get("init")
    if init is not None:
        init(code_dir=str(code_dir))
    logger.debug("Hooks loaded: %s", sorted(functions))
    return hooks
