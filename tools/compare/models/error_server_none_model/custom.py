"""load_model returns None."""


def load_model(code_dir):
    return None


def score(data, model, **kwargs):
    return data
