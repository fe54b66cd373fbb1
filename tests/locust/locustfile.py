"""Load test for any running drum (or DRUM) server: `locust -f tests/locust/locustfile.py --host URL`.

Every task checks its answer, so a wrong answer counts as a failure in locust's statistics. Which tasks
run depends on the model being served, set with environment variables (see tests/locust/README.md):

- LOCUST_TASKS: comma-separated task names (default: ping,predict_csv); all of them are ping,
  predict_csv, predict_json, predict_unstructured, chat, chat_stream. DRUM parses only CSV (and
  Matrix Market) on /predict/: predict_json needs a model whose `read_input_data` hook reads JSON
  records (see `read_input_data` in docs/usage.md).
- LOCUST_CSV: a CSV file to POST to /predict/ (default: a 1-row CSV with the columns of
  examples/regression/input.csv); LOCUST_ROWS: how many of its rows to send (default: all).
- LOCUST_UNSTRUCTURED_BYTES: size of the /predictUnstructured/ body (default 1024).
- LOCUST_CHAT_MODEL: the `model` field of chat requests (default: bench).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from locust import FastHttpUser, between, task

_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_CSV = _ROOT / "examples" / "regression" / "input.csv"
ALL_TASKS = ("ping", "predict_csv", "predict_json", "predict_unstructured", "chat", "chat_stream")


def _csv_payload() -> tuple[bytes, int]:
    path = Path(os.environ.get("LOCUST_CSV", _DEFAULT_CSV))
    lines = path.read_text().splitlines()
    rows = int(os.environ.get("LOCUST_ROWS", "0")) or len(lines) - 1
    body = "\n".join(lines[: rows + 1]) + "\n"
    return body.encode(), min(rows, len(lines) - 1)


def _number(value: str) -> object:
    try:
        return float(value)
    except ValueError:
        return value


def _json_payload(csv_body: bytes) -> bytes:
    """The CSV rows as JSON records, [{"col": value, ...}, ...] (pandas' orient="records")."""
    reader = csv.DictReader(io.StringIO(csv_body.decode()))
    return json.dumps([{k: _number(v) for k, v in row.items()} for row in reader]).encode()


CSV_BODY, CSV_ROWS = _csv_payload()
JSON_BODY = _json_payload(CSV_BODY)
UNSTRUCTURED_BODY = os.urandom(int(os.environ.get("LOCUST_UNSTRUCTURED_BYTES", "1024")))
CHAT_MODEL = os.environ.get("LOCUST_CHAT_MODEL", "bench")
ENABLED = {t.strip() for t in os.environ.get("LOCUST_TASKS", "ping,predict_csv").split(",") if t.strip()}
unknown = ENABLED - set(ALL_TASKS)
if unknown:
    raise SystemExit(f"LOCUST_TASKS: unknown task(s) {sorted(unknown)}; known: {', '.join(ALL_TASKS)}")


def _weight(name: str, weight: int) -> int:
    return weight if name in ENABLED else 0


class DrumUser(FastHttpUser):
    """A client of the DRUM prediction API. Weights: predictions 10, ping 1 (like a kubelet probe)."""

    wait_time = between(0, 0.01)

    def _predictions(self, resp: object, expected_rows: int) -> None:
        try:
            n = len(resp.json()["predictions"])  # type: ignore[attr-defined]
        except (ValueError, KeyError, TypeError):
            resp.failure(f"not a predictions JSON: {resp.text[:200]!r}")  # type: ignore[attr-defined]
            return
        if n != expected_rows:
            resp.failure(f"{n} predictions for {expected_rows} rows")  # type: ignore[attr-defined]

    @task(_weight("ping", 1))
    def ping(self) -> None:
        with self.client.get("/ping/", name="/ping/", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")

    @task(_weight("predict_csv", 10))
    def predict_csv(self) -> None:
        with self.client.post("/predict/", data=CSV_BODY, headers={"Content-Type": "text/csv"},
                              name="/predict/ csv", catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}: {resp.text[:200]!r}")
            else:
                self._predictions(resp, CSV_ROWS)

    @task(_weight("predict_json", 10))
    def predict_json(self) -> None:
        with self.client.post("/predict/", data=JSON_BODY, headers={"Content-Type": "application/json"},
                              name="/predict/ json", catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}: {resp.text[:200]!r}")
            else:
                self._predictions(resp, CSV_ROWS)

    @task(_weight("predict_unstructured", 10))
    def predict_unstructured(self) -> None:
        with self.client.post("/predictUnstructured/", data=UNSTRUCTURED_BODY,
                              headers={"Content-Type": "application/octet-stream"},
                              name="/predictUnstructured/", catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}: {resp.text[:200]!r}")

    @task(_weight("chat", 10))
    def chat(self) -> None:
        body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say hello."}]}
        with self.client.post("/chat/completions", json=body, name="/chat/completions",
                              catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200 or '"chat.completion"' not in resp.text:
                resp.failure(f"status {resp.status_code}: {resp.text[:200]!r}")

    @task(_weight("chat_stream", 10))
    def chat_stream(self) -> None:
        body = {"model": CHAT_MODEL, "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
        with self.client.post("/chat/completions", json=body, name="/chat/completions stream",
                              catch_response=True) as resp:  # fmt: skip
            if resp.status_code != 200 or not resp.text.rstrip().endswith("data: [DONE]"):
                resp.failure(f"status {resp.status_code}: {resp.text[-200:]!r}")
