"""Unstructured model echoing runtime parameters (RuntimeParameters API and the raw env vars)."""

import json
import os

from datarobot_drum import RuntimeParameters


def load_model(code_dir):
    return "rp"


def score_unstructured(model, data, **kwargs):
    name = (kwargs.get("query") or {}).get("name")
    if name:
        try:
            value = {"has": RuntimeParameters.has(name), "value": RuntimeParameters.get(name)}
        except Exception as e:  # echo the exact exception type and message
            value = {"error": type(e).__name__, "message": str(e)}
        return json.dumps(value, sort_keys=True), {"mimetype": "application/json"}
    env = {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith("MLOPS_RUNTIME_PARAM_") and k != "MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE"
    }
    return json.dumps(env, sort_keys=True), {"mimetype": "application/json"}
