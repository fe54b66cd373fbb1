"""Binary with labels from model-metadata.yaml; the score columns are in [negative, positive] order."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    n = len(data)
    pos = [0.125 * (i % 8) for i in range(n)]
    return pd.DataFrame({"Iris-versicolor": [1 - p for p in pos], "Iris-setosa": pos})
