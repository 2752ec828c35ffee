"""``make bench-scale``'s served half end to end at a size that runs here in about a
minute: a published factor model with its index, served by a real local Ray Serve
behind its HTTP port, retrieving through the index, measured; a deleted item the
index retrieved disappears from every replica's answers within a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import scale_serving
from benchmarks.scale import home_of, measure_size
from benchmarks.scale_serving import serve_size, serving_markdown

pytestmark = pytest.mark.integration


def test_a_size_is_served_through_its_index_and_a_delete_is_invisible_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full benchmark's durations, shortened: the path is what is tested here.
    monkeypatch.setattr(scale_serving, "LOAD_S", 2.0)
    monkeypatch.setattr(scale_serving, "APPLY_S", 4.0)
    monkeypatch.setattr(scale_serving, "DELETES", 4)
    monkeypatch.setattr(scale_serving, "WATCH_S", 1.5)
    measure_size(6000, 3000, tmp_path)
    row = serve_size(home_of(tmp_path, 6000, 3000), 6000, 3000, exact_below=1000)

    assert row.retrieval == "approximate"
    assert row.errors == 0
    assert row.c1_p50_ms > 0 and row.c16_rps > 0
    assert len(row.ingress_rss_mib) == 2 and all(m > 100 for m in row.ingress_pss_mib)
    # The poll period is 0.2 s: a delete is gone from every replica well within 1 s.
    assert row.delete_max_ms <= 1000
    # Ten changes a second must not cost the ingresses a core between them.
    assert row.apply_cpu_s_per_s < 1.0
    table = serving_markdown([row, row])
    assert "| 6,000 | 3,000 | 2 | approximate |" in table and "1.00x" in table
