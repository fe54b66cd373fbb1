"""init hook receives code_dir as keyword; load_model and score see what init stored."""

import os

import pandas as pd

STATE = {}


def init(**kwargs):
    STATE["init_kwargs"] = sorted(kwargs)
    STATE["code_dir_is_dir"] = os.path.isdir(kwargs.get("code_dir", ""))
    STATE["calls"] = 0


def load_model(code_dir):
    return {"offset": 10.0}


def score(data, model, **kwargs):
    STATE["calls"] += 1
    n = len(data)
    return pd.DataFrame(
        {
            "Predictions": [model["offset"] + STATE["calls"]] * n,
            "init_kwargs": [",".join(STATE["init_kwargs"])] * n,
            "code_dir_is_dir": [STATE["code_dir_is_dir"]] * n,
            "calls": [STATE["calls"]] * n,
        }
    )
