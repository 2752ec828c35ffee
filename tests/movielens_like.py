"""A small ratings dataset in MovieLens' shape with a taste planted in it.

``ratings.csv`` (``userId,movieId,rating,timestamp``) and ``movies.csv``
(``movieId,title,genres`` with ``|``-separated genres): every reader has one or two
favourite genres and rates their films high, others low; films differ in how
popular they are. Collaborative models can learn the taste, popularity cannot,
so a correct pipeline ranks them in that order. Readers are active at different
times, so a time split holds out the newest ratings of readers seen before.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation")


def write_movielens_like(
    directory: Path,
    *,
    users: int = 300,
    movies: int = 400,
    seed: int = 3,
    header: bool = True,
    line_end: str = "\n",
) -> tuple[Path, Path]:
    """Write ``ratings.csv`` and ``movies.csv`` into ``directory``; return both paths."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    genre_of = rng.integers(0, len(GENRES), movies)
    appeal = rng.pareto(1.5, movies) + 1.0
    movie_ids = np.arange(1, movies + 1) * 3  # sparse ids, as MovieLens has
    rows: list[tuple[int, int, float, int]] = []
    start = 1_500_000_000
    for user in range(1, users + 1):
        liked = set(rng.choice(len(GENRES), size=rng.integers(1, 3), replace=False).tolist())
        in_taste = np.isin(genre_of, list(liked))
        weights = appeal * np.where(in_taste, 6.0, 1.0)
        count = int(rng.integers(20, 60))
        picked = rng.choice(movies, size=count, replace=False, p=weights / weights.sum())
        active_from = start + int(rng.integers(0, 300)) * 86_400
        times = np.sort(active_from + rng.integers(0, 200 * 86_400, count))
        for movie, ts in zip(picked, times, strict=True):
            high = in_taste[movie]
            rating = float(
                rng.choice([4.0, 4.5, 5.0]) if high else rng.choice([1.0, 2.0, 3.0, 4.0])
            )
            rows.append((user, int(movie_ids[movie]), rating, int(ts)))
    ratings = directory / "ratings.csv"
    with ratings.open("w", newline="", encoding="utf-8") as handle:
        if header:
            handle.write("userId,movieId,rating,timestamp" + line_end)
        for user, movie, rating, ts in rows:
            handle.write(f"{user},{movie},{rating:g},{ts}{line_end}")
    movies_path = directory / "movies.csv"
    with movies_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=line_end)
        if header:
            writer.writerow(["movieId", "title", "genres"])
        for index, movie in enumerate(movie_ids):
            second = GENRES[(genre_of[index] + 3) % len(GENRES)]
            writer.writerow([int(movie), f"Film {movie}, the ({1950 + index % 70})",
                             f"{GENRES[genre_of[index]]}|{second}"])  # fmt: skip
    return ratings, movies_path


MOVIELENS_DATA_CONFIG = """\
name: movielens-like
interactions:
  path: ratings.csv
  names: [userId, movieId, rating, timestamp]
  columns: {user: userId, item: movieId, time: timestamp, rating: rating}
  positive: {min_rating: 4}
items:
  path: movies.csv
  names: [movieId, title, genres]
  columns: {item: movieId, title: title, category: genres}
  category_separator: "|"
holdout: {method: time, fraction: 0.1}
"""
"""The data config the tutorial (docs/your-data.md) gives for these two files."""
