"""``blendserve replay``: one served list run again, from the event log.

:func:`replay` runs a logged request again in this process, with the logged plan
and model versions (or another config's, to try a fix before deploying it), the
logged inputs and the catalogue as it is now, and says whether it gives the same
list or, if not, what differs and why: an item since deleted, a model version no
longer in the store, a node that failed then. The record is read and explained by
``explain.py``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from blending.candidates import BlendContext
from blending.catalog import ItemCatalog, LiveCatalog, StaticCatalog
from blending.dag import BlendOutcome, BlendPlan
from blending.gateway import LocalModels
from blending.rules import BoostRule, FilterRule, compile_rules
from blending.seen import SeenItems
from blending.spec import UseCaseSpec
from deployments.catalog.backends import open_catalog_store
from deployments.config import PSEUDONYM_SALT_ENV, AppConfig, resolve_store
from deployments.config.paths import local_secret
from deployments.events.feedback import Pseudonymizer
from deployments.events.replay_record import ReplayInputs
from deployments.offline.explain import Served
from models.errors import ArtifactNotFoundError, BlendserveError, ConfigError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = [
    "Replayed",
    "current_catalogue",
    "load_models",
    "pseudonym_salt",
    "replay",
    "request_context",
]

_SCORE_TOLERANCE = 1e-6


@dataclass
class Replayed:
    """What a replay gave against what was served."""

    served: list[tuple[str, float]]
    replayed: list[tuple[str, float]]
    same: bool
    differences: list[str] = field(default_factory=list)
    plan_version: str = ""
    model_versions: dict[str, str] = field(default_factory=dict)


def pseudonym_salt() -> str | None:
    """The replicas' pseudonym salt: from the environment, else ``blendserve up``'s."""
    path = local_secret("pseudonym_salt")
    salt = os.environ.get(PSEUDONYM_SALT_ENV)
    return salt or (path.read_text(encoding="utf-8").strip() if path.is_file() else None)


def current_catalogue(app: AppConfig, app_name: str) -> ItemCatalog | None:
    """The catalogue as it is now, as the ingress holds it."""
    kinds = app.args.catalog_attributes
    live = app.args.live_catalog
    if live is not None:
        location = live.location(app_name)
        catalog = LiveCatalog(kinds)
        with open_catalog_store(location, app_name) as store:
            version = 0
            while True:
                reached, changes = store.changes_since(version)
                if not changes:
                    break
                catalog.apply(reached, [change.as_update() for change in changes])
                version = reached
        return catalog
    if app.args.catalog is not None:
        return StaticCatalog.from_parquet(resolve_store(app.args.catalog), kinds)
    return None


def load_models(
    store: ArtifactStore, app: AppConfig, spec: UseCaseSpec, versions: dict[str, str]
) -> tuple[LocalModels, dict[str, str], list[str]]:
    """Every model ``spec`` calls, in process: at ``versions`` where given, else at the
    config's live version; the versions loaded, and why any could not be."""
    adapters, used, problems = {}, {}, []
    for model in sorted(spec.models()):
        version = versions.get(model) or (
            app.rollouts[model].version if model in app.rollouts else None
        )
        options = app.args.models[model].options if model in app.args.models else {}
        try:
            if version is None:
                raise ArtifactNotFoundError(f"model {model!r}: no version known")
            adapters[model] = load_model(store, model, version, options)
            used[model] = version
        except BlendserveError as exc:
            problems.append(f"model {model} version {version} cannot be loaded: {exc}")
    return LocalModels(adapters), used, problems


def request_context(
    spec: UseCaseSpec,
    inputs: ReplayInputs,
    user_id: str,
    request_id: str,
    catalog: ItemCatalog | None,
) -> BlendContext:
    """A logged request as the blend saw it, for ``spec`` to run again: its k,
    context, exclusions, rules, seen items, time and live lists."""
    table = catalog.table if catalog is not None else None
    rules = compile_rules(
        catalog.attributes if catalog is not None else None,
        spec.rules,
        [FilterRule.model_validate(rule) for rule in inputs.filters],
        [BoostRule.model_validate(rule) for rule in inputs.boosts],
    )
    seen = None
    if table is not None and (inputs.hidden or inputs.demoted):
        seen = SeenItems(
            table.indices(inputs.hidden), table.indices(inputs.demoted), inputs.demote_factor
        )
    return BlendContext(
        user_id,
        inputs.k,
        frozenset(inputs.exclude),
        inputs.context,
        request_id,
        catalog,
        now=inputs.now,
        table=table,
        rules=rules,
        seen=seen,
        recorded=inputs.live,
    )


async def replay(
    served: Served,
    app: AppConfig,
    app_name: str,
    user_id: str,
    under: AppConfig | None = None,
) -> Replayed:
    """Run ``served``'s request again in process for ``user_id`` (checked against
    the record's pseudonym when the salt is at hand): with the logged plan and model
    versions, or with ``under``'s use case and versions."""
    inputs = served.inputs
    if inputs is None or not served.plan:
        raise ConfigError(
            f"request {served.request_id}: served before plans and inputs were recorded"
        )
    salt = pseudonym_salt()
    if salt is not None and Pseudonymizer(salt.encode())(user_id) != served.user:
        raise ConfigError(f"user {user_id!r} is not the user request {served.request_id} served")
    if under is None:
        spec = UseCaseSpec.model_validate_json(served.plan)
        versions = dict(served.model_versions)
        config = app
    else:
        if served.use_case not in under.live.use_cases:
            raise ConfigError(f"the other config has no use case {served.use_case!r}")
        spec, versions, config = under.live.use_cases[served.use_case], {}, under
    plan = BlendPlan(served.use_case, spec)
    store = ArtifactStore(resolve_store(config.args.store))
    models, used, problems = load_models(store, config, spec, versions)
    catalog = current_catalogue(app, app_name)
    ctx = request_context(spec, inputs, user_id, served.request_id, catalog)
    outcome = await plan.run(ctx, models, time.monotonic() + 3600)
    result = Replayed(
        list(zip(served.items, inputs.scores, strict=True)),
        [(c.item_id, c.score) for c in outcome.items],
        False,
        problems,
        plan.version,
        used,
    )
    result.same = _same(result.served, result.replayed)
    if not result.same or problems:
        result.differences += _why(served, inputs, outcome, catalog, plan, used)
    return result


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    return len(a) == len(b) and all(
        x == y and abs(s - t) <= _SCORE_TOLERANCE for (x, s), (y, t) in zip(a, b, strict=True)
    )


def _why(
    served: Served,
    inputs: ReplayInputs,
    outcome: BlendOutcome,
    catalog: ItemCatalog | None,
    plan: BlendPlan,
    used: dict[str, str],
) -> list[str]:
    """Reasons a replay may differ, most telling first."""
    reasons = []
    now_ids = {c.item_id for c in outcome.items}
    for item in served.items:
        if item in now_ids:
            continue
        info = catalog.get(item) if catalog is not None else None
        if info is not None and not info.available:
            reasons.append(
                f"item {item} was served, and has since been deleted or made unavailable"
            )
    version = getattr(catalog, "version", None)
    if (
        version is not None
        and inputs.catalog_version is not None
        and version != inputs.catalog_version
    ):
        reasons.append(f"the catalogue is at version {version}, it was at {inputs.catalog_version}")
    if plan.version != served.plan_version:
        reasons.append(f"plan {plan.version} replayed, {served.plan_version} served")
    for model, version in sorted(used.items()):
        then = served.model_versions.get(model)
        if then is not None and then != version:
            reasons.append(f"model {model}: version {version} replayed, {then} served")
    for node, why in sorted(inputs.failures.items()):
        if node not in outcome.failures:
            reasons.append(f"node {node} failed when served ({why}) and answered now")
    for node, why in sorted(outcome.failures.items()):
        reasons.append(f"node {node} failed now: {why}")
    return reasons
