"""A deterministic synthetic news site: articles, readers and their clicks.

The generator plants the structure the demo models are meant to find:

* popularity skew: every article has a Zipf-like quality, so a few articles draw
  most of the clicks;
* taste: every reader has a Dirichlet-drawn preference over categories, so most of
  a reader's clicks fall in one to three categories (which popularity cannot see);
* recency: a click happens after its article is published, mostly within hours.

Everything is drawn from one ``numpy.random.Generator`` in a fixed order, so a seed
gives byte-identical frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import ConfigError
from models.training.dataset import InteractionData

__all__ = ["CATEGORIES", "generate_news_dataset"]

CATEGORIES: tuple[str, ...] = (
    "world",
    "politics",
    "business",
    "tech",
    "science",
    "sports",
    "culture",
    "health",
)
"""The sections of the synthetic site."""

# Fixed, not "now": the same seed must give the same timestamps on every run.
_SITE_START = pd.Timestamp("2025-03-01T00:00:00", tz="UTC")
_PUBLISHING_DAYS = 30
_ZIPF_EXPONENT = 1.1
# Small concentration: a reader cares about a few sections, not all eight.
_TASTE_CONCENTRATION = 0.25
# Most clicks come within hours of publication; a minority trickle in for days.
_FAST_DELAY_H, _SLOW_DELAY_H, _SLOW_SHARE = 6.0, 72.0, 0.15

_TOPICS: dict[str, tuple[str, ...]] = {
    "world": ("summit", "border talks", "ceasefire", "election abroad", "trade pact"),
    "politics": ("budget vote", "party leader", "new bill", "poll", "coalition"),
    "business": ("merger", "interest rates", "earnings", "start-up", "supply chain"),
    "tech": ("chip maker", "AI model", "phone launch", "data breach", "open source"),
    "science": ("telescope", "gene study", "climate data", "fusion test", "new species"),
    "sports": ("final", "transfer", "marathon", "title race", "injury"),
    "culture": ("film festival", "new album", "museum", "novel", "street art"),
    "health": ("vaccine", "sleep study", "hospital wait", "diet trial", "heatwave"),
}
_LEADS = ("Inside the", "What the", "Why the", "The truth about the", "Live:", "Explainer:")
_TURNS = (
    "changes everything",
    "surprises experts",
    "divides opinion",
    "is not over",
    "in 5 charts",
)


def generate_news_dataset(
    seed: int = 7, n_users: int = 1000, n_articles: int = 2000, n_clicks: int = 60000
) -> InteractionData:
    """Generate ``n_clicks`` distinct (reader, article) clicks on a synthetic news site.

    Readers are ``u0001``..., articles ``a00001``...; articles carry a ``category``,
    a ``published_at`` spread over 30 days and a ``title``. Same arguments, same
    frames.
    """
    for name, value in (("n_users", n_users), ("n_articles", n_articles), ("n_clicks", n_clicks)):
        if value < 1:
            raise ConfigError(f"{name}: expected a positive count, got {value}")
    if n_clicks > n_users * n_articles // 4:
        raise ConfigError(
            f"n_clicks: expected at most a quarter of all (user, article) pairs "
            f"({n_users * n_articles // 4}), got {n_clicks}"
        )
    rng = np.random.default_rng(seed)
    n_cat = len(CATEGORIES)

    category = rng.integers(0, n_cat, size=n_articles)
    quality = rng.permutation(n_articles).astype(np.float64) + 1.0
    quality **= -_ZIPF_EXPONENT
    published_s = np.sort(rng.integers(0, _PUBLISHING_DAYS * 86400, size=n_articles))
    taste = rng.dirichlet(np.full(n_cat, _TASTE_CONCENTRATION), size=n_users)
    activity = rng.lognormal(0.0, 0.7, size=n_users)
    titles = _titles(rng, category)

    user, article = _draw_unique_clicks(
        rng, n_clicks, taste, activity / activity.sum(), category, quality
    )
    slow = rng.random(len(article)) < _SLOW_SHARE
    delay_h = rng.exponential(np.where(slow, _SLOW_DELAY_H, _FAST_DELAY_H))
    # +1 s: a click never lands in the same second the article goes live.
    click_s = published_s[article] + 1 + (delay_h * 3600).astype(np.int64)

    users = pd.DataFrame({"user_id": _ids("u", n_users, 4)})
    items = pd.DataFrame(
        {
            "item_id": _ids("a", n_articles, 5),
            "category": np.asarray(CATEGORIES, dtype=object)[category],
            "published_at": _to_utc(published_s),
            "title": titles,
        }
    )
    clicks = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[user],
            "item_id": items["item_id"].to_numpy()[article],
            "ts": _to_utc(click_s),
        }
    )
    clicks = clicks.sort_values(["ts", "user_id", "item_id"], kind="stable", ignore_index=True)
    return InteractionData(users=users, items=items, interactions=clicks, source="synthetic-news")


def _draw_unique_clicks(
    rng: np.random.Generator,
    n_clicks: int,
    taste: np.ndarray,
    activity: np.ndarray,
    category: np.ndarray,
    quality: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw readers by activity, a section by taste, then an article by quality.

    A reader clicks an article at most once: repeats are dropped and topped up in
    further rounds, keeping the first draws, so the result is still deterministic.
    """
    n_users, n_articles = len(taste), len(category)
    by_category = np.argsort(category, kind="stable")
    # One CDF per section laid end to end: section c occupies [c, c + 1), so
    # searchsorted(c + u) picks an article of section c with probability ~ quality.
    sorted_quality = quality[by_category]
    sorted_category = category[by_category]
    totals = np.bincount(sorted_category, weights=sorted_quality, minlength=taste.shape[1])
    cumulative = (
        np.cumsum(sorted_quality) - np.concatenate(([0.0], np.cumsum(totals)))[sorted_category]
    )
    cdf = sorted_category + cumulative / totals[sorted_category]
    # Sections with no article at all get no taste weight.
    taste = taste * (totals > 0)
    taste_cdf = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)

    keys = np.empty(0, dtype=np.int64)
    for _ in range(50):
        if len(keys) >= n_clicks:
            break
        draws = 2 * (n_clicks - len(keys)) + 64
        user = rng.choice(n_users, size=draws, p=activity)
        section = (rng.random(draws)[:, None] > taste_cdf[user]).sum(axis=1)
        section = np.minimum(section, taste.shape[1] - 1)
        position = np.searchsorted(cdf, section + rng.random(draws), side="right")
        article = by_category[np.minimum(position, n_articles - 1)]
        keys = np.concatenate((keys, user.astype(np.int64) * n_articles + article))
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
    if len(keys) < n_clicks:
        raise ConfigError(f"n_clicks: could not draw {n_clicks} distinct clicks; lower it")
    keys = keys[:n_clicks]
    return keys // n_articles, keys % n_articles


def _titles(rng: np.random.Generator, category: np.ndarray) -> list[str]:
    """Headline-like titles: a lead, a topic of the article's section, a turn."""
    leads = rng.integers(0, len(_LEADS), size=len(category))
    topics = rng.integers(0, 5, size=len(category))
    turns = rng.integers(0, len(_TURNS), size=len(category))
    return [
        f"{_LEADS[lead]} {_TOPICS[CATEGORIES[cat]][topic]} {_TURNS[turn]}"
        for cat, lead, topic, turn in zip(category, leads, topics, turns, strict=True)
    ]


def _ids(prefix: str, count: int, width: int) -> np.ndarray:
    """``u0001``-style ids; the width grows when ``count`` needs more digits."""
    width = max(width, len(str(count)))
    return np.asarray([f"{prefix}{i:0{width}d}" for i in range(1, count + 1)], dtype=object)


def _to_utc(seconds_from_start: np.ndarray) -> pd.Series:
    """Seconds after the site opened, as UTC timestamps (nanosecond precision)."""
    return pd.Series(_SITE_START + pd.to_timedelta(seconds_from_start, unit="s"))
