"""How many of a model's items the catalogue knows: checked before a model serves.

A model keyed by ids the catalogue does not use (trained on ``m1196`` where the
catalogue says ``1196``, or on another site's items) loads, passes its smoke test and
then answers nothing useful: the filter drops every item it returns, or every user
gets its cold-start row. ``blendserve publish`` and ``blendserve validate --load``
compare the ids first.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from models.base import ModelAdapter, Recommender, RecommendQuery
from models.errors import ConfigError
from models.smoke import SMOKE_USER

__all__ = ["LOW_SHARE", "CatalogueShare", "catalogue_share", "read_item_ids"]

LOW_SHARE = 0.5
"""Below this share of a model's items in the catalogue, the checks warn."""

_SAMPLE = 100
"""Items asked of a recommender that does not list its ids."""

_NEW_USER = RecommendQuery(SMOKE_USER)


@dataclass(frozen=True)
class CatalogueShare:
    """A model's items against the catalogue's."""

    known: int
    """The model's items the catalogue holds."""
    total: int
    """The model's items compared (0: nothing to compare)."""
    what: str
    """What was compared: ``items`` (every id the model is keyed by) or, for a
    recommender that does not list them, ``items it recommends to a new user``."""
    unknown: tuple[str, ...]
    """A few of the model's ids the catalogue does not hold."""
    catalogue_size: int
    """Items in the catalogue."""

    @property
    def level(self) -> str:
        """``error`` when none is known, ``warning`` under :data:`LOW_SHARE`, else ``ok``."""
        if self.total == 0:
            return "ok"
        if self.known == 0:
            return "error"
        return "warning" if self.known / self.total < LOW_SHARE else "ok"

    def __str__(self) -> str:
        if self.total == 0:
            return "not keyed by item ids: nothing to compare with the catalogue"
        text = f"{self.known:,} of {self.total:,} {self.what} in the catalogue"
        if self.what == "items":
            text += f" ({self.known:,} of the catalogue's {self.catalogue_size:,} scorable)"
        if self.unknown:
            text += f"; unknown ids e.g. {', '.join(self.unknown)}"
        if self.known == 0:
            text += ": its ids are not the catalogue's (trained on ids written another way?)"
        return text


def _model_items(adapter: ModelAdapter) -> tuple[list[str], str]:
    ids = adapter.item_ids()
    if ids is not None:
        return [str(i) for i in ids], "items"
    if isinstance(adapter, Recommender) and adapter.describe().get("recommender"):
        try:
            (answer,) = adapter.top_items([_NEW_USER], _SAMPLE)
        except Exception:  # noqa: BLE001 - the role and smoke checks report a failing model
            return [], "items"
        return [str(item) for item in answer.ids], "items it recommends to a new user"
    return [], "items"


def catalogue_share(adapter: ModelAdapter, catalogue: Collection[str]) -> CatalogueShare:
    """Compare the ids ``adapter`` is keyed by (or, for a recommender that does not list
    them, what it recommends to a new user) with ``catalogue``."""
    ids, what = _model_items(adapter)
    unknown = [item for item in ids if item not in catalogue]
    return CatalogueShare(
        len(ids) - len(unknown), len(ids), what, tuple(unknown[:3]), len(catalogue)
    )


def read_item_ids(path: str | os.PathLike[str]) -> set[str]:
    """The ``item_id`` column of an item table (Parquet, or CSV with a header), as text."""
    source = Path(path)
    try:
        if source.suffix.lower() == ".csv":
            table = pacsv.read_csv(
                source,
                convert_options=pacsv.ConvertOptions(
                    include_columns=["item_id"], column_types={"item_id": "string"}
                ),
            )
        else:
            table = pq.read_table(source, columns=["item_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"catalog {source}: expected a table with an item_id column: {exc}"
        ) from exc
    return {str(i) for i in table.column("item_id").to_pylist() if i is not None}
