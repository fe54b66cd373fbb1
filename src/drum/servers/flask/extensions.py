"""`custom_flask.py`: found anywhere under the code dir (at most one), imported as `custom_flask` with its
directory first on `sys.path`, and `init_app(app)` called with DRUM's Flask app after every route is
registered (DRUM 1.18 §5.9). Any failure stops startup with a `DrumCommonException`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from drum.errors import DrumCommonException
from drum.model.code_dir import FLASK_EXTENSION_FILE, find_files
from drum.model.module_loader import import_from_file

logger = logging.getLogger("drum.server.extensions")
MODULE_NAME = "custom_flask"


def load_flask_extension(code_dir: str | os.PathLike[str]) -> Callable[[Flask], None] | None:
    """Import the code dir's `custom_flask.py`; returns `extend(app)` calling its `init_app`, or None."""
    paths = find_files(code_dir, FLASK_EXTENSION_FILE)
    if not paths:
        logger.info("No %s file detected in %s", FLASK_EXTENSION_FILE, code_dir)
        return None
    if len(paths) > 1:
        listed = ", ".join(str(p) for p in paths)
        raise DrumCommonException(
            f"Found {len(paths)} {FLASK_EXTENSION_FILE} files in the code dir {code_dir}: {listed}. "
            f"Only one {FLASK_EXTENSION_FILE} is allowed; remove or rename the others."
        )
    path = paths[0]
    logger.info("Detected %s .. trying to load Flask extensions", path)
    init_app = getattr(_import(path), "init_app", None)
    if not callable(init_app):
        raise DrumCommonException(
            f"Failed to extend Flask app from [{path}] : it must define a function `init_app(app)`"
        )

    def extend(app: Flask) -> None:
        try:
            init_app(app)
        except Exception as exc:
            logger.error("init_app() of %s failed", path, exc_info=True)
            raise DrumCommonException(f"Failed to extend Flask app from [{path}] : {exc}") from exc
        logger.info("Successfully loaded Flask extensions from %s", path)

    return extend


def _import(path: Path):
    from drum.model.compat import install_datarobot_drum_alias

    install_datarobot_drum_alias()  # extensions may `from datarobot_drum import RuntimeParameters`
    try:
        return import_from_file(path, MODULE_NAME)
    except Exception as exc:
        logger.error("Could not import %s", path, exc_info=True)
        raise DrumCommonException(f"Failed to extend Flask app from [{path}] : {type(exc).__name__}: {exc}") from exc
