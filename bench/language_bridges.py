"""The cost of drum's R and Java bridges (issue 19): a 1-row and a 10k-row prediction through drum's predictor
against the same work done inside the runtime itself.

    python -m bench.language_bridges [--out bench/results/language-bridges.md] [--repeat 300]

- R: an `lm` on 10 features saved as `.rds`. drum: `RPredictor.predict` (Python → R thread → R reads the CSV
  and predicts → data frame back to pandas → DRUM's marshalling). In R: the same glue call (`.drum$predict`:
  `read.csv` + `predict`) timed by R in a loop, so the difference is the bridge alone.
- Java: a custom predictor class (a linear model, CSV in and out). drum: `JavaPredictor.predict` (py4j call,
  CSV text back, `pandas.read_csv`, marshalling). In the JVM: the same `predict(byte[])` timed by Java in a loop.

Medians in milliseconds; the bridge overhead is drum's median less the runtime's. Needs R + rpy2 and a JDK + py4j
(`make test` installs them).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = 10
LOOP_R = """.drum_bench_loop <- function(data, n) {
    for (i in 1:max(20, n %/% 5)) .drum$predict(data, "text/csv", NULL, "regression", NULL, NULL, NULL)
    times <- numeric(n)
    for (i in 1:n) {
        t0 <- Sys.time()
        .drum$predict(data, "text/csv", NULL, "regression", NULL, NULL, NULL)
        times[i] <- as.numeric(Sys.time() - t0, units = "secs") * 1000
    }
    median(times)
}"""
LINEAR_JAVA = """
package benchmodel;

import com.datarobot.drum.BasePredictor;
import java.nio.charset.StandardCharsets;
import java.util.Map;

public class Linear extends BasePredictor {
    public Linear(String name) { super(name); }
    public void configure(Map<String, Object> params) { }
    public String predict(byte[] input) {
        String[] lines = new String(input, StandardCharsets.UTF_8).split("\\r?\\n");
        StringBuilder out = new StringBuilder("Predictions\\n");
        for (int r = 1; r < lines.length; r++) {
            if (lines[r].isEmpty()) continue;
            double z = 0.5;
            int i = 0;
            for (String cell : lines[r].split(",")) z += (++i) * Double.parseDouble(cell);
            out.append(z).append('\\n');
        }
        return out.toString();
    }
    public <T> T predictUnstructured(byte[] input, String mimetype, String charset, Map<String, String> query) {
        return null;
    }
    /** Milliseconds per call of predictor.predict(data), timed in the JVM (after a warm-up). */
    public static double perCall(BasePredictor predictor, byte[] data, int n) throws Exception {
        for (int i = 0; i < Math.max(20, n / 5); i++) predictor.predict(data);
        double[] times = new double[n];
        for (int i = 0; i < n; i++) {
            long start = System.nanoTime();
            predictor.predict(data);
            times[i] = (System.nanoTime() - start) / 1e6;
        }
        java.util.Arrays.sort(times);
        return times[n / 2];
    }
}
"""


def payloads(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)])
    return frame.to_csv(index=False).encode()


def median_ms(call: Callable[[], object], repeat: int) -> float:
    for _ in range(max(5, repeat // 10)):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_r(work: Path, repeat: int) -> list[tuple[str, float, float]]:
    from drum.model.predictor import ModelConfig, PredictionInput
    from drum.model.r_predictor import RPredictor
    from drum.model.target import TargetType

    code = work / "r_model"
    code.mkdir()
    train = work / "train.csv"
    frame = pd.read_csv(io.BytesIO(payloads(500, seed=1)))
    frame["y"] = frame.sum(axis=1)
    frame.to_csv(train, index=False)
    subprocess.run(["Rscript", "-e", f'd <- read.csv("{train}"); saveRDS(lm(y ~ ., data = d), "{code}/model.rds")'],
                   check=True, capture_output=True)  # fmt: skip
    predictor = RPredictor(ModelConfig(str(code), TargetType.REGRESSION, language="r")).load()
    r = predictor.r
    assert r is not None

    def define() -> object:
        with r.ro.default_converter.context():
            r.ro.r(LOOP_R)
        return r.ri.globalenv.find(".drum_bench_loop")

    loop = r.run(define)
    results = []
    for rows, n in ((1, repeat), (10_000, max(10, repeat // 30))):
        data = payloads(rows)
        inputs = PredictionInput(data, "text/csv")
        ours = median_ms(lambda inputs=inputs: predictor.predict(inputs), n)
        inside = r.run(lambda data=data, n=n: float(loop(r.to_r(data), r.to_r(n))[0]))
        results.append((f"R lm, {rows:,} row{'s' if rows > 1 else ''}", ours, inside))
    return results


def bench_java(work: Path, repeat: int) -> list[tuple[str, float, float]]:
    from drum.model.java_predictor import JavaPredictor, build
    from drum.model.predictor import ModelConfig, PredictionInput
    from drum.model.target import TargetType

    source = work / "java" / "benchmodel"
    source.mkdir(parents=True)
    (source / "Linear.java").write_text(LINEAR_JAVA)
    classes = work / "classes"
    subprocess.run(["javac", "-d", str(classes), "-cp", str(build(None)), str(source / "Linear.java")], check=True)
    code = work / "java_model"
    code.mkdir()
    subprocess.run(["jar", "cf", str(code / "model.jar"), "-C", str(classes), "."], check=True)
    os.environ["DRUM_JAVA_CUSTOM_PREDICTOR_CLASS"] = "benchmodel.Linear"
    os.environ["DRUM_JAVA_CUSTOM_CLASS_PATH"] = str(code / "model.jar")
    predictor = JavaPredictor(ModelConfig(str(code), TargetType.REGRESSION, language="java")).load()
    results = []
    try:
        for rows, n in ((1, repeat), (10_000, max(10, repeat // 30))):
            data = payloads(rows)
            inputs = PredictionInput(data, "text/csv")
            ours = median_ms(lambda inputs=inputs: predictor.predict(inputs), n)
            jvm = predictor.gateway.jvm.benchmodel.Linear
            inside = float(jvm.perCall(predictor.java, bytearray(data), n))
            results.append((f"Java linear, {rows:,} row{'s' if rows > 1 else ''}", ours, inside))
    finally:
        predictor.terminate()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--repeat", type=int, default=300, help="1-row calls timed per side (10k rows: 1/30)")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, bench in (("R", bench_r), ("Java", bench_java)):
            work = Path(tmp, name)
            work.mkdir()
            try:
                rows += bench(work, args.repeat)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other runtime
                print(f"{name}: not measured: {exc}", file=sys.stderr)
    lines = [
        "| model, payload | drum predictor (ms) | inside the runtime (ms) | bridge overhead (ms) |",
        "|---|---|---|---|",
        *(f"| {name} | {ours:.3f} | {inside:.3f} | {ours - inside:.3f} |" for name, ours, inside in rows),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(
            "# R and Java bridge overhead\n\n`python -m bench.language_bridges` (medians; see its docstring).\n\n"
            + table + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
