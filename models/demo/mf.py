"""Implicit matrix factorisation trained with BPR, exported in the torchscript contract.

BPR (Bayesian personalised ranking) learns user and item vectors so that, for a
user, an item they clicked scores above a random item: score = user . item + bias.
The exported module scores every item for a batch of user rows; its last row is the
mean user vector, which ``models.formats.torch_adapter`` uses for users it has never seen.
"""

# No `from __future__ import annotations`: TorchScript reads MFScorer's attribute
# annotations at runtime and cannot resolve them as strings.
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

__all__ = ["BPRConfig", "MFScorer", "export_torchscript", "train_bpr"]


@dataclass(frozen=True)
class BPRConfig:
    """Training settings; the defaults train the demo dataset in seconds on one core."""

    dim: int = 32
    """Length of every user and item vector."""
    epochs: int = 20
    """Passes over all training clicks, each with fresh random negatives."""
    batch_size: int = 1024
    """Clicks per Adam step."""
    learning_rate: float = 0.01
    """Adam's step size."""
    l2: float = 0.01
    """Weight of the squared norm of the vectors a batch touches; strong, because
    news clicks are sparse and weaker settings overfit the popular head."""


class MFScorer(nn.Module):
    """Scores all items for a batch of user rows: ``[B] -> [B, n_items]``."""

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    item_bias: torch.Tensor

    def __init__(
        self, user_factors: torch.Tensor, item_factors: torch.Tensor, item_bias: torch.Tensor
    ) -> None:
        super().__init__()
        self.register_buffer("user_factors", user_factors)
        self.register_buffer("item_factors", item_factors)
        self.register_buffer("item_bias", item_bias)

    def forward(self, user_index: torch.Tensor) -> torch.Tensor:
        """Dot product of each user row with every item vector, plus the item bias."""
        return self.user_factors[user_index] @ self.item_factors.t() + self.item_bias


@contextmanager
def _deterministic_torch(seed: int) -> Iterator[None]:
    """Seeded, deterministic, single-threaded torch; the caller's settings come back after."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    # One thread: float sums then happen in one order, so scores match bit for bit
    # on any machine; the model is small enough that more threads barely help.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)


def train_bpr(
    user_index: np.ndarray,
    item_index: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    seed: int,
    config: BPRConfig | None = None,
) -> MFScorer:
    """Fit user and item vectors to (user, item) click pairs; same seed, same vectors.

    The returned scorer has ``n_users + 1`` user rows: the extra one is the mean
    user, for cold start.
    """
    config = config or BPRConfig()
    with _deterministic_torch(seed):
        users = nn.Embedding(n_users, config.dim, sparse=True)
        items = nn.Embedding(n_items, config.dim, sparse=True)
        bias = nn.Embedding(n_items, 1, sparse=True)
        nn.init.normal_(users.weight, std=0.1)
        nn.init.normal_(items.weight, std=0.1)
        nn.init.zeros_(bias.weight)
        # Sparse Adam: a step moves only the rows its batch touched, so a rarely
        # clicked item is not dragged along by momentum from batches without it.
        params = [users.weight, items.weight, bias.weight]
        optimizer = torch.optim.SparseAdam(params, lr=config.learning_rate)
        clicked_user = torch.from_numpy(np.asarray(user_index, dtype=np.int64))
        clicked_item = torch.from_numpy(np.asarray(item_index, dtype=np.int64))
        n_clicks = len(clicked_user)
        for _ in range(config.epochs):
            order = torch.randperm(n_clicks)
            # Uniform negatives; the odd clicked item drawn as a negative only adds noise.
            negatives = torch.randint(0, n_items, (n_clicks,))
            for start in range(0, n_clicks, config.batch_size):
                batch = order[start : start + config.batch_size]
                pos, neg = clicked_item[batch], negatives[start : start + config.batch_size]
                u, p, n = users(clicked_user[batch]), items(pos), items(neg)
                margin = (u * (p - n)).sum(dim=1) + (bias(pos) - bias(neg)).squeeze(1)
                penalty = (u.square().sum() + p.square().sum() + n.square().sum()) / len(batch)
                loss = -functional.logsigmoid(margin).mean() + config.l2 * penalty
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()  # type: ignore[no-untyped-call]  # torch leaves step untyped
        with torch.no_grad():
            user_rows = torch.cat([users.weight, users.weight.mean(dim=0, keepdim=True)])
            return MFScorer(user_rows.clone(), items.weight.clone(), bias.weight.squeeze(1).clone())


def export_torchscript(
    scorer: MFScorer, users: Sequence[str], items: Sequence[str], directory: Path
) -> dict[str, Path]:
    """Write ``model.pt`` and ``ids.json``; return them keyed by their store names."""
    if scorer.user_factors.shape[0] != len(users) + 1 or scorer.item_factors.shape[0] != len(items):
        raise ValueError(
            f"expected {len(users) + 1} user rows and {len(items)} item rows, got "
            f"{scorer.user_factors.shape[0]} and {scorer.item_factors.shape[0]}"
        )
    with warnings.catch_warnings():
        # The serving contract (models.formats.torch_adapter) is TorchScript; its deprecation
        # in favour of torch.export does not change what the adapter loads.
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.*deprecated", category=DeprecationWarning
        )
        scripted = torch.jit.script(scorer.eval())
        scripted.save(str(directory / "model.pt"))  # type: ignore[no-untyped-call]  # untyped in torch
    ids = {"users": list(users), "items": list(items)}
    (directory / "ids.json").write_text(json.dumps(ids) + "\n", encoding="utf-8")
    return {"model.pt": directory / "model.pt", "ids.json": directory / "ids.json"}
