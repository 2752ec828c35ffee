"""Import a MovieLens ratings file as implicit feedback.

Three public layouts are read, each with its movies file when one sits beside it:

========================  ===============================  ==============================
ratings                   line format                      movies (first genre = category)
========================  ===============================  ==============================
``ratings.dat`` (ml-1m)   ``UserID::MovieID::Rating::TS``  ``movies.dat`` (latin-1)
``ratings.csv`` (latest)  ``userId,movieId,rating,ts``     ``movies.csv`` (utf-8, quoted)
``u.data`` (ml-100k)      tab-separated, no header         ``u.item`` (``|``, latin-1)
========================  ===============================  ==============================

Ratings below ``min_rating`` are dropped (a 2-star rating is not a "click"). Ids are
kept as the files write them (user ``1``, movie ``1193``): an application calls with
MovieLens' own ids. The CSV files may come with or without their header line
(redistributed copies often drop it) and with any line ends. MovieLens has no
release time, so an item's ``published_at`` is its first rating of any value (and
movies nobody rated are left out).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import ConfigError
from models.training.dataset import InteractionData

__all__ = ["read_movielens"]

_RATINGS_FILES = ("ratings.dat", "ratings.csv", "u.data")
_MOVIES_BESIDE = {"ratings.dat": "movies.dat", "ratings.csv": "movies.csv", "u.data": "u.item"}
_CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
_MOVIES_HEADER = ("movieId", "title", "genres")
# u.item carries 19 genre flags in this order (ml-100k's u.genre).
_U_ITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def read_movielens(path: str | os.PathLike[str], min_rating: float = 4.0) -> InteractionData:
    """Read a MovieLens directory or ratings file; keep ratings ``>= min_rating``."""
    if not math.isfinite(min_rating):
        raise ConfigError(f"min_rating: expected a finite number, got {min_rating!r}")
    ratings_path = _find_ratings(Path(path))
    ratings = _read_ratings(ratings_path)
    movies_path = ratings_path.with_name(_MOVIES_BESIDE[_layout(ratings_path)])
    movies = _read_movies(movies_path) if movies_path.is_file() else None

    first_seen = ratings.groupby("item_id", sort=True)["ts"].min()
    items = pd.DataFrame({"item_id": first_seen.index.to_numpy(dtype=object)})
    if movies is not None:
        items = items.merge(movies, on="item_id", how="left")
        items["title"] = items["title"].fillna("")
        items["category"] = items["category"].fillna("unknown")
    else:
        items["category"] = "unknown"
    items["published_at"] = first_seen.reset_index(drop=True)
    items = items[[c for c in ("item_id", "category", "published_at", "title") if c in items]]

    kept = ratings[ratings["rating"] >= min_rating]
    if kept.empty:
        raise ConfigError(f"{ratings_path}: no rating is >= min_rating={min_rating}")
    kept = kept.sort_values(["ts", "user_id", "item_id"], kind="stable", ignore_index=True)
    users = pd.DataFrame({"user_id": np.sort(ratings["user_id"].unique()).astype(object)})
    return InteractionData(users=users, items=items, interactions=kept, source="movielens")


def _layout(path: Path) -> str:
    """Which of the three layouts a ratings file is, judged by its name."""
    if path.name in _RATINGS_FILES:
        return path.name
    suffix_layouts = {".dat": "ratings.dat", ".csv": "ratings.csv", ".data": "u.data"}
    if path.suffix in suffix_layouts:
        return suffix_layouts[path.suffix]
    raise ConfigError(
        f"{path}: expected a MovieLens ratings file named one of {list(_RATINGS_FILES)}"
    )


def _find_ratings(path: Path) -> Path:
    """The ratings file itself, or the first known one inside a directory."""
    if path.is_dir():
        for name in _RATINGS_FILES:
            if (path / name).is_file():
                return path / name
        raise ConfigError(
            f"{path}: no MovieLens ratings file found (expected one of {list(_RATINGS_FILES)})"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: MovieLens file or directory does not exist")
    _layout(path)
    return path


def _read_text(path: Path, encoding: str) -> str:
    try:
        return path.read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read as {encoding} text: {exc}") from exc


_Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _parse_fast(text: str, layout: str) -> _Columns | None:
    """user, movie, rating, ts as floats via pandas' C parser; None if it cannot."""
    try:
        if layout == "ratings.csv" and _has_csv_header(text):
            frame = pd.read_csv(io.StringIO(text), usecols=list(_CSV_HEADER), dtype=np.float64)
            frame = frame[list(_CSV_HEADER)]
        elif layout == "ratings.csv":
            frame = pd.read_csv(io.StringIO(text), header=None, dtype=np.float64)
        else:
            # The C parser takes one-character separators only, hence the swap.
            source = text.replace("::", "\t") if layout == "ratings.dat" else text
            sep = "\t" if layout == "ratings.dat" else r"\s+"
            frame = pd.read_csv(io.StringIO(source), sep=sep, header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError):
        return None
    if frame.shape[1] != len(_CSV_HEADER):
        return None
    user, movie, rating, ts = (frame[c].to_numpy(np.float64) for c in frame.columns)
    return user, movie, rating, ts


def _parse_slow(path: Path, text: str, layout: str) -> tuple[_Columns, list[int]]:
    """Line by line, so a malformed line can be named; also returns the line numbers."""
    lines = text.splitlines()
    first_line, expect = 1, "UserID::MovieID::Rating::Timestamp"
    sep: str | None = "::"
    if layout == "u.data":
        sep, expect = None, "user<TAB>item<TAB>rating<TAB>timestamp"
    elif layout == "ratings.csv" and _has_csv_header(text):
        first_line, sep, expect, lines = 2, ",", lines[0], lines[1:]
    elif layout == "ratings.csv":
        sep, expect = ",", ",".join(_CSV_HEADER)
    numbers: list[int] = []
    rows: list[list[str]] = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != len(_CSV_HEADER):
            raise ConfigError(f"{path}:{number}: expected {expect!r}, got {line[:80]!r}")
        numbers.append(number)
        rows.append(fields)
    order = [0, 1, 2, 3]
    if layout == "ratings.csv" and _has_csv_header(text):
        header = [h.strip() for h in expect.split(",")]
        order = [header.index(name) for name in _CSV_HEADER]
    user, movie, rating, ts = (
        pd.to_numeric(
            pd.Series([r[i] for r in rows], dtype=object).str.strip(), errors="coerce"
        ).to_numpy(np.float64)
        for i in order
    )
    return (user, movie, rating, ts), numbers


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _has_csv_header(text: str) -> bool:
    """Whether a ``ratings.csv`` text starts with its header line (in any column order)."""
    first = [h.strip() for h in text.lstrip("\ufeff").split("\n", 1)[0].split(",")]
    return sorted(first) == sorted(_CSV_HEADER)


def _first_bad_row(columns: _Columns) -> int | None:
    """Index of the first row whose ids or time are not integers or whose rating is NaN."""
    user, movie, rating, ts = columns
    good = np.isfinite(rating)
    for values in (user, movie, ts):
        good &= np.isfinite(values) & (values % 1 == 0)
    return None if good.all() else int(np.argmin(good))


def _read_ratings(path: Path) -> pd.DataFrame:
    """Parse every rating, naming the file and line of the first malformed one.

    The fast C parser reads well-formed files; anything it rejects is re-read line
    by line, which either finds the culprit line or parses what the fast path could not.
    """
    layout = _layout(path)
    text = _read_text(path, "utf-8" if layout == "ratings.csv" else "latin-1").lstrip("\ufeff")
    if layout == "ratings.csv":
        first = [h.strip() for h in text.split("\n", 1)[0].split(",")]
        looks_like_data = all(_is_number(f) for f in first) and len(first) == len(_CSV_HEADER)
        if not _has_csv_header(text) and not looks_like_data:
            raise ConfigError(
                f"{path}:1: expected the header {','.join(_CSV_HEADER)!r} or a first rating "
                f"(4 numbers), got {','.join(first)[:80]!r}"
            )
    columns = _parse_fast(text, layout)
    if columns is None or _first_bad_row(columns) is not None:
        columns, numbers = _parse_slow(path, text, layout)
        bad = _first_bad_row(columns)
        if bad is not None:
            line = text.splitlines()[numbers[bad] - 1]
            raise ConfigError(
                f"{path}:{numbers[bad]}: expected integer ids and timestamp and a numeric "
                f"rating, got {line[:80]!r}"
            )
    user, movie, rating, ts = columns
    if len(user) == 0:
        raise ConfigError(f"{path}: holds no ratings")
    return pd.DataFrame(
        {
            "user_id": user.astype(np.int64).astype(str).astype(object),
            "item_id": movie.astype(np.int64).astype(str).astype(object),
            "ts": pd.to_datetime(ts.astype(np.int64), unit="s", utc=True),
            "rating": rating,
        }
    )


def _read_movies(path: Path) -> pd.DataFrame:
    """``item_id``, ``title`` and ``category`` (the first listed genre) per movie."""
    records: list[tuple[str, str, str]] = []
    if path.name == "movies.csv":
        lines = _read_text(path, "utf-8").lstrip("\ufeff").splitlines()
        header = bool(lines) and tuple(h.strip() for h in lines[0].split(",")) == _MOVIES_HEADER
        skipped = int(header)
        reader = csv.reader(io.StringIO("\n".join(lines[skipped:])))
        for row in reader:
            if row:
                genre = row[2].split("|")[0] if len(row) == 3 else ""
                # + skipped: a header line was cut off before the reader saw the text.
                records.append(_movie(path, reader.line_num + skipped, row, 3, genre))
    else:
        lines = _read_text(path, "latin-1").splitlines()
        u_item = path.name == "u.item"
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = line.split("|") if u_item else line.split("::")
            if u_item:
                flags = row[5:]
                genre = next(
                    (g for g, f in zip(_U_ITEM_GENRES, flags, strict=False) if f == "1"), ""
                )
                records.append(_movie(path, number, row, 5 + len(_U_ITEM_GENRES), genre))
            else:
                records.append(
                    _movie(path, number, row, 3, row[2].split("|")[0] if len(row) == 3 else "")
                )
    return pd.DataFrame(records, columns=["item_id", "title", "category"]).drop_duplicates(
        "item_id"
    )


def _movie(
    path: Path, number: int, row: Sequence[str], n_fields: int, genre: str
) -> tuple[str, str, str]:
    """One movie record, or an error naming the line when it is malformed."""
    if len(row) != n_fields or not row[0].strip().isdigit():
        raise ConfigError(
            f"{path}:{number}: expected {n_fields} fields starting with an integer movie id, "
            f"got {row!r:.80}"
        )
    genre = genre.strip()
    category = "unknown" if genre in ("", "(no genres listed)") else genre
    return str(int(row[0])), row[1].strip(), category
