"""The data config: where a team's interaction and item tables are and what their
columns mean (``blendserve train --data-config FILE``).

A small YAML file; every path is relative to the file itself unless it is a URI
(``s3://``, ``gs://``, ``hdfs://``, ``file://``: any filesystem pyarrow opens)::

    name: movielens
    interactions:
      path: ratings.csv                # CSV or Parquet (by suffix, or `format:`)
      names: [userId, movieId, rating, timestamp]   # the order, for files without a header
      columns: {user: userId, item: movieId, time: timestamp, rating: rating}
      positive: {min_rating: 4}        # which rows are a positive interaction
    items:
      path: movies.csv
      names: [movieId, title, genres]
      columns: {item: movieId, title: title, category: genres}
      category_separator: "|"          # the first listed value is the item's category
    holdout: {method: time, fraction: 0.1}

Ids are kept exactly as the files spell them: the application calls with the ids it
already knows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import ConfigError

__all__ = [
    "Collaborative",
    "DataConfig",
    "HoldoutConfig",
    "InteractionColumns",
    "InteractionsConfig",
    "ItemColumns",
    "ItemsConfig",
    "Positive",
    "TableSource",
    "TrainingConfig",
    "load_data_config",
]

Collaborative = Literal["ease", "als", "bpr"]
"""The collaborative candidates: EASE (closed form, up to tens of thousands of items),
ALS (``implicit``'s alternating least squares, for larger catalogues) and BPR (the
torch matrix factorisation, exported as TorchScript)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSource(_Strict):
    """Where one table is and how its file is laid out."""

    path: str = Field(description="A local path (relative to the data config) or a URI.")
    format: Literal["auto", "csv", "parquet"] = "auto"
    """``auto``: Parquet for ``.parquet``/``.pq``, CSV otherwise."""
    header: Literal["auto"] | bool = "auto"
    """``auto``: the first line is a header when it holds the mapped column names (or
    equals ``names``); otherwise every line is data and ``names`` gives the order."""
    names: list[str] | None = None
    """The columns in file order, for CSV files that may lack a header line."""
    delimiter: str = Field(",", min_length=1)
    """Field separator; more than one character (MovieLens' ``::``) is allowed."""
    encoding: str = "utf-8"


class InteractionColumns(_Strict):
    """Which file column holds what; ``None`` where the table has no such column."""

    user: str = "user_id"
    item: str = "item_id"
    time: str | None = "timestamp"
    rating: str | None = None
    event: str | None = None
    weight: str | None = None


class Positive(_Strict):
    """Which rows count as a positive interaction (all of them by default)."""

    min_rating: float | None = None
    """With a ``rating`` column: keep rows rated at least this."""
    events: list[str] | None = None
    """With an ``event`` column: keep rows of these event types."""


class InteractionsConfig(TableSource):
    """The interaction table: who did what with which item, when."""

    columns: InteractionColumns = InteractionColumns()
    positive: Positive = Positive()
    event_weights: dict[str, float] = Field(default_factory=dict)
    """Weight per event type (a purchase may count 5 clicks); 1 for unlisted types."""
    time_unit: Literal["auto", "s", "ms", "us", "ns"] = "auto"
    """For numeric times: ``auto`` reads the unit off the magnitude (epoch seconds
    through nanoseconds). Text times are parsed as ISO 8601."""

    @model_validator(mode="after")
    def _consistent(self) -> InteractionsConfig:
        if self.positive.min_rating is not None and self.columns.rating is None:
            raise ValueError("positive.min_rating needs columns.rating")
        if self.positive.events is not None and self.columns.event is None:
            raise ValueError("positive.events needs columns.event")
        if self.event_weights and self.columns.event is None:
            raise ValueError("event_weights needs columns.event")
        return self


class ItemColumns(_Strict):
    """Which file column holds what in the item table."""

    item: str = "item_id"
    title: str | None = None
    category: str | None = None
    published_at: str | None = None


class ItemsConfig(TableSource):
    """The item table: titles, categories, publication times and any other attributes."""

    columns: ItemColumns = ItemColumns()
    category_separator: str | None = None
    """When a category cell lists several values (``Action|Comedy``): the first is
    the item's ``category``, all of them are kept in ``categories``."""
    attributes: list[str] = Field(default_factory=list)
    """Further columns to keep in the catalogue, under their own names."""


class HoldoutConfig(_Strict):
    """How the evaluation split is made."""

    method: Literal["time", "last"] = "time"
    """``time``: the newest ``fraction`` of positive interactions is held out (the
    future, as serving will meet it); ``last``: each user's last one."""
    fraction: float = Field(0.1, gt=0, lt=1)
    validation: float = Field(0.1, gt=0, lt=1)
    """The share of the training part held out again to choose hyperparameters."""


class TrainingConfig(_Strict):
    """Which models to train and how to compare them."""

    collaborative: list[Collaborative] = Field(
        default_factory=lambda: list[Collaborative](["ease", "als", "bpr"])
    )
    """Candidates for the collaborative model; the best on the validation split is
    published as ``mf``, with every candidate's numbers in its manifest."""
    ease_max_items: int = Field(20_000, ge=1)
    """EASE inverts an items x items matrix: skipped above this many items."""
    k: int = Field(10, ge=1)
    """The cut-off of the reported metrics (recall@k, NDCG@k, coverage@k)."""
    seed: int = 7

    @field_validator("collaborative")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one collaborative model")
        return list(dict.fromkeys(value))


class DataConfig(_Strict):
    """A team's tables and how to train on them."""

    name: str = Field("data", min_length=1)
    """Recorded in every manifest as where the models were trained."""
    interactions: InteractionsConfig
    items: ItemsConfig | None = None
    holdout: HoldoutConfig = HoldoutConfig()
    training: TrainingConfig = TrainingConfig()
    base: str = Field(".", exclude=True)
    """The directory relative paths are read from (the data config's own)."""

    def locate(self, path: str) -> str:
        """``path`` as a URI or an absolute local path."""
        if "://" in path or os.path.isabs(path):
            return path
        return str(Path(self.base) / path)


def load_data_config(path: str | os.PathLike[str]) -> DataConfig:
    """Read and check a data config; errors name the file and the field."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the data config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with at least `interactions`")
    try:
        return DataConfig.model_validate({**raw, "base": str(source.resolve().parent)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
