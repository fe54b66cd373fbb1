"""Hostile HTTP against one real `drum server` (the issue "Reliability and security").

Each case of `bench.reliability.HOSTILE_CASES` (the table `python -m bench.reliability --hostile`
prints) is sent on its own connection with a 10 s socket timeout; its answers must fall in the categories
the case allows: DRUM's 4xx `{"message": "ERROR: ..."}`, uvicorn's protocol-level 400 text/plain
`Invalid HTTP request received.` or a close (cases whose bytes httptools refuses before drum sees a
request), a 2xx with the right predictions where the input is valid after all, the model's own 500 where
the model is what rejects the input; never another 5xx, never silence, never a leaked file. After every
case the server must still be the same process and answer a normal 1-row prediction correctly.

Cases where drum breaks that rule carry `known_bug` (the precise reason) and are marked
xfail(strict=True, raises=UnacceptableAnswer): only a wrong answer counts as the expected failure; a
server that stops serving fails the test even then.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "functional"))
sys.path.insert(0, str(ROOT))

from support import serve  # noqa: E402

from bench import reliability  # noqa: E402
from bench.reliability import HOSTILE_CASES, MODEL_FILES, SERVER_ENV, HostileCase, predict_probe  # noqa: E402

#: Every case is bounded by the client's 10 s socket timeout; this only stops a stuck test.
pytestmark = pytest.mark.timeout(90)

#: What uvicorn logs when the app raised instead of answering (it then sends its own 500).
ASGI_CRASH = "Exception in ASGI application"


class UnacceptableAnswer(AssertionError):
    """The answer to a hostile case is not one the case allows."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    # The fastapi backend explicitly: the protocol-level expectations are uvicorn's (httptools).
    env = dict(SERVER_ENV)
    with serve(tmp_path_factory, MODEL_FILES, "--target-type", "regression", env=env, name="hostile") as srv:
        yield srv


def _param(case: HostileCase):
    marks = []
    if case.known_bug:
        marks.append(pytest.mark.xfail(strict=True, raises=UnacceptableAnswer, reason=case.known_bug))
    return pytest.param(case, id=case.name, marks=marks)


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_the_server_answers_the_probe(server):
    assert predict_probe(_port(server)) == (True, "200 b'{\"predictions\":[7.0]}'")


@pytest.mark.parametrize("case", [_param(c) for c in HOSTILE_CASES])
def test_hostile_input(server, case: HostileCase):
    port = _port(server)
    log_before = len(server.log())
    exchange = case.send(port)

    # The server keeps serving whatever the answer was: same process, a correct prediction.
    assert server.process.poll() is None, f"drum server exited after {case.name}:\n{server.log()[-5000:]}"
    serving, got = predict_probe(port)
    assert serving, f"after {case.name} a normal prediction got {got}"
    assert ASGI_CRASH not in server.log()[log_before:], server.log()[log_before:][-5000:]

    problems = case.problems(exchange)
    if problems:
        raise UnacceptableAnswer(f"{case.name}: " + "\n".join(problems))


def test_every_input_of_the_issue_is_covered():
    names = {case.name for case in HOSTILE_CASES}
    issue = {
        "empty-body", "header-only-csv", "ragged-rows", "binary-garbage", "invalid-utf8", "10000-columns",
        "50mb-single-line", "wrong-content-type", "invalid-json", "multipart-no-boundary", "multipart-truncated",
        "multipart-duplicate-field", "64kb-header", "500-headers", "chunked-bad-size", "cl-longer-than-body-held",
        "cl-shorter-than-body", "cl-te-smuggling", "traversal-directaccess", "traversal-directaccess-encoded",
        "nul-in-url", "nul-in-header", "16kb-url-path", "16kb-url-query", "http10-no-host", "pipelining",
    }  # fmt: skip
    assert issue <= names, sorted(issue - names)
    assert len(names) == len(HOSTILE_CASES), "case names must be unique"


def test_the_bench_prints_the_table(capsys):
    """`python -m bench.reliability --hostile` end to end on a few cases (its own server)."""
    code = reliability.main(["--hostile", "--only", "empty-body,pipelining,cl-te-smuggling,ragged-rows"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["empty-body"][1:3] == ["422", "drum-error"], out
    assert lines["pipelining"][1:3] == ["200,200", "ok"], out
    assert lines["cl-te-smuggling"][1:3] == ["400", "uvicorn-400"], out
    assert lines["ragged-rows"][1:3] == ["422", "drum-error"] and lines["ragged-rows"][-2:] == ["yes", "ok"], out
    assert "cases: 4 " in out and "server restarts: 0" in out, out
