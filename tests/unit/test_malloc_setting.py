"""DRUM_MALLOC_MMAP_THRESHOLD: the FastAPI app fixes glibc's mmap threshold to the setting, or leaves
glibc's dynamic threshold alone when it is 0."""

from __future__ import annotations

import pytest

from drum.cli.parser import parse_args
from drum.cli.server import app_config
from drum.servers.fastapi import app as fastapi_app


@pytest.mark.parametrize(("value", "expected"), [(None, [1048576]), ("4194304", [4194304]), ("0", [])])
def test_mmap_threshold_follows_the_setting(monkeypatch, tmp_path, value, expected):
    if value is None:
        monkeypatch.delenv("DRUM_MALLOC_MMAP_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("DRUM_MALLOC_MMAP_THRESHOLD", value)
    calls: list[int] = []
    monkeypatch.setattr(fastapi_app, "fix_mmap_threshold", lambda threshold: calls.append(threshold) or True)
    (tmp_path / "custom.py").write_text("def load_model(code_dir):\n    return 1\n")
    argv = ["server", "--code-dir", str(tmp_path), "--address", "127.0.0.1:0", "--target-type", "regression"]
    options = parse_args(argv, environ={})
    config = app_config(options, load=lambda: None)  # type: ignore[arg-type, return-value]
    fastapi_app.create_app(config)
    assert calls == expected
