"""The settings table: parsing, ranges, fallbacks, runtime parameter vs env precedence, docs/settings.md in sync."""

import json
from pathlib import Path

import pytest

from drum.config.settings import SETTINGS, SettingError, get_setting, settings_table

SETTINGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def rp(value, type_="numeric"):
    return json.dumps({"type": type_, "payload": value})


def test_defaults_when_unset():
    for setting in SETTINGS:
        assert get_setting(setting.name, {}) == setting.default


def test_runtime_parameter_wins_over_plain_env():
    env = {"MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS": rp(2), "DRUM_FASTAPI_EXECUTOR_WORKERS": "3"}
    assert get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS", env) == 2
    assert get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS", {"DRUM_FASTAPI_EXECUTOR_WORKERS": "3"}) == 3


@pytest.mark.parametrize("raw", ["0", "257", "many", "-1"])
def test_out_of_range_int_warns_and_uses_default(raw):
    warnings = []
    value = get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS", {"DRUM_FASTAPI_EXECUTOR_WORKERS": raw}, warnings.append)
    assert value == 1
    assert "DRUM_FASTAPI_EXECUTOR_WORKERS" in warnings[0] and "1..256" in warnings[0]


def test_bool_and_choice_parsing():
    docs = {"MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_ENABLE_DOCS": rp(True, "boolean")}
    assert get_setting("DRUM_FASTAPI_ENABLE_DOCS", docs) is True
    assert get_setting("DRUM_FASTAPI_ENABLE_DOCS", {"DRUM_FASTAPI_ENABLE_DOCS": "yes"}) is True
    assert get_setting("DRUM_UVICORN_LOOP", {"DRUM_UVICORN_LOOP": "AsyncIO"}) == "asyncio"
    warnings = []
    assert get_setting("DRUM_UVICORN_LOOP", {"DRUM_UVICORN_LOOP": "trio"}, warnings.append) == "auto"
    assert "auto, asyncio, uvloop" in warnings[0]
    server = {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": rp("FastAPI", "string")}
    assert get_setting("DRUM_SERVER_TYPE", server) == "fastapi"


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("DRUM_SERVER_TYPE", "fastapi", "fastapi"),  # the migration guide's own line
        ("DRUM_SERVER_TYPE", "Gunicorn", "gunicorn"),
        ("DRUM_FASTAPI_EXECUTOR_WORKERS", "4", 4),
        ("DRUM_CLIENT_REQUEST_TIMEOUT", "30", 30),
        ("DRUM_FASTAPI_ENABLE_DOCS", "true", True),
        ("DRUM_CORS_ORIGINS", "http://a.example, http://b.example", "http://a.example, http://b.example"),
        ("DRUM_CORS_ORIGINS", '"quoted"', '"quoted"'),  # JSON, but not an object: the text itself
    ],
)
def test_runtime_parameter_accepts_a_plain_value(name, raw, expected):
    warnings = []
    assert get_setting(name, {f"MLOPS_RUNTIME_PARAM_{name}": raw}, warnings.append) == expected
    assert warnings == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("many", "valid: 1..256"),
        ('{"type": "numeric"}', '"type" and "payload"'),
        ('{"type": "numeric", "payload": "x"}', '"type" must be one of string, boolean'),
        ('{"type": "numeric", "payload": 999}', "valid: 1..256"),
    ],
)
def test_bad_runtime_parameter_warns_once_readably_and_uses_default(raw, reason):
    warnings = []
    env = {"MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS": raw}
    assert get_setting("DRUM_FASTAPI_EXECUTOR_WORKERS", env, warnings.append) == 1
    assert len(warnings) == 1
    assert "MLOPS_RUNTIME_PARAM_DRUM_FASTAPI_EXECUTOR_WORKERS" in warnings[0] and reason in warnings[0]
    assert "DataError" not in warnings[0] and "using default 1" in warnings[0]


@pytest.mark.parametrize(
    "env",
    [
        {"DRUM_SERVER_TYPE": "tornado"},
        {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": "tornado"},
        {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": rp("tornado", "string")},
        {"MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE": '{"payload": "fastapi"}'},
    ],
)
def test_invalid_server_type_is_one_startup_error(env):
    warnings = []
    with pytest.raises(SettingError, match="fastapi, uvicorn, flask, werkzeug, gunicorn|\"type\" and \"payload\""):
        get_setting("DRUM_SERVER_TYPE", env, warnings.append)
    assert warnings == []  # never "ignoring ... using default" before failing


def test_missing_tls_file_is_a_startup_error(tmp_path):
    with pytest.raises(SettingError, match="file not found"):
        get_setting("DRUM_SSL_CERTFILE", {"DRUM_SSL_CERTFILE": str(tmp_path / "nope.pem")})
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    assert get_setting("DRUM_SSL_CERTFILE", {"DRUM_SSL_CERTFILE": str(cert)}) == str(cert)


def test_secret_values_are_not_logged():
    warnings = []
    setting = next(s for s in SETTINGS if s.name == "DRUM_SSL_KEYFILE_PASSWORD")
    assert setting.type == "secret"
    env = {"DRUM_SSL_KEYFILE_PASSWORD": "hunter2"}
    assert get_setting("DRUM_SSL_KEYFILE_PASSWORD", env, warnings.append) == "hunter2"
    assert not warnings


def test_readme_table_is_generated_from_settings():
    """docs/settings.md's table: run `python tools/update_docs.py` when this fails."""
    assert settings_table() in SETTINGS_DOC.read_text()


def test_server_limits_openblas_spin_unless_told_otherwise():
    from drum.cli.main import limit_blas_spin

    env: dict[str, str] = {}
    limit_blas_spin(env)
    assert env == {"OPENBLAS_THREAD_TIMEOUT": "4"}
    env = {"OPENBLAS_THREAD_TIMEOUT": "28"}
    limit_blas_spin(env)
    assert env == {"OPENBLAS_THREAD_TIMEOUT": "28"}
    env = {"DRUM_OPENBLAS_THREAD_TIMEOUT": "0"}
    limit_blas_spin(env)
    assert "OPENBLAS_THREAD_TIMEOUT" not in env
