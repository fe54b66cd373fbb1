"""ONNX models (`.onnx`) run with onnxruntime.

The first graph input is fed the request data as float32. With several outputs, binary and multiclass
models use the first output whose name contains `prob` (skl2onnx's ZipMap list of dicts becomes a
matrix, columns in dict order), else output 0; other target types use output 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drum.errors import DrumCommonException
from drum.model.artifacts.base import ArtifactPredictor, modules_loaded
from drum.model.target import TargetType


class ONNXPredictor(ArtifactPredictor):
    name = "onnx"
    extension = ".onnx"
    extra = "onnx"

    def framework_present(self) -> bool:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def load(self, path: str | Path) -> Any:
        import onnxruntime

        return onnxruntime.InferenceSession(str(path))

    def can_use(self, model: Any) -> bool:
        if not modules_loaded("onnxruntime") or not self.framework_present():
            return False
        import onnxruntime

        return isinstance(model, onnxruntime.InferenceSession)

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[Any, None]:
        first_input = model.get_inputs()[0].name
        outputs = model.run(None, {first_input: data.to_numpy(np.float32)})
        if len(outputs) == 0:
            raise DrumCommonException("ONNX model should return at least 1 output.")
        if len(outputs) == 1 or target_type not in (TargetType.BINARY, TargetType.MULTICLASS):
            return outputs[0], None
        for meta, output in zip(model.get_outputs(), outputs, strict=False):
            if "prob" in meta.name:
                if isinstance(output, list):  # ZipMap: [{label: probability, ...}, ...]
                    import pandas as pd

                    output = pd.DataFrame(output).values
                return output, None
        return outputs[0], None
