"""Transform target type, 3-argument hook receiving the target frame (or None)."""


def load_model(code_dir):
    return "t3"


def transform(data, model, y):
    out = data.select_dtypes("number").fillna(0) + 1
    out["has_y"] = 0 if y is None else 1
    if y is not None:
        out["y_first"] = list(y.iloc[:, 0])[: len(out)] + [None] * max(0, len(out) - len(y))
    return out
