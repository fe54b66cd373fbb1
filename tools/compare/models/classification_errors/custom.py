"""Binary model producing invalid probability frames, selected by a trigger column."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    cols = set(data.columns)
    n = len(data)
    pos, neg = kwargs.get("positive_class_label"), kwargs.get("negative_class_label")
    if "sum_not_one" in cols:
        return pd.DataFrame({pos: [0.5] * n, neg: [0.6] * n})
    if "negative" in cols:
        return pd.DataFrame({pos: [1.5] * n, neg: [-0.5] * n})
    if "gt_one" in cols:
        return pd.DataFrame({pos: [1.2] * n, neg: [0.0] * n})
    if "wrong_labels" in cols:
        return pd.DataFrame({"a": [0.5] * n, "b": [0.5] * n})
    if "three_cols" in cols:
        return pd.DataFrame({pos: [0.2] * n, neg: [0.3] * n, "x": [0.5] * n})
    if "one_col_gt_one" in cols:
        return pd.DataFrame({"p": [2.0] * n})
    if "swapped" in cols:
        return pd.DataFrame({neg: [0.9] * n, pos: [0.1] * n})
    if "nan" in cols:
        return pd.DataFrame({pos: [float("nan")] * n, neg: [0.5] * n})
    return pd.DataFrame({pos: [0.25] * n, neg: [0.75] * n})
