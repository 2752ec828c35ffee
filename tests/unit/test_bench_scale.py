"""``make bench-scale`` end to end at a size that runs in seconds: clicks generated,
ALS trained and published with its index, exact scoring against the index timed."""

from pathlib import Path

from benchmarks.scale import generate_clicks, markdown, measure_size


def test_the_generated_clicks_have_the_asked_shape_and_a_popular_head() -> None:
    matrix = generate_clicks(5000, 2000)
    assert matrix.shape == (2000, 5000)
    assert 6 <= matrix.nnz / 2000 <= 8  # about eight clicks a user, repeats merged
    per_item = sorted(matrix.getnnz(axis=0), reverse=True)
    assert sum(per_item[:50]) > 0.1 * matrix.nnz  # 1% of the items, over 10% of clicks


def test_one_small_size_is_published_with_an_index_and_measured(tmp_path: Path) -> None:
    row = measure_size(6000, 3000, tmp_path)
    assert row.recall_published >= 0.95
    assert row.recall_served >= 0.9
    assert row.probes >= 1 and row.index_mib > 0
    assert row.exact_p50_ms > 0 and row.ann_p50_ms > 0
    table = markdown([row, row], "make bench-scale", 1.0)
    assert "| 6,000 | 3,000 |" in table and "1.0x the p50" in table
