"""Multiclass: softmax over the first three numeric columns, columns named by class_labels kwarg."""

import numpy as np
import pandas as pd


def load_model(code_dir):
    return "multiclass-model"


def _dense(data):
    try:
        return data.sparse.to_dense()
    except AttributeError:
        return data


def score(data, model, **kwargs):
    labels = kwargs["class_labels"]
    x = _dense(data).select_dtypes("number").fillna(0).to_numpy(dtype=float)
    x = np.resize(x, (x.shape[0], len(labels))) if x.size else np.zeros((len(data), len(labels)))
    e = np.exp(x / 4.0 - (x / 4.0).max(axis=1, keepdims=True))
    return pd.DataFrame(e / e.sum(axis=1, keepdims=True), columns=labels)
