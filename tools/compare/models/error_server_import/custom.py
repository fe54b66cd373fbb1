"""custom.py that fails at import time."""

import this_module_does_not_exist_anywhere  # noqa: F401


def score(data, model, **kwargs):
    return data
