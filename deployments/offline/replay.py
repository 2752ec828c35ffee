"""``blendserve explain`` and ``blendserve replay``: one served list, from the event log.

Every served list's record holds its plan (version and spec), the request's inputs,
what its user's seen history hid and demoted, what the ``fresh`` and ``bandit``
nodes answered, and what the blend measured (``events/replay_record.py``).
:func:`explain` turns a record into a report: the plan's nodes with how many items
each produced and how long it took, the arm, the versions, the catalogue version,
what failed. :func:`replay` runs the request again in this process, with the logged
plan and model versions (or another config's, to try a fix before deploying it), the
logged inputs and the catalogue as it is now, and says whether it gives the same
list or, if not, what differs and why: an item since deleted, a model version no
longer in the store, a node that failed then.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.dataset as ds

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
from deployments.events.replay_record import ReplayInputs, decode_inputs
from deployments.events.store import open_dataset_root
from models.errors import ArtifactNotFoundError, BlendserveError, ConfigError
from models.registry import load_model
from models.store import ArtifactStore

__all__ = ["Replayed", "Served", "explain", "find_served", "render_explanation", "replay"]

_SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Served:
    """One served list as the event log stored it."""

    request_id: str
    use_case: str
    served_at: datetime
    user: str
    items: list[str]
    teams: list[str]
    variant: dict[str, str]
    model_versions: dict[str, str]
    latency_ms: float
    degraded: bool
    plan_version: str
    plan: str
    inputs: ReplayInputs | None


def find_served(app: AppConfig, app_name: str, request_id: str) -> Served:
    """The served list ``request_id`` of application ``app_name``, from its event
    dataset (lists reach it within ``events.flush_interval_s``)."""
    if app.args.events is None:
        raise ConfigError(f"application {app_name!r} keeps no event log (args.events)")
    uri = app.args.events.dataset_uri(app_name)
    filesystem, root = open_dataset_root(uri)
    directory = f"{root}/served"
    try:
        dataset = ds.dataset(
            directory, filesystem=filesystem, format="parquet", partitioning="hive"
        )
        table = dataset.to_table(filter=ds.field("request_id") == request_id)
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactNotFoundError(f"no served lists in {uri} yet: {exc}") from exc
    if table.num_rows == 0:
        raise ArtifactNotFoundError(
            f"no served list {request_id!r} in {uri} (a list reaches it within "
            f"{app.args.events.flush_interval_s:g} s of being served)"
        )
    row = table.slice(0, 1).to_pylist()[0]
    inputs = row.get("inputs")
    return Served(
        request_id=request_id,
        use_case=str(row["use_case"]),
        served_at=row["ts"],
        user=str(row["user"]),
        items=list(row["items"] or []),
        teams=list(row["teams"] or []),
        variant=dict(row["variant"] or []),
        model_versions=dict(row["model_versions"] or []),
        latency_ms=float(row["latency_ms"]),
        degraded=bool(row["degraded"]),
        plan_version=str(row.get("plan_version") or ""),
        plan=str(row.get("plan") or ""),
        inputs=decode_inputs(inputs) if inputs else None,
    )


def _node_line(name: str, spec: dict[str, Any]) -> str:
    kind = spec.get("kind", "?")
    detail = {
        "source": lambda: f"model {spec.get('model')}, {spec.get('candidates', 100)} candidates",
        "blend": lambda: f"weights {spec.get('weights')}",
        "rerank": lambda: f"model {spec.get('model')} over {spec.get('input')}",
        "stack": lambda: f"model {spec.get('model')} over {spec.get('inputs')}",
        "slots": lambda: f"{spec.get('curated')} into {spec.get('input')}",
        "filter": lambda: f"of {spec.get('input')}",
        "diversify": lambda: f"of {spec.get('input')}, {spec.get('max_per_category')} a category",
        "experiment": lambda: f"arms {sorted(spec.get('arms') or {})}",
        "interleave": lambda: f"teams {spec.get('teams')}",
        "fallback": lambda: f"{spec.get('primary')} else {spec.get('fallback')}",
    }.get(kind, lambda: "")()
    return f"{name} ({kind}{': ' + detail if detail else ''})"


def explain(served: Served) -> dict[str, Any]:
    """What produced the list: a JSON-able report (``blendserve explain --json``)."""
    inputs = served.inputs
    spec = UseCaseSpec.model_validate_json(served.plan).model_dump() if served.plan else None
    nodes = []
    for name, node in (spec or {}).get("nodes", {}).items():
        entry: dict[str, Any] = {"node": name, "what": _node_line(name, node)}
        if inputs is not None:
            entry["ran"] = name in inputs.sizes
            entry["items"] = inputs.sizes.get(name)
            entry["ms"] = inputs.node_ms.get(name)
            if name in inputs.failures:
                entry["failed"] = inputs.failures[name]
                entry["late"] = name in inputs.late
        nodes.append(entry)
    scores = inputs.scores if inputs is not None else [math.nan] * len(served.items)
    return {
        "request_id": served.request_id,
        "use_case": served.use_case,
        "served_at": served.served_at.isoformat(),
        "user": served.user,
        "latency_ms": served.latency_ms,
        "degraded": served.degraded,
        "plan_version": served.plan_version or None,
        "output": (spec or {}).get("output"),
        "budget_ms": (spec or {}).get("budget_ms"),
        "variant": served.variant,
        "model_versions": served.model_versions,
        "catalog_version": inputs.catalog_version if inputs else None,
        "trace_id": inputs.trace_id if inputs else None,
        "request": None
        if inputs is None
        else {
            "k": inputs.k,
            "context": inputs.context,
            "exclude": inputs.exclude,
            "filters": inputs.filters,
            "boosts": inputs.boosts,
            "hidden_by_seen": len(inputs.hidden),
            "demoted_by_seen": len(inputs.demoted),
        },
        "nodes": nodes,
        "fallbacks": inputs.fallbacks if inputs else [],
        "items": [
            {"position": n, "item_id": item, "score": score, "team": team or None}
            for n, (item, score, team) in enumerate(
                zip(served.items, scores, served.teams or [""] * len(served.items), strict=True),
                start=1,
            )
        ],
    }


def render_explanation(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [
        f"request {report['request_id']}: use case {report['use_case']}, served "
        f"{report['served_at']} in {report['latency_ms']:.1f} ms"
        + (", DEGRADED" if report["degraded"] else ""),
        f"user (pseudonym) {report['user']}",
    ]
    if report["plan_version"] is None:
        lines.append("plan: not recorded (a list served before plans were recorded)")
    else:
        lines.append(
            f"plan {report['plan_version']}: output {report['output']}, budget "
            f"{report['budget_ms']:g} ms"
        )
    if report["variant"]:
        lines.append(f"experiment arms: {report['variant']}")
    versions = ", ".join(f"{m} {v}" for m, v in sorted(report["model_versions"].items()))
    lines.append(f"model versions: {versions or 'none answered'}")
    if report["catalog_version"] is not None:
        lines.append(f"catalogue version: {report['catalog_version']}")
    if report["trace_id"] is not None:
        lines.append(f"trace: {report['trace_id']}")
    request = report["request"]
    if request is not None:
        lines.append(
            f"request: k {request['k']}, context {request['context'] or '{}'}, "
            f"{len(request['exclude'])} excluded, {len(request['filters'])} filters, "
            f"{len(request['boosts'])} boosts; seen: {request['hidden_by_seen']} hidden, "
            f"{request['demoted_by_seen']} demoted"
        )
    if report["nodes"]:
        lines.append("nodes:")
        for node in report["nodes"]:
            if node.get("ran") is False:
                lines.append(f"  {node['what']}: did not run")
                continue
            took = "" if node.get("ms") is None else f", {node['ms']:.2f} ms"
            count = "" if node.get("items") is None else f": {node['items']} items"
            failed = ""
            if "failed" in node:
                failed = f"  FAILED ({'late' if node['late'] else 'error'}): {node['failed']}"
            lines.append(f"  {node['what']}{count}{took}{failed}")
    if report["fallbacks"]:
        lines.append(f"fell back at: {', '.join(report['fallbacks'])}")
    lines.append("served:")
    for item in report["items"]:
        team = f"  team {item['team']}" if item["team"] else ""
        lines.append(f"  {item['position']:>3}. {item['item_id']}  {item['score']:.6f}{team}")
    return "\n".join(lines)


@dataclass
class Replayed:
    """What a replay gave against what was served."""

    served: list[tuple[str, float]]
    replayed: list[tuple[str, float]]
    same: bool
    differences: list[str] = field(default_factory=list)
    plan_version: str = ""
    model_versions: dict[str, str] = field(default_factory=dict)


def _salt() -> str | None:
    """The replicas' pseudonym salt: from the environment, else ``blendserve up``'s."""
    path = local_secret("pseudonym_salt")
    salt = os.environ.get(PSEUDONYM_SALT_ENV)
    return salt or (path.read_text(encoding="utf-8").strip() if path.is_file() else None)


def _catalogue(app: AppConfig, app_name: str) -> ItemCatalog | None:
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


def _models(
    store: ArtifactStore, app: AppConfig, spec: UseCaseSpec, versions: dict[str, str]
) -> tuple[LocalModels, dict[str, str], list[str]]:
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
    salt = _salt()
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
    models, used, problems = _models(store, config, spec, versions)
    catalog = _catalogue(app, app_name)
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
    ctx = BlendContext(
        user_id,
        inputs.k,
        frozenset(inputs.exclude),
        inputs.context,
        served.request_id,
        catalog,
        now=inputs.now,
        table=table,
        rules=rules,
        seen=seen,
        recorded=inputs.live,
    )
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
