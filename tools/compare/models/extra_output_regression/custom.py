"""Regression with extra model output: echoes the score kwargs DRUM passes as extra columns."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    n = len(data)
    tt = kwargs.get("target_type")
    colnames = kwargs.get("sparse_colnames")
    return pd.DataFrame(
        {
            "Predictions": [float(i) * 1.5 for i in range(n)],
            "mimetype": [str(kwargs.get("mimetype"))] * n,
            "charset": [str(kwargs.get("charset"))] * n,
            "nbytes": [len(kwargs.get("binary_data") or b"")] * n,
            "target_type": [str(getattr(tt, "value", tt))] * n,
            "colnames": ["|".join(colnames) if colnames else "none"] * n,
            "kwargs": [",".join(sorted(kwargs))] * n,
            "flag": [i % 2 == 0 for i in range(n)],
            "maybe": [None if i % 2 else 1.25 for i in range(n)],
        }
    )
