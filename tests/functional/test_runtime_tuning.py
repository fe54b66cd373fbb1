"""Process-level tuning of the FastAPI server, seen from the model's own process."""

from __future__ import annotations

import importlib.util

import pytest
from support import serve

GC_PROBE = {
    "custom.py": """
        import gc


        def load_model(code_dir):
            return "model"


        def score_unstructured(model, data, **kwargs):
            return str(gc.get_freeze_count())
    """,
}


FLASK = pytest.param("flask", marks=pytest.mark.skipif(importlib.util.find_spec("flask") is None, reason="no flask"))


@pytest.mark.parametrize("server_type", ["fastapi", FLASK])
def test_objects_loaded_at_start_up_are_frozen_out_of_the_collector(tmp_path_factory, server_type):
    # A full collection would otherwise walk every object of pandas, numpy and the model (~35 ms).
    env = {"DRUM_SERVER_TYPE": server_type}
    with serve(tmp_path_factory, GC_PROBE, "--target-type", "unstructured", env=env) as server:
        response = server.post("/predictUnstructured/", data=b"x")
        assert response.status_code == 200
        assert int(response.text) > 10_000


DIGEST = {
    "custom.py": """
        import hashlib


        def load_model(code_dir):
            return "model"


        def score_unstructured(model, data, **kwargs):
            return hashlib.sha256(data).hexdigest()
    """,
}


def test_large_bodies_over_the_buffer_budget_wait_and_are_all_answered(tmp_path_factory):
    import hashlib
    import os
    from concurrent.futures import ThreadPoolExecutor

    env = {"DRUM_FASTAPI_BODY_BUFFER_SIZE": str(3 << 20)}  # room for one 2 MB body at a time
    bodies = [os.urandom(2 << 20) for _ in range(6)]
    with serve(tmp_path_factory, DIGEST, "--target-type", "unstructured", env=env) as server:

        def send(body: bytes) -> str:
            response = server.post(
                "/predictUnstructured/", data=body, headers={"Content-Type": "application/octet-stream"}
            )
            assert response.status_code == 200
            return response.text

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(send, bodies))
    assert answers == [hashlib.sha256(body).hexdigest() for body in bodies]
