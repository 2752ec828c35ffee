"""The Grafana dashboard (configs/grafana/blendserve-dashboard.json) imports cleanly and
queries only metrics the code records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "configs" / "grafana" / "blendserve-dashboard.json"

# Ray's metrics agent exports every ``ray.serve.metrics`` metric with the prefix ``ray_``
# (its Prometheus exporter's namespace), and a histogram as _bucket, _count and _sum.
_QUERIED = re.compile(r"\bray_(blendserve_\w+)")
_HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")
_DEFINED = re.compile(r'(?:Counter|Gauge|Histogram)\(\s*"(blendserve_\w+)"')

# Metrics the evaluation work records, allowed here before (and while) they land in
# deployments/: the event log's feedback events and served lists.
ALLOWED_AHEAD = {"blendserve_feedback_events_total", "blendserve_served_lists_total"}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _defined_metrics() -> set[str]:
    return set(_DEFINED.findall((ROOT / "deployments" / "metrics.py").read_text(encoding="utf-8")))


def _queried_metrics() -> set[str]:
    # Every string, not only panel targets: template variables query metrics too.
    found = {m for text in _strings(_dashboard()) for m in _QUERIED.findall(text)}
    return {_HISTOGRAM_SERIES.sub("", name) for name in found}


def test_the_dashboard_is_a_grafana_import_with_a_prometheus_input() -> None:
    """Schema 39 JSON whose panels all use the ${DS_PROMETHEUS} input chosen at import."""
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    (source,) = dashboard["__inputs"]
    assert source["name"] == "DS_PROMETHEUS" and source["pluginId"] == "prometheus"
    for panel in _panels(dashboard["panels"]):
        for target in [panel, *panel.get("targets", [])]:
            if "datasource" in target:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_panel_has_a_unique_id_and_a_title() -> None:
    """Grafana keys panel state by id; a panel without a title is unreadable on a wall."""
    panels = list(_panels(_dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(panels) >= 20
    assert len(ids) == len(set(ids)), sorted(ids)
    assert all(isinstance(panel.get("title"), str) and panel["title"].strip() for panel in panels)


def test_every_query_has_an_expression_and_a_ref_id() -> None:
    """No empty target, and ref ids unique within each panel."""
    for panel in _panels(_dashboard()["panels"]):
        targets = panel.get("targets", [])
        assert panel["type"] == "row" or targets, panel["title"]
        assert all(target["expr"].strip() for target in targets), panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_queried_metric_is_one_the_code_records() -> None:
    """A renamed or removed metric breaks this test, not a panel in production."""
    queried = _queried_metrics()
    unknown = queried - _defined_metrics() - ALLOWED_AHEAD
    assert not unknown, f"the dashboard queries metrics nothing records: {sorted(unknown)}"


def test_metrics_are_queried_by_their_exported_names() -> None:
    """Prometheus sees ``ray_blendserve_*``: a bare ``blendserve_*`` name matches nothing."""
    bare = {
        m for text in _strings(_dashboard()) for m in re.findall(r"(?<!\w)blendserve_\w+", text)
    }
    assert not bare, sorted(bare)


def test_the_main_questions_have_panels() -> None:
    """Traffic, latency, degradation, rejections, models, batching, rollouts, shadows and
    feedback each have at least one query."""
    queried = _queried_metrics()
    wanted = {
        "blendserve_http_requests_total",
        "blendserve_http_request_latency_ms",
        "blendserve_recommend_latency_ms",
        "blendserve_degraded_responses_total",
        "blendserve_rejected_requests_total",
        "blendserve_model_calls_in_flight",
        "blendserve_batch_size",
        "blendserve_model_info",
        "blendserve_canary_rollbacks_total",
        "blendserve_shadow_latency_ms",
        "blendserve_shadow_overlap",
        *ALLOWED_AHEAD,
    }
    assert wanted <= queried, sorted(wanted - queried)


def test_latency_quantiles_come_from_histogram_buckets() -> None:
    """histogram_quantile over the rate of a _bucket series, aggregated by le."""
    exprs = [
        target["expr"]
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
        if "histogram_quantile" in target["expr"]
    ]
    assert exprs
    for expr in exprs:
        assert re.search(r"sum by \(le\b[^)]*\) \(rate\(ray_blendserve_\w+_bucket\{", expr), expr
