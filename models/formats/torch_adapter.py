"""PyTorch models exported with TorchScript (``model.pt``, optional ``ids.json``).

The two shapes of :mod:`models.formats.tensor_adapter`: a recommender whose
``forward(user_index: LongTensor[B])`` returns scores ``[B, len(items)]``, or a
tensor model whose ``forward(FloatTensor[B, F])`` answers one row per instance.
Options: ``device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) and
``predict_top_n``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from models.ann import ItemVectors
from models.errors import ModelError
from models.formats.tensor_adapter import TensorModelAdapter

__all__ = ["TorchScriptAdapter", "pick_device"]


def pick_device(requested: str | None) -> torch.device:
    """``cuda`` when a GPU is present (unless ``cpu`` is requested), else ``cpu``."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {requested!r} requested but no GPU is visible")
    return torch.device(requested)


class TorchScriptAdapter(TensorModelAdapter):
    """A TorchScript module on ``cuda`` when available, else on the CPU."""

    format = "torchscript"
    primary_file = "model.pt"

    def open(self) -> None:
        """Load the module onto the chosen device in eval mode."""
        self.device = pick_device(self.options.get("device"))
        with warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript in favour of torch.export; TorchScript is
            # still the format data scientists ship, so loading it must stay quiet.
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            self._module = torch.jit.load(  # type: ignore[no-untyped-call]
                str(self.directory / "model.pt"), map_location=self.device
            )
        self._module.eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The module's output for one batch, back on the CPU as numpy."""
        with torch.inference_mode():
            output: torch.Tensor = self._module(torch.from_numpy(batch).to(self.device))
        return output.cpu().numpy()

    def item_vectors(self) -> ItemVectors | None:
        """The vectors of a module that keeps them as ``user_factors`` (its last row the
        cold-start user), ``item_factors`` and ``item_bias`` (the demo's ``MFScorer``
        contract); ``None`` for any other module."""
        try:
            tensors = [
                getattr(self._module, name).detach().cpu().numpy().astype(np.float32, copy=False)
                for name in ("user_factors", "item_factors", "item_bias")
            ]
        except AttributeError:
            return None
        return ItemVectors(*tensors)

    def check_health(self) -> None:
        """On a GPU, run a tiny kernel: a lost device or a sticky CUDA error raises."""
        if self.device.type == "cuda":
            torch.ones(1, device=self.device).add_(1).item()
