"""PyTorch models exported with TorchScript (``model.pt``, optional ``ids.json``).

Two shapes are served. A *recommender* ships ``ids.json`` (``{"users": [...],
"items": [...]}``) and a module whose ``forward(user_index: LongTensor[B])`` returns
scores ``[B, len(items)]``; index ``len(users)`` is reserved for users the model has
never seen (a cold-start row). Without ``ids.json`` the module is a plain tensor
model: ``forward(FloatTensor[B, F])`` over numeric instances.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from models._inputs import to_feature_matrix, to_user_ids
from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem
from models.errors import ModelError

__all__ = ["TorchScriptAdapter", "pick_device"]


def pick_device(requested: str | None) -> torch.device:
    """``cuda`` when a GPU is present (unless ``cpu`` is requested), else ``cpu``."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {requested!r} requested but no GPU is visible")
    return torch.device(requested)


class TorchScriptAdapter(ModelAdapter, Recommender):
    """A TorchScript module on ``cuda`` when available, else on the CPU."""

    format = "torchscript"
    primary_file = "model.pt"

    def load(self) -> None:
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
        ids_path = self.directory / "ids.json"
        self.users: dict[str, int] | None = None
        self.items: list[str] = []
        if ids_path.is_file():
            ids = json.loads(ids_path.read_text(encoding="utf-8"))
            self.users = {str(u): i for i, u in enumerate(ids["users"])}
            self.items = [str(i) for i in ids["items"]]
        self.n_features = int(self.manifest.extra.get("n_features", 0))

    def example_instances(self) -> list[Any] | None:
        """The published examples, else a row of zeros for a tensor model of known width
        (a recommender's smoke test is a recommendation)."""
        examples = super().example_instances()
        if examples is None and self.users is None and self.n_features > 0:
            return [[0.0] * self.n_features]
        return examples

    def check_health(self) -> None:
        """On a GPU, run a tiny kernel: a lost device or a sticky CUDA error raises."""
        if self.device.type == "cuda":
            torch.ones(1, device=self.device).add_(1).item()

    def _scores(self, users: Sequence[str]) -> torch.Tensor:
        assert self.users is not None
        cold = len(self.users)
        index = torch.tensor([self.users.get(u, cold) for u in users], dtype=torch.long)
        with torch.inference_mode():
            scores: torch.Tensor = self._module(index.to(self.device))
        if scores.shape != (len(users), len(self.items)):
            raise ModelError(
                f"model {self.name!r}: expected scores of shape {(len(users), len(self.items))}, "
                f"got {tuple(scores.shape)}"
            )
        return scores

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """Top ``n`` items per user, scored by the module."""
        if self.users is None:
            raise ModelError(f"model {self.name!r} is not a recommender (no ids.json)")
        if not queries:
            return []
        scores = self._scores([q.user_id for q in queries])
        top = torch.topk(scores, k=min(n, len(self.items)), dim=1)
        values, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
        return [
            [(self.items[i], float(s)) for i, s in zip(row_idx, row_val, strict=True)]
            for row_idx, row_val in zip(indices, values, strict=True)
        ]

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """Recommenders: the top 10 per user id; tensor models: the module's outputs."""
        if self.users is not None:
            queries = [RecommendQuery(u) for u in to_user_ids(instances)]
            return [
                {"items": [i for i, _ in row], "scores": [s for _, s in row]}
                for row in self.recommend(queries, int(self.options.get("predict_top_n", 10)))
            ]
        matrix = to_feature_matrix(
            instances, self.n_features, self.manifest.extra.get("feature_names")
        )
        with torch.inference_mode():
            output = self._module(torch.from_numpy(matrix).to(self.device))
        return output.cpu().tolist()  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """A recommender only when it ships ``ids.json``; else a tensor model."""
        return {**super().describe(), "recommender": self.users is not None}
