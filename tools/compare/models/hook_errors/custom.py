"""Regression whose score hook misbehaves depending on a trigger column in the input."""

import numpy as np
import pandas as pd
from datarobot_drum import CustomHTTPError


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    cols = set(data.columns)
    n = len(data)
    if "boom" in cols:
        raise ValueError("boom")
    if "keyerror" in cols:
        return data["does-not-exist"]
    if "list" in cols:
        return [1.0] * n
    if "series" in cols:
        return pd.Series([1.0] * n)
    if "ndarray" in cols:
        return np.ones(n)
    if "two_cols" in cols:
        return pd.DataFrame({"a": [1.0] * n, "b": [2.0] * n})
    if "nan" in cols:
        return pd.DataFrame({"Predictions": [np.nan if i % 2 else 1.0 for i in range(n)]})
    if "inf" in cols:
        return pd.DataFrame({"Predictions": [np.inf] * n})
    if "more_rows" in cols:
        return pd.DataFrame({"Predictions": [float(i) for i in range(n + 2)]})
    if "ints" in cols:
        return pd.DataFrame({"Predictions": list(range(n))})
    if "strings" in cols:
        return pd.DataFrame({"Predictions": ["abc"] * n})
    if "numeric_strings" in cols:
        return pd.DataFrame({"Predictions": ["1.5"] * n})
    if "bools" in cols:
        return pd.DataFrame({"Predictions": [True] * n})
    if "float32" in cols:
        return pd.DataFrame({"Predictions": np.array([0.1] * n, dtype=np.float32)})
    if "http_error" in cols:
        raise CustomHTTPError("custom failure", status_code=418)
    if "http_error_default" in cols:
        raise CustomHTTPError("default status")
    if "http_error_5xx" in cols:
        raise CustomHTTPError("service unavailable", status_code=503)
    if "empty" in cols:
        return pd.DataFrame({"Predictions": []})
    if "wrong_name" in cols:
        return pd.DataFrame({"value": [1.0] * n})
    return pd.DataFrame({"Predictions": [0.5] * n})
