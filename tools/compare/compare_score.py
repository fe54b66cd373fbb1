"""Compare `drum score` of ours with DRUM 1.18.1 on every model under models/: exit code and --output bytes.

Ours runs twice: as is, and with DRUM_SCORE_CHUNK_BYTES tiny so every input is scored in many chunks.

    .venv/bin/python tools/compare/compare_score.py [--theirs /tmp/drumref/bin/drum] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
DATA = MODELS / "_data"
SERVER_ONLY = {"--with-error-server", "--deployment-config"}


def _args(cfg: dict) -> list[str]:
    out, skip = [], False
    for arg in cfg.get("args", []):
        if skip:
            skip = False
            continue
        if arg in SERVER_ONLY:
            skip = arg == "--deployment-config"
            continue
        out.append(str(arg))
    return out


def _inputs(cfg: dict, work: Path) -> list[tuple[str, list[str]]]:
    if cfg.get("target_type") == "unstructured":
        return [("num.csv", ["--input", str(DATA / "num.csv")]),
                ("num.csv octet", ["--input", str(DATA / "num.csv"), "--content-type", "application/octet-stream",
                                   "--query", "a=1&b=2"])]
    data = cfg.get("data_csv", "num.csv")
    big = work / f"big_{data}"
    if not big.exists():
        lines = (DATA / data).read_text().splitlines()
        missing = (DATA / "num_missing.csv").read_text().splitlines()[1:] if data == "num.csv" else []
        body = (lines[1:] * 300) + [",".join(x.split(",")[:3]) for x in missing] + lines[1:] * 300
        big.write_text("\n".join([lines[0], *body]) + "\n")
    inputs = [(data, ["--input", str(DATA / data)]), (f"big {data}", ["--input", str(big)])]
    if data == "num.csv":
        inputs.append(("num_missing.csv", ["--input", str(DATA / "num_missing.csv")]))
        inputs.append(("sparse.mtx", ["--input", str(DATA / "sparse.mtx"),
                                      "--sparse-column-file", str(DATA / "sparse.colnames")]))
    return inputs


def _run(cmd: list[str], code: Path, args: list[str], env: dict, out: Path) -> tuple[int, bytes, str]:
    if out.exists():
        out.unlink()
    full = [*cmd, "score", "--code-dir", str(code), *args, "--output", str(out)]
    result = subprocess.run(full, capture_output=True, env={**os.environ, **env}, timeout=300)
    return result.returncode, out.read_bytes() if out.exists() else b"", result.stderr.decode(errors="replace")


def compare_case(name: str, ours: list[str], theirs: list[str], work: Path) -> list[str]:
    cfg = yaml.safe_load((MODELS / name / "case.yaml").read_text()) or {}
    if not cfg.get("target_type") or any(a in SERVER_ONLY for a in cfg.get("args", [])):
        return []
    code = work / name
    shutil.copytree(MODELS / name, code, ignore=shutil.ignore_patterns("case.yaml"), dirs_exist_ok=True)
    env = {k: str(v) for k, v in (cfg.get("env") or {}).items()}
    base = ["--target-type", cfg["target_type"], *_args(cfg)]
    lines = []
    for label, input_args in _inputs(cfg, work):
        ref = _run(theirs, code, base + input_args, env, work / f"{name}.theirs")
        for variant, extra in (("", {}), (" chunked", {"DRUM_SCORE_CHUNK_BYTES": "64"})):
            got = _run(ours, code, base + input_args, {**env, **extra}, work / f"{name}.ours")
            same = got[0] == ref[0] and got[1] == ref[1]
            status = "same" if same else f"DIFF rc {got[0]}/{ref[0]} bytes {len(got[1])}/{len(ref[1])}"
            lines.append(f"{name:32} {label + variant:28} {status}")
            if not same and os.environ.get("VERBOSE"):
                lines.append(f"  ours: {got[1][:300]!r} {got[2][-300:]}\n  theirs: {ref[1][:300]!r} {ref[2][-300:]}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", default=str(Path(sys.executable).parent / "drum"))
    parser.add_argument("--theirs", default="/tmp/drumref/bin/drum")
    parser.add_argument("--case", action="append")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    names = args.case or sorted(p.name for p in MODELS.iterdir() if (p / "case.yaml").exists())
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda n: compare_case(n, [args.ours], [args.theirs], Path(tmp)), names))
    lines = [line for result in results for line in result]
    print("\n".join(lines))
    same = sum(1 for line in lines if line.endswith("same"))
    total = sum(1 for line in lines if not line.startswith("  "))
    print(f"identical: {same}/{total}")
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main())
