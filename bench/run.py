"""Side-by-side benchmark: serve the same models with every server, run each case on each server in
turn (one server under load at a time), print a table with ratios against the first server, write
JSON/markdown/PNG results.

    python -m bench [--quick] [--servers a,b] [--cases 'csv1-*,chat-c8'] [--duration 10] [--tool wrk|hey]

DRUM 1.18.1 is the first column when `DRUM_REFERENCE_VENV` (or `--reference-venv`) names a venv
with `datarobot-drum==1.18.1` installed (its `bin/drum` is started). MLServer and KServe columns run from the
venvs that `bash tools/peers/setup.sh .venv` creates (listed in `.venv/.peers`). Each server is sent its own
protocol; the cases it has no request for are reported as not applicable.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import loadgen, report
from bench.servers import RunningServer, ServerSpec, default_peers_file, known_servers
from bench.workload import (
    CASES,
    PROTOCOL_LABELS,
    Case,
    ModelKind,
    Workdir,
    build_workdir,
    select_cases,
    send_once,
)

RESULTS_DIR = Path(__file__).with_name("results")
MB = 1024 * 1024


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", help="comma-separated servers, in column order (default: every one available)")
    p.add_argument("--cases", help="comma-separated case names or globs, e.g. 'csv1-*,chat-c8' (default: full run)")
    p.add_argument("--duration", type=float, help="seconds of load per case (default 10, 3 with --quick)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every case this many times on each server and report medians (default 1)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help=f"a ~2 minute subset: {', '.join(_quick_names())}")
    p.add_argument("--tool", choices=("auto", "wrk", "hey"), default="auto",
                   help="load generator (auto: wrk, else hey)")  # fmt: skip
    p.add_argument("--reference-venv", default=os.environ.get("DRUM_REFERENCE_VENV"),
                   help="venv with DRUM 1.18.1 (default: $DRUM_REFERENCE_VENV)")  # fmt: skip
    p.add_argument("--drum", help="this project's drum executable (default: the one next to this Python)")
    p.add_argument("--ours-src", type=Path,
                   help="serve this project's servers from this source tree (its src/ dir, put on PYTHONPATH), "
                   "e.g. from `git archive COMMIT src | tar -x -C DIR`; default: the installed drum")  # fmt: skip
    p.add_argument("--before-src", type=Path,
                   help="also serve this source tree's FastAPI server at its defaults as the fastapi-before column "
                   "(e.g. `git archive OLD src | tar -x -C DIR`, then DIR/src): before/after from one run")  # fmt: skip
    p.add_argument("--peers", type=Path, default=default_peers_file(),
                   help="the peers' venvs, from `bash tools/peers/setup.sh .venv` (default: %(default)s)")  # fmt: skip
    p.add_argument("--server-env", action="append", default=[], metavar="SERVER:NAME=VALUE",
                   help="extra environment of one server, e.g. fastapi-batching:DRUM_BATCHING_MAX_ROWS=64")  # fmt: skip
    p.add_argument("--out", help="results name under bench/results/ (default: latest, or quick with --quick)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    p.add_argument("--list", action="store_true", help="list servers and cases, then exit")
    return p.parse_args(argv)


def _quick_names() -> list[str]:
    return [c.name for c in select_cases(None, quick=True)]


def choose_servers(args: argparse.Namespace) -> tuple[list[ServerSpec], dict[str, str]]:
    """The servers to run in order, and the ones skipped with the reason."""
    known = known_servers(args.reference_venv, args.drum, args.ours_src, args.before_src, args.peers)
    names = [n.strip() for n in args.servers.split(",") if n.strip()] if args.servers else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; known: {', '.join(known)}")
    extra: dict[str, dict[str, str]] = {}
    for item in args.server_env:
        server, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if server not in known or not key:
            raise SystemExit(f"--server-env {item!r}: expected SERVER:NAME=VALUE with SERVER in {list(known)}")
        extra.setdefault(server, {})[key] = value
    chosen, skipped = [], {}
    for n in names:
        spec = known[n]
        if isinstance(spec, str):
            skipped[n] = spec
            continue
        if n in extra:
            added = ", ".join(f"{k}={v}" for k, v in extra[n].items())
            spec = dataclasses.replace(spec, env={**spec.env, **extra[n]}, note=f"{spec.note}; {added}")
        chosen.append(spec)
    return chosen, skipped


def applies(spec: ServerSpec, case: Case) -> bool:
    """Whether `spec` can run `case`: it serves the case's model and the case has a request in its protocol."""
    return spec.serves(case.model) and case.request(spec.protocol) is not None


def not_applicable_row(spec: ServerSpec, case: Case) -> dict[str, Any]:
    """The row of a case that `spec` cannot run (not a failure: the server does not speak the case's protocol)."""
    speaks = PROTOCOL_LABELS.get(spec.protocol, spec.protocol)
    return {"case": case.name, "server": spec.name, "connections": case.connections, "model": case.model.name,
            "protocol": spec.protocol, "error": None,
            "not_applicable": f"{spec.name} is sent {speaks}; {case.name} has no such request"}  # fmt: skip


def run_case(server: RunningServer, case: Case, work: Workdir, tool: str, duration_s: float) -> dict[str, Any]:
    """Check one answer, then load the server (in its protocol); one result row."""
    req = case.request(server.spec.protocol)
    assert req is not None, f"{server.spec.name} cannot run {case.name}"
    row: dict[str, Any] = {"case": case.name, "server": server.spec.name, "connections": case.connections,
                           "model": case.model.name, "protocol": server.spec.protocol, "path": req.path,
                           "payload_bytes": work.payload(req.payload).stat().st_size, "error": None}  # fmt: skip
    server.sampler.reset()
    try:
        row = _load(server, case, work, tool, duration_s, row)
    finally:
        server.sampler.pause()
    if row["error"] is None:
        row["peak_rss_mb"] = round(server.sampler.peak / MB, 1)
    return row


def _load(server: RunningServer, case: Case, work: Workdir, tool: str, duration_s: float, row: dict[str, Any],
          ) -> dict[str, Any]:  # fmt: skip
    protocol = server.spec.protocol
    req = case.request(protocol)
    assert req is not None
    invalid = send_once(case, server.port, work, protocol=protocol)
    if invalid:
        row["error"] = "invalid answer: " + invalid
        return row
    url = f"http://127.0.0.1:{server.port}{req.path}"
    prober = loadgen.PingProber("127.0.0.1", server.port, server.spec.ready_path) if case.ping else None
    try:
        if prober:
            with prober:
                result = loadgen.run_load(tool, url, work.payload(req.payload), req.content_type,
                                          case.connections, duration_s)  # fmt: skip
            row["ping"] = prober.summary()
        else:
            result = loadgen.run_load(tool, url, work.payload(req.payload), req.content_type,
                                      case.connections, duration_s)  # fmt: skip
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        row["error"] = str(exc)[:500]
        return row
    row.update(result.to_dict())
    return row


#: Merged as the median over rounds; counts are summed.
MEDIAN_KEYS = ("rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
SUM_KEYS = ("requests", "errors", "non_2xx", "duration_s")


def merge_rounds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for several rounds of a case on a server: the median of each rate and latency (and of the
    /ping/ probe's), counts summed, peak RSS from the first round that succeeded (later rounds start
    with what the larger cases left behind); rounds that failed are left out and counted in `failed_rounds`. A single
    round is returned as it is."""
    if len(rows) == 1:
        return rows[0]
    good = [r for r in rows if not r.get("error")]
    if not good:
        return {**rows[0], "rounds": len(rows), "failed_rounds": len(rows)}
    merged = {**good[0], "rounds": len(rows), "failed_rounds": len(rows) - len(good)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in good if r.get(key) is not None]
        if values:
            merged[key] = statistics.median(values)
    for key in SUM_KEYS:
        merged[key] = sum(r.get(key) or 0 for r in good)
    pings = [r["ping"] for r in good if r.get("ping")]
    if pings:
        merged["ping"] = {
            **{k: statistics.median(p[k] for p in pings) for k in ("p50_ms", "p99_ms", "max_ms")},
            "pings": sum(p["pings"] for p in pings), "errors": sum(p["errors"] for p in pings),
        }  # fmt: skip
    merged["per_round"] = [{k: r.get(k) for k in ("rps", "p50_ms", "p99_ms", "error")} for r in rows]
    return merged


def case_order(specs: list[ServerSpec], index: int) -> list[ServerSpec]:
    """The servers in the order the `index`-th case runs them: rotated by one from case to case, so no
    server always follows another's load (or always goes first)."""
    k = index % len(specs) if specs else 0
    return specs[k:] + specs[:k]


def run_model(kind: ModelKind, specs: list[ServerSpec], cases: list[Case], work: Workdir, tmp: Path, tool: str,
              duration_s: float, summaries: dict[str, dict[str, Any]], rounds: int = 1,
              ) -> list[dict[str, Any]]:  # fmt: skip
    """Start every server that can run one of `cases` on `kind`'s model (one after another: start-up and idle
    RSS are measured alone), then run each case on every server in turn, one server under load at a time,
    `rounds` times: drift in the machine's speed during the run hits every column alike. A case a server
    cannot run (another protocol) gets a not-applicable row. Fills `summaries`; returns one row per case
    and server (`merge_rounds`)."""
    rows: list[dict[str, Any]] = [not_applicable_row(s, c) for c in cases for s in specs if not applies(s, c)]
    specs = [s for s in specs if any(applies(s, c) for c in cases)]
    running: dict[str, RunningServer] = {}
    try:
        for spec in specs:
            _log(f"{spec.name}: starting ({kind.name} model)")
            server = RunningServer(spec, kind, work.model_dir(kind), tmp, array_model=work.array_model)
            running[spec.name] = server
            summary = summaries.setdefault(spec.name, {"note": spec.note, "protocol": spec.protocol,
                                                       "ready_path": spec.ready_path, "startup_s": {},
                                                       "idle_rss_mb": {}})  # fmt: skip
            if not server.ready:
                why = f"server did not start (see {server.log_path}): {server.log_tail(300)!r}"
                _log(f"{spec.name}: {why}")
                rows += [{"case": c.name, "server": spec.name, "error": why} for c in cases if applies(spec, c)]
                server.stop()
                continue
            summary["startup_s"][kind.name] = round(server.startup_s or 0.0, 3)
            summary["idle_rss_mb"][kind.name] = round(server.idle_rss / MB, 1)
            _log(f"{spec.name}: ready in {server.startup_s:.2f} s, {server.idle_rss / MB:.0f} MB")
        ready = [s for s in specs if running[s.name].ready]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for round_ in range(rounds):
            for index, case in enumerate(cases):
                for spec in case_order([s for s in ready if applies(s, case)], index + round_):
                    row = run_case(running[spec.name], case, work, tool, duration_s)
                    runs.setdefault((case.name, spec.name), []).append(row)
                    tag = f" (round {round_ + 1})" if rounds > 1 else ""
                    if row["error"]:
                        _log(f"{spec.name} {case.name}{tag}: {row['error']}")
                    else:
                        ping = f", ping p99 {row['ping']['p99_ms']:.1f} ms" if row.get("ping") else ""
                        _log(f"{spec.name} {case.name}{tag}: {row['rps']:.1f} req/s, p99 {row['p99_ms']:.1f} ms, "
                             f"{row['errors']} errors, {row['peak_rss_mb']:.0f} MB{ping}")  # fmt: skip
                    time.sleep(0.5)
        rows += [merge_rounds(r) for r in runs.values()]
    finally:
        for server in running.values():
            server.stop()
    time.sleep(1.0)
    return rows


def describe_ours(src: Path | None) -> str:
    """Which code this project's servers ran: a given source tree, or this checkout's commit (+ changes)."""
    if src is not None:
        return f"source tree {src}"
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "installed drum"
    return f"commit {commit}" + (" + uncommitted changes in src/" if dirty else "")


def machine() -> str:
    mem = psutil.virtual_memory().total / 1024**3
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        known = known_servers(args.reference_venv, args.drum, args.ours_src, args.before_src, args.peers)
        for name, spec in known.items():
            if isinstance(spec, ServerSpec):
                protocol = PROTOCOL_LABELS.get(spec.protocol, spec.protocol)
                print(f"server {name}: {spec.note} [{protocol}; ready: GET {spec.ready_path}]")
            else:
                print(f"server {name}: unavailable: {spec}")
        for c in CASES:
            flags = ("" if c.default else " (only when named)") + (" [quick]" if c.name in _quick_names() else "")
            sent = "; ".join(f"{PROTOCOL_LABELS[p]}: POST {r.path} {r.payload}"
                             for p in c.protocols if (r := c.request(p)) is not None)  # fmt: skip
            print(f"case {c.name}: {sent} x {c.connections} connections{flags}")
        return 0
    tools = loadgen.available_tools()
    tool = tools[0] if args.tool == "auto" and tools else args.tool
    if tool == "auto" or tool not in tools:
        print("neither wrk nor hey is installed (apt-get install -y wrk hey)" if tool == "auto"
              else f"{tool} is not installed (apt-get install -y {tool})", file=sys.stderr)  # fmt: skip
        return 2
    cases = select_cases([p.strip() for p in args.cases.split(",")] if args.cases else None, args.quick)
    duration = args.duration or (3.0 if args.quick else 10.0)
    rounds = max(1, args.rounds)
    servers, skipped = choose_servers(args)
    for name, why in skipped.items():
        _log(f"skipping {name}: {why}")
    if not servers:
        print("no server to run", file=sys.stderr)
        return 2
    _log(f"{len(servers)} servers x {len(cases)} cases, {duration:g} s each, load generator {tool}")
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "ours": describe_ours(args.ours_src),
            **({"before": f"source tree {args.before_src}"} if args.before_src else {}),
            "tool": tool, "duration_s": duration,
            "rounds": rounds,
            "skipped": skipped,
            "cases": [c.name for c in cases], "command": "python -m bench " + " ".join(argv or sys.argv[1:]),
        },
        "servers": {},
        "rows": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="drum-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _log("training the Ridge model and writing payloads")
        work = build_workdir(tmp / "work")
        kinds: list[ModelKind] = []
        for c in cases:
            if c.model not in kinds:
                kinds.append(c.model)
        summaries: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            results["rows"] += run_model(kind, servers, [c for c in cases if c.model is kind], work, tmp, tool,
                                         duration, summaries, rounds)  # fmt: skip
        results["servers"] = {s.name: summaries[s.name] for s in servers if s.name in summaries}
    order = {c.name: i for i, c in enumerate(cases)}
    column = {s.name: i for i, s in enumerate(servers)}
    results["rows"].sort(key=lambda r: (order[r["case"]], column[r["server"]]))
    text = report.markdown(results)
    print(text)
    out = args.out or ("quick" if args.quick else "latest")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.results_dir / f"{out}.json")
    (args.results_dir / f"{out}.md").write_text(text)
    written = [f"{out}.json", f"{out}.md"]
    if not args.no_chart:
        try:
            report.write_chart(results, args.results_dir / f"{out}.png")
            written.append(f"{out}.png")
        except ImportError:
            _log("matplotlib is not installed (pip install -e '.[bench]'): no chart")
    _log(f"wrote {', '.join(str(args.results_dir / w) for w in written)}")
    return 0
