"""An offline evaluation as one self-contained HTML page: a table and a bar chart
per metric, drawn with matplotlib's Agg canvas (no display needed); and a
counterfactual evaluation's page: the candidate's CTR by each estimator beside the
logged policy's, with their intervals."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from deployments.offline.counterfactual import CounterfactualRun
from deployments.offline.evaluate import METRICS, EvaluationReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["write_counterfactual_html", "write_html"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
.warn { color: #a00; }
img { margin: 0.5em; vertical-align: top; }
"""


def _png(figure: Figure) -> str:
    """The figure as a base64 PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _chart(report: EvaluationReport, metric: str) -> str:
    """One metric's bar chart as a base64 PNG (Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [row.label for row in report.rows]
    values = [row.metrics[metric] for row in report.rows]
    errors = [row.metrics.get(f"{metric}_ci", 0.0) for row in report.rows]
    figure = Figure(figsize=(6.0, 0.45 * len(names) + 1.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Error bars: the 95% interval over users of the metrics that are means over users.
    bars = axes.barh(names[::-1], values[::-1], xerr=errors[::-1], color="#4c72b0", capsize=3)
    label = metric if metric in ("coverage", "novelty") else f"{metric}@{report.k}"
    axes.set_title(label)
    axes.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    axes.margins(x=0.15)
    figure.tight_layout()
    return _png(figure)


def write_html(report: EvaluationReport, path: str | os.PathLike[str]) -> Path:
    """A self-contained HTML report: the run's facts, the table, one chart per metric."""
    e = html.escape
    facts = [
        ("config", report.config),
        ("application", report.app),
        ("use case", report.use_case),
        ("k", str(report.k)),
        ("held-out data", report.data),
        ("excluded from every list", report.excluded),
        ("relevant interactions", str(report.interactions)),
        ("users", str(report.users)),
        ("items", str(report.items)),
        ("catalogue size", str(report.catalogue_size)),
        ("novelty popularity from", report.popularity_from),
    ]
    header = ["blend", "role", *(f"{m}@{report.k}" for m in METRICS[:4]), "coverage", "novelty"]
    header.append("users")
    rows = "".join(
        "<tr><td>"
        + "</td><td>".join(
            [
                e(row.label),
                e(", ".join(row.blend.roles)),
                *(e(report.cell(row, m)) for m in METRICS),
                str(int(row.metrics["users"])),
            ]
        )
        + "</td></tr>"
        for row in report.rows
    )
    warnings = "".join(
        f"<p class='warn'>{e(row.label)} was degraded for {row.degraded} users "
        f"(first: {e(row.failure or '')})</p>"
        for row in report.rows
        if row.degraded
    )
    charts = "".join(
        f"<img alt='{e(m)}' src='data:image/png;base64,{_chart(report, m)}'>" for m in METRICS
    )
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>blendserve evaluate: {e(report.use_case)}</title>
<style>{_STYLE}</style></head><body>
<h1>Offline evaluation of use case {e(report.use_case)}</h1>
<table>{"".join(f"<tr><th>{e(n)}</th><td>{e(v)}</td></tr>" for n, v in facts)}</table>
<p>Rows are sorted by ndcg@{report.k}; means over users with a held-out item, ± the
half-width of their 95% interval over users.</p>
<table><tr>{"".join(f"<th>{e(h)}</th>" for h in header)}</tr>{rows}</table>
{warnings}
<div>{charts}</div>
</body></html>
"""
    target = Path(path)
    target.write_text(document, encoding="utf-8")
    return target


def write_counterfactual_html(run: CounterfactualRun, path: str | os.PathLike[str]) -> Path:
    """The counterfactual estimates as a self-contained page: a table and a chart of
    each estimate with its 95% interval beside the logged policy's CTR."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    e = html.escape
    report = run.report
    estimates = [report.logged, report.ips, report.snips, report.dr]
    labels = ["logged policy", "IPS", "SNIPS", "doubly robust"]
    figure = Figure(figsize=(6.0, 2.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    ys = list(range(len(estimates)))[::-1]
    errors = [[x.ctr - x.low for x in estimates], [x.high - x.ctr for x in estimates]]
    axes.errorbar([x.ctr for x in estimates], ys, xerr=errors, fmt="o", capsize=4)
    axes.axvline(report.logged.ctr, color="#999", linestyle="--", linewidth=1)
    axes.set_yticks(ys, labels)
    axes.set_xlabel("CTR (clicks per position shown), 95% interval")
    figure.tight_layout()
    rows = "".join(
        f"<tr><td>{e(label)}</td><td>{x.ctr:.4f}</td><td>{x.low:.4f} to {x.high:.4f}</td>"
        f"<td>{x.effective_lists:.0f}</td></tr>"
        for label, x in zip(labels, estimates, strict=True)
    )
    facts = [
        ("served under", run.config),
        ("candidate", run.candidate),
        ("application", run.app),
        ("use case", run.use_case),
        ("logged lists used", str(report.lists)),
        ("positions where the candidate agrees with the log", f"{report.agreement:.1%}"),
        *((f"left out ({why})", str(n)) for why, n in sorted(run.skipped.items())),
    ]
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>blendserve evaluate --counterfactual: {e(run.use_case)}</title>
<style>{_STYLE}</style></head><body>
<h1>Counterfactual evaluation of use case {e(run.use_case)}</h1>
<table>{"".join(f"<tr><th>{e(n)}</th><td>{e(v)}</td></tr>" for n, v in facts)}</table>
<p>The CTR the candidate would have reached on the traffic already served, estimated
from the logged clicks where its list agrees with the served one, weighted by the
served list's propensities; beside it the CTR the serving policy reached.</p>
<table><tr><th>estimate</th><th>CTR</th><th>95% interval</th><th>effective lists</th></tr>
{rows}</table>
<img alt="estimates" src="data:image/png;base64,{_png(figure)}">
</body></html>
"""
    target = Path(path)
    target.write_text(document, encoding="utf-8")
    return target
