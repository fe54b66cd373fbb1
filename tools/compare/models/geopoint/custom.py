"""Geo point: returns WKT-like strings."""

import pandas as pd


def load_model(code_dir):
    return "geo"


def score(data, model, **kwargs):
    points = [f"POINT ({lon} {lat})" for lat, lon in zip(data["lat"], data["lon"], strict=True)]
    return pd.DataFrame({"Predictions": points})
