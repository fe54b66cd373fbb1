"""`drum score --ray-address ADDRESS|local`: batch scoring with Ray Data (`pip install 'drum[ray]'`).

The input CSV is cut into chunks of whole records as `drum score` cuts it (`model.csv_chunks`): the driver
reads the file once for the chunks' byte ranges and the whole file's column types (one chunk in memory at a
time), Ray Data hands the ranges to an actor pool (`map_batches`, one loaded model per actor, each actor
reading its ranges from the file), and the driver writes the predictions in input order as they arrive.
Each chunk is parsed and scored exactly as plain `drum score` scores it, so the output file is the same.
The file must be readable at the same path on every node of the cluster (a local cluster, or a shared
filesystem).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import numpy as np

from drum.cli.model_setup import load_predictor, model_config
from drum.cli.progress import ProgressBar
from drum.cli.score import _chunk_output, _numeric_kind, _replacing, show_csv
from drum.config.settings import get_setting
from drum.errors import DrumCommonException
from drum.model import codecs, csv_chunks
from drum.model.predictor import ModelConfig
from drum.model.target import TargetType

#: Chunk size when DRUM_SCORE_CHUNK_BYTES is 0 (Ray needs chunks to spread the work).
DEFAULT_CHUNK_BYTES = 8 * 2**20


class ChunkScorer:
    """A Ray Data actor: one loaded model, scoring chunks (byte ranges of the input) into prediction frames."""

    def __init__(self, config: ModelConfig, path: str, header: bytes, types: csv_chunks.ColumnTypes):
        self.predictor = load_predictor(config)
        self.path, self.header, self.types = path, header, types
        self.mimetype = codecs.mimetype_from_filename(path)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        headers, bodies, dtypes = [], [], []
        with open(self.path, "rb") as f:
            for start, stop, offset in zip(batch["start"], batch["stop"], batch["offset"], strict=True):
                f.seek(int(start))
                chunk = self.header + f.read(int(stop) - int(start))
                frame = csv_chunks.parse(chunk, self.types, int(offset))
                output = _chunk_output(self.predictor, chunk, frame, self.mimetype)
                headers.append(output.head(0).to_csv(index=False))
                bodies.append(output.to_csv(index=False, header=False))
                dtypes.append(json.dumps({str(k): str(v) for k, v in output.dtypes.items() if _numeric_kind(v)}))
        return {"index": list(batch["index"]), "header": headers, "body": bodies, "dtypes": dtypes}


def chunk_ranges(path: str, chunk_bytes: int) -> tuple[bytes, list[tuple[int, int, int]], csv_chunks.ColumnTypes]:
    """(header, [(start, stop, row offset)] of each chunk's records, the whole file's column types), with the
    chunks `drum score` reads (`csv_chunks.iter_chunk_ranges`)."""
    types = csv_chunks.ColumnTypes()
    header = b""
    ranges: list[tuple[int, int, int]] = []
    for chunk in csv_chunks.iter_chunk_ranges(path, chunk_bytes):
        header = chunk.header
        ranges.append((chunk.start, chunk.stop, types.rows))
        types.add(csv_chunks.read_frame(chunk.header + chunk.body))
    return header, ranges, types


def run(options: argparse.Namespace) -> int:
    try:
        import ray
    except ImportError:
        raise DrumCommonException("drum score --ray-address needs Ray Data: pip install 'drum[ray]'") from None
    from drum.cli.ray_serve import replica_env, start_ray

    config, _metadata = model_config(options)
    path = options.input
    if config.target_type == TargetType.UNSTRUCTURED or codecs.mimetype_from_filename(path) == codecs.TEXT_MTX:
        raise DrumCommonException("drum score --ray-address scores CSV input of structured models only.")
    chunk_bytes = get_setting("DRUM_SCORE_CHUNK_BYTES") or DEFAULT_CHUNK_BYTES
    if options.ray_batch_rows:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            sample = f.read(min(size, 1 << 20))
        rows_in_sample = max(1, sample.count(b"\n") - 1)
        chunk_bytes = max(1, int(len(sample) / rows_in_sample * options.ray_batch_rows))
    try:
        header, ranges, types = chunk_ranges(path, chunk_bytes)
    except csv_chunks.NotChunkable as exc:
        raise DrumCommonException(f"drum score --ray-address cannot split {path}: {exc}") from None
    started = start_ray(ray, options.ray_address)
    try:
        output = getattr(options, "output", None)
        target = output or os.path.join(os.path.dirname(os.path.abspath(path)), ".drum-ray-score.csv")
        with _replacing(target) as partial:
            _score(ray, config, os.path.abspath(path), header, ranges, types, partial, replica_env())
        if not output:
            print(show_csv(target, get_setting("DRUM_SCORE_CHUNK_BYTES")))
            os.unlink(target)
    finally:
        if started:
            ray.shutdown()
    return 0


def _score(ray: Any, config: ModelConfig, path: str, header: bytes, ranges: list[tuple[int, int, int]],
           types: csv_chunks.ColumnTypes, out_path: str, env: dict[str, str]) -> None:  # fmt: skip
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # drum's own bar (on a terminal) counts rows
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"index": i, "start": s, "stop": e, "offset": o} for i, (s, e, o) in enumerate(ranges)]
    workers = max(1, min(len(ranges), int(ray.available_resources().get("CPU", 1))))
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ChunkScorer, fn_constructor_args=(config, path, header, types), batch_size=1, concurrency=workers,
        num_cpus=1, runtime_env={"env_vars": env},
    )  # fmt: skip
    first_header: str | None = None
    seen: dict[str, set[str]] = {}
    with ProgressBar(types.rows, "Scoring") as progress, open(out_path, "w", newline="") as out:
        for row in dataset.iter_rows():
            if first_header is None:
                first_header = row["header"]
                out.write(first_header)
            elif row["header"] != first_header:
                raise DrumCommonException(
                    f"The model's output columns differ between chunks ({first_header.strip()} and "
                    f"{row['header'].strip()})."
                )
            for name, dtype in json.loads(row["dtypes"]).items():
                seen.setdefault(name, set()).add(dtype)
            out.write(row["body"])
            index = int(row["index"])
            progress.update(ranges[index + 1][2] if index + 1 < len(ranges) else types.rows)
    mixed = {name for name, dtypes in seen.items() if len(dtypes) > 1}
    if mixed:
        print(f"WARNING: output columns {sorted(mixed)} had different dtypes in different chunks; the plain "
              "`drum score` output may format them differently.", file=sys.stderr)  # fmt: skip
