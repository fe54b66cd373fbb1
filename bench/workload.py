"""What the benchmark serves and sends: the model directories, the payload files and the cases.

The regression model is the issue's reference model: a scikit-learn Ridge trained here on synthetic data
(10 float features), fitted twice on the same values: once on a DataFrame with feature names (a drop-in
pickle for DRUM and drum, which predict on DataFrames) and once on an array without names (a joblib file
for MLServer and KServe, which predict on numpy arrays), so that no server pays for scikit-learn's
feature-name warning on every request; both fits have the same coefficients, bit for bit. Unstructured
and chat cases use the small models under bench/models/.

Each server speaks one protocol: DRUM's own routes (`drum`: CSV `/predict/`, `/predictUnstructured/`,
`/chat/completions`), Open Inference Protocol V2 JSON (`v2`) or KServe V1 JSON (`v1`). Every case has a
DRUM request; the `row*` cases also carry the same rows in V2 and V1, so each server runs them on its own
protocol. A server runs the cases that have a request in its protocol; the others are not applicable.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).with_name("models")
N_FEATURES = 10
CSV_SIZES = {"csv1": 1, "csv100": 100, "csv10k": 10_000, "csv100k": 100_000}
#: The `row*` cases: these CSV payloads' rows, in each server's own protocol.
ROW_CASES = {"row1": "csv1", "row100": "csv100"}
UNSTRUCTURED_SIZES = {"unstr1k": 1024, "unstr10m": 10 * 1024 * 1024}
CHAT_BODY = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
CHAT_CHUNKS = 6  # bench/models/chat streams 5 words and a final chunk


@dataclass(frozen=True)
class ModelKind:
    """One model directory and how to serve it."""

    name: str
    target_type: str
    env: tuple[tuple[str, str], ...] = ()


REGRESSION = ModelKind("regression", "regression")
UNSTRUCTURED = ModelKind("unstructured", "unstructured")
CHAT = ModelKind("chat", "textgeneration", (("TARGET_NAME", "completion"),))

# Protocols (a server speaks one): DRUM's routes, Open Inference Protocol V2 JSON, KServe V1 JSON.
DRUM, V2, V1 = "drum", "v2", "v1"
PROTOCOL_LABELS = {DRUM: "DRUM routes", V2: "V2 JSON", V1: "V1 JSON"}
#: The name V2 and V1 servers serve the Ridge model under (drum's: its code dir's name, models/regression).
V2_MODEL = REGRESSION.name
V2_INFER = f"/v2/models/{V2_MODEL}/infer"
V1_PREDICT = f"/v1/models/{V2_MODEL}:predict"


@dataclass(frozen=True)
class Request:
    """What one protocol POSTs for a case: the payload file `payload` to `path`."""

    path: str
    payload: str
    content_type: str


@dataclass(frozen=True)
class Case:
    """One load: `payload` POSTed to `path` from `connections` connections (+ /ping/ probes if `ping`).

    `payload`, `path` and `content_type` are the DRUM protocol's request; `payload` also names the rows whose
    predictions are expected. `other_requests`: the same rows in other protocols (V2, V1)."""

    name: str
    model: ModelKind
    payload: str
    path: str
    content_type: str
    connections: int
    ping: bool = False
    default: bool = True  # part of the full run; heavy cases run only when named with --cases
    other_requests: tuple[tuple[str, Request], ...] = ()

    def request(self, protocol: str) -> Request | None:
        """This case's request in `protocol`, or None where the case does not apply to it."""
        if protocol == DRUM:
            return Request(self.path, self.payload, self.content_type)
        return dict(self.other_requests).get(protocol)

    @property
    def protocols(self) -> list[str]:
        return [DRUM, *(p for p, _ in self.other_requests)]


# Cases run in this order on each server start, smallest payloads first: the peak RSS of a case includes
# whatever memory the server kept from the cases before it.


def _cases() -> list[Case]:
    cases: list[Case] = []
    heavy = {("csv100k", 64), ("unstr10m", 64)}
    for payload in CSV_SIZES:
        for c in (1, 8, 64):
            cases.append(Case(f"{payload}-c{c}", REGRESSION, payload, "/predict/", "text/csv", c,
                              default=(payload, c) not in heavy))  # fmt: skip
        if payload == "csv1":  # before the large payloads, whose memory the server may keep
            for c in (8, 64):
                cases.append(Case(f"ping-c{c}", REGRESSION, "csv1", "/predict/", "text/csv", c, ping=True))
            for name, csv in ROW_CASES.items():  # each server's own protocol; row100 only when named
                others = ((V2, Request(V2_INFER, f"{name}.v2.json", "application/json")),
                          (V1, Request(V1_PREDICT, f"{name}.v1.json", "application/json")))  # fmt: skip
                for c in (1, 8, 64):
                    cases.append(Case(f"{name}-c{c}", REGRESSION, csv, "/predict/", "text/csv", c,
                                      default=name == "row1", other_requests=others))  # fmt: skip
    for payload in UNSTRUCTURED_SIZES:
        for c in (1, 8, 64):
            cases.append(Case(f"{payload}-c{c}", UNSTRUCTURED, payload, "/predictUnstructured/",
                              "application/octet-stream", c, default=(payload, c) not in heavy))  # fmt: skip
    for c in (1, 8, 64):
        cases.append(Case(f"chat-c{c}", CHAT, "chat", "/chat/completions", "application/json", c))
    return cases


CASES: list[Case] = _cases()
QUICK_CASES = ("csv1-c8", "ping-c8", "row1-c8", "csv100k-c1", "unstr1k-c8", "chat-c8")


def select_cases(patterns: list[str] | None, quick: bool = False) -> list[Case]:
    """Cases matching any glob in `patterns` (all default cases when none; the quick set with `quick`)."""
    if not patterns:
        if quick:
            return [c for c in CASES if c.name in QUICK_CASES]
        return [c for c in CASES if c.default]
    chosen = [c for c in CASES if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    if not chosen:
        raise ValueError(f"no case matches {patterns}; known: {', '.join(c.name for c in CASES)}")
    return chosen


def _feature_rows(n: int, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.gauss(0.0, 1.0) for _ in range(N_FEATURES)] for _ in range(n)]


def _csv(rows: list[list[float]]) -> bytes:
    header = ",".join(f"x{i}" for i in range(N_FEATURES))
    return (header + "\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n").encode()


def _v2_json(rows: list[list[float]]) -> bytes:
    """One `[N, F]` FP64 tensor, row-major flat data (what the V2 clients send)."""
    tensor = {"name": "input-0", "shape": [len(rows), N_FEATURES], "datatype": "FP64",
              "data": [v for r in rows for v in r]}  # fmt: skip
    return json.dumps({"inputs": [tensor]}).encode()


def _v1_json(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}).encode()


@dataclass
class Workdir:
    """Model directories and payload files, built once per run under `root`."""

    root: Path
    expected: dict[str, list[float]]  # payload -> [first, last] prediction computed locally

    def model_dir(self, kind: ModelKind) -> Path:
        return self.root / "models" / kind.name

    def payload(self, name: str) -> Path:
        return self.root / "payloads" / name

    @property
    def array_model(self) -> Path:
        """The Ridge fitted without feature names (joblib), for the servers that predict on arrays."""
        return self.root / "models" / "regression-array" / "model.joblib"


def build_workdir(root: Path) -> Workdir:
    """Train the Ridge twice (pickle with feature names, joblib without), copy the other models, write every
    payload file."""
    import joblib
    import numpy as np
    from sklearn.linear_model import Ridge

    models, payloads = root / "models", root / "payloads"
    payloads.mkdir(parents=True, exist_ok=True)
    for kind in (UNSTRUCTURED, CHAT):
        shutil.copytree(MODELS_DIR / kind.name, models / kind.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    reg = models / REGRESSION.name
    reg.mkdir(parents=True, exist_ok=True)

    import pandas as pd

    train = np.array(_feature_rows(2000, seed=1))
    coef = np.linspace(-2.0, 3.0, N_FEATURES)
    y = train @ coef + 0.1 * np.random.default_rng(2).normal(size=len(train))
    columns = [f"x{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(train, columns=columns)
    model = Ridge(alpha=1.0).fit(frame, y)
    with open(reg / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    # The same values in the same memory layout (the frame's, column-major): a C-ordered copy of `train`
    # would give coefficients that differ in the last bits.
    array_model = Ridge(alpha=1.0).fit(frame.to_numpy(), y)
    if not (np.array_equal(array_model.coef_, model.coef_) and array_model.intercept_ == model.intercept_):
        raise RuntimeError("the Ridge fitted on an array differs from the one fitted on the DataFrame")
    work = Workdir(root, {})
    work.array_model.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(array_model, work.array_model)

    rows = _feature_rows(max(CSV_SIZES.values()), seed=3)
    expected = work.expected
    for name, n in CSV_SIZES.items():
        part = rows[:n]
        payloads.joinpath(name).write_bytes(_csv(part))
        pred = model.predict(pd.DataFrame([part[0], part[-1]], columns=columns))
        expected[name] = [float(pred[0]), float(pred[1])]
    for name, csv in ROW_CASES.items():
        part = rows[: CSV_SIZES[csv]]
        payloads.joinpath(f"{name}.v2.json").write_bytes(_v2_json(part))
        payloads.joinpath(f"{name}.v1.json").write_bytes(_v1_json(part))
    rng = random.Random(4)
    for name, size in UNSTRUCTURED_SIZES.items():
        payloads.joinpath(name).write_bytes(rng.randbytes(size))
    payloads.joinpath("chat").write_bytes(json.dumps(CHAT_BODY).encode())
    return work


def _predictions(body: bytes, protocol: str) -> list[float]:
    """The predictions in an answer: `{"predictions": [...]}` (DRUM, V1) or the first V2 output tensor."""
    answer = json.loads(body)
    if protocol != V2:
        return answer["predictions"]
    data = answer["outputs"][0]["data"]
    while data and isinstance(data[0], list):  # nested data ([N, 1]) is allowed by the protocol
        data = [v for part in data for v in part]
    return data


def check_response(case: Case, status: int, content_type: str, body: bytes, work: Workdir,
                   protocol: str = DRUM) -> str | None:  # fmt: skip
    """Why this answer to `case` (sent in `protocol`) is not a valid one (None when it is)."""
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    if case.model is REGRESSION:
        try:
            preds = _predictions(body, protocol)
        except (ValueError, KeyError, TypeError, IndexError):
            return f"not a predictions JSON ({PROTOCOL_LABELS.get(protocol, protocol)}): {body[:300]!r}"
        n = CSV_SIZES[case.payload]
        if len(preds) != n:
            return f"{len(preds)} predictions for {n} rows"
        first, last = work.expected[case.payload]
        if abs(preds[0] - first) > 1e-6 * max(1.0, abs(first)) or abs(preds[-1] - last) > 1e-6 * max(1.0, abs(last)):
            return f"predictions {preds[0]}, {preds[-1]} differ from the model's {first}, {last}"
        return None
    if case.model is UNSTRUCTURED:
        size = work.payload(case.payload).stat().st_size
        return None if body.strip() == str(size).encode() else f"expected {size}, got {body[:100]!r}"
    if not content_type.startswith("text/event-stream"):
        return f"content type {content_type!r}, expected text/event-stream"
    events = [ln for ln in body.decode("utf-8", "replace").splitlines() if ln.startswith("data: ")]
    if events[-1:] != ["data: [DONE]"] or len(events) != CHAT_CHUNKS + 1:
        return f"unexpected stream ({len(events)} events): {body[:300]!r}"
    return None


def send_once(case: Case, port: int, work: Workdir, timeout_s: float = 300.0, protocol: str = DRUM) -> str | None:
    """POST the case's payload once in `protocol`; return why the answer is invalid, or None."""
    req = case.request(protocol)
    if req is None:
        return f"no {protocol} request for {case.name}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", req.path, body=work.payload(req.payload).read_bytes(),
                     headers={"Content-Type": req.content_type})  # fmt: skip
        resp = conn.getresponse()
        body = resp.read()
        return check_response(case, resp.status, resp.getheader("Content-Type") or "", body, work, protocol)
    except OSError as exc:
        return f"request failed: {exc}"
    finally:
        conn.close()
