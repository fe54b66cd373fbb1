"""`--gpu-predictor nim|vllm --sidecar`: the model is an OpenAI-compatible server that drum does not start.

As DRUM's `BaseOpenAiGpuPredictor` does: structured predictions send one chat completion per row of
the prompt column (runtime parameter `prompt_column_name`, default `promptText`; optional
`system_prompt`, `max_tokens`, `n`, `temperature`) and answer one `completions` value per choice;
`/chat/completions` is forwarded with the official OpenAI client (streaming included) and `/models`
lists the backend's models. The backend address is `OPENAI_HOST`/`OPENAI_PORT` (NIM: runtime
parameters `DR_NIM_SERVER_HOST`/`DR_NIM_SERVER_PORT` first). A NIM `score` or `score_unstructured`
hook gets `base_url` and `openai_client`, as in DRUM. Needs `pip install 'drum[openai]'`.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
import threading
from typing import Any

import numpy as np

from drum.config.runtime_params import RuntimeParameters
from drum.errors import DrumCommonException
from drum.model.hooks import load_hooks
from drum.model.marshalling import marshal_predictions
from drum.model.predictor import ModelConfig, PredictionInput, Predictor, PredictResponse, tag_chunks
from drum.model.target import TargetType

logger = logging.getLogger("drum.model.openai_backend")

DEFAULT_MODEL_NAME = "datarobot-deployed-llm"
BACKENDS = {
    # --gpu-predictor: (display name, default health route)
    "nim": ("NIM", "/v1/health/ready"),
    "vllm": ("vLLM", "/health"),
}


def optional_parameter(name: str, default: Any = None) -> Any:
    """DRUM's `get_optional_parameter`: the runtime parameter when declared, else `default`."""
    return RuntimeParameters.get(name) if RuntimeParameters.has(name) else default


class OpenAIBackendPredictor(Predictor):
    """A model served by an OpenAI-compatible backend (NIM, vLLM) that runs beside drum."""

    def __init__(
        self, config: ModelConfig, kind: str, host: str, port: int | str, client_timeout: float
    ) -> None:
        """`host`, `port`: the backend's address (OPENAI_HOST, OPENAI_PORT; for NIM the runtime parameters
        DR_NIM_SERVER_HOST/DR_NIM_SERVER_PORT win); `client_timeout`: the OpenAI client's seconds
        (DRUM_OPENAI_CLIENT_TIMEOUT)."""
        super().__init__(config)
        if kind not in BACKENDS:
            raise DrumCommonException(
                f"--gpu-predictor {kind} is not supported by this drum; use nim or vllm (with --sidecar)."
            )
        self.kind = kind
        self.name, default_health = BACKENDS[kind]
        self.openai_host = str(host)
        self.openai_port = str(port)
        self.client_timeout = client_timeout
        self.health_route = default_health
        if kind == "nim":
            self.health_route = optional_parameter("DR_NIM_HEALTH_ROUTE", default_health)
            self.openai_host = str(optional_parameter("DR_NIM_SERVER_HOST", self.openai_host))
            self.openai_port = str(optional_parameter("DR_NIM_SERVER_PORT", self.openai_port))
        self.system_prompt = optional_parameter("system_prompt")
        self.prompt_column = optional_parameter("prompt_column_name", "promptText")
        self.max_tokens = int(optional_parameter("max_tokens", 0)) or None
        self.num_choices = int(optional_parameter("n", 0)) or None
        self.temperature = optional_parameter("temperature") or None
        self.client: Any = None
        self._served_model_name: str | None = None
        self._name_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{self.openai_host}:{self.openai_port}"

    def load(self) -> OpenAIBackendPredictor:
        try:
            from openai import OpenAI
        except ImportError:
            raise DrumCommonException(
                "OpenAI Python SDK is not installed: pip install 'drum[openai]' to serve --gpu-predictor models"
            ) from None
        # custom.py is optional; its `init` runs. In sidecar mode DRUM never calls `load_model`.
        self.hooks = load_hooks(self.config.code_dir, self.target_type)
        self.client = OpenAI(base_url=f"{self.base_url}/v1", api_key="fake", timeout=self.client_timeout)
        logger.info("Serving the %s backend at %s (sidecar: drum does not start it)", self.name, self.base_url)
        return self

    @property
    def served_model_name(self) -> str:
        """The backend's first model id (cached), else runtime parameter `served_model_name`."""
        with self._name_lock:
            if self._served_model_name is None:
                default = optional_parameter("served_model_name", DEFAULT_MODEL_NAME)
                try:
                    ids = [model.id for model in self.client.models.list()]
                    logger.info("Retrieved model list: %s", ids)
                    self._served_model_name = ids[0] if ids else default
                except Exception as exc:  # noqa: BLE001 - the backend may not be up yet; retry next time
                    logger.warning("Failed to retrieve model list: %s", exc)
                    return default
            return self._served_model_name

    def reset_served_model_name(self) -> None:
        """Forget the cached name (the backend went away; it may come back serving another model)."""
        with self._name_lock:
            self._served_model_name = None

    # --- structured ---------------------------------------------------------------------------

    def has_read_input_data_hook(self) -> bool:
        return False

    def extra_score_kwargs(self) -> dict[str, Any]:
        """A NIM `score` hook also gets `base_url` and `openai_client`, as in DRUM."""
        if self.kind == "nim":
            return {"base_url": self.base_url, "openai_client": self.client}
        return {}

    def predict(self, inputs: PredictionInput) -> PredictResponse:
        """NIM with a `score` hook: the hook (its model is the served model's name); else one chat
        completion per row of the prompt column."""
        if self.kind == "nim" and self.hooks.has("score"):
            self.model = self.served_model_name
            return super().predict(inputs)
        if self.target_type != TargetType.TEXT_GENERATION:
            raise DrumCommonException(
                "The default predict() implementation for this Predictor requires a Text Generation target "
                "type. To support other target types, you must implement a custom hook."
            )
        data = inputs.binary_data
        text = data.decode("utf8") if isinstance(data, bytes) else data
        results: list[str | None] = []
        for row in csv.DictReader(io.StringIO(text)):
            if self.prompt_column not in row:
                raise DrumCommonException(f"Model expects column names '{[self.prompt_column]}'")
            results.extend(self._complete([{"role": "user", "content": row[self.prompt_column]}]))
        frame = marshal_predictions(None, np.array(results), self.target_type, np.array(["completions"]))
        return PredictResponse(frame)

    def _complete(self, messages: list[dict[str, Any]]) -> list[str | None]:
        from openai import BadRequestError

        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        try:
            completion = self.client.chat.completions.create(
                model=self.served_model_name,
                messages=messages,
                n=self.num_choices,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        except BadRequestError:
            logger.error("Payload: %s", json.dumps(messages), exc_info=True)
            raise DrumCommonException("Bad payload") from None
        return [choice.message.content for choice in completion.choices]

    def transform(self, *args: Any, **kwargs: Any) -> Any:
        raise DrumCommonException("Transform feature is not supported")

    def predict_unstructured(self, data: str | bytes, **kwargs: Any) -> tuple[Any, dict | None]:
        if self.kind != "nim" or not self.hooks.has("score_unstructured"):
            raise DrumCommonException("The unstructured target type is not supported")
        kwargs["base_url"] = self.base_url
        kwargs["openai_client"] = self.client
        self.model = self.served_model_name
        return super().predict_unstructured(data, **kwargs)

    # --- chat and models ----------------------------------------------------------------------

    def supports_chat(self) -> bool:
        return self.target_type in (TargetType.TEXT_GENERATION, TargetType.AGENTIC_WORKFLOW)

    def chat(self, params: dict, headers: dict | None = None) -> Any:
        """Forward to the backend; parameters the OpenAI client does not know go in `extra_body`."""
        from openai.resources.chat.completions import Completions

        association_id = self.association_id(params)
        requested = params.get("model")
        if not requested or requested == DEFAULT_MODEL_NAME:
            params["model"] = self.served_model_name
        known = set(inspect.signature(Completions.create).parameters)
        valid = {k: v for k, v in params.items() if k in known}
        extra = {k: v for k, v in params.items() if k not in known}
        response = self.client.chat.completions.create(**valid, extra_body=extra)
        if getattr(response, "object", None) == "chat.completion":
            response.datarobot_association_id = association_id
            return response
        return tag_chunks(response, association_id)

    def models(self) -> dict:
        data = [m.to_dict() for m in self.client.models.list() if getattr(m, "object", None) == "model"]
        return {"object": "list", "data": data}

    # --- description -------------------------------------------------------------------------

    def info(self) -> dict:
        info = super().info()
        del info["predictor"]  # DRUM's GPU predictors have no artifact predictor, and no such key
        return info

    def capabilities(self) -> dict:
        return {"supported_payload_formats": {"csv": None}, "supported_methods": {"chat": self.supports_chat()}}
