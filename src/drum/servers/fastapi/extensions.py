"""User extensions of the FastAPI app: `custom_fastapi.py` in the code dir, and `custom_flask.py` refused.

`custom_fastapi.py` (found anywhere under the code dir, at most one) must define `init_app(app)`.
It is imported when the server starts and `init_app` is called with DRUM's app, its routes registered,
before it serves; it can add routers, routes, exception handlers and middleware. Middleware it adds runs
inside DRUM's outer layer (access log, request id and DRUM headers, body limit, body prefetch into
`request.state.body` / `request.state.files`, metrics) and outside CORS and the routes: see
`servers/fastapi/app.py` `middleware_stack`. Any failure stops startup with a `DrumCommonException`.

A `custom_flask.py` is never silently ignored: alone it stops startup (it needs the Flask backend;
ignoring it could, for instance, serve the model without the authentication it adds); next to a
`custom_flask.py` the FastAPI one is loaded and a warning says the Flask one is not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI

from drum.errors import DrumCommonException
from drum.model.code_dir import FASTAPI_EXTENSION_FILE, FLASK_EXTENSION_FILE, find_files
from drum.model.module_loader import import_from_file

logger = logging.getLogger("drum.server.extensions")

MODULE_NAME = "custom_fastapi"
MIGRATION_HINT = (
    "See the migration guide (custom_flask.py -> custom_fastapi.py): write the same hooks as "
    "`init_app(app: FastAPI)`, e.g. @app.before_request -> a BaseHTTPMiddleware, Blueprint -> APIRouter."
)


def _find_one_extension(code_dir: str | os.PathLike[str]) -> Path | None:
    paths = find_files(code_dir, FASTAPI_EXTENSION_FILE)
    if len(paths) > 1:
        listed = ", ".join(str(p) for p in paths)
        raise DrumCommonException(
            f"Found {len(paths)} {FASTAPI_EXTENSION_FILE} files in the code dir {code_dir}: {listed}. "
            f"Only one {FASTAPI_EXTENSION_FILE} is allowed; remove or rename the others."
        )
    return paths[0] if paths else None


def _import_extension(path: Path) -> ModuleType:
    """Import `path` as module `custom_fastapi`, its directory first on sys.path (for its own imports)."""
    from drum.model.compat import install_datarobot_drum_alias

    install_datarobot_drum_alias()  # extensions may `from datarobot_drum import RuntimeParameters`
    try:
        return import_from_file(path, MODULE_NAME)
    except Exception as exc:
        logger.error("Could not import %s", path, exc_info=True)
        raise DrumCommonException(
            f"Failed to import FastAPI extension from [{path}]: {type(exc).__name__}: {exc}"
        ) from exc


def load_fastapi_extension(code_dir: str | os.PathLike[str]) -> Callable[[FastAPI], None] | None:
    """Import the code dir's `custom_fastapi.py`; returns `extend(app)` calling its `init_app`, or None.

    Raises `DrumCommonException` when there is more than one such file, when it cannot be imported
    or has no callable `init_app`; the returned function raises it when `init_app` fails.
    """
    path = _find_one_extension(code_dir)
    if path is None:
        logger.info("No %s file detected in %s", FASTAPI_EXTENSION_FILE, code_dir)
        return None
    logger.info("Detected %s .. trying to load FastAPI extensions from %s", FASTAPI_EXTENSION_FILE, path)
    module = _import_extension(path)
    init_app = getattr(module, "init_app", None)
    if not callable(init_app):
        raise DrumCommonException(
            f"Failed to load FastAPI extension from [{path}]: it must define a function `init_app(app)` "
            "that receives DRUM's FastAPI app (and may add middleware, routers or exception handlers)."
        )

    def extend(app: FastAPI) -> None:
        logger.debug("Calling init_app() from %s", path)
        try:
            init_app(app)
        except Exception as exc:
            logger.error("init_app() of %s failed", path, exc_info=True)
            raise DrumCommonException(
                f"Failed to apply FastAPI extensions from [{path}]: init_app(app) raised {type(exc).__name__}: {exc}"
            ) from exc
        logger.info("Successfully loaded FastAPI extensions from %s", path)

    return extend


def check_flask_extension(code_dir: str | os.PathLike[str]) -> None:
    """Refuse a `custom_flask.py` the FastAPI server would have to ignore; warn when a FastAPI one replaces it."""
    flask_paths = find_files(code_dir, FLASK_EXTENSION_FILE)
    if not flask_paths:
        return
    listed = ", ".join(str(p) for p in flask_paths)
    if find_files(code_dir, FASTAPI_EXTENSION_FILE):
        logger.warning(
            "%s is ignored: the FastAPI server loads %s instead (DRUM loads the extension of the selected "
            "DRUM_SERVER_TYPE). Make sure %s does everything %s did.",
            listed,
            FASTAPI_EXTENSION_FILE,
            FASTAPI_EXTENSION_FILE,
            FLASK_EXTENSION_FILE,
        )
        return
    raise DrumCommonException(
        f"Found {listed}, a Flask extension, but drum is serving with FastAPI, which cannot load it. "
        "drum refuses to start rather than ignore it (it may add authentication or routes the model "
        f"relies on). Either migrate it to {FASTAPI_EXTENSION_FILE} next to it ({MIGRATION_HINT}), or run "
        "the legacy Flask backend with DRUM_SERVER_TYPE=flask after `pip install 'drum[flask]'`."
    )
