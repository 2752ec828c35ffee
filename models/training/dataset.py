"""The interaction dataset every model trains on (the demo's and a team's), and its Parquet layout.

A dataset is three frames: ``users`` (``user_id``), ``items`` (``item_id``,
``category``, ``published_at`` and optionally ``title``) and ``interactions``
(``user_id``, ``item_id``, ``ts`` and optionally ``rating``). Ids are strings and
times are UTC timestamps, whichever source the data came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.errors import ConfigError

__all__ = ["InteractionData"]

_FILES = ("users", "items", "interactions")
_SOURCE_KEY = b"blendserve.source"
_REQUIRED: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id", "category", "published_at"),
    "interactions": ("user_id", "item_id", "ts"),
}


@dataclass(frozen=True, eq=False)
class InteractionData:
    """Users, items and who interacted with what, when.

    ``items.category`` is a string (``"unknown"`` when the source has none);
    ``published_at`` and ``interactions.ts`` are timezone-aware UTC timestamps.
    """

    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    source: str = "unknown"
    """Where the data came from (``synthetic-news``, ``movielens``); kept by save/load."""

    def __post_init__(self) -> None:
        for name in _FILES:
            missing = [c for c in _REQUIRED[name] if c not in getattr(self, name).columns]
            if missing:
                raise ConfigError(
                    f"{name} frame: expected columns {list(_REQUIRED[name])}, missing {missing}"
                )

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``users.parquet``, ``items.parquet`` and ``interactions.parquet``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            table = pa.Table.from_pandas(getattr(self, name), preserve_index=False)
            metadata = {**(table.schema.metadata or {}), _SOURCE_KEY: self.source.encode()}
            pq.write_table(table.replace_schema_metadata(metadata), target / f"{name}.parquet")
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> InteractionData:
        """Read a dataset written by :meth:`save`."""
        source = Path(directory)
        frames: dict[str, pd.DataFrame] = {}
        origin = "unknown"
        for name in _FILES:
            path = source / f"{name}.parquet"
            if not path.is_file():
                raise ConfigError(f"dataset {source}: {path.name} is missing")
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowException) as exc:
                raise ConfigError(f"dataset {source}: cannot read {path.name}: {exc}") from exc
            frames[name] = table.to_pandas()
            origin = (table.schema.metadata or {}).get(_SOURCE_KEY, origin.encode()).decode()
        return cls(
            users=frames["users"],
            items=frames["items"],
            interactions=frames["interactions"],
            source=origin,
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.summary().items())
        return f"InteractionData({counts}, source={self.source!r})"

    def summary(self) -> dict[str, int]:
        """Counts worth printing or recording in a manifest."""
        return {
            "n_users": int(self.users["user_id"].nunique()),
            "n_items": int(self.items["item_id"].nunique()),
            "n_interactions": len(self.interactions),
        }
