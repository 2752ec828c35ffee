"""Reading a team's own tables through a data config: layouts, ids, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from movielens_like import MOVIELENS_DATA_CONFIG, write_movielens_like

from models.errors import ConfigError
from models.training.data_config import load_data_config
from models.training.tables import read_dataset


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_movielens_files_read_the_same_with_or_without_header_and_any_line_end(
    tmp_path: Path, header: bool, line_end: str
) -> None:
    write_movielens_like(tmp_path, header=header, line_end=line_end)
    data = read_dataset(load_data_config(_config(tmp_path, MOVIELENS_DATA_CONFIG)))
    reference = tmp_path / "reference"
    write_movielens_like(reference)
    expected = read_dataset(load_data_config(_config(reference, MOVIELENS_DATA_CONFIG)))
    pd.testing.assert_frame_equal(data.interactions, expected.interactions)
    pd.testing.assert_frame_equal(data.items, expected.items)
    # Ids are the files' own: no prefix, no float formatting.
    assert data.interactions["user_id"].iloc[0].isdigit()
    assert set(data.interactions["item_id"]) <= set(data.items["item_id"])
    first = data.items.iloc[0]  # no header: the first movie is data, not lost
    assert first["title"].startswith("Film ") and first["category"] != "unknown"
    assert len(first["categories"]) == 2
    assert (data.interactions["rating"] >= 4).all()


def test_a_file_without_header_and_without_names_is_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    write_movielens_like(tmp_path, header=False)
    config = MOVIELENS_DATA_CONFIG.replace("  names: [userId, movieId, rating, timestamp]\n", "")
    with pytest.raises(ConfigError, match=r"ratings.csv:1: no header line naming 'userId'.*names"):
        read_dataset(load_data_config(_config(tmp_path, config)))


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    write_movielens_like(tmp_path)
    config = MOVIELENS_DATA_CONFIG.replace("time: timestamp", "time: when")
    config = config.replace("names: [userId, movieId, rating, timestamp]", "header: true")
    with pytest.raises(ConfigError, match=r"ratings.csv: no column 'when' \(has userId"):
        read_dataset(load_data_config(_config(tmp_path, config)))


def test_parquet_with_integer_ids_event_types_and_iso_times(tmp_path: Path) -> None:
    table = pa.table(
        {
            "customer": pa.array([7, 7, 8, 8, 9], pa.int64()),
            "sku": pa.array([1001, 1002, 1001, 1003, 1002], pa.int64()),
            "at": ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z", "2026-01-01T10:30:00+01:00",
                   "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"],
            "kind": ["view", "purchase", "purchase", "view", "return"],
        }
    )  # fmt: skip
    pq.write_table(table, tmp_path / "events.parquet")
    config = _config(
        tmp_path,
        """
interactions:
  path: events.parquet
  columns: {user: customer, item: sku, time: at, event: kind}
  positive: {events: [view, purchase]}
  event_weights: {purchase: 5}
""",
    )
    data = read_dataset(load_data_config(config))
    frame = data.interactions
    assert list(frame["user_id"]) == ["8", "7", "7", "8"]  # time order: 10:30+01:00 is 09:30Z
    assert list(frame["item_id"]) == ["1001", "1001", "1002", "1003"]
    assert list(frame["weight"]) == [5.0, 1.0, 5.0, 1.0]
    assert "9" not in set(frame["user_id"])  # a return is not a positive interaction
    assert set(data.items["category"]) == {"unknown"}


def test_a_bad_time_is_named_with_its_row(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("u,i,t\na,x,2026-01-01\nb,y,yesterday\n", encoding="utf-8")
    config = _config(
        tmp_path, "interactions:\n  path: log.csv\n  columns: {user: u, item: i, time: t}\n"
    )
    with pytest.raises(ConfigError, match=r"log.csv: row 2: column 't'.*'yesterday'"):
        read_dataset(load_data_config(config))


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "interactions:\n  path: x.csv\n  positive: {min_rating: 4}\nholdout: {fraction: 2}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_data_config(config)
    assert "positive.min_rating needs columns.rating" in str(caught.value)
    assert "holdout.fraction" in str(caught.value)


def test_epoch_units_are_read_off_the_magnitude(tmp_path: Path) -> None:
    (tmp_path / "ms.csv").write_text("u,i,t\na,x,1767225600000\n", encoding="utf-8")
    config = _config(
        tmp_path, "interactions:\n  path: ms.csv\n  columns: {user: u, item: i, time: t}\n"
    )
    data = read_dataset(load_data_config(config))
    assert data.interactions["ts"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
