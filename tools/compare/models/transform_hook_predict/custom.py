"""Regression with a transform hook (drops `dropme`, fills NaN) applied before score."""

import pandas as pd


def load_model(code_dir):
    return {"weight": 2}


def transform(data, model):
    if "boom" in data.columns:
        raise RuntimeError("transform exploded")
    if "not_df" in data.columns:
        return data.to_numpy()
    return data.drop(columns=[c for c in ("dropme",) if c in data.columns]).fillna(0)


def score(data, model, **kwargs):
    if data.isna().any().any() or "dropme" in data.columns:
        raise ValueError("transform hook was not applied")
    return pd.DataFrame({"Predictions": data.sum(axis=1) * model["weight"]})
