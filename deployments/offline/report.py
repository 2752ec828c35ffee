"""``blendserve report``: experiment statistics from the event log's Parquet dataset,
without the service (the same numbers ``GET /v1/experiments/{name}`` serves)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blending.spec import ExperimentNodeSpec, InterleaveNodeSpec
from deployments.config import AppConfig
from deployments.events.counts import EventCounts
from deployments.events.experiments import build_report
from deployments.events.store import open_dataset_root, read_events
from deployments.json_types import JsonObject
from models.errors import ConfigError

__all__ = ["dataset_reports", "format_report"]


def dataset_reports(
    app: AppConfig, app_name: str, uri: str | None = None, only: str | None = None
) -> list[JsonObject]:
    """Reports of every experiment and interleaving node of ``app`` (or ``only`` one),
    from the dataset at ``uri`` (default: the app's configured event log)."""
    if uri is None:
        if app.args.events is None:
            raise ConfigError(f"application {app_name!r} has no event log (args.events: null)")
        uri = app.args.events.dataset_uri(app_name)
    filesystem, root = open_dataset_root(uri)
    counts = EventCounts.rebuild(
        read_events(filesystem, root, "served", ["use_case", "variant"]),
        read_events(filesystem, root, "feedback"),
    )
    reports = []
    for use_case, spec in app.live.use_cases.items():
        for node, node_spec in spec.nodes.items():
            name = f"{use_case}.{node}"
            if only is not None and name != only:
                continue
            if isinstance(node_spec, InterleaveNodeSpec):
                found = counts.interleaving(use_case, node_spec.teams)
                reports.append(
                    build_report(
                        name, node, node_spec, {}, found.wins, found.ties, credit=found.credit
                    )
                )
            elif isinstance(node_spec, ExperimentNodeSpec):
                totals = counts.arm_totals(use_case, node)
                objective = spec.objective
                stage = None
                if node_spec.prune is not None:
                    candidates = node_spec.candidates()
                    stage = counts.first_stage(use_case, candidates, node_spec.prune)
                reports.append(build_report(name, node, node_spec, totals, {}, 0, objective, stage))
    if only is not None and not reports:
        raise ConfigError(f"no experiment or interleaving node {only!r} in {app_name!r}")
    return reports


def _p(value: Any) -> str:
    """A p-value for the text report ("-" when there is none)."""
    return "-" if value is None else f"{value:.3g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def format_report(report: Mapping[str, Any]) -> str:
    """One report as a readable block of text."""
    lines = [f"{report['name']} ({report['kind']})"]
    if report["kind"] == "interleave":
        wins = report["wins"]
        lines.append(
            "  requests with clicks: {n}; wins: {w}; ties: {t}; sign test p = {p}".format(
                n=report["requests_with_clicks"],
                w=", ".join(f"{team} {count}" for team, count in wins.items()),
                t=report["ties"],
                p=_p(report.get("sign_test_p_value")),
            )
        )
        credited = report.get("credited_clicks")
        if credited is not None:
            lines.append(
                "  credited clicks: {c}; share test p = {p}".format(
                    c=", ".join(f"{team} {count}" for team, count in credited.items()),
                    p=_p(report["p_value"]),
                )
            )
    else:
        header = f"  {'arm':<14}{'requests':>9}{'impr.':>9}{'clicks':>8}  {'CTR':>7}  "
        lines.append(header + f"{'95% interval':<19}{'lift':>8}{'p':>9}{'P(beat)':>9}")
        for arm, row in report["arms"].items():
            mark = " (control)" if arm == report["control"] else ""
            interval = f"[{_pct(row['ctr_low'])}, {_pct(row['ctr_high'])}]"
            p_value = _p(row["p_value"])
            beat = _pct(row["prob_beat_control"])
            lines.append(
                f"  {arm + mark:<14}{row['requests']:>9}{row['impressions']:>9}"
                f"{row['clicks']:>8}  {_pct(row['ctr']):>7}  {interval:<19}"
                f"{_pct(row['lift']):>8}{p_value:>9}{beat:>9}"
            )
        weights = " + ".join(f"{w:g} x {name}" for name, w in report["objective"].items())
        lines.append(f"  objective per impression ({weights}):")
        for arm, row in report["arms"].items():
            value = "-" if row["objective"] is None else f"{row['objective']:.4g}"
            outcomes = ", ".join(f"{name} {o['total']:g}" for name, o in row["outcomes"].items())
            lines.append(f"    {arm:<14}{value:>10}   {outcomes or 'no outcomes yet'}")
        srm = report["srm"]
        if srm.get("mismatch"):
            lines.append(f"  SAMPLE RATIO MISMATCH (p = {srm['p_value']:.3g})")
    lines.append(f"  verdict: {report['verdict']}")
    stopping = report.get("stopping") or report.get("sequential") or {}
    if stopping:
        lines.append(f"  always-valid test: {stopping['decision']} ({stopping['reason']})")
    return "\n".join(lines)
