"""Which HTTP server runs `drum server`: FastAPI/uvicorn unless DRUM_SERVER_TYPE asks for Flask."""

from __future__ import annotations

from drum.config.settings import get_setting
from drum.errors import DrumCommonException

FASTAPI_NAMES = ("fastapi", "uvicorn")
FLASK_NAMES = ("flask", "werkzeug", "gunicorn")


def select_server() -> str:
    """Returns "fastapi"; a Flask server type is refused with a clear error (no Flask backend here)."""
    server_type = get_setting("DRUM_SERVER_TYPE")
    if server_type is None and not get_setting("DRUM_FASTAPI_ENABLED"):
        server_type = "flask"  # the rollout flag turned FastAPI off
    if server_type is None or server_type in FASTAPI_NAMES:
        return "fastapi"
    raise DrumCommonException(
        f"DRUM_SERVER_TYPE={server_type!r} selects the legacy Flask server, which this drum does not "
        "provide. Unset DRUM_SERVER_TYPE or set it to 'fastapi' (see the migration guide: "
        "custom_flask.py -> custom_fastapi.py)."
    )
