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


CSV_READER_PROBE = {
    "custom.py": """
        import pandas as pd
        from drum.model import fastcsv


        def load_model(code_dir):
            return "model"


        def score(data, model, **kwargs):
            # each row's sum, plus 1000 when polars was loaded for large CSV bodies
            loaded = 1000.0 if fastcsv._polars is not None else 0.0
            return pd.DataFrame({"Predictions": data.sum(axis=1).astype(float) + loaded})
    """,
}


def _large_csv(rows: int = 40_000) -> tuple[bytes, list[float]]:
    import io
    import random

    import pandas as pd

    rng = random.Random(11)
    lines = ["a,b,c,d,e"] + [",".join(repr(rng.gauss(0, 100)) for _ in range(4)) + f",{rng.randint(-9, 9)}"
                             for _ in range(rows)]  # fmt: skip
    body = ("\n".join(lines) + "\n").encode()
    return body, pd.read_csv(io.BytesIO(body)).sum(axis=1).tolist()


@pytest.mark.parametrize(
    ("server_type", "workers", "setting", "loaded"),
    [
        ("fastapi", "1", None, True),
        ("fastapi", "2", None, True),  # each worker process loads it
        ("fastapi", "1", "false", False),
        pytest.param("gunicorn", "2", None, True, marks=FLASK.marks),
        pytest.param("flask", "1", None, True, marks=FLASK.marks),
        pytest.param("flask", "2", None, False, marks=FLASK.marks),  # forks a child per request
    ],
)
def test_large_csv_bodies_are_read_by_polars_loaded_by_the_first(
    tmp_path_factory, server_type, workers, setting, loaded
):
    body, sums = _large_csv()
    env = {"DRUM_SERVER_TYPE": server_type}
    if setting is not None:
        env["DRUM_POLARS_CSV"] = setting
    args = ("--target-type", "regression", "--max-workers", workers)
    with serve(tmp_path_factory, CSV_READER_PROBE, *args, env=env) as server:
        small = server.post("/predict/", data="a,b\n1,2\n", headers={"Content-Type": "text/csv"})
        assert small.json() == {"predictions": [3.0]}  # not loaded at start-up: idle servers never pay for it
        response = server.post("/predict/", data=body, headers={"Content-Type": "text/csv"})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        offset = 1000.0 if loaded else 0.0
        assert len(predictions) == len(sums)
        assert all(abs(p - offset - s) <= 1e-9 * max(1.0, abs(s)) for p, s in zip(predictions, sums, strict=True))
