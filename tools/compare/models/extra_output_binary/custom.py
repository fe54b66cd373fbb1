"""Binary with extra model output columns after (and between) the label columns."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    n = len(data)
    p = [0.1 * (i % 10) for i in range(n)]
    return pd.DataFrame({
        "explanation": [f"row {i}" for i in range(n)],
        kwargs["negative_class_label"]: [1 - x for x in p],
        "rank": list(range(n)),
        kwargs["positive_class_label"]: p,
    })
