"""Drive a V2 (Open Inference Protocol) server with KServe's own REST client (`kserve.InferenceRESTClient`).

Run with the python of KServe's venv (tools/peers/setup.sh), never drum's:

    python kserve_client.py BASE_URL MODEL_NAME CASE.json

CASE.json says what to send: {"inputs": [{"name", "datatype", "data" (nested lists: the tensor), optional
"binary" (KServe's binary tensor extension; default false: JSON data)}], optional "outputs" ([names],
`RequestedOutput`s), "id", "parameters"}. Each input is an `InferInput` filled by `set_data_from_numpy`, the
request an `InferRequest`, sent by `InferenceRESTClient(RESTConfig(protocol="v2")).infer`.

Prints one JSON object: `is_server_live`, `is_server_ready`, `is_model_ready(MODEL_NAME)`, and under "infer"
either the decoded `InferResponse` (id, model_name, each output's datatype, shape and `as_numpy()` as lists)
or the error the client raised (its type, message and the HTTP status of an `httpx.HTTPStatusError`).
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.utils.numpy_codec import to_np_dtype


def build_request(model: str, case: dict) -> InferRequest:
    inputs = []
    for spec in case["inputs"]:
        array = np.array(spec["data"], dtype=to_np_dtype(spec["datatype"]))
        tensor = InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=spec.get("binary", False))
        inputs.append(tensor)
    outputs = [RequestedOutput(name) for name in case.get("outputs") or []] or None
    return InferRequest(model, inputs, request_id=case.get("id"), parameters=case.get("parameters"),
                        request_outputs=outputs)  # fmt: skip


def decode(response: InferResponse) -> dict:
    outputs = {}
    for output in response.outputs:
        values = [v.decode() if isinstance(v, bytes) else v for v in output.as_numpy().tolist()]
        outputs[output.name] = {"datatype": output.datatype, "shape": list(output.shape), "data": values}
    return {"id": response.id, "model_name": response.model_name, "outputs": outputs}


async def run(base_url: str, model: str, case: dict) -> dict:
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
        result: dict = {
            "live": await client.is_server_live(base_url),
            "ready": await client.is_server_ready(base_url),
            "model_ready": await client.is_model_ready(base_url, model),
        }
        try:
            response = await client.infer(base_url, build_request(model, case), model_name=model)
            result["infer"] = decode(response)
        except httpx.HTTPStatusError as exc:
            result["infer"] = {"error": str(exc), "type": type(exc).__name__, "status": exc.response.status_code}
        except Exception as exc:  # reported to the test, which decides
            result["infer"] = {"error": str(exc), "type": type(exc).__name__}
        return result


if __name__ == "__main__":
    url, name, case_path = sys.argv[1:4]
    with open(case_path) as f:
        print(json.dumps(asyncio.run(run(url, name, json.load(f)))))
