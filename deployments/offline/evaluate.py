"""Offline evaluation of a use case's blends on held-out interactions (``blendserve evaluate``).

Plain Python (no Ray), like ``training.py``: every model the use case calls is loaded
in this process at its live version, and the use case's DAG is replayed for each
held-out user once per *blend*: the use case's output, each arm of its experiments
and each team of its interleavings, every one run as if it were the output. No
budget cuts anything short and nothing is excluded, so the lists are what each blend
would serve given time. The metrics are ``blending.evaluation.offline``'s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from blending.candidates import BlendContext
from blending.catalog import ItemCatalog, StaticCatalog
from blending.dag import BlendPlan
from blending.evaluation.offline import evaluate_lists
from blending.gateway import LocalModels
from blending.spec import ExperimentNodeSpec, InterleaveNodeSpec, UseCaseSpec
from deployments.config import AppConfig, load_app, resolve_store
from models.demo.movielens import read_movielens
from models.errors import ConfigError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = [
    "METRICS",
    "RELEVANT_RATING",
    "Blend",
    "BlendScores",
    "EvaluationReport",
    "evaluate",
    "read_interactions",
    "use_case_blends",
]

RELEVANT_RATING = 4.0
"""A MovieLens rating at or above this makes the movie relevant to the user."""

METRICS = ("precision", "recall", "ndcg", "map", "coverage", "novelty")
"""The columns of the report, in order (keys of ``blending.evaluation.offline.evaluate_lists``)."""

_MOVIELENS_FILES = ("ratings.dat", "ratings.csv", "u.data")
_FAR_FUTURE_S = 1e9
"""Added to the start time so no deadline passes offline: completeness over latency."""


@dataclass(frozen=True)
class Blend:
    """One node of a use case evaluated as the output, and why it is a blend."""

    node: str
    roles: tuple[str, ...]
    """``output``, ``arm A of X``, ``team of Y``: every way the use case uses it."""
    spec: UseCaseSpec
    """The use case cut down to what ``node`` reads, with ``node`` as its output."""


@dataclass(frozen=True)
class BlendScores:
    """One blend's metrics, the lists they came from and how many answers were degraded."""

    blend: Blend
    metrics: dict[str, float]
    lists: dict[str, list[str]]
    degraded: int = 0
    """Users whose list lacked a source or model that failed (see ``failure``)."""
    failure: str | None = None
    """The first failure seen, for the report."""


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``blendserve evaluate`` prints and writes; ``rows`` best nDCG first."""

    config: str
    app: str
    use_case: str
    k: int
    data: str
    interactions: int
    users: int
    items: int
    catalogue_size: int
    popularity_from: str
    rows: list[BlendScores] = field(default_factory=list)

    def table(self) -> str:
        """A plain-text summary and one row per blend (sorted by nDCG@k)."""
        k = self.k
        header = ["BLEND", "ROLE", *(f"{m.upper()}@{k}" for m in METRICS[:4])]
        header += ["COVERAGE", "NOVELTY", "USERS"]
        cells = [
            [
                row.blend.node,
                ", ".join(row.blend.roles),
                *(f"{row.metrics[m]:.4f}" for m in METRICS[:5]),
                f"{row.metrics['novelty']:.2f}",
                str(int(row.metrics["users"])),
            ]
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
        lines = [
            f"use case {self.use_case!r} of application {self.app!r} ({self.config}), k={k}",
            f"held-out: {self.data}: {self.interactions} relevant interactions, "
            f"{self.users} users, {self.items} items; catalogue {self.catalogue_size} items",
            f"novelty: item popularity from {self.popularity_from}; rows by ndcg@{k}",
            "",
        ]
        for line in [header, *cells]:
            padded = [
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append("  ".join(padded).rstrip())
        for row in self.rows:
            if row.degraded:
                lines.append(
                    f"warning: {row.blend.node} was degraded for {row.degraded} users "
                    f"(first: {row.failure})"
                )
        return "\n".join(lines)


def read_interactions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Relevant ``(user_id, item_id)`` pairs, as strings, without repeats.

    A Parquet file with ``user_id`` and ``item_id`` (rows with ``label <= 0`` dropped
    when it has a ``label``), a directory with ``interactions.parquet`` (the demo's
    layout), or MovieLens ratings (``ratings.dat``, ``ratings.csv``, ``u.data``, or a
    directory holding one) where a rating of at least 4 is relevant.
    """
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: interaction data does not exist")
    if source.is_dir() and (source / "interactions.parquet").is_file():
        source = source / "interactions.parquet"
    if source.is_file() and source.suffix in (".parquet", ".pq"):
        frame = _read_parquet(source)
    elif (
        source.is_dir()
        or source.name in _MOVIELENS_FILES
        or source.suffix in (".dat", ".data", ".csv")
    ):
        ratings = read_movielens(source, min_rating=RELEVANT_RATING).interactions
        frame = ratings[["user_id", "item_id"]]
    else:
        raise ConfigError(
            f"{source}: expected a Parquet file (.parquet) with user_id and item_id, or "
            f"MovieLens ratings ({', '.join(_MOVIELENS_FILES)})"
        )
    frame = frame.astype({"user_id": str, "item_id": str}).drop_duplicates(ignore_index=True)
    if frame.empty:
        raise ConfigError(f"{source}: holds no relevant interaction")
    return frame


def _read_parquet(source: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot read Parquet: {exc}") from exc
    missing = {"user_id", "item_id"} - set(table.column_names)
    if missing:
        raise ConfigError(
            f"{source}: expected columns user_id and item_id (and optional label), "
            f"missing {sorted(missing)}"
        )
    columns = [c for c in ("user_id", "item_id", "label") if c in table.column_names]
    frame = table.select(columns).to_pandas()
    if "label" in frame:
        try:
            frame = frame[pd.to_numeric(frame["label"]) > 0]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: label must be numeric: {exc}") from exc
    return frame[["user_id", "item_id"]]


def use_case_blends(spec: UseCaseSpec) -> list[Blend]:
    """The output, then each experiment arm, then each interleaving team; once per node."""
    roles: dict[str, list[str]] = {spec.output: ["output"]}
    for name, node in spec.nodes.items():
        if isinstance(node, ExperimentNodeSpec):
            for arm, arm_spec in node.arms.items():
                roles.setdefault(arm_spec.node, []).append(f"arm {arm} of {name}")
    for name, node in spec.nodes.items():
        if isinstance(node, InterleaveNodeSpec):
            for team in node.teams:
                roles.setdefault(team, []).append(f"team of {name}")
    return [Blend(node, tuple(r), _as_output(spec, node)) for node, r in roles.items()]


def _as_output(spec: UseCaseSpec, node: str) -> UseCaseSpec:
    """``spec`` with ``node`` as the output, keeping only the nodes it reads (a use case
    may not carry nodes that do not feed its output)."""
    if node == spec.output:
        return spec
    keep = spec.reachable(node)
    nodes = {name: n for name, n in spec.nodes.items() if name in keep}
    return UseCaseSpec(nodes=nodes, output=node, budget_ms=spec.budget_ms)


def evaluate(
    config: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    use_case: str | None = None,
    k: int = 10,
    app: str | None = None,
    train: str | os.PathLike[str] | None = None,
) -> EvaluationReport:
    """Replay ``data``'s users through every blend of ``use_case`` and score the lists.

    ``use_case`` may be left out when the application has only one; ``app`` defaults
    to the config's first. Novelty uses item popularity in ``train`` when given, else
    in ``data`` itself.
    """
    if k < 1:
        raise ConfigError(f"k: expected at least 1, got {k}")
    app_name, application = load_app(config, app)

    use_cases = application.live.use_cases
    if use_case is None:
        if len(use_cases) != 1:
            raise ConfigError(f"{config}: choose a use case with --use-case ({sorted(use_cases)})")
        use_case = next(iter(use_cases))
    if use_case not in use_cases:
        raise ConfigError(f"{config}: no use case {use_case!r} (have {sorted(use_cases)})")
    held_out = read_interactions(data)
    popularity = held_out if train is None else read_interactions(train)
    blends = use_case_blends(use_cases[use_case])
    models = _load_models(application, blends)
    catalog, catalog_items = _load_catalog(application)
    users = sorted(held_out["user_id"].unique())
    replayed = asyncio.run(_replay(use_case, blends, models, users, k, catalog))

    relevant = {u: set(g) for u, g in held_out.groupby("user_id")["item_id"]}
    counts = popularity.groupby("item_id")["user_id"].nunique().to_dict()
    n_users = int(popularity["user_id"].nunique())
    catalogue = set(held_out["item_id"]) | set(popularity["item_id"])
    catalogue |= {item for lists, _, _ in replayed for items in lists.values() for item in items}
    catalogue |= catalog_items
    rows = [
        BlendScores(
            blend,
            evaluate_lists(lists, relevant, k, len(catalogue), counts, n_users),
            lists,
            degraded,
            failure,
        )
        for blend, (lists, degraded, failure) in zip(blends, replayed, strict=True)
    ]
    rows.sort(key=lambda row: (-row.metrics["ndcg"], row.blend.node))
    return EvaluationReport(
        config=str(config),
        app=app_name,
        use_case=use_case,
        k=k,
        data=str(data),
        interactions=len(held_out),
        users=len(users),
        items=int(held_out["item_id"].nunique()),
        catalogue_size=len(catalogue),
        popularity_from=(
            "the held-out data itself (no --train given)" if train is None else str(train)
        ),
        rows=rows,
    )


def _load_models(app: AppConfig, blends: Sequence[Blend]) -> LocalModels:
    """Every model the blends call, in process, at its live version."""
    store = ArtifactStore(resolve_store(app.args.store))
    needed = sorted({model for blend in blends for model in blend.spec.models()})
    return LocalModels(
        {
            m: load_model(store, m, app.rollouts[m].version, app.args.models[m].options)
            for m in needed
        }
    )


def _load_catalog(app: AppConfig) -> tuple[ItemCatalog | None, set[str]]:
    """The config's item catalogue as the ingress loads it (``filter`` and ``diversify``
    read it), and its item ids (they count towards the catalogue's size)."""
    if app.args.catalog is None:
        return None, set()
    path = resolve_store(app.args.catalog)
    catalog = StaticCatalog.from_parquet(path)  # names the file when it is unreadable
    ids = pq.read_table(path, columns=["item_id"]).column("item_id").to_pylist()
    return catalog, {str(item) for item in ids}


_Replayed = tuple[dict[str, list[str]], int, str | None]


async def _replay(
    use_case: str,
    blends: Sequence[Blend],
    models: LocalModels,
    users: Sequence[str],
    k: int,
    catalog: ItemCatalog | None,
) -> list[_Replayed]:
    """Each blend's top-k item ids per user, its degraded count and first failure."""
    plans = [BlendPlan(use_case, blend.spec) for blend in blends]
    results: list[_Replayed] = []
    for plan in plans:
        lists: dict[str, list[str]] = {}
        degraded = 0
        failure: str | None = None
        for user in users:
            # A fixed request id seeds interleaving, so a rerun gives the same lists.
            ctx = BlendContext(user, k, request_id=f"evaluate:{user}", catalog=catalog)
            outcome = await plan.run(ctx, models, started=time.monotonic() + _FAR_FUTURE_S)
            lists[user] = [c.item_id for c in outcome.items]
            if outcome.degraded:
                degraded += 1
                if failure is None:
                    failure = "; ".join(f"{n}: {r}" for n, r in outcome.failures.items())
        results.append((lists, degraded, failure))
    return results
