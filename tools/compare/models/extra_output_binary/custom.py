"""Binary with extra model output columns after (and between) the label columns."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    n = len(data)
    p = [0.1 * (i % 10) for i in range(n)]
    if "class_labels" in kwargs:  # multiclass variant: labels [approved, denied]
        pos, neg = kwargs["class_labels"]
    else:
        pos, neg = kwargs["positive_class_label"], kwargs["negative_class_label"]
    return pd.DataFrame(
        {
            "explanation": [f"row {i}" for i in range(n)],
            neg: [1 - x for x in p],
            "rank": list(range(n)),
            pos: p,
        }
    )
