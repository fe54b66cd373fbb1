"""Results as data (JSON), as markdown tables with ratios against the first server, and as a PNG chart.

Everything but `write_chart` is pure and works on the plain-dict results that `bench.run` produces:
`{"meta": {...}, "servers": {name: {"startup_s": {model: s}, "idle_rss_mb": {model: mb}, "note": str,
"protocol": str, "ready_path": str}}, "rows": [{"case", "server", "protocol", "path", "rps", "p50_ms",
"p99_ms", "errors", "requests", "peak_rss_mb", "ping", "error", "not_applicable"}]}`. A row with
`not_applicable` (the server is not sent the case's protocol) measured nothing and is no failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def ratio(value: float | None, ref: float | None) -> float | None:
    """value / ref, or None when either is missing or ref is 0."""
    if value is None or ref is None or ref == 0:
        return None
    return value / ref


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def fmt_num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "–"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], left: int = 2) -> str:
    """A markdown table; the first `left` columns (names) align left, numbers right."""
    rule = "|" + "|".join("---" if i < left else "--:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _by_case(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in results["rows"]:
        out.setdefault(row["case"], []).append(row)
    return out


def _measured(row: dict[str, Any] | None) -> bool:
    """Whether `row` holds numbers (neither failed nor not applicable)."""
    return bool(row) and not row.get("error") and not row.get("not_applicable") and row.get("rps") is not None


def _family(case: str) -> str:
    """`csv1-c8` -> `csv1`."""
    return case.rsplit("-c", 1)[0]


def not_applicable_note(results: dict[str, Any]) -> str | None:
    """One line per group of servers: the case families they were not run on (another protocol)."""
    by_server: dict[str, list[str]] = {}
    for row in results["rows"]:
        if row.get("not_applicable"):
            families = by_server.setdefault(row["server"], [])
            if f"{_family(row['case'])}-*" not in families:
                families.append(f"{_family(row['case'])}-*")
    if not by_server:
        return None
    groups: dict[tuple[str, ...], list[str]] = {}
    for server, families in by_server.items():
        groups.setdefault(tuple(families), []).append(server)
    lines = [f"- {', '.join(f'`{s}`' for s in servers)}: {', '.join(families)}"
             for families, servers in groups.items()]  # fmt: skip
    intro = "Not applicable (each server is sent only its own protocol; the `row*` cases exist in all of them):"
    return intro + "\n\n" + "\n".join(lines)


def _reference(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first server's row that measured something (ratios are against it)."""
    return next((r for r in rows if r.get("error") is None and r.get("requests")), None)


def load_table(results: dict[str, Any]) -> str:
    """One row per (case, server): req/s, p50, p99, errors, peak RSS and their ratios to the first server."""
    header = ["case", "server", "req/s", "× req/s", "p50 ms", "× p50", "p99 ms", "× p99", "errors",
              "peak RSS MB", "× RSS"]  # fmt: skip
    rows: list[list[str]] = []
    for case, case_rows in _by_case(results).items():
        if case.startswith("ping-"):
            continue
        ref = _reference(case_rows)
        for r in case_rows:
            if r.get("not_applicable"):
                continue  # listed by not_applicable_note
            if r.get("error"):
                rows.append([case, r["server"], "failed: " + str(r["error"])[:80], *["–"] * 8])
                continue
            rows.append([
                case, r["server"],
                fmt_num(r["rps"]), fmt_ratio(ratio(r["rps"], ref and ref["rps"])),
                fmt_num(r["p50_ms"]), fmt_ratio(ratio(r["p50_ms"], ref and ref["p50_ms"])),
                fmt_num(r["p99_ms"]), fmt_ratio(ratio(r["p99_ms"], ref and ref["p99_ms"])),
                str(r["errors"]),
                fmt_num(r["peak_rss_mb"], 0), fmt_ratio(ratio(r["peak_rss_mb"], ref and ref["peak_rss_mb"])),
            ])  # fmt: skip
    return _table(header, rows)


def ping_table(results: dict[str, Any]) -> str:
    """/ping/ latency (fresh connection per probe) while 1-row predictions saturate the server."""
    header = ["load", "server", "predict req/s", "ping p50 ms", "ping p99 ms", "× ping p99", "ping max ms",
              "pings", "ping errors", "predict errors"]  # fmt: skip
    rows: list[list[str]] = []
    for case, case_rows in _by_case(results).items():
        if not case.startswith("ping-"):
            continue
        ref = _reference(case_rows)
        for r in case_rows:
            p = r.get("ping") or {}
            if r.get("not_applicable"):
                continue
            if r.get("error"):
                rows.append([case, r["server"], "failed: " + str(r["error"])[:80], *["–"] * 7])
                continue
            rows.append([
                case, r["server"], fmt_num(r["rps"]), fmt_num(p.get("p50_ms")), fmt_num(p.get("p99_ms")),
                fmt_ratio(ratio(p.get("p99_ms"), ref and (ref.get("ping") or {}).get("p99_ms"))),
                fmt_num(p.get("max_ms")), str(p.get("pings", 0)), str(p.get("errors", 0)), str(r["errors"]),
            ])  # fmt: skip
    return _table(header, rows)


#: Cases whose payload is at least this large get a row in the memory table.
LARGE_PAYLOAD_BYTES = 1 << 20


def memory_table(results: dict[str, Any]) -> str | None:
    """Large payloads: how far the peak RSS rose above the server's idle RSS (for that model), in MB and
    as a multiple of the payload (at N connections up to N payloads are in flight at once)."""
    header = ["case", "server", "payload MB", "idle RSS MB", "peak RSS MB", "peak − idle MB", "× payload"]
    rows: list[list[str]] = []
    for case, case_rows in _by_case(results).items():
        for r in case_rows:
            size, model = r.get("payload_bytes") or 0, r.get("model")
            idle = results["servers"].get(r["server"], {}).get("idle_rss_mb", {}).get(model)
            if size < LARGE_PAYLOAD_BYTES or r.get("error") or idle is None or not r.get("peak_rss_mb"):
                continue
            growth = r["peak_rss_mb"] - idle
            payload_mb = size / (1 << 20)
            rows.append([
                case, r["server"], fmt_num(payload_mb), fmt_num(idle, 0), fmt_num(r["peak_rss_mb"], 0),
                fmt_num(growth, 0), fmt_ratio(growth / payload_mb),
            ])  # fmt: skip
    return _table(header, rows) if rows else None


#: Issue #8: at low load, batching may cost at most this much p95 latency.
BATCHING_P95_LIMIT = 1.2


def batching_table(results: dict[str, Any], plain: str = "fastapi", batched: str = "fastapi-batching") -> str | None:
    """One connection (no company to batch with): `batched`'s p95 against `plain`'s, per case of the
    structured model (unstructured and chat requests are never batched: same code on both columns)."""
    header = ["case", f"{plain} p95 ms", f"{batched} p95 ms", "× p95", f"within {BATCHING_P95_LIMIT:g}×"]
    rows: list[list[str]] = []
    for case, case_rows in _by_case(results).items():
        found = {r["server"]: r for r in case_rows
                 if not r.get("error") and r.get("connections") == 1 and r.get("model") == "regression"}  # fmt: skip
        a, b = found.get(plain, {}).get("p95_ms"), found.get(batched, {}).get("p95_ms")
        if not a or not b:
            continue
        r = b / a
        rows.append([case, fmt_num(a), fmt_num(b), fmt_ratio(r), "yes" if r <= BATCHING_P95_LIMIT else "no"])
    return _table(header, rows, left=1) if rows else None


@dataclass(frozen=True)
class Target:
    """`server` at least `at_least` × the best of `peers` in requests/s on each of `cases`."""

    label: str
    server: str
    cases: tuple[str, ...]
    peers: tuple[str, ...]
    at_least: float


ROW1 = ("row1-c1", "row1-c8", "row1-c64")
PEERS = ("mlserver", "kserve-v1", "kserve-v2")
REFERENCE = "drum-1.18.1"
#: Issue 24's throughput targets: 1 row at defaults in each server's own protocol, and with batching on.
TARGETS = (
    Target("V2 `/infer` ≥ 1.2× KServe V2", "fastapi-v2", ROW1, ("kserve-v2",), 1.2),
    Target("V2 `/infer` ≥ 1.0× KServe V1", "fastapi-v2", ROW1, ("kserve-v1",), 1.0),
    Target("CSV `/predict/` ≥ 2.5× DRUM", "fastapi", ROW1, (REFERENCE,), 2.5),
    Target("batching c8 ≥ 1.5× KServe V1", "fastapi-batching", ("row1-c8",), ("kserve-v1",), 1.5),
    Target("batching c64 ≥ 2.5× the best peer", "fastapi-batching", ("row1-c64",), PEERS, 2.5),
)


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    n = len(values)
    if not n:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def _rounds_of(row: dict[str, Any] | None, key: str) -> list[float | None]:
    """`row`'s value of `key` in each round (one round: the row itself)."""
    if not _measured(row):
        return []
    assert row is not None
    if "per_round" in row:
        return [None if r.get("error") else r.get(key) for r in row["per_round"]]
    return [row.get(key)]


def paired_ratios(ours: dict[str, Any] | None, refs: list[dict[str, Any] | None], key: str = "rps",
                  best: Any = max) -> list[float]:  # fmt: skip
    """Round by round, `ours`' `key` over the best (`best`) of `refs`' in the same round: the servers of a
    round ran the case one after another, so drift in the machine's speed between rounds cancels out."""
    mine = _rounds_of(ours, key)
    theirs = [_rounds_of(r, key) for r in refs]
    out = []
    for i, value in enumerate(mine):
        others = [t[i] for t in theirs if i < len(t) and t[i]]
        if value is not None and others and len(others) == len(refs):
            out.append(value / best(others))
    return out


def _paired_cell(ratios: list[float]) -> str:
    med = _median(ratios)
    return f"{fmt_ratio(med)} ({', '.join(f'{r:.2f}' for r in ratios)})" if ratios else "–"


def targets_table(results: dict[str, Any]) -> str | None:
    """Issue 24's targets, each judged by the median of the per-round ratios (`paired_ratios`), with the
    ratio of the medians beside it; then every case where `fastapi` at its defaults is below DRUM in
    requests/s or above it in p99 by the same measure."""
    by_case = _by_case(results)

    def row_of(case: str, server: str) -> dict[str, Any] | None:
        return next((r for r in by_case.get(case, []) if r["server"] == server), None)

    lines = []
    for t in TARGETS:
        for case in t.cases:
            mine, refs = row_of(case, t.server), [row_of(case, p) for p in t.peers]
            if not _measured(mine) or not all(_measured(r) for r in refs):
                continue
            assert mine is not None
            best_ref = max(refs, key=lambda r: r["rps"])  # type: ignore[index]
            paired = paired_ratios(mine, refs)
            med = _median(paired)
            lines.append([t.label, case, f"`{t.server}` / `{best_ref['server'] if len(refs) == 1 else 'best peer'}`",
                          fmt_ratio(ratio(mine["rps"], best_ref["rps"])), _paired_cell(paired),
                          "–" if med is None else ("yes" if med >= t.at_least else "**no**")])  # fmt: skip
    below = []
    for case in by_case:
        mine, ref = row_of(case, "fastapi"), row_of(case, REFERENCE)
        if not _measured(mine) or not _measured(ref) or case.startswith("ping-"):
            continue
        rps = paired_ratios(mine, [ref], "rps")
        p99 = paired_ratios(mine, [ref], "p99_ms", best=min)
        if (_median(rps) or 1.0) < 1.0:
            below.append(["below DRUM in req/s", case, "`fastapi` / `drum-1.18.1`",
                          fmt_ratio(ratio(mine["rps"], ref["rps"])), _paired_cell(rps), "**no**"])  # fmt: skip
        if (_median(p99) or 0.0) > 1.0:
            below.append(["above DRUM in p99", case, "`fastapi` / `drum-1.18.1`",
                          fmt_ratio(ratio(mine["p99_ms"], ref["p99_ms"])), _paired_cell(p99), "**no**"])  # fmt: skip
    if not lines and not below:
        return None
    header = ["target", "case", "servers", "× medians", "× paired (per round)", "met"]
    return _table(header, lines + below, left=3)


PROTOCOL_NAMES = {"drum": "CSV", "v2": "V2 JSON", "v1": "V1 JSON"}


def protocol_table(results: dict[str, Any], family: str) -> str | None:
    """The `family` cases (`row1-cN`: the same rows in each server's own protocol) as one line per server:
    req/s at each N with its ratio to the first server that measured it, p99 at each N, start-up and idle
    RSS (the regression model's)."""
    by_case = {c: rows for c, rows in _by_case(results).items() if _family(c) == family}
    if not by_case:
        return None
    conns = sorted({int(c.rsplit("-c", 1)[1]) for c in by_case if c.rsplit("-c", 1)[1].isdigit()})
    refs = {n: _reference(by_case.get(f"{family}-c{n}", [])) for n in conns}
    header = ["server", "protocol", *[h for n in conns for h in (f"c{n} req/s", f"× c{n}")],
              *[f"p99 ms c{n}" for n in conns], "start-up s", "idle RSS MB"]  # fmt: skip
    servers = list(dict.fromkeys(r["server"] for rows in by_case.values() for r in rows))
    lines = []
    for server in servers:
        found = {n: next((r for r in by_case.get(f"{family}-c{n}", []) if r["server"] == server), None)
                 for n in conns}  # fmt: skip
        if all(r is None or r.get("not_applicable") for r in found.values()):
            continue
        summary = results["servers"].get(server, {})
        some = next((r for r in found.values() if r and r.get("protocol")), None)
        protocol = (some or {}).get("protocol") or summary.get("protocol", "")
        label = PROTOCOL_NAMES.get(protocol, protocol) + (f" `{some['path']}`" if some and some.get("path") else "")
        cells: list[str] = []
        for n in conns:
            r, ref = found[n] or {}, refs[n]
            if _measured(r):
                cells += [fmt_num(r["rps"]), fmt_ratio(ratio(r["rps"], ref and ref["rps"]))]
            else:
                cells += ["failed" if r.get("error") else "–", "–"]
        cells += [fmt_num((r or {}).get("p99_ms")) if _measured(r) else "–" for r in found.values()]
        lines.append([server, label, *cells, fmt_num(summary.get("startup_s", {}).get("regression"), 2),
                      fmt_num(summary.get("idle_rss_mb", {}).get("regression"), 0)])  # fmt: skip
    return _table(header, lines) if lines else None


def startup_table(results: dict[str, Any]) -> str:
    """Start-up (process start → first 200 from its ready path) and idle RSS per server, with ratios."""
    servers = results["servers"]
    models = sorted({m for s in servers.values() for m in s.get("startup_s", {})}, key=_model_order)
    main = models[0] if models else "regression"  # ratio and idle RSS: the first model (regression when run)
    header = ["server", *[f"start-up s ({m})" for m in models], "× start-up", f"idle RSS MB ({main})", "notes"]
    ref_name = next(iter(servers), None)
    ref = servers[ref_name]["startup_s"].get(main) if ref_name else None
    rows = []
    for name, s in servers.items():
        startup = s.get("startup_s", {})
        rows.append([
            name, *[fmt_num(startup.get(m), 2) for m in models], fmt_ratio(ratio(startup.get(main), ref)),
            fmt_num(s.get("idle_rss_mb", {}).get(main), 0), s.get("note", ""),
        ])  # fmt: skip
    return _table(header, rows, left=1)


def _model_order(model: str) -> tuple[int, str]:
    return ({"regression": 0, "unstructured": 1, "chat": 2}.get(model, 9), model)


def _rounds(meta: dict[str, Any]) -> str:
    n = meta.get("rounds", 1)
    return f" × {n} rounds (medians; servers in rotating order)" if n > 1 else ""


def markdown(results: dict[str, Any]) -> str:
    """The whole report: a line about the run, then the load, /ping and start-up tables."""
    meta = results["meta"]
    first = next(iter(results["servers"]), "?")
    skipped = "".join(f"\n- not run: `{k}` ({v})" for k, v in meta.get("skipped", {}).items())
    parts = [
        f"Run {meta.get('date', '?')} on {meta.get('machine', '?')}; load generator `{meta.get('tool', '?')}` "
        f"on the same machine, {meta.get('duration_s', '?')} s per case{_rounds(meta)}, 1 worker process per "
        f"server; this project's servers ran {meta.get('ours', '?')}. "
        f"Ratios (×) are against `{first}`; req/s counts 2xx answers only, errors are non-2xx answers and "
        f"socket errors, peak RSS is summed over the server's process tree.{skipped}"
    ]
    if any(not r["case"].startswith("ping-") and not r.get("not_applicable") for r in results["rows"]):
        parts.append(load_table(results))
    note = not_applicable_note(results)
    if note is not None:
        parts.append(note)
    for family in dict.fromkeys(_family(r["case"]) for r in results["rows"] if r["case"].startswith("row")):
        table = protocol_table(results, family)
        if table is not None:
            parts.append(
                f"`{family}-cN`: the same rows in each server's own protocol (ratios against the first server "
                f"that measured the case; start-up and idle RSS on the regression model):\n\n{table}"
            )
    if any(r["case"].startswith("ping-") and not r.get("not_applicable") for r in results["rows"]):
        parts.append(
            "`/ping/` while 1-row CSV predictions saturate the server (`ping-cN`: N prediction connections, "
            f"one probe every 20 ms on a fresh connection):\n\n{ping_table(results)}"
        )
    targets = targets_table(results)
    if targets is not None:
        parts.append(
            "Targets (issue 24), judged by the median of the per-round ratios: each round runs a case on every "
            "server one after another, so the machine's drift between rounds cancels out of a round's ratio "
            "(`fastapi` rows below: every case where it is below DRUM in req/s or above it in p99 by that "
            f"measure):\n\n{targets}"
        )
    memory = memory_table(results)
    if memory is not None:
        parts.append(
            "Memory of large payloads (peak RSS during the case above the server's idle RSS; the peak also "
            f"holds what the server kept from the smaller cases before):\n\n{memory}"
        )
    for plain, batched in (("fastapi", "fastapi-batching"), ("fastapi-v2", "fastapi-batching-v2")):
        batching = batching_table(results, plain, batched)
        if batching is not None:
            parts.append(
                "Adaptive batching at low load (structured predictions on one connection: no company to batch "
                f"with, each request runs alone through the batcher):\n\n{batching}"
            )
    ready = dict.fromkeys(f"`{s['ready_path']}`" for s in results["servers"].values() if s.get("ready_path"))
    parts.append(f"Start-up (process start → first 200 from {' or '.join(ready) or '`/ping/`'}; idle RSS: the "
                 f"process tree right after):\n\n{startup_table(results)}")  # fmt: skip
    return "\n\n".join(parts) + "\n"


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def write_chart(results: dict[str, Any], path: Path) -> None:
    """A 2×2 PNG: req/s and p99 per case, peak RSS per case, start-up per server (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(results["servers"])
    by_case = _by_case(results)
    cases = list(by_case)
    fig, axes = plt.subplots(2, 2, figsize=(max(12, len(cases) * 0.9), 10))
    width = 0.8 / max(len(servers), 1)

    def bars(ax: Any, key: Any, title: str, log: bool) -> None:
        for i, server in enumerate(servers):
            values = []
            for case in cases:
                row = next((r for r in by_case[case] if r["server"] == server), None)
                values.append(key(row) if row is not None and _measured(row) else 0.0)
            ax.bar([x + i * width for x in range(len(cases))], values, width, label=server)
        ax.set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(cases))], cases, rotation=60, ha="right")
        ax.set_title(title)
        if log:
            ax.set_yscale("log")

    bars(axes[0][0], lambda r: r["rps"], "requests/s (2xx, log)", True)
    bars(axes[0][1], lambda r: (r.get("ping") or {}).get("p99_ms") or r["p99_ms"], "p99 ms (ping-*: /ping p99; log)",
         True)  # fmt: skip
    bars(axes[1][0], lambda r: r["peak_rss_mb"], "peak RSS MB (process tree)", False)
    startup = [results["servers"][s].get("startup_s", {}).get("regression") or 0.0 for s in servers]
    axes[1][1].bar(servers, startup, color=[f"C{i}" for i in range(len(servers))])
    axes[1][1].set_title("start-up to first ready 200 (s, regression model)")
    axes[1][1].tick_params(axis="x", rotation=30)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"drum benchmark — {results['meta'].get('date', '')} — {results['meta'].get('machine', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
