"""Schemathesis against a real `drum server`: its own `/openapi.json`, and DRUM's published OpenAPI spec.

`test_schemathesis_drum_server_api.yaml` (next to this file) is a byte-identical copy of
`../shared/spec/drum_server_api.yaml`: DRUM's published `drum_server_api.yaml`, spec version 1.12.0
(copied because CI has only this repository). Its paths start with the literal placeholder
`/URL_PREFIX/`, so the server runs with `URL_PREFIX=URL_PREFIX` and both schemas are exercised against
the same server, with the server as the base URL.

Every operation is fuzzed with positive and negative (schema-violating) cases, a bounded number per
operation (`MAX_EXAMPLES`, derandomized, no database, no shrinking), plus a few explicit valid payloads
on the prediction routes so that real predictions (not only errors) are checked. Every response goes
through the checks in `CHECKS` (one at a time): no 5xx, and status code, content type, response
headers and body conform to the schema. Whatever fails must match one entry of `APP_DEVIATIONS` / `SPEC_DEVIATIONS`,
each a narrow (operations, check, status, condition) with the reason it is accepted; anything else fails
the test with a curl command to reproduce it. `pytest -s` prints the requests sent and how often each
deviation was seen.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import Case, GenerationMode, Response  # noqa: E402
from schemathesis.errors import FailureGroup  # noqa: E402
from schemathesis.openapi.checks import JsonSchemaError  # noqa: E402

HERE = Path(__file__).parent
SPEC_FILE = HERE / "test_schemathesis_drum_server_api.yaml"
PREFIX = "/URL_PREFIX"
#: Generated cases per operation and generation mode (operations without inputs get one).
MAX_EXAMPLES = 40
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
PREDICT_ROUTES = r"POST /URL_PREFIX/(predict|predictions|invocations)/"

MODEL = """
import pandas as pd


def load_model(code_dir):
    return "model"


def score(data, model, **kwargs):
    return pd.DataFrame({"Predictions": [float(i) for i in range(len(data))]})
"""


def _root_conftest() -> ModuleType:
    """tests/conftest.py (its `start_server`), loaded by path: `import conftest` would find a
    tests/reliability/conftest.py instead if one is ever added."""
    name = "_drum_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    helpers = _root_conftest()
    root = tmp_path_factory.mktemp("schemathesis")
    code_dir = helpers.write_model(root / "model", {"custom.py": MODEL})
    env = {
        "URL_PREFIX": "URL_PREFIX",
        "DRUM_FASTAPI_ENABLE_DOCS": "true",
        "DRUM_SERVER_TYPE": "fastapi",
        "DRUM_METRICS_ENABLED": "false",
    }
    started = helpers.start_server(
        code_dir, ["--target-type", "regression"], root / "server.log", env=env, prefix=PREFIX
    )
    yield started
    started.stop()


# --- pinned deviations -------------------------------------------------------------------------------

Condition = Callable[[Any, Case, Response], bool]


@dataclass(frozen=True)
class Deviation:
    """A check failure accepted on purpose: `operations` (a regex matched against the whole operation
    label, "METHOD /path"), the `check` that reports it, the response `status`, and `when`, a condition
    on (failure, case, response) that narrows it to the one answer the `reason` is about."""

    operations: str
    check: str
    status: int
    when: Condition
    reason: str

    def covers(self, operation: str, check: str, failure: Any, case: Case, response: Response) -> bool:
        return (
            check == self.check
            and response.status_code == self.status
            and re.fullmatch(self.operations, operation) is not None
            and self.when(failure, case, response)
        )


def _message(response: Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    return body.get("message", "") if isinstance(body, dict) else ""


def message_starts(*prefixes: str) -> Condition:
    """DRUM's error format, `{"message": "<one of prefixes>..."}`."""
    return lambda failure, case, response: _message(response).startswith(prefixes)


def null_where_spec_has_a_type(failure: Any, case: Case, response: Response) -> bool:
    """The value the response schema rejects is a JSON null (each violation is its own failure)."""
    return isinstance(failure, JsonSchemaError) and failure.instance is None


def empty_predictions(failure: Any, case: Case, response: Response) -> bool:
    return json.loads(response.content) == {"predictions": []}


def flask_options_answer(failure: Any, case: Case, response: Response) -> bool:
    """Flask's automatic OPTIONS answer: empty, `text/html; charset=utf-8`, with `Allow`."""
    content_type = response.headers.get("content-type", [""])[0]
    return (
        case.method == "OPTIONS"
        and not response.content
        and content_type == "text/html; charset=utf-8"
        and ("allow" in response.headers)
    )


def newline_inside_path(failure: Any, case: Case, response: Response) -> bool:
    """The `{path}` parameter (percent-encoded once sent) has a newline before its end."""
    return "\n" in unquote(str(case.path_parameters.get("path", ""))).rstrip("\n")


SAMPLES_MISSING = "ERROR: Samples should be provided as:"
CHAT_NOT_SUPPORTED = "ERROR: This model's chat interface was called, but chat is not supported."
CHAT_NOT_JSON = "ERROR: 415 Unsupported Media Type: Did not attempt to load JSON data"
NOT_FOUND = "ERROR: 404 Not Found:"
CHAT_ROUTES = r"POST /URL_PREFIX/(v1/)?chat/completions/"


#: A decided deviation (docs/compatibility.md): the chat routes answer a non-JSON Content-Type with 415 in
#: DRUM's error format (tests/functional/test_chat.py); neither schema lists a 415.
CHAT_NOT_JSON_IS_415 = [
    Deviation(
        CHAT_ROUTES,
        "status_code_conformance",
        415,
        message_starts(CHAT_NOT_JSON),
        "the chat routes need a JSON body: 415 for any other Content-Type (schemathesis sends no body when "
        "the schema does not require one)",
    )
]


#: Deviations from drum's own /openapi.json (DRUM_FASTAPI_ENABLE_DOCS). The generated schema only
#: knows each route's paths and methods: every operation documents one `200 application/json` with an
#: empty schema, so every error answer is an undocumented status code.
APP_DEVIATIONS: list[Deviation] = [
    *CHAT_NOT_JSON_IS_415,
    Deviation(
        PREDICT_ROUTES,
        "status_code_conformance",
        422,
        message_starts(SAMPLES_MISSING),
        "DRUM's 422 for a prediction request without a body (the generated schema declares no requestBody, "
        "so schemathesis sends none)",
    ),
    Deviation(
        r"POST /URL_PREFIX/(predictUnstructured|predictionsUnstructured|transform)/",
        "status_code_conformance",
        422,
        message_starts("ERROR: This model has target type TargetType.REGRESSION, use"),
        "DRUM's 422 target-type gate: the model is a regression model",
    ),
    Deviation(
        CHAT_ROUTES,
        "status_code_conformance",
        404,
        message_starts(CHAT_NOT_SUPPORTED),
        "DRUM's 404 for chat with a model without a chat hook",
    ),
    Deviation(
        r"(GET|HEAD) /URL_PREFIX/(v1/)?models/",
        "status_code_conformance",
        404,
        lambda failure, case, response: (
            case.method == "HEAD"
            or _message(response) == "ERROR: get_supported_llm_models is supported only for TextGen models"
        ),
        "DRUM's 404 for /models of a model that is not textgeneration (HEAD: the same answer without body)",
    ),
    Deviation(
        r"(GET|HEAD) /URL_PREFIX/metrics/",
        "status_code_conformance",
        404,
        lambda failure, case, response: case.method == "HEAD" or _message(response).startswith(NOT_FOUND),
        "/metrics is an unknown route (404) unless DRUM_METRICS_ENABLED=true (docs/compatibility.md); the "
        "generated schema lists it anyway",
    ),
    Deviation(
        r"(GET|HEAD|PUT|POST) /URL_PREFIX/(directAccess|nim)/\{path\}",
        "status_code_conformance",
        400,
        lambda failure, case, response: (
            case.method == "HEAD" or _message(response) == "This endpoint is only supported by OpenAI based predictors"
        ),
        "DRUM's 400 for /directAccess/ and /nim/ without an OpenAI-based predictor (no --sidecar)",
    ),
    Deviation(
        r"(GET|HEAD|PUT|POST|OPTIONS) /URL_PREFIX/(directAccess|nim)/\{path\}",
        "status_code_conformance",
        404,
        newline_inside_path,
        "Starlette's {path:path} convertor (`.*`, no DOTALL) does not match a path with a newline before "
        "its end, so the route is not found: drum's JSON 404 (reported; a trailing newline still matches)",
    ),
    Deviation(
        r"OPTIONS /URL_PREFIX/.*",
        "content_type_conformance",
        200,
        flask_options_answer,
        "Flask's automatic OPTIONS answer, kept by drum (drum.serving.handlers.options): an empty 200 with "
        "`text/html; charset=utf-8` and `Allow`, which the generated schema lists as application/json",
    ),
]

#: Deviations from DRUM's published spec (1.12), which is older and looser than DRUM 1.18.1.
SPEC_DEVIATIONS: list[Deviation] = [
    *CHAT_NOT_JSON_IS_415,
    Deviation(
        r"GET /URL_PREFIX/(info|capabilities|stats)/",
        "response_schema_conformance",
        200,
        null_where_spec_has_a_type,
        "spec quirk: OpenAPI 3.0 types are not nullable without `nullable: true`, yet DRUM sends null for "
        "/info/ predictor and modelMetadata (custom.py model, no model-metadata.yaml), /capabilities/ "
        "payload format versions (the spec's own example: csv: null) and /stats/ time_info before a "
        "prediction and container_* outside a container (the spec's example: container_limit: null)",
    ),
    Deviation(
        r"POST /URL_PREFIX/(predict|predictions)/",
        "response_schema_conformance",
        200,
        empty_predictions,
        'spec quirk: {"predictions": []} (a CSV with a header and no rows) matches all three `oneOf` '
        "branches (regression, binary, multiclass), so it is 'valid under more than one'",
    ),
    Deviation(
        CHAT_ROUTES,
        "status_code_conformance",
        404,
        message_starts(CHAT_NOT_SUPPORTED),
        "DRUM's 404 for chat with a model without a chat hook; the spec documents only 200",
    ),
]


# --- running ----------------------------------------------------------------------------------------


def spec_schema() -> Any:
    """The published spec, loaded as it is, except the pseudo media type `<other>` ("any other
    mimetype"), which no client can send or receive: as a request body type it becomes
    application/octet-stream (binary, as its description says), as a response type `*/*`."""
    raw = yaml.safe_load(SPEC_FILE.read_text())
    for path_item in raw["paths"].values():
        for operation in path_item.values():
            if not isinstance(operation, dict):  # a path-level $ref
                continue
            body = operation.get("requestBody", {}).get("content", {})
            if "<other>" in body:
                body["application/octet-stream"] = body.pop("<other>")
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if "<other>" in content:
                    content["*/*"] = content.pop("<other>")
    return schemathesis.openapi.from_dict(raw, config=schemathesis.Config())


CSV = "x,y\n1,2\n3,4\n5,6\n"


CHAT = {"model": "any", "messages": [{"role": "user", "content": "Hello!"}]}


def explicit_cases(operation: Any, declares_bodies: bool) -> list[Case]:
    """Valid payloads on the prediction and chat routes, so that the answers to real requests are checked
    too: generated CSV rarely has a row under its header, and drum's own schema declares no bodies."""
    if re.fullmatch(CHAT_ROUTES, operation.label):
        return [operation.Case(body=CHAT, media_type="application/json")]
    if not re.fullmatch(PREDICT_ROUTES, operation.label):
        return []
    cases = [operation.Case(body=CSV, media_type="text/csv")]
    if declares_bodies:
        cases.append(operation.Case(body=CSV, media_type="text/plain"))
    return cases


@dataclass
class Outcome:
    examples: Counter  # (operation, mode) -> requests sent
    statuses: Counter  # (operation, status) -> responses
    pinned: Counter  # deviation reason -> failures it covered
    unexpected: list[str]  # what no deviation covers, with a curl command


def fuzz(operation: Any, mode: GenerationMode, run: Callable[[Case, str], None]) -> None:
    """`run` on up to MAX_EXAMPLES generated cases of `operation`, the same ones on every run."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def test(case: Case) -> None:
        run(case, mode.value)

    test()


def exercise(schema: Any, base_url: str, deviations: list[Deviation], declares_bodies: bool) -> Outcome:
    checks = [getattr(schemathesis.checks, name) for name in CHECKS]
    outcome = Outcome(Counter(), Counter(), Counter(), [])

    def run(case: Case, mode: str) -> None:
        label = case.operation.label
        outcome.examples[(label, mode)] += 1
        response = case.call(base_url=base_url, timeout=60)
        outcome.statuses[(label, response.status_code)] += 1
        for name, check in zip(CHECKS, checks, strict=True):
            try:
                case.validate_response(response, checks=[check])
            except FailureGroup as group:
                for failure in group.exceptions:
                    pins = [d for d in deviations if d.covers(label, name, failure, case, response)]
                    if pins:
                        outcome.pinned[pins[0].reason] += 1
                    elif len(outcome.unexpected) < 20:
                        outcome.unexpected.append(
                            f"{label} [{mode}] {name}: {response.status_code} {response.content[:300]!r}\n"
                            f"    {failure.title}: {str(failure.message)[:400]}\n    {case.as_curl_command()}"
                        )

    for result in schema.get_all_operations():
        operation = result.ok()  # an operation schemathesis cannot read fails the test here
        for case in explicit_cases(operation, declares_bodies):
            run(case, "explicit")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, run)
            except Unsatisfiable:
                # Nothing of the operation can be made invalid (no parameters, an untyped body).
                assert mode is GenerationMode.NEGATIVE, f"no positive case for {operation.label}"
    return outcome


def report(outcome: Outcome, deviations: list[Deviation]) -> str:
    """Requests per generation mode, and how often each pinned deviation was seen (`pytest -s` shows it)."""
    per_mode = Counter()
    for (_, mode), count in outcome.examples.items():
        per_mode[mode] += count
    operations = len({op for op, _ in outcome.examples})
    lines = [f"{operations} operations, {sum(per_mode.values())} requests: {dict(per_mode)}"]
    lines += [f"  {count:4d} {reason[:100]}" for reason, count in outcome.pinned.most_common()]
    unused = sorted({d.reason for d in deviations} - set(outcome.pinned))
    lines += [f"  not seen this run: {reason[:100]}" for reason in unused]
    return "\n".join(lines)


def assert_conforms(outcome: Outcome, operations: set[str], deviations: list[Deviation]) -> None:
    print(report(outcome, deviations))
    exercised = {op for (op, mode), count in outcome.examples.items() if mode == "positive" and count}
    assert exercised == operations, f"operations never exercised: {sorted(operations - exercised)}"
    assert not outcome.unexpected, "responses that are server errors or violate the schema:\n" + "\n".join(
        outcome.unexpected
    )


# --- tests --------------------------------------------------------------------------------------------


def _labels(schema: Any) -> set[str]:
    return {result.ok().label for result in schema.get_all_operations()}


def test_schemathesis_app_openapi(server: Any) -> None:
    """Every operation of the running server's own /openapi.json."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", config=schemathesis.Config(), timeout=30)
    operations = _labels(schema)
    # every route, both spellings of it served but one in the schema, with GET+HEAD+OPTIONS / POST+OPTIONS
    assert len(operations) >= 50 and f"POST {PREFIX}/predict/" in operations
    outcome = exercise(schema, server.url, APP_DEVIATIONS, declares_bodies=False)
    assert_conforms(outcome, operations, APP_DEVIATIONS)
    # the explicit CSV bodies reached the model
    assert outcome.statuses[(f"POST {PREFIX}/predict/", 200)] >= 1


def test_schemathesis_published_spec(server: Any) -> None:
    """Every operation of DRUM's published drum_server_api.yaml (1.12)."""
    schema = spec_schema()
    operations = _labels(schema)
    assert len(operations) == 12, sorted(operations)
    outcome = exercise(schema, server.url, SPEC_DEVIATIONS, declares_bodies=True)
    assert_conforms(outcome, operations, SPEC_DEVIATIONS)
    assert outcome.statuses[(f"POST {PREFIX}/predict/", 200)] >= 2
    assert outcome.examples[(f"POST {PREFIX}/predict/", "negative")] >= 10  # the bodies were fuzzed


def test_schemathesis_spec_fixture_is_the_published_spec() -> None:
    """The fixture stays DRUM's spec as published (a byte-identical copy, version 1.12.0)."""
    text = SPEC_FILE.read_text()
    assert text.startswith("openapi: 3.0.1\n") and 'version: "1.12.0"' in text


def test_schemathesis_app_openapi_operation_ids_are_unique(server: Any) -> None:
    import requests

    spec = requests.get(server.url + "/openapi.json", timeout=30).json()
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_schemathesis_app_openapi_declares_path_parameters(server: Any) -> None:
    import requests

    spec = requests.get(server.url + "/openapi.json", timeout=30).json()
    undeclared = [
        (method, path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if set(re.findall(r"{(\w+)}", path)) - {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    ]
    assert undeclared == []
