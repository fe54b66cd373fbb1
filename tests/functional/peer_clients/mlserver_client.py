"""Drive a V2 (Open Inference Protocol) server with MLServer's own client-side types and codecs.

Run with the python of MLServer's venv (tools/peers/setup.sh), never drum's:

    python mlserver_client.py BASE_URL MODEL_NAME CASE.json

CASE.json says what to send:
    {"frame": {column: [values]}}            one request from `PandasCodec.encode_request` (one input per column,
                                             `parameters.content_type = "pd"`; string columns BYTES with "str")
    {"inputs": [{"codec": "np"|"str", "name": ..., "data": ...}]}
                                             one input each from `NumpyCodec.encode_input(name, np.array(data))`
                                             or `StringCodec.encode_input(name, data)`
    optional "outputs": [names] (`RequestOutput`s), "id", "parameters"

Prints one JSON object: the health and metadata answers (`MetadataServerResponse`, `MetadataModelResponse` or
its error type), and under "infer" the HTTP status, the body as `InferenceResponse` (or
`InferenceErrorResponse`), and the response decoded by MLServer's codecs: "frame" (`PandasCodec.decode_response`,
column → list), "tensors" (`NumpyCodec.decode_output` of each output), "strings" (`StringCodec.decode_output`
of each BYTES output). The HTTP goes over the standard library (MLServer's venv has no httpx; MLServer's server
side does not care who sends its JSON).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
from mlserver.codecs import NumpyCodec, PandasCodec, StringCodec
from mlserver.types import (
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataModelErrorResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    Parameters,
    RequestOutput,
)


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def build_request(case: dict) -> InferenceRequest:
    if "frame" in case:
        frame = pd.DataFrame(case["frame"])
        # pandas 3 infers its `str` dtype for text, which MLServer 1.7's codecs cannot map to BYTES (KeyError 'O');
        # they expect object columns, as pandas 2 makes them
        text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)]
        frame = frame.astype({c: object for c in text})
        request = PandasCodec.encode_request(frame, use_bytes=False)
    else:
        inputs = []
        for spec in case["inputs"]:
            if spec["codec"] == "str":
                inputs.append(StringCodec.encode_input(spec["name"], spec["data"], use_bytes=False))
            else:
                inputs.append(NumpyCodec.encode_input(spec["name"], np.asarray(spec["data"])))
        request = InferenceRequest(inputs=inputs)
    if case.get("outputs"):
        request.outputs = [RequestOutput(name=name) for name in case["outputs"]]
    if case.get("id"):
        request.id = case["id"]
    if case.get("parameters"):
        request.parameters = Parameters(**{**(request.parameters.model_dump() if request.parameters else {}),
                                           **case["parameters"]})  # fmt: skip
    return request


def decode(response: InferenceResponse) -> dict:
    frame = PandasCodec.decode_response(response)
    return {
        "frame": {str(column): frame[column].tolist() for column in frame.columns},
        "tensors": {o.name: NumpyCodec.decode_output(o).tolist() for o in response.outputs if o.datatype != "BYTES"},
        "strings": {o.name: StringCodec.decode_output(o) for o in response.outputs if o.datatype == "BYTES"},
    }


def main(base_url: str, model: str, case_path: str) -> dict:
    base_url = base_url.rstrip("/")
    with open(case_path) as f:
        case = json.load(f)
    result: dict = {}
    for key, path in (("live", "/v2/health/live"), ("ready", "/v2/health/ready")):
        status, body, _ = http("GET", base_url + path)
        result[key] = {"status": status, "body": json.loads(body)}
    status, body, _ = http("GET", base_url + f"/v2/models/{model}/ready")
    result["model_ready"] = {"status": status, "body": json.loads(body)}
    status, body, _ = http("GET", base_url + "/v2")
    result["server_metadata"] = MetadataServerResponse.model_validate_json(body).model_dump()
    status, body, _ = http("GET", base_url + f"/v2/models/{model}")
    kind = MetadataModelResponse if status == 200 else MetadataModelErrorResponse
    result["model_metadata"] = {"status": status, "body": kind.model_validate_json(body).model_dump()}

    request = build_request(case)
    result["request"] = request.model_dump()
    status, body, content_type = http("POST", base_url + f"/v2/models/{model}/infer",
                                      request.model_dump_json().encode())  # fmt: skip
    infer: dict = {"status": status, "content_type": content_type}
    if status == 200:
        response = InferenceResponse.model_validate_json(body)
        infer["response"] = response.model_dump()
        infer.update(decode(response))
    else:
        infer["error"] = InferenceErrorResponse.model_validate_json(body).error
    result["infer"] = infer
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
