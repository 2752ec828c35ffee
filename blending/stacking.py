"""Training a ``stack`` node's combiner offline, from logged feedback.

For every logged (user, item, label) the stack's inputs are replayed in process
for that user, exactly as the ingress runs them, and the item's features are its
normalised score in each input (0 where an input did not return it), the same
features ``blending.nodes.stack_features`` builds at serving time. A logistic
regression learns P(click) from them and is published as an ``sklearn`` model
whose feature names are the stack's inputs, so a mismatched config is refused
when the ingress loads.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.gateway import ModelGateway
from blending.items import ItemTable
from blending.nodes import stack_features
from blending.spec import StackNodeSpec, UseCaseSpec
from models.errors import ConfigError
from models.store import ArtifactStore, Manifest

__all__ = [
    "StackExamples",
    "collect_stack_examples",
    "publish_stacker",
    "read_feedback",
    "stack_node",
]

_FEEDBACK_COLUMNS = ("user_id", "item_id", "label")
_TEST_SHARE = 0.2


@dataclass(frozen=True)
class StackExamples:
    """Feature rows (one column per stack input), labels, and the users they belong to."""

    features: np.ndarray
    labels: np.ndarray
    users: np.ndarray
    feature_names: list[str]


def read_feedback(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Logged feedback: Parquet with ``user_id``, ``item_id`` and a 0/1 ``label``."""
    try:
        frame = pd.read_parquet(path, columns=list(_FEEDBACK_COLUMNS))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"feedback {path}: expected Parquet with {_FEEDBACK_COLUMNS}: {exc}"
        ) from exc
    bad = ~frame["label"].isin([0, 1])
    if bad.any():
        raise ConfigError(f"feedback {path}: label must be 0 or 1, row {int(bad.idxmax())} is not")
    return frame.astype({"user_id": str, "item_id": str, "label": np.int8})


def stack_node(spec: UseCaseSpec, use_case: str, node: str) -> StackNodeSpec:
    """The ``stack`` node ``node`` of ``use_case``, or ``ConfigError`` naming it."""
    found = spec.nodes.get(node)
    if not isinstance(found, StackNodeSpec):
        stacks = sorted(n for n, s in spec.nodes.items() if isinstance(s, StackNodeSpec))
        raise ConfigError(f"use case {use_case!r}: no stack node {node!r} (stack nodes: {stacks})")
    return found


def collect_stack_examples(
    plan: BlendPlan, node: str, feedback: pd.DataFrame, models: ModelGateway
) -> StackExamples:
    """Replay the stack's inputs for every user in ``feedback`` and build its features."""
    stack = stack_node(plan.spec, plan.name, node)

    async def replay() -> StackExamples:
        rows: list[list[float]] = []
        labels: list[int] = []
        users: list[str] = []
        for user_id, logged in feedback.groupby("user_id", sort=True):
            table = ItemTable()
            ctx = BlendContext(str(user_id), k=1, request_id=f"train-{user_id}", table=table)
            lists = await plan.evaluate(ctx, models, stack.inputs)
            items, features = stack_features([lists[n] for n in stack.inputs], stack.normalize)
            by_item = dict(zip(table.ids_of(items.items), features.tolist(), strict=True))
            absent = [0.0] * len(stack.inputs)
            for item_id, label in zip(logged["item_id"], logged["label"], strict=True):
                rows.append(by_item.get(item_id, absent))
                labels.append(int(label))
                users.append(str(user_id))
        return StackExamples(
            np.asarray(rows, dtype=np.float64).reshape(len(rows), len(stack.inputs)),
            np.asarray(labels, dtype=np.int8),
            np.asarray(users),
            list(stack.inputs),
        )

    return asyncio.run(replay())


def _split_by_user(users: np.ndarray, seed: int) -> np.ndarray:
    """True for rows of the held-out users (about a fifth, fixed by ``seed``)."""
    unique = np.unique(users)
    rng = np.random.default_rng(seed)
    held_out = set(rng.choice(unique, size=max(1, int(len(unique) * _TEST_SHARE)), replace=False))
    return np.asarray([u in held_out for u in users])


def publish_stacker(
    examples: StackExamples,
    store: ArtifactStore,
    name: str,
    version: str,
    *,
    seed: int = 7,
    extra: Mapping[str, object] | None = None,
) -> Manifest:
    """Fit the logistic combiner, report held-out AUC (and an equal-weight baseline's),
    then refit on everything and publish it as an ``sklearn`` model."""
    if len(np.unique(examples.labels)) < 2:
        raise ConfigError("cannot train a stack: the feedback needs both clicks and non-clicks")
    test = _split_by_user(examples.users, seed)
    train = ~test
    metrics: dict[str, float] = {}
    if len(np.unique(examples.labels[train])) == 2 and len(np.unique(examples.labels[test])) == 2:
        held_out = LogisticRegression(max_iter=1000).fit(
            examples.features[train], examples.labels[train]
        )
        scores = held_out.predict_proba(examples.features[test])[:, 1]
        metrics["auc"] = float(roc_auc_score(examples.labels[test], scores))
        baseline = examples.features[test].sum(axis=1)
        metrics["equal_weight_auc"] = float(roc_auc_score(examples.labels[test], baseline))
    model = LogisticRegression(max_iter=1000).fit(examples.features, examples.labels)
    coefficients = dict(zip(examples.feature_names, model.coef_[0].tolist(), strict=True))
    with tempfile.TemporaryDirectory(prefix="blendserve-stack-") as tmp:
        workdir = Path(tmp)
        joblib.dump(model, workdir / "model.joblib")
        (workdir / "features.json").write_text(
            json.dumps({"feature_names": examples.feature_names}) + "\n", encoding="utf-8"
        )
        return store.publish(
            name,
            version,
            "sklearn",
            {"model.joblib": workdir / "model.joblib", "features.json": workdir / "features.json"},
            metrics=metrics,
            description=(
                "Stacked combiner (logistic regression) over the normalised scores of "
                f"{', '.join(examples.feature_names)}, learned from logged feedback."
            ),
            extra={
                **(extra or {}),
                "coefficients": coefficients,
                "n_examples": len(examples.labels),
                "click_rate": float(examples.labels.mean()),
            },
        )
