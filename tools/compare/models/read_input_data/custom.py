"""read_input_data hook: accepts JSON ({"rows": [...]}), JSON lines, or falls back to CSV."""

import io
import json

import pandas as pd


def read_input_data(input_binary_data):
    text = input_binary_data.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        payload = json.loads(text)
        if "fail" in payload:
            raise ValueError("cannot read this payload")
        return pd.DataFrame(payload["rows"])
    if stripped.startswith("["):
        return pd.DataFrame(json.loads(text))
    return pd.read_csv(io.StringIO(text))


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    num = data.select_dtypes("number")
    return pd.DataFrame({"Predictions": num.sum(axis=1) * 2, "mimetype": [str(kwargs.get("mimetype"))] * len(data)})
