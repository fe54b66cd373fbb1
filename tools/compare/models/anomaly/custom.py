"""Anomaly: score is the distance of each row from the origin; integer outputs are cast to float."""

import numpy as np
import pandas as pd


def load_model(code_dir):
    return "m"


def _dense(data):
    try:
        return data.sparse.to_dense()
    except AttributeError:
        return data


def score(data, model, **kwargs):
    x = _dense(data).select_dtypes("number").fillna(0).to_numpy(dtype=float)
    return pd.DataFrame({"Predictions": np.sqrt((x**2).sum(axis=1)).round(0).astype(int)})
