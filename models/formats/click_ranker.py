"""A click-probability reranker: a sklearn click model plus the tables its features need.

The artifact is the ``sklearn`` format (``model.joblib``, ``features.json``) plus two
feature tables written at training time:

* ``items.parquet``: ``item_id``, ``category``, ``published_at`` (UTC timestamp) and
  ``clicks`` (training clicks on the item);
* ``user_categories.parquet``: ``user_id``, ``category``, ``clicks`` (the user's
  training clicks in that category).

:meth:`ClickRankerAdapter.score` rebuilds the :data:`CLICK_FEATURES` of every item for
one user at one time, exactly as training defines them, and answers the classifier's
click probability. Options: ``clock`` is ``"wall"`` (default: "now" is the wall clock)
or ``"snapshot"`` (the newest training click, ``as_of`` in the manifest's ``extra``,
so a replay of old data is not scored as if every item were weeks old).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from models.base import RecommendQuery, Scorer
from models.errors import ConfigError, InputError, ModelError
from models.formats.sklearn_adapter import SklearnAdapter

__all__ = ["CLICK_FEATURES", "CLOCKS", "ClickRankerAdapter", "parse_time"]

CLICK_FEATURES: tuple[str, ...] = (
    "category_affinity",
    "log_item_popularity",
    "item_age_hours",
    "hour_of_day",
)
"""The click model's features; training (``models.demo.click_features``) uses this order."""

CLOCKS: tuple[str, ...] = ("wall", "snapshot")
"""Values of the ``clock`` option: what "now" is when a request does not say."""

_OPTIONS = frozenset({"clock"})
_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def parse_time(value: Any) -> float:
    """Epoch seconds from an ISO-8601 string, epoch seconds or a datetime.

    A time without a zone is taken as UTC. Raises ``ValueError`` on anything else,
    including numbers outside the years 1 to 9999 (which would make ages infinite).
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            datetime.fromtimestamp(value, UTC)  # only to check the range
            return float(value)
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else value
        if isinstance(moment, datetime):
            zoned = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            return zoned.timestamp()
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"expected an ISO-8601 time or epoch seconds, got {value!r}") from exc
    raise ValueError(f"expected an ISO-8601 time or epoch seconds, got {value!r}")


def _column(table: pa.Table, name: str, kind: str, source: str) -> pa.ChunkedArray:
    """A column that exists, has no nulls and is of ``kind`` (string/integer/timestamp)."""
    if name not in table.column_names:
        raise ModelError(f"{source}: column {name!r} is missing (has {table.column_names})")
    column = table.column(name)
    checks = {
        "string": pa.types.is_string(column.type) or pa.types.is_large_string(column.type),
        "integer": pa.types.is_integer(column.type),
        "timestamp": pa.types.is_timestamp(column.type),
    }
    if not checks[kind] or column.null_count:
        raise ModelError(
            f"{source}: column {name!r}: expected {kind} values without nulls, "
            f"got {column.type} with {column.null_count} nulls"
        )
    return column


class ClickRankerAdapter(SklearnAdapter, Scorer):
    """Scores items for a user by click probability; ``predict`` works as in ``sklearn``."""

    format = "click_ranker"
    known_options = _OPTIONS

    def load(self) -> None:
        """Load the classifier, check its features, and index the feature tables."""
        self.clock = str(self.options.get("clock", "wall"))
        if self.clock not in CLOCKS:
            raise ConfigError(
                f"model {self.name!r}: option clock: expected one of {list(CLOCKS)}, "
                f"got {self.options.get('clock')!r}"
            )
        super().load()
        if sorted(self.feature_names or []) != sorted(CLICK_FEATURES) or not self._binary_proba:
            raise ModelError(
                f"model {self.name!r}: expected a binary classifier over {list(CLICK_FEATURES)}, "
                f"got features {self.feature_names}"
            )
        self.as_of_s: float | None = None
        if "as_of" in self.manifest.extra:
            try:
                self.as_of_s = parse_time(self.manifest.extra["as_of"])
            except ValueError as exc:
                raise ModelError(f"model {self.name!r}: manifest extra.as_of: {exc}") from exc
        if self.clock == "snapshot" and self.as_of_s is None:
            raise ModelError(
                f"model {self.name!r}: clock 'snapshot' needs extra.as_of in its manifest"
            )
        self._load_items()
        self._load_users()

    def _load_items(self) -> None:
        source = f"model {self.name!r}: items.parquet"
        table = pq.read_table(self.directory / "items.parquet")
        ids = [str(i) for i in _column(table, "item_id", "string", source).to_pylist()]
        self._item_row = {item: row for row, item in enumerate(ids)}
        if len(self._item_row) != len(ids):
            raise ModelError(f"{source}: an item id appears twice")
        categories = _column(table, "category", "string", source).to_pylist()
        self._category_code: dict[str, int] = {}
        self._item_category = np.asarray(
            [self._category_code.setdefault(c, len(self._category_code)) for c in categories],
            dtype=np.int64,
        )
        published = _column(table, "published_at", "timestamp", source)
        per_second = _UNIT_PER_SECOND[published.type.unit]
        # Whole seconds, floored, as training's features are.
        ticks = published.cast(pa.int64()).to_numpy()
        self._item_published_s = (ticks // per_second).astype(np.float64)
        clicks = _column(table, "clicks", "integer", source).to_numpy().astype(np.float64)
        if (clicks < 0).any():
            raise ModelError(f"{source}: column 'clicks' holds a negative count")
        self._item_log_popularity = np.log1p(clicks)

    def _load_users(self) -> None:
        source = f"model {self.name!r}: user_categories.parquet"
        table = pq.read_table(self.directory / "user_categories.parquet")
        users = [str(u) for u in _column(table, "user_id", "string", source).to_pylist()]
        categories = _column(table, "category", "string", source).to_pylist()
        clicks = _column(table, "clicks", "integer", source).to_numpy().astype(np.float64)
        if (clicks < 0).any():
            raise ModelError(f"{source}: column 'clicks' holds a negative count")
        self._user_code: dict[str, int] = {}
        user = np.asarray(
            [self._user_code.setdefault(u, len(self._user_code)) for u in users], dtype=np.int64
        )
        # Categories no item has still count in the user's total, as in training.
        category = np.asarray(
            [self._category_code.setdefault(c, len(self._category_code)) for c in categories],
            dtype=np.int64,
        )
        totals = np.bincount(user, weights=clicks, minlength=len(self._user_code))
        # One sorted key per (user, category): memory grows with the table, not with
        # users x categories, and a lookup is one searchsorted over the request's items.
        self._n_categories = max(len(self._category_code), 1)
        keys = user * self._n_categories + category
        order = np.argsort(keys, kind="stable")
        self._affinity_keys = keys[order]
        if len(keys) and (np.diff(self._affinity_keys) == 0).any():
            raise ModelError(f"{source}: a (user_id, category) pair appears twice")
        share = clicks / np.maximum(totals[user], 1.0)
        self._affinity = share[order]

    def _now_s(self, context: Mapping[str, Any]) -> float:
        """Request time in whole epoch seconds: ``context.now``, else the clock option."""
        value = context.get("now")
        if value is not None:
            try:
                now = parse_time(value)
            except ValueError as exc:
                raise InputError("context.now", str(exc)) from exc
        elif self.clock == "snapshot":
            assert self.as_of_s is not None  # checked at load
            now = self.as_of_s
        else:
            now = datetime.now(UTC).timestamp()
        return float(math.floor(now))

    def features(self, query: RecommendQuery, item_ids: Sequence[str]) -> np.ndarray:
        """The model's input rows for ``item_ids`` (``features.json`` order), float32.

        Rows of items missing from ``items.parquet`` are NaN.
        """
        now = self._now_s(query.context)
        hour = query.context.get("hour")
        if hour is None:
            hour = int(now // 3600 % 24)
        elif isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
            raise InputError("context.hour", f"expected an integer from 0 to 23, got {hour!r}")
        rows = np.fromiter(
            (self._item_row.get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids)
        )
        known = rows >= 0
        rows = rows[known]
        affinity = np.zeros(len(rows))
        user = self._user_code.get(query.user_id)
        if user is not None and len(self._affinity_keys):
            keys = user * self._n_categories + self._item_category[rows]
            at = np.minimum(
                np.searchsorted(self._affinity_keys, keys), len(self._affinity_keys) - 1
            )
            affinity = np.where(self._affinity_keys[at] == keys, self._affinity[at], 0.0)
        columns = {
            "category_affinity": affinity,
            "log_item_popularity": self._item_log_popularity[rows],
            "item_age_hours": np.maximum(now - self._item_published_s[rows], 0.0) / 3600.0,
            "hour_of_day": np.full(len(rows), float(hour)),
        }
        matrix = np.full((len(item_ids), len(CLICK_FEATURES)), np.nan, dtype=np.float32)
        names = self.feature_names or list(CLICK_FEATURES)
        matrix[known] = np.column_stack([columns[n] for n in names])
        return matrix

    def item_ids(self) -> Sequence[str]:
        """The items its feature table knows (others score as brand-new items)."""
        return list(self._item_row)

    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """P(click) of every item for ``query.user_id`` now; 0.0 for unknown items."""
        matrix = self.features(query, item_ids)
        known = ~np.isnan(matrix[:, 0])
        scores = np.zeros(len(item_ids))
        if known.any():
            scores[known] = self._run(matrix[known])
        return [float(s) for s in scores]

    def describe(self) -> dict[str, Any]:
        """Add the size of the feature tables and which clock "now" comes from."""
        as_of = None
        if self.as_of_s is not None:
            as_of = datetime.fromtimestamp(self.as_of_s, UTC).isoformat()
        return {
            **super().describe(),
            "n_items": len(self._item_row),
            "n_users": len(self._user_code),
            "clock": self.clock,
            "as_of": as_of,
        }
