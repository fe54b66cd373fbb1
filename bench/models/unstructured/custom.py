"""Benchmark unstructured model: answers the size of the request body in bytes (a tiny response)."""


def load_model(code_dir):
    return "bench-unstructured"


def score_unstructured(model, data, **kwargs):
    return str(len(data))
