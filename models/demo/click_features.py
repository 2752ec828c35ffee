"""Point-in-time click features and the click-probability classifier trained on them.

Every feature of an (user, item, time) example uses only clicks strictly before that
time, so training sees what serving would see and nothing from the future.
Negatives are items the user never clicked, drawn from those published in the week
before the click (what the feed could have shown instead), at the click's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models.errors import ConfigError

# The feature names live with the serving adapter, which rebuilds them per request.
from models.formats.click_ranker import CLICK_FEATURES

__all__ = [
    "CLICK_FEATURES",
    "ClickModelFit",
    "click_examples",
    "click_feature_tables",
    "fit_click_model",
]

_NEGATIVE_WINDOW_S = 7 * 86400
_TEST_SHARE = 0.2


@dataclass(frozen=True)
class ClickModelFit:
    """A fitted click model and how well it ranks later clicks."""

    pipeline: Pipeline
    auc: float
    n_examples: int


def _seconds(times: pd.Series) -> np.ndarray:
    """UTC timestamps as whole seconds since the epoch, whatever their resolution."""
    seconds = (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.int64)


def _count_before(
    keys: np.ndarray, times: np.ndarray, query_keys: np.ndarray, query_times: np.ndarray
) -> np.ndarray:
    """For each query, how many events share its key and happened strictly earlier."""
    span = int(max(times.max(), query_times.max())) + 2
    events = np.sort(keys * span + times)
    before = np.searchsorted(events, query_keys * span + query_times, side="left")
    return np.asarray(before - np.searchsorted(events, query_keys * span, side="left"))


def click_examples(items: pd.DataFrame, clicks: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per click (label 1) and per sampled negative (label 0), with features.

    Columns: the :data:`CLICK_FEATURES`, ``label`` and ``ts_s`` (seconds, for
    time-based splits). Clicks on items missing from ``items`` are ignored.
    """
    rng = np.random.default_rng(seed)
    catalogue = items.sort_values(["published_at", "item_id"], kind="stable", ignore_index=True)
    item_index = pd.Index(catalogue["item_id"])
    published = _seconds(catalogue["published_at"])
    category = pd.factorize(catalogue["category"].astype(str))[0].astype(np.int64)
    users = pd.Index(np.sort(clicks["user_id"].unique()))

    click_item = item_index.get_indexer(clicks["item_id"])
    known = click_item >= 0
    click_item = click_item[known].astype(np.int64)
    click_user = users.get_indexer(clicks["user_id"][known]).astype(np.int64)
    click_ts = _seconds(clicks["ts"][known])
    start = int(min(click_ts.min(), published.min()))

    # Negatives: a random item published in the week before each click (or earlier,
    # if the week is empty), that this user never clicked.
    low = np.searchsorted(published, click_ts - _NEGATIVE_WINDOW_S, side="left")
    high = np.searchsorted(published, click_ts, side="right")
    low = np.where(high > low, low, 0)
    neg_item = low + (rng.random(len(low)) * (high - low)).astype(np.int64)
    clicked = np.unique(click_user * len(item_index) + click_item)
    keep = (high > 0) & ~np.isin(click_user * len(item_index) + neg_item, clicked)

    user = np.concatenate((click_user, click_user[keep]))
    item = np.concatenate((click_item, neg_item[keep]))
    ts = np.concatenate((click_ts, click_ts[keep])) - start
    label = np.concatenate((np.ones(len(click_user)), np.zeros(int(keep.sum()))))
    n_cat = int(category.max()) + 1
    hist_ts = click_ts - start
    user_total = _count_before(click_user, hist_ts, user, ts)
    user_in_cat = _count_before(
        click_user * n_cat + category[click_item], hist_ts, user * n_cat + category[item], ts
    )
    item_clicks = _count_before(click_item, hist_ts, item, ts)
    return pd.DataFrame(
        {
            "category_affinity": user_in_cat / np.maximum(user_total, 1),
            "log_item_popularity": np.log1p(item_clicks),
            "item_age_hours": np.maximum(ts + start - published[item], 0) / 3600.0,
            "hour_of_day": ((ts + start) // 3600 % 24).astype(np.float64),
            "label": label,
            "ts_s": ts + start,
        }
    )


def fit_click_model(items: pd.DataFrame, clicks: pd.DataFrame, seed: int) -> ClickModelFit:
    """Fit scaler + logistic regression on the earliest 80% of examples; AUC on the rest."""
    examples = click_examples(items, clicks, seed)
    cut = np.quantile(examples["ts_s"], 1.0 - _TEST_SHARE)
    train, test = examples[examples["ts_s"] < cut], examples[examples["ts_s"] >= cut]
    for part, frame in (("training", train), ("test", test)):
        if frame["label"].nunique() < 2:
            raise ConfigError(
                f"click_model: the {part} split needs clicks and non-clicks, got "
                f"{len(frame)} examples of one kind; the dataset is too small"
            )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    features = list(CLICK_FEATURES)
    pipeline.fit(train[features].to_numpy(np.float32), train["label"].to_numpy())
    scores = pipeline.predict_proba(test[features].to_numpy(np.float32))[:, 1]
    auc = float(roc_auc_score(test["label"].to_numpy(), scores))
    return ClickModelFit(pipeline=pipeline, auc=auc, n_examples=len(examples))


def click_feature_tables(
    items: pd.DataFrame, clicks: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``click_ranker`` tables: per-item and per-(user, category) click counts.

    ``items.parquet`` holds every catalogue item (``item_id``, ``category``,
    ``published_at``, ``clicks``), so items nobody clicked can still be scored;
    ``user_categories.parquet`` holds ``user_id``, ``category``, ``clicks``. As in
    :func:`click_examples`, clicks on items missing from ``items`` are ignored.
    """
    catalogue = pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str),
            "category": items["category"].astype(str),
            "published_at": items["published_at"],
        }
    ).sort_values("item_id", kind="stable", ignore_index=True)
    known = clicks[clicks["item_id"].isin(catalogue["item_id"])]
    counts = known["item_id"].astype(str).value_counts()
    catalogue["clicks"] = counts.reindex(catalogue["item_id"], fill_value=0).to_numpy(np.int64)
    by_user = pd.DataFrame(
        {
            "user_id": known["user_id"].astype(str).to_numpy(),
            "category": catalogue.set_index("item_id")
            .loc[known["item_id"].astype(str), "category"]
            .to_numpy(),
        }
    )
    user_categories = (
        by_user.groupby(["user_id", "category"], sort=True).size().rename("clicks").reset_index()
    )
    user_categories["clicks"] = user_categories["clicks"].astype(np.int64)
    return catalogue, user_categories
