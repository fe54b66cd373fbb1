"""init hook raises."""


def init(code_dir, **kwargs):
    raise ValueError("init failed: missing configuration")


def load_model(code_dir):
    return "m"


def score(data, model, **kwargs):
    return data
