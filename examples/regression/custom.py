"""A tiny linear regression served by drum: `load_model` reads coefficients, `score` applies them."""

import json
import os

import pandas as pd


def load_model(code_dir):
    with open(os.path.join(code_dir, "model.json")) as f:
        return json.load(f)


def score(data, model, **kwargs):
    prediction = sum(data[name] * weight for name, weight in model["weights"].items()) + model["intercept"]
    return pd.DataFrame({"Predictions": prediction})
