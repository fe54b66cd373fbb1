"""Which HTTP server runs `drum server`: FastAPI/uvicorn by default, the legacy Flask backend on request.

`DRUM_SERVER_TYPE`: fastapi | uvicorn → FastAPI; flask | werkzeug → Flask's werkzeug server;
gunicorn → Flask under gunicorn. Unset: FastAPI, except a code dir whose only extension is
`custom_flask.py` (Flask when `drum[flask]` is installed, else a clear error). Flask needs the extra.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from drum.config.settings import Settings
from drum.errors import DrumCommonException
from drum.model.code_dir import FASTAPI_EXTENSION_FILE, FLASK_EXTENSION_FILE, find_files

logger = logging.getLogger("drum.server")

FASTAPI_NAMES = ("fastapi", "uvicorn")
WERKZEUG_NAMES = ("flask", "werkzeug")
FLASK_NAMES = (*WERKZEUG_NAMES, "gunicorn")
VALID_NAMES = (*FASTAPI_NAMES, *FLASK_NAMES)
FLASK_EXTRA = "pip install 'drum[flask]'"
MIGRATION_GUIDE = "the migration guide (custom_flask.py -> custom_fastapi.py)"


def select_server(settings: Settings, code_dir: str | os.PathLike[str] | None = None) -> str:
    """Returns "fastapi", "flask" (werkzeug) or "gunicorn"; raises `DrumCommonException` for what cannot run.
    (An invalid DRUM_SERVER_TYPE never gets here: reading the settings raised a `SettingError` naming the
    valid values.)"""
    server_type = settings.server_type
    if server_type is None and code_dir is not None and _only_flask_extension(code_dir):
        if not flask_installed():
            raise DrumCommonException(
                f"The code dir {code_dir} has a custom_flask.py (and no custom_fastapi.py), which needs the "
                f"legacy Flask backend: {FLASK_EXTRA}, or migrate it to custom_fastapi.py (see {MIGRATION_GUIDE})."
            )
        logger.warning("custom_flask.py found without custom_fastapi.py: serving with the legacy Flask backend")
        server_type = "flask"
    if server_type is None and not settings.fastapi_enabled:
        server_type = "flask"  # the rollout flag turned FastAPI off
    if server_type is None or server_type in FASTAPI_NAMES:
        return "fastapi"
    if not flask_installed() or (server_type == "gunicorn" and importlib.util.find_spec("gunicorn") is None):
        raise DrumCommonException(
            f"DRUM_SERVER_TYPE={server_type!r} selects the legacy Flask backend, which is an optional extra: "
            f"{FLASK_EXTRA}. Or unset DRUM_SERVER_TYPE to serve with FastAPI (see {MIGRATION_GUIDE})."
        )
    logger.warning(
        "DRUM_SERVER_TYPE=%s: the Flask backend is deprecated and will be removed; move to FastAPI "
        "(unset DRUM_SERVER_TYPE) and see %s.",
        server_type,
        MIGRATION_GUIDE,
    )
    return "gunicorn" if server_type == "gunicorn" else "flask"


def flask_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("flask", "werkzeug"))


def _only_flask_extension(code_dir: str | os.PathLike[str]) -> bool:
    return bool(find_files(code_dir, FLASK_EXTENSION_FILE)) and not find_files(code_dir, FASTAPI_EXTENSION_FILE)
