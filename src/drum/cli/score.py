"""`drum score`: run the model on one input file and write (or print) what DRUM writes."""

from __future__ import annotations

import argparse
import io
import sys
import time
import urllib.parse

import pandas as pd

from drum.cli.model_setup import model_config
from drum.model import codecs
from drum.model.predictor import Predictor
from drum.model.target import TargetType
from drum.serving.request import parse_options_header

NONE_RESULT = "Return value from prediction is: None (NULL in R)"


def _unstructured(predictor: Predictor, options: argparse.Namespace) -> tuple[bytes | str, str | None]:
    query = dict(urllib.parse.parse_qsl(options.query or ""))
    mimetype, params = parse_options_header(options.content_type)
    with open(options.input, "rb") as f:
        data, mimetype, charset = codecs.decode_unstructured(f.read(), mimetype, params.get("charset"))
    kwargs: dict = {"mimetype": mimetype}
    if charset is not None:
        kwargs["charset"] = charset
    kwargs["query"] = query
    value, extra = predictor.predict_unstructured(data, **kwargs)
    _, _, out_charset = codecs.encode_unstructured(value, extra)
    if isinstance(value, bytes):
        return value, None
    return (NONE_RESULT if value is None else value), out_charset


def _structured(predictor: Predictor, options: argparse.Namespace) -> str:
    with open(options.input, "rb") as f:
        data = f.read()
    mimetype = codecs.mimetype_from_filename(options.input)
    if predictor.target_type == TargetType.TRANSFORM:
        out, _ = predictor.transform(data, mimetype)
        return out.to_csv(index=False)
    colnames = None
    if getattr(options, "sparse_column_file", None):
        with open(options.sparse_column_file, "rb") as f:
            colnames = codecs.read_column_names(f.read())
    result = predictor.predict(binary_data=data, mimetype=mimetype, sparse_colnames=colnames)
    return codecs.predictions_csv(result.predictions, result.extra_model_output)


def run(options: argparse.Namespace) -> int:
    started = time.perf_counter()
    config, _metadata = model_config(options)
    predictor = Predictor(config).load()
    loaded = time.perf_counter()
    if config.target_type == TargetType.UNSTRUCTURED:
        value, charset = _unstructured(predictor, options)
        if options.output:
            if isinstance(value, bytes):
                with open(options.output, "wb") as f:
                    f.write(value)
            else:
                with open(options.output, "w", encoding=charset) as f:
                    f.write(value)
        else:
            text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
            print(text)
    else:
        csv_text = _structured(predictor, options)
        if options.output:
            with open(options.output, "w", newline="") as f:
                f.write(csv_text)
        else:
            print(pd.read_csv(io.StringIO(csv_text)))
    if getattr(options, "show_perf", False):
        done = time.perf_counter()
        print(f"Full time: {done - started:.3f}s; Init time (incl model loading): {loaded - started:.3f}s; "
              f"Run time (incl reading CSV): {done - loaded:.3f}s", file=sys.stderr)
    return 0

