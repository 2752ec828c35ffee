"""What ``blendserve evaluate`` replays: the held-out interactions and the training
interactions whose items each user's lists leave out.

They come from a data config (the split ``blendserve train`` made, recomputed), or
from files: Parquet with ``user_id`` and ``item_id``, a folder written by ``blendserve
train`` or ``demo-train`` (``heldout.parquet``, with ``train.parquet`` beside it), or
MovieLens rating files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from models.demo.movielens import read_movielens
from models.errors import ConfigError
from models.training.data_config import load_data_config

__all__ = ["RELEVANT_RATING", "held_out_and_train", "pairs", "read_interactions"]

RELEVANT_RATING = 4.0
"""A MovieLens rating at or above this makes the movie relevant to the user."""

_MOVIELENS_FILES = ("ratings.dat", "ratings.csv", "u.data")


def read_interactions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Relevant ``(user_id, item_id)`` pairs, as strings, without repeats.

    A Parquet file with ``user_id`` and ``item_id`` (rows with ``label <= 0`` dropped
    when it has a ``label``), a directory written by ``blendserve train`` (its
    ``heldout.parquet``) or holding ``interactions.parquet``, or MovieLens ratings
    (``ratings.dat``, ``ratings.csv``, ``u.data``, or a directory holding one) where a
    rating of at least 4 is relevant.
    """
    source = Path(path)
    if not source.exists():
        raise ConfigError(f"{source}: interaction data does not exist")
    for name in ("heldout.parquet", "interactions.parquet"):
        if source.is_dir() and (source / name).is_file():
            source = source / name
            break
    if source.is_file() and source.suffix in (".parquet", ".pq"):
        frame = _read_parquet(source)
    elif (
        source.is_dir()
        or source.name in _MOVIELENS_FILES
        or source.suffix in (".dat", ".data", ".csv")
    ):
        ratings = read_movielens(source, min_rating=RELEVANT_RATING).interactions
        frame = ratings[["user_id", "item_id"]]
    else:
        raise ConfigError(
            f"{source}: expected a Parquet file (.parquet) with user_id and item_id, or "
            f"MovieLens ratings ({', '.join(_MOVIELENS_FILES)})"
        )
    frame = frame.astype({"user_id": str, "item_id": str}).drop_duplicates(ignore_index=True)
    if frame.empty:
        raise ConfigError(f"{source}: holds no relevant interaction")
    return frame


def _read_parquet(source: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot read Parquet: {exc}") from exc
    missing = {"user_id", "item_id"} - set(table.column_names)
    if missing:
        raise ConfigError(
            f"{source}: expected columns user_id and item_id (and optional label), "
            f"missing {sorted(missing)}"
        )
    columns = [c for c in ("user_id", "item_id", "label") if c in table.column_names]
    frame = table.select(columns).to_pandas()
    if "label" in frame:
        try:
            frame = frame[pd.to_numeric(frame["label"]) > 0]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: label must be numeric: {exc}") from exc
    return frame[["user_id", "item_id"]]


def pairs(frame: pd.DataFrame) -> pd.MultiIndex:
    """``(user_id, item_id)`` of ``frame`` as text, to compare two sets of interactions."""
    return pd.MultiIndex.from_frame(frame[["user_id", "item_id"]].astype(str))


def _default_train(data: Path) -> Path | None:
    """``train.parquet`` beside held-out data written by ``blendserve train``."""
    folder = data if data.is_dir() else data.parent
    candidate = folder / "train.parquet"
    return candidate if candidate.is_file() and candidate != data else None


def held_out_and_train(
    data: str | os.PathLike[str] | None,
    train: str | os.PathLike[str] | None,
    data_config: str | os.PathLike[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame | None, str, str | None]:
    """Held-out pairs, training pairs (or None), and where each came from."""
    if data_config is not None:
        from models.training.pipeline import split_from_config  # deferred: training's imports

        _, split = split_from_config(load_data_config(data_config))
        label = f"{data_config} ({split.method} split)"
        return split.test, split.train[["user_id", "item_id"]], label, label
    if data is None:
        raise ConfigError(
            "give the held-out interactions (--data) or a data config (--data-config)"
        )
    held_out = read_interactions(data)
    train_path = Path(train) if train is not None else _default_train(Path(data))
    if train_path is None:
        return held_out, None, str(data), None
    return held_out, read_interactions(train_path), str(data), str(train_path)
