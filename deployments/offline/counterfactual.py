"""``blendserve evaluate --counterfactual CANDIDATE``: the CTR a candidate use-case
config would have reached on the traffic already served, from the event log alone.

Each logged list of the use case (with its propensities: ``explore`` in the serving
config makes them useful, ``blending/exploration.py``) is run again in this process
under the candidate's use case, with the request's logged inputs (as ``blendserve
replay`` does); the logged clicks at the positions where both lists agree, weighted
by their propensities, estimate the candidate's CTR (IPS, SNIPS, doubly robust:
``blending/evaluation/counterfactual.py``), next to the logged policy's own.

The log holds pseudonyms, not user ids: they are resolved with the pseudonym salt
over the users the serving models know (each version's ``ids.json``) or a
``--users`` file. Lists whose user cannot be resolved are left out and counted.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from blending.catalog import ItemCatalog
from blending.dag import BlendPlan
from blending.evaluation.counterfactual import (
    CounterfactualReport,
    LoggedLists,
    counterfactual_estimates,
)
from blending.gateway import LocalModels
from deployments.config import AppConfig, load_app, resolve_store
from deployments.events.feedback import Pseudonymizer
from deployments.events.replay_record import decode_inputs
from deployments.events.store import open_dataset_root, read_events
from deployments.offline.replay import (
    current_catalogue,
    load_models,
    pseudonym_salt,
    request_context,
)
from models.errors import ConfigError
from models.store import ArtifactStore

__all__ = ["CounterfactualRun", "evaluate_counterfactual", "evaluate_counterfactuals"]

_SERVED_COLUMNS = ["request_id", "user", "items", "propensities", "inputs", "model_versions"]


@dataclass
class CounterfactualRun:
    """What ``evaluate --counterfactual`` found: the estimates and what was left out."""

    config: str
    candidate: str
    app: str
    use_case: str
    report: CounterfactualReport
    skipped: dict[str, int] = field(default_factory=dict)
    """Logged lists left out, by reason."""

    def table(self) -> str:
        """The estimates as a text table."""
        lines = [
            f"counterfactual CTR of {self.candidate} ({self.app}/{self.use_case}) on "
            f"{self.report.lists} lists served under {self.config}; the candidate agrees "
            f"with {self.report.agreement:.1%} of the logged positions",
            f"{'estimator':<10} {'CTR':>8} {'95% interval':>20} {'effective lists':>16}",
        ]
        for e in (self.report.logged, self.report.ips, self.report.snips, self.report.dr):
            name = "logged" if e.estimator == "logged" else e.estimator.upper()
            lines.append(
                f"{name:<10} {e.ctr:>8.4f} {f'{e.low:.4f} - {e.high:.4f}':>20} "
                f"{e.effective_lists:>16.0f}"
            )
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"left out: {count} lists ({reason})")
        return "\n".join(lines)


def _known_users(app: AppConfig, users_file: Path | None) -> list[str]:
    """User ids to resolve pseudonyms over: ``users_file``'s ``user_id`` column, else
    every user the app's live model versions know (their ``ids.json``)."""
    if users_file is not None:
        read = pq.read_table if users_file.suffix == ".parquet" else pa_csv.read_csv
        table = read(users_file)
        if "user_id" not in table.column_names:
            raise ConfigError(f"{users_file}: expected a user_id column, got {table.column_names}")
        return [str(u) for u in table.column("user_id").to_pylist()]
    store = ArtifactStore(resolve_store(app.args.store))
    users: set[str] = set()
    for model, rollout in app.rollouts.items():
        ids = store.path(model, rollout.version) / "ids.json"
        if ids.is_file():
            users.update(str(u) for u in json.loads(ids.read_text()).get("users", []))
    return sorted(users)


def _clicks(feedback: pa.Table) -> set[tuple[str, int]]:
    """(request id, position from 1) of every click."""
    clicked = feedback.filter(pc.equal(feedback["event"], "click"))
    return set(
        zip(
            clicked["request_id"].to_pylist(),
            clicked["position"].to_pylist(),
            strict=True,
        )
    )


def evaluate_counterfactual(
    config: str | Path,
    candidate: str | Path,
    use_case: str | None = None,
    app: str | None = None,
    events: str | None = None,
    users: Path | None = None,
    limit: int | None = None,
) -> CounterfactualRun:
    """Estimate ``candidate``'s CTR on the lists ``config``'s app served for
    ``use_case`` (from ``events``, default: the app's event log; at most ``limit``
    lists, the latest)."""
    if use_case is None:
        _, serving = load_app(config, app)
        if len(serving.live.use_cases) != 1:
            raise ConfigError(f"name a use case: {sorted(serving.live.use_cases)}")
        use_case = next(iter(serving.live.use_cases))
    runs = evaluate_counterfactuals(config, candidate, [use_case], app, events, users, limit)
    return runs[use_case]


def evaluate_counterfactuals(
    config: str | Path,
    candidate: str | Path,
    use_cases: Sequence[str],
    app: str | None = None,
    events: str | None = None,
    users: Path | None = None,
    limit: int | None = None,
) -> dict[str, CounterfactualRun]:
    """:func:`evaluate_counterfactual` for each of ``use_cases``, reading the configs,
    the event log, the users and each set of models once for all of them."""
    app_name, serving = load_app(config, app)
    _, other = load_app(candidate, app_name if app else None)
    for use_case in use_cases:
        if use_case not in other.live.use_cases:
            raise ConfigError(f"{candidate}: no use case {use_case!r} to evaluate")
    if events is None:
        if serving.args.events is None:
            raise ConfigError(f"application {app_name!r} keeps no event log (args.events)")
        events = serving.args.events.dataset_uri(app_name)
    filesystem, root = open_dataset_root(events)
    all_served = read_events(filesystem, root, "served", [*_SERVED_COLUMNS, "use_case", "ts"])
    clicks = _clicks(read_events(filesystem, root, "feedback", ["event", "request_id", "position"]))
    salt = pseudonym_salt()
    if salt is None:
        raise ConfigError(
            "no pseudonym salt ($BLENDSERVE_PSEUDONYM_SALT): users cannot be resolved"
        )
    pseudonym = Pseudonymizer(salt.encode())
    by_pseudonym = {pseudonym(user): user for user in _known_users(serving, users)}
    store = ArtifactStore(resolve_store(other.args.store))
    catalog = current_catalogue(serving, app_name)
    loaded: dict[frozenset[str], LocalModels] = {}  # use cases calling the same models share them
    runs: dict[str, CounterfactualRun] = {}
    for use_case in use_cases:
        served = all_served.filter(pc.equal(all_served["use_case"], use_case))
        served = served.sort_by([("ts", "descending")])
        if limit is not None:
            served = served.slice(0, limit)
        spec = other.live.use_cases[use_case]
        needed = frozenset(spec.models())
        if needed not in loaded:
            models, _, problems = load_models(store, other, spec, {})
            if problems:
                raise ConfigError("; ".join(problems))
            loaded[needed] = models
        plan = BlendPlan(use_case, spec)
        report, skipped = asyncio.run(
            _estimate(served, clicks, by_pseudonym, plan, loaded[needed], catalog)
        )
        runs[use_case] = CounterfactualRun(
            str(config), str(candidate), app_name, use_case, report, skipped
        )
    return runs


async def _estimate(
    served: pa.Table,
    clicks: set[tuple[str, int]],
    by_pseudonym: dict[str, str],
    plan: BlendPlan,
    models: LocalModels,
    catalog: ItemCatalog | None,
) -> tuple[CounterfactualReport, dict[str, int]]:
    """The report over every logged list whose user resolves, and what was left out."""
    codes: dict[str, int] = {}
    logged_rows: list[list[int]] = []
    candidate_rows: list[list[int]] = []
    chance_rows: list[list[float]] = []
    click_rows: list[list[float]] = []
    skipped: dict[str, int] = {}
    k = 0
    for row in served.to_pylist():
        propensities, inputs = row["propensities"], row["inputs"]
        user = by_pseudonym.get(row["user"])
        reason = (
            "served before propensities were logged"
            if not propensities or not inputs
            else "a random draw the log cannot price (a bandit's, or a draft re-scored after it)"
            if any(math.isnan(chance) for chance in propensities)
            else "user not among the known users"
            if user is None
            else None
        )
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        recorded = decode_inputs(inputs)
        ctx = request_context(plan.spec, recorded, str(user), row["request_id"], catalog)
        outcome = await plan.run(ctx, models, time.monotonic() + 3600)
        items = row["items"]
        k = max(k, len(items), len(outcome.items))
        logged_rows.append([codes.setdefault(i, len(codes)) for i in items])
        chance_rows.append(list(propensities))
        click_rows.append(
            [float((row["request_id"], n) in clicks) for n in range(1, len(items) + 1)]
        )
        candidate_rows.append([codes.setdefault(c.item_id, len(codes)) for c in outcome.items])
    if not logged_rows:
        raise ConfigError(f"no logged list to evaluate on ({skipped or 'none served'})")

    def padded(rows: Sequence[Sequence[float]], fill: float, dtype: type) -> np.ndarray:
        out: np.ndarray = np.full((len(rows), k), fill, dtype=dtype)
        for n, values in enumerate(rows):
            out[n, : len(values)] = values
        return out

    lists = LoggedLists(
        logged=padded(logged_rows, -1, np.int64),
        propensity=padded(chance_rows, 1.0, np.float64),
        clicks=padded(click_rows, 0.0, np.float64),
        candidate=padded(candidate_rows, -1, np.int64),
    )
    return counterfactual_estimates(lists), skipped
