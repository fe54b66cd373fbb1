"""Import a user's Python file (custom.py, custom_fastapi.py, custom_flask.py) as a fresh module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_from_file(path: Path, module_name: str) -> ModuleType:
    """Import `path` as `module_name` with its directory first on sys.path (for its own imports).

    Always a fresh import, never a cached module of another code dir. If executing the file raises,
    the previous `sys.modules[module_name]` is restored and the exception propagates unchanged.
    """
    directory = str(path.parent)
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        raise
    return module
