"""Text generation with extra output: the prediction column is TARGET_NAME (quotes stripped)."""

import pandas as pd


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    prompts = data["prompt"].astype(str)
    return pd.DataFrame(
        {
            "citations": ["doc-" + str(i) for i in range(len(prompts))],
            "completion": prompts.str[::-1],
            "tokens": prompts.str.len(),
        }
    )
