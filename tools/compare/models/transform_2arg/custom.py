"""Transform target type, 2-argument hook. Trigger columns select odd behaviours."""

import numpy as np


def load_model(code_dir):
    return {"factor": 2}


def transform(data, model):
    cols = set(data.columns)
    if "boom" in cols:
        raise ValueError("transform failed on purpose")
    if "tuple" in cols:
        return data, data
    if "fewer" in cols:
        return data.head(1)
    if "ndarray" in cols:
        return data.to_numpy()
    if "rename" in cols:
        out = data.copy()
        out.columns = [" spaced ", "multi\nline"][: len(out.columns)]
        return out
    if "text" in cols:
        return data.assign(text_len=data["text"].astype(str).str.len())
    try:
        data.sparse  # noqa: B018 - sparse input stays sparse
        return data * model["factor"]
    except AttributeError:
        pass
    out = data.select_dtypes("number").fillna(0) * model["factor"]
    out["row_norm"] = np.sqrt((out**2).sum(axis=1)).round(4)
    return out
