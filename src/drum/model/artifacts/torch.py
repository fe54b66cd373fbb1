"""PyTorch models saved whole with `torch.save(model, "model.pth")` (`.pth`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drum.model.artifacts.base import ArtifactPredictor, modules_loaded
from drum.model.target import TargetType


class PyTorchPredictor(ArtifactPredictor):
    name = "torch"
    extension = ".pth"
    extra = "torch"

    def framework_present(self) -> bool:
        try:
            import torch.nn  # noqa: F401
        except ImportError:
            return False
        return True

    def load(self, path: str | Path) -> Any:
        import torch

        # torch >= 2.6 loads weights only by default; a whole pickled module needs weights_only=False.
        model = torch.load(path, weights_only=False)
        model.eval()
        return model

    def can_use(self, model: Any) -> bool:
        if not modules_loaded("torch") or not self.framework_present():
            return False
        import torch.nn

        return isinstance(model, torch.nn.Module)

    def predict(
        self, data: Any, model: Any, target_type: TargetType, labels: list[str] | None
    ) -> tuple[np.ndarray, None]:
        import torch

        values = data if isinstance(data, np.ndarray) else data.values
        tensor = torch.from_numpy(values).type(torch.FloatTensor)
        with torch.no_grad():
            return model(tensor).cpu().data.numpy(), None
