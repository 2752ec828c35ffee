"""Every Prometheus metric the code records is documented in the README, and no more."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _defined() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "deployments").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'(?:Counter|Gauge|Histogram)\(\s*"(blendserve_\w+)"', text))
    return names


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `(blendserve_\w+)` \|", section, re.M))


def test_the_readme_metrics_table_matches_the_code() -> None:
    defined = _defined()
    assert len(defined) >= 10, defined
    assert _documented() == defined


def test_no_metric_is_labelled_by_user_item_or_key() -> None:
    forbidden = {"user", "user_id", "item", "item_id", "key", "api_key", "request_id"}
    for path in (ROOT / "deployments").rglob("*.py"):
        for labels in re.findall(r"tag_keys=\(([^)]*)\)", path.read_text(encoding="utf-8")):
            used = set(re.findall(r'"(\w+)"', labels))
            assert not used & forbidden, (path.name, used)


def test_every_metric_is_declared_in_the_metrics_module() -> None:
    declared = re.compile(r'(?:Counter|Gauge|Histogram)\(\s*"blendserve_')
    elsewhere = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "deployments").rglob("*.py")
        if path.name != "metrics.py" and declared.search(path.read_text(encoding="utf-8"))
    ]
    assert elsewhere == []
