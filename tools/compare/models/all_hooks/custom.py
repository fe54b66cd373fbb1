"""Port of DRUM's all_predict_structured_hooks fixture: a counter incremented by every hook."""

import pandas as pd

COUNTER = {"value": 0}


def init(code_dir, **kwargs):
    COUNTER["value"] = 1


def read_input_data(input_binary_data):
    COUNTER["value"] += 1
    return pd.read_csv(pd.io.common.BytesIO(input_binary_data))


def load_model(code_dir):
    COUNTER["value"] += 1
    return "dummy"


def transform(data, model):
    COUNTER["value"] += 1
    return data


def score(data, model, **kwargs):
    COUNTER["value"] += 1
    return pd.DataFrame({"Predictions": [float(COUNTER["value"])] * data.shape[0]})


def post_process(predictions, model):
    COUNTER["value"] += 1
    return predictions + 1
