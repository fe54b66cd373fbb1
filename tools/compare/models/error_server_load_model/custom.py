"""load_model raises: served by the error server (513) with --with-error-server."""


def load_model(code_dir):
    raise RuntimeError("cannot load the model: weights.bin is missing")


def score(data, model, **kwargs):
    raise AssertionError("never called")
