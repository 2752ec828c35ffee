"""Offline evaluation of use cases on held-out interactions (``blendserve evaluate``).

Plain Python (no Ray), like ``training.py``: every model a use case calls is loaded
in this process at its live version, and the use case's DAG is replayed for each
held-out user once per *blend*: the use case's output, each arm of its experiments,
each team of its interleavings and each source node, every one run as if it were
the output. Several configs can be compared on the same data.

Each user's training items are excluded (the request's ``exclude``, with sources
asked for that many more candidates), so every user gets k items they have not
seen: without it, popularity is rewarded for recommending what users already
have. A held-out set that overlaps the training data is refused. The metrics are
``models.metrics``' (the ones training writes into the manifests), each with a 95%
interval over users.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blending.candidates import BlendContext
from blending.catalog import ItemCatalog, StaticCatalog
from blending.dag import BlendPlan
from blending.gateway import LocalModels
from blending.spec import ExperimentNodeSpec, InterleaveNodeSpec, SourceNodeSpec, UseCaseSpec
from deployments.config import AppConfig, load_app, resolve_store
from deployments.offline.held_out import held_out_and_train, pairs
from models.errors import ConfigError
from models.metrics import PER_USER_METRICS, evaluate_lists
from models.registry import load_model
from models.store import ArtifactStore

__all__ = [
    "METRICS",
    "Blend",
    "BlendScores",
    "EvaluationReport",
    "evaluate",
    "use_case_blends",
]

METRICS = ("precision", "recall", "ndcg", "map", "coverage", "novelty")
"""The columns of the report, in order (keys of ``models.metrics.evaluate_lists``)."""

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
    """``models.metrics.evaluate_lists``: each metric, ``<metric>_ci`` for the four
    means over users, and ``users``."""
    lists: dict[str, list[str]]
    degraded: int = 0
    """Users whose list lacked a source or model that failed (see ``failure``)."""
    failure: str | None = None
    """The first failure seen, for the report."""
    config: str = ""
    """Which config the blend is from (its file name), when several are compared."""

    @property
    def label(self) -> str:
        """The blend's name, prefixed by its config's when several are compared."""
        return f"{self.config}: {self.blend.node}" if self.config else self.blend.node


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``blendserve evaluate`` prints and writes; ``rows`` best nDCG first."""

    configs: list[str]
    app: str
    use_case: str
    k: int
    data: str
    interactions: int
    users: int
    items: int
    catalogue_size: int
    popularity_from: str
    excluded: str
    """Whose items were left out of every list (each user's training items, or none)."""
    rows: list[BlendScores] = field(default_factory=list)

    @property
    def config(self) -> str:
        """The configs compared, comma-separated."""
        return ", ".join(self.configs)

    def cell(self, row: BlendScores, metric: str) -> str:
        """A metric as printed: a mean over users shows its 95% interval's half-width."""
        value = row.metrics[metric]
        if metric == "novelty":
            return f"{value:.2f}"
        if metric in PER_USER_METRICS:
            return f"{value:.4f} ±{row.metrics[f'{metric}_ci']:.4f}"
        return f"{value:.4f}"

    def table(self) -> str:
        """A plain-text summary and one row per blend (sorted by nDCG@k)."""
        k = self.k
        header = ["BLEND", "ROLE", *(f"{m.upper()}@{k}" for m in METRICS[:4])]
        header += ["COVERAGE", "NOVELTY", "USERS"]
        cells = [
            [
                row.label,
                ", ".join(row.blend.roles),
                *(self.cell(row, m) for m in METRICS),
                str(int(row.metrics["users"])),
            ]
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
        lines = [
            f"use case {self.use_case!r} of application {self.app!r} ({self.config}), k={k}",
            f"held-out: {self.data}: {self.interactions} relevant interactions, "
            f"{self.users} users, {self.items} items; catalogue {self.catalogue_size} items",
            f"excluded from every list: {self.excluded}",
            f"novelty: item popularity from {self.popularity_from}; rows by ndcg@{k}; "
            "± is the half-width of a 95% interval over users",
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
                    f"warning: {row.label} was degraded for {row.degraded} users "
                    f"(first: {row.failure})"
                )
        return "\n".join(lines)


def use_case_blends(spec: UseCaseSpec) -> list[Blend]:
    """The output, then each experiment arm, each interleaving team and each source
    node; once per node."""
    roles: dict[str, list[str]] = {spec.output: ["output"]}
    for name, node in spec.nodes.items():
        if isinstance(node, ExperimentNodeSpec):
            for arm, arm_spec in node.arms.items():
                roles.setdefault(arm_spec.node, []).append(f"arm {arm} of {name}")
    for name, node in spec.nodes.items():
        if isinstance(node, InterleaveNodeSpec):
            for team in node.teams:
                roles.setdefault(team, []).append(f"team of {name}")
    for name, node in spec.nodes.items():
        if isinstance(node, SourceNodeSpec):
            roles.setdefault(name, []).append(f"source ({node.model})")
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
    config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str] | None = None,
    *,
    use_case: str | None = None,
    k: int = 10,
    app: str | None = None,
    train: str | os.PathLike[str] | None = None,
    data_config: str | os.PathLike[str] | None = None,
    exclude_seen: bool = True,
) -> EvaluationReport:
    """Replay held-out users through every blend of ``use_case`` in each config and
    score the lists.

    The held-out and training interactions come from ``data`` and ``train`` (by
    default the ``train.parquet`` beside ``data``), or from ``data_config``: the same
    time split ``blendserve train`` measured its models on. Each user's training items
    are excluded from their lists unless ``exclude_seen`` is false. ``use_case`` may
    be left out when the application has only one; ``app`` defaults to each config's
    first.
    """
    if k < 1:
        raise ConfigError(f"k: expected at least 1, got {k}")
    configs = [config] if isinstance(config, (str, os.PathLike)) else list(config)
    if not configs:
        raise ConfigError("give at least one config")
    applications: list[tuple[str, AppConfig, str]] = []
    app_name = ""
    for path in configs:
        app_name, application = load_app(path, app)
        use_cases = application.live.use_cases
        chosen = use_case
        if chosen is None:
            if len(use_cases) != 1:
                raise ConfigError(
                    f"{path}: choose a use case with --use-case ({sorted(use_cases)})"
                )
            chosen = next(iter(use_cases))
        if chosen not in use_cases:
            raise ConfigError(f"{path}: no use case {chosen!r} (have {sorted(use_cases)})")
        use_case = chosen
        applications.append((str(path), application, chosen))
    held_out, trained, data_label, train_label = held_out_and_train(data, train, data_config)
    if trained is not None:
        overlap = pairs(held_out).intersection(pairs(trained))
        if len(overlap):
            user, item = overlap[0]
            raise ConfigError(
                f"{len(overlap)} held-out interactions are also in the training data (e.g. "
                f"user {user!r}, item {item!r}): a model would be scored on what it was "
                "trained with. Hold out a disjoint part (blendserve train writes one)."
            )
    if exclude_seen and trained is None:
        raise ConfigError(
            "no training interactions to exclude: give --train (the data the models were "
            "trained on; blendserve train writes train.parquet) or --include-seen"
        )
    seen: dict[str, frozenset[str]] = {}
    if exclude_seen and trained is not None:
        seen = {u: frozenset(g) for u, g in trained.groupby("user_id")["item_id"]}
    popularity = held_out if trained is None else trained
    users = sorted(held_out["user_id"].unique())
    relevant = {u: set(g) for u, g in held_out.groupby("user_id")["item_id"]}
    counts = popularity.groupby("item_id")["user_id"].nunique().to_dict()
    n_users = int(popularity["user_id"].nunique())

    labelled: list[tuple[str, str, list[Blend], list[_Replayed], set[str]]] = []
    for path, application, chosen in applications:
        blends = use_case_blends(application.live.use_cases[chosen])
        models = _load_models(application, blends)
        catalog, catalog_items = _load_catalog(application)
        replayed = asyncio.run(_replay(chosen, blends, models, users, k, catalog, seen))
        label = Path(path).name if len(configs) > 1 else ""
        labelled.append((label, path, blends, replayed, catalog_items))

    catalogue = set(popularity["item_id"])
    if trained is None:
        catalogue |= set(held_out["item_id"])
    for _, _, _, replayed, catalog_items in labelled:
        catalogue |= catalog_items
        catalogue |= {
            item for lists, _, _ in replayed for items in lists.values() for item in items
        }
    rows = [
        BlendScores(
            blend,
            evaluate_lists(lists, relevant, k, len(catalogue), counts, n_users),
            lists,
            degraded,
            failure,
            label,
        )
        for label, _, blends, replayed, _ in labelled
        for blend, (lists, degraded, failure) in zip(blends, replayed, strict=True)
    ]
    rows.sort(key=lambda row: (-row.metrics["ndcg"], row.config, row.blend.node))
    return EvaluationReport(
        configs=[path for _, path, _, _, _ in labelled],
        app=app_name,
        use_case=str(use_case),
        k=k,
        data=data_label,
        interactions=len(held_out),
        users=len(users),
        items=int(held_out["item_id"].nunique()),
        catalogue_size=len(catalogue),
        popularity_from=(
            "the held-out data itself (no training data given)"
            if train_label is None
            else train_label
        ),
        excluded=(
            f"each user's training items ({train_label})" if seen else "nothing (--include-seen)"
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
    return catalog, catalog.item_ids()


_Replayed = tuple[dict[str, list[str]], int, str | None]


async def _replay(
    use_case: str,
    blends: Sequence[Blend],
    models: LocalModels,
    users: Sequence[str],
    k: int,
    catalog: ItemCatalog | None,
    seen: dict[str, frozenset[str]],
) -> list[_Replayed]:
    """Each blend's top-k item ids per user (their ``seen`` items excluded: sources
    are asked for that many more candidates), its degraded count and first failure."""
    plans = [BlendPlan(use_case, blend.spec) for blend in blends]
    results: list[_Replayed] = []
    nothing: frozenset[str] = frozenset()
    for plan in plans:
        lists: dict[str, list[str]] = {}
        degraded = 0
        failure: str | None = None
        for user in users:
            excluded = seen.get(user, nothing)
            # A fixed request id seeds interleaving, so a rerun gives the same lists.
            ctx = BlendContext(
                user, k + len(excluded), excluded, request_id=f"evaluate:{user}", catalog=catalog
            )
            outcome = await plan.run(ctx, models, started=time.monotonic() + _FAR_FUTURE_S)
            # A plan without a filter node keeps excluded items: drop them here.
            items = [c.item_id for c in outcome.items if c.item_id not in excluded]
            lists[user] = items[:k]
            if outcome.degraded:
                degraded += 1
                if failure is None:
                    failure = "; ".join(f"{n}: {r}" for n, r in outcome.failures.items())
        results.append((lists, degraded, failure))
    return results
