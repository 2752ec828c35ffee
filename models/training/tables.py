"""Read a team's interaction and item tables into an :class:`InteractionData`.

CSV or Parquet, on a local disk or any filesystem pyarrow opens by URI. A CSV file
may come with or without its header line and with any line ends; ids are read as
text and kept exactly as written (``0042`` stays ``0042``; an integer column in
Parquet becomes its decimal text), so the ids an application knows are the ids
the models answer in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from models.errors import ConfigError
from models.training.data_config import DataConfig, InteractionsConfig, ItemsConfig, TableSource
from models.training.dataset import InteractionData

__all__ = ["read_dataset", "read_table"]

_UNIT_BY_MAGNITUDE = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"), (0.0, "s"))
"""Epoch times by size: seconds reach 1e11 only in the year 5138."""


def _open(location: str) -> tuple[pafs.FileSystem, str]:
    try:
        return (
            pafs.FileSystem.from_uri(location)
            if "://" in location
            else (
                pafs.LocalFileSystem(),
                location,
            )
        )
    except (pa.ArrowException, ValueError) as exc:
        raise ConfigError(f"{location}: cannot open its filesystem: {exc}") from exc


def _read_bytes(location: str) -> bytes:
    filesystem, path = _open(location)
    try:
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read())
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{location}: cannot read: {exc}") from exc


def _is_parquet(source: TableSource, location: str) -> bool:
    if source.format != "auto":
        return source.format == "parquet"
    return location.lower().endswith((".parquet", ".pq"))


def _first_record(text: str, delimiter: str) -> list[str]:
    line = text.split("\n", 1)[0].rstrip("\r")
    return [field.strip() for field in next(csv.reader([line], delimiter=delimiter), [])]


def _column_names(
    location: str, source: TableSource, first: list[str], wanted: Sequence[str]
) -> tuple[list[str], bool]:
    """The file's column names and whether its first line is a header."""
    if source.header is True:
        return first, True
    if source.header is False:
        if source.names is None:
            raise ConfigError(f"{location}: header: false needs `names` (the columns' order)")
        return list(source.names), False
    if source.names is not None:
        return list(source.names), first == list(source.names)
    if all(name in first for name in wanted):
        return first, True
    raise ConfigError(
        f"{location}:1: no header line naming {', '.join(repr(w) for w in wanted)} "
        f"(the first line is {','.join(first)[:80]!r}); give the columns' order with "
        f"`names:` in the data config"
    )


def read_table(
    location: str, source: TableSource, wanted: Sequence[str], text_columns: Sequence[str]
) -> pa.Table:
    """The ``wanted`` columns of one table; ``text_columns`` are read as strings.

    Raises ``ConfigError`` naming the file, the line and the column for anything it
    cannot read: a missing column, a header-less file without ``names``, bad rows.
    """
    if _is_parquet(source, location):
        filesystem, path = _open(location)
        try:
            schema = pq.read_schema(path, filesystem=filesystem)
            missing = [w for w in wanted if w not in schema.names]
            if missing:
                raise ConfigError(
                    f"{location}: no column {missing[0]!r} (has {', '.join(schema.names)})"
                )
            table = pq.read_table(path, columns=list(wanted), filesystem=filesystem)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(f"{location}: cannot read Parquet: {exc}") from exc
        for name in text_columns:
            column = table.column(name)
            if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
                table = table.set_column(
                    table.schema.get_field_index(name), name, column.cast(pa.string())
                )
        return table
    raw = _read_bytes(location)
    try:
        text = raw.decode(source.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ConfigError(f"{location}: cannot read as {source.encoding} text: {exc}") from exc
    text = text.lstrip("\ufeff")  # a byte-order mark is not part of the first column's name
    delimiter = source.delimiter
    if len(delimiter) > 1:  # pyarrow splits on one character: swap in a unit separator
        text, delimiter = text.replace(delimiter, "\x1f"), "\x1f"
    if not text.strip():
        raise ConfigError(f"{location}: the file is empty")
    first = _first_record(text, delimiter)
    names, has_header = _column_names(location, source, first, wanted)
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ConfigError(f"{location}: no column {missing[0]!r} (has {', '.join(names)})")
    try:
        return pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(has_header)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(wanted),
                column_types={name: pa.string() for name in text_columns},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"{location}: {exc}") from exc


def _text_ids(location: str, table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).to_numpy(zero_copy_only=False).astype(object)
    stripped = np.array([str(v).strip() if v is not None else "" for v in values], dtype=object)
    empty = np.flatnonzero(stripped == "")
    if len(empty):
        raise ConfigError(f"{location}: row {int(empty[0]) + 1}: column {column!r} is empty")
    return stripped


def _times(location: str, values: pa.ChunkedArray, column: str, unit: str) -> pd.Series:
    """UTC timestamps from epoch numbers (unit by magnitude when ``auto``) or ISO text."""
    series = values.to_pandas()
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.to_datetime(series, utc=True)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        if unit == "auto":
            biggest = float(np.abs(numeric).max()) if len(numeric) else 0.0
            unit = next(u for bound, u in _UNIT_BY_MAGNITUDE if biggest >= bound)
        return pd.to_datetime(numeric.astype(np.int64), unit=unit, utc=True)
    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise ConfigError(
            f"{location}: row {int(bad[0]) + 1}: column {column!r}: expected an epoch number "
            f"or an ISO 8601 time, got {series.iloc[int(bad[0])]!r}"
        )
    return parsed


def _interactions(config: DataConfig) -> pd.DataFrame:
    spec: InteractionsConfig = config.interactions
    location = config.locate(spec.path)
    columns = spec.columns
    mapped = {
        "user_id": columns.user,
        "item_id": columns.item,
        "ts": columns.time,
        "rating": columns.rating,
        "event": columns.event,
        "weight": columns.weight,
    }
    wanted = [c for c in mapped.values() if c is not None]
    text = [c for c in (columns.user, columns.item, columns.event) if c is not None]
    table = read_table(location, spec, list(dict.fromkeys(wanted)), text)
    if table.num_rows == 0:
        raise ConfigError(f"{location}: holds no interactions")
    frame = pd.DataFrame(
        {
            "user_id": _text_ids(location, table, columns.user),
            "item_id": _text_ids(location, table, columns.item),
        }
    )
    if columns.time is not None:
        frame["ts"] = _times(location, table.column(columns.time), columns.time, spec.time_unit)
    else:  # no time: file order stands for time order
        frame["ts"] = pd.to_datetime(np.arange(len(frame)), unit="s", utc=True)
    for target in ("rating", "weight"):
        name = mapped[target]
        if name is not None:
            values = pd.to_numeric(table.column(name).to_pandas(), errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if len(bad):
                raise ConfigError(
                    f"{location}: row {int(bad[0]) + 1}: column {name!r}: expected a number"
                )
            frame[target] = values.to_numpy(np.float64)
    if columns.event is not None:
        frame["event"] = _text_ids(location, table, columns.event)
    keep = np.ones(len(frame), dtype=bool)
    if spec.positive.min_rating is not None:
        keep &= frame["rating"].to_numpy() >= spec.positive.min_rating
    if spec.positive.events is not None:
        keep &= frame["event"].isin(spec.positive.events).to_numpy()
    frame = frame[keep]
    if frame.empty:
        raise ConfigError(f"{location}: no row is a positive interaction under `positive`")
    weight = frame["weight"] if "weight" in frame else pd.Series(1.0, index=frame.index)
    if spec.event_weights:
        weight = weight * frame["event"].map(spec.event_weights).fillna(1.0)
    frame = frame.assign(weight=weight.astype(np.float64))
    return frame.sort_values(["ts", "user_id", "item_id"], kind="stable", ignore_index=True)


def _items(config: DataConfig, interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per item: the item table's when there is one, and every interacted item;
    ``published_at`` falls back to an item's first interaction."""
    first_seen = interactions.groupby("item_id", sort=True)["ts"].min()
    items = pd.DataFrame({"item_id": first_seen.index.to_numpy(dtype=object)})
    spec: ItemsConfig | None = config.items
    if spec is not None:
        location = config.locate(spec.path)
        columns = spec.columns
        named = {
            "item_id": columns.item,
            "title": columns.title,
            "category": columns.category,
            "published_at": columns.published_at,
        }
        wanted = [c for c in (*named.values(), *spec.attributes) if c is not None]
        text = [c for c in (columns.item, columns.title, columns.category) if c is not None]
        table = read_table(location, spec, list(dict.fromkeys(wanted)), text)
        table_items = pd.DataFrame({"item_id": _text_ids(location, table, columns.item)})
        if columns.title is not None:
            table_items["title"] = table.column(columns.title).to_pandas().fillna("")
        if columns.category is not None:
            cells = table.column(columns.category).to_pandas().fillna("").astype(str)
            if spec.category_separator:
                listed = cells.str.split(spec.category_separator, regex=False)
                table_items["categories"] = listed.map(
                    lambda values: [v.strip() for v in values if v.strip()]
                )
                cells = listed.str[0].fillna("")
            cells = cells.str.strip()
            table_items["category"] = cells.where(
                ~cells.isin(["", "(no genres listed)"]), "unknown"
            )
        if columns.published_at is not None:
            table_items["published_at"] = _times(
                location, table.column(columns.published_at), columns.published_at, "auto"
            )
        for name in spec.attributes:
            if name not in table_items:
                table_items[name] = table.column(name).to_pandas()
        table_items = table_items.drop_duplicates("item_id", keep="first")
        items = table_items.merge(items, on="item_id", how="outer")
    if "category" not in items:
        items["category"] = "unknown"
    items["category"] = items["category"].fillna("unknown")
    if "title" in items:
        items["title"] = items["title"].fillna("")
    published = first_seen.reindex(items["item_id"]).to_numpy()
    if "published_at" in items:
        published = items["published_at"].fillna(pd.Series(published, index=items.index))
    items["published_at"] = pd.to_datetime(published, utc=True)
    # Items nobody interacted with and without a publication time: the newest time seen.
    items["published_at"] = items["published_at"].fillna(interactions["ts"].max())
    return items.sort_values("item_id", kind="stable", ignore_index=True)


def read_dataset(config: DataConfig) -> InteractionData:
    """The positive interactions (with a ``weight``), the items and the users."""
    interactions = _interactions(config)
    items = _items(config, interactions)
    users = pd.DataFrame({"user_id": np.sort(interactions["user_id"].unique()).astype(object)})
    return InteractionData(users=users, items=items, interactions=interactions, source=config.name)
