"""Binary with a post_process hook that sharpens probabilities; trigger columns break it."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    n = len(data)
    return pd.DataFrame({kwargs["positive_class_label"]: [0.6] * n, kwargs["negative_class_label"]: [0.4] * n})


def post_process(predictions, model):
    if predictions.shape[0] == 3:
        raise RuntimeError("post_process refuses three rows")
    if predictions.shape[0] == 5:
        return predictions.to_numpy()
    cols = list(predictions.columns)
    out = predictions.copy()
    out[cols[0]] = predictions[cols[0]] ** 2 / (predictions**2).sum(axis=1)
    out[cols[1]] = 1 - out[cols[0]]
    out["post_cols"] = "|".join(str(c) for c in cols)
    return out
