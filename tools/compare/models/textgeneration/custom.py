"""Text generation: upper-cases the `prompt` column into the TARGET_NAME column."""

import os

import pandas as pd


def load_model(code_dir):
    return "textgen"


def score(data, model, **kwargs):
    target = os.environ["TARGET_NAME"]
    return pd.DataFrame({target: data["prompt"].astype(str).str.upper()})
