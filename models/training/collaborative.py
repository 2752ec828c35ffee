"""The collaborative candidates, their hyperparameter grids, and the choice between
them on a validation split.

=====  ==========================================  ==========  ==========================
name   what it is                                  format      when it fits
=====  ==========================================  ==========  ==========================
ease   EASE (Steck 2019): one closed-form solve     item_item   up to tens of thousands of
       for an item-item weight matrix                          items (an items x items
                                                               inverse)
als    implicit's alternating least squares         factors     any size; scales to
       (Hu, Koren & Volinsky 2008)                             millions of items
bpr    BPR matrix factorisation in torch            torchscript the demo's original model
=====  ==========================================  ==========  ==========================

Every candidate is fitted at every point of its small grid on the training part
minus its newest ``holdout.validation`` share, and scored (recall@k, seen items
excluded) on that share; its best point is then refitted on the whole training
part and scored on the held-out test pairs. The candidate that was best on
*validation* is published; the test numbers of all of them go in its manifest.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from models.errors import ConfigError
from models.formats.factors import save_factors
from models.formats.item_item import cold_scores, item_item_scores
from models.training.measure import ScoreRows, score_split
from models.training.split import Split, time_split

__all__ = ["GRIDS", "Candidate", "Fitted", "choose_collaborative"]

_log = logging.getLogger(__name__)

GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"l2": l2} for l2 in (50.0, 200.0, 800.0)],
    "als": [
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f, r, a in ((32, 0.05, 2.0), (64, 0.05, 2.0), (64, 0.5, 10.0))
    ],
    "bpr": [{"dim": 32, "epochs": 20}],
}
"""Each candidate's hyperparameter points, small enough to train on two cores."""

_EASE_NEIGHBOURS = 256
"""EASE weights kept per item (the largest in size): the published matrix stays
sparse, and scores barely change (the weights decay fast)."""


@dataclass
class Fitted:
    """One fitted model: how it scores training users, and how it is published."""

    score_rows: ScoreRows
    export: Callable[[Path, list[str], list[str]], tuple[str, dict[str, Path], dict[str, Any]]]
    """``(directory, users, items) -> (format, files, manifest extra)``."""


def _ease(matrix: sparse.csr_matrix, l2: float, seed: int) -> Fitted:
    binary = matrix.copy()
    binary.data[:] = 1.0
    gram = (binary.T @ binary).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    n_items = weights.shape[0]
    if n_items > _EASE_NEIGHBOURS:
        # Keep each row's largest weights in size; the rest become zero.
        cut = np.argpartition(-np.abs(weights), _EASE_NEIGHBOURS - 1, axis=1)
        mask = np.zeros_like(weights, dtype=bool)
        np.put_along_axis(mask, cut[:, :_EASE_NEIGHBOURS], True, axis=1)
        weights[~mask] = 0.0
    sparse_weights = sparse.csr_matrix(weights.astype(np.float32))
    history = binary.astype(np.float32).tocsr()
    cold = cold_scores(history, sparse_weights)

    def export(
        directory: Path, users: list[str], items: list[str]
    ) -> tuple[str, dict[str, Path], dict[str, Any]]:
        sparse.save_npz(directory / "weights.npz", sparse_weights)
        sparse.save_npz(directory / "history.npz", history)
        _write_ids(directory, users, items)
        files = {n: directory / n for n in ("weights.npz", "history.npz", "ids.json")}
        return "item_item", files, {"neighbours": min(n_items, _EASE_NEIGHBOURS)}

    return Fitted(lambda rows: item_item_scores(history, sparse_weights, cold, rows), export)


def _als(
    matrix: sparse.csr_matrix,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
) -> Fitted:
    from implicit.cpu.als import AlternatingLeastSquares  # heavy: only when ALS trains

    with _one_blas_thread():  # implicit checks BLAS threads when the model is built
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=1,  # one thread: the same factors on every machine
        )
        model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
    users = np.asarray(model.user_factors, dtype=np.float32)
    items = np.asarray(model.item_factors, dtype=np.float32)
    users = np.vstack([users, users.mean(axis=0, keepdims=True)])
    items_t = np.ascontiguousarray(items.T)

    def export(
        directory: Path, user_ids: list[str], item_ids: list[str]
    ) -> tuple[str, dict[str, Path], dict[str, Any]]:
        save_factors(str(directory / "factors.npz"), users, items, None)
        _write_ids(directory, user_ids, item_ids)
        files = {n: directory / n for n in ("factors.npz", "ids.json")}
        return "factors", files, {"dim": factors}

    return Fitted(lambda rows: users[rows] @ items_t, export)


def _bpr(matrix: sparse.csr_matrix, dim: int, epochs: int, seed: int) -> Fitted:
    import torch  # heavy: only when BPR trains

    from models.demo.mf import BPRConfig, export_torchscript, train_bpr

    coo = matrix.tocoo()
    scorer = train_bpr(
        coo.row, coo.col, matrix.shape[0], matrix.shape[1], seed=seed,
        config=BPRConfig(dim=dim, epochs=epochs),
    )  # fmt: skip

    def score_rows(rows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            scores: np.ndarray = scorer(torch.from_numpy(rows.astype(np.int64))).numpy()
        return scores

    def export(
        directory: Path, users: list[str], items: list[str]
    ) -> tuple[str, dict[str, Path], dict[str, Any]]:
        return "torchscript", export_torchscript(scorer, users, items, directory), {"dim": dim}

    return Fitted(score_rows, export)


_FITTERS: dict[str, Callable[..., Fitted]] = {"ease": _ease, "als": _als, "bpr": _bpr}

_threadpool_lock = threading.Lock()


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """implicit warns when BLAS runs several threads; pin BLAS to one while it fits."""
    from threadpoolctl import threadpool_limits

    with _threadpool_lock, threadpool_limits(1, "blas"):
        yield


def _write_ids(directory: Path, users: list[str], items: list[str]) -> None:
    (directory / "ids.json").write_text(
        json.dumps({"users": users, "items": items}) + "\n", encoding="utf-8"
    )


@dataclass
class Candidate:
    """One collaborative candidate after the search."""

    name: str
    params: dict[str, Any]
    validation: dict[str, float]
    """Its best point's metrics on the validation share."""
    test: dict[str, float] = field(default_factory=dict)
    """The refitted model's metrics on the held-out pairs."""
    fitted: Fitted | None = None

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it."""
        return {"params": self.params, "validation": self.validation, "test": self.test}


def choose_collaborative(
    split: Split,
    names: list[str],
    *,
    validation: float,
    k: int,
    seed: int,
    ease_max_items: int,
    catalogue_size: int | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """Search each candidate's grid on a validation split of ``split.train``, refit
    its best point on all of ``split.train``, score every one on ``split.test``;
    returns the one best on validation and all of them, best first."""
    n_items = len(split.items)
    names = [n for n in names if not (n == "ease" and n_items > ease_max_items)]
    if not names:
        raise ConfigError(
            f"no collaborative candidate fits {n_items} items (ease is limited to "
            f"training.ease_max_items={ease_max_items}): add als or bpr"
        )
    candidates: list[Candidate] = []
    if len(names) == 1 and len(GRIDS[names[0]]) == 1:  # nothing to choose: no validation fit
        candidates.append(Candidate(names[0], GRIDS[names[0]][0], {}))
        names = []
    else:
        inner = time_split(split.train, validation)
        inner_matrix = inner.matrix()
    for name in names:
        best: tuple[float, dict[str, Any], dict[str, float]] | None = None
        for params in GRIDS[name]:
            fitted = _FITTERS[name](inner_matrix, **params, seed=seed)
            metrics = score_split(inner, fitted.score_rows, k)
            _log.info(
                "%s %s: validation recall@%d %.4f", name, params, k, metrics[f"recall_at_{k}"]
            )
            if best is None or metrics[f"recall_at_{k}"] > best[0]:
                best = (metrics[f"recall_at_{k}"], params, metrics)
        assert best is not None
        candidates.append(Candidate(name, best[1], best[2]))
    matrix = split.matrix()
    for candidate in candidates:
        candidate.fitted = _FITTERS[candidate.name](matrix, **candidate.params, seed=seed)
        candidate.test = score_split(split, candidate.fitted.score_rows, k, catalogue_size)
    key = f"recall_at_{k}"
    candidates.sort(key=lambda c: -c.validation.get(key, 0.0))  # stable: ties keep config order
    return candidates[0], candidates
