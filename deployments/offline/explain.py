"""``blendserve explain``: one served list from the event log, as a report.

Every served list's record holds its plan (version and spec), the request's inputs,
what its user's seen history hid and demoted, what the ``fresh`` and ``bandit``
nodes answered, what the blend measured (``events/replay_record.py``) and each
position's propensity. :func:`find_served` reads a record back; :func:`explain`
turns it into a report: the plan's nodes with how many items each produced and how
long it took, the arm, the versions, the catalogue version, the trace, what failed;
:func:`render_explanation` prints it. ``replay.py`` runs the request again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.dataset as ds

from blending.spec import UseCaseSpec
from deployments.config import AppConfig
from deployments.events.replay_record import ReplayInputs, decode_inputs
from deployments.events.store import open_dataset_root
from models.errors import ArtifactNotFoundError, ConfigError

__all__ = ["Served", "explain", "find_served", "render_explanation"]


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
    propensities: list[float] | None = None
    """Per position (``None`` in lists stored before they were recorded)."""


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
        propensities=row.get("propensities"),
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
    # NaN: a draw the log cannot price (a bandit's); shown as unknown, like no record.
    chances: list[float | None] = (
        [None if math.isnan(c) else c for c in served.propensities]
        if served.propensities
        else [None] * len(served.items)
    )
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
        "explored": inputs.explored if inputs else [],
        "items": [
            {
                "position": n,
                "item_id": item,
                "score": score,
                "team": team or None,
                "propensity": propensity,
            }
            for n, (item, score, team, propensity) in enumerate(
                zip(
                    served.items,
                    scores,
                    served.teams or [""] * len(served.items),
                    chances,
                    strict=True,
                ),
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
    if report["explored"]:
        lines.append(f"explored at positions: {', '.join(map(str, report['explored']))}")
    lines.append("served:")
    for item in report["items"]:
        team = f"  team {item['team']}" if item["team"] else ""
        chance = item["propensity"]
        shown = f"  propensity {chance:.4g}" if chance is not None and chance < 1 else ""
        lines.append(
            f"  {item['position']:>3}. {item['item_id']}  {item['score']:.6f}{team}{shown}"
        )
    return "\n".join(lines)
