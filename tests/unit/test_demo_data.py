"""The synthetic news dataset, its Parquet layout, and the MovieLens importer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.demo import CATEGORIES, InteractionData, generate_news_dataset, read_movielens
from models.errors import ConfigError

SMALL = {"n_users": 200, "n_articles": 300, "n_clicks": 8000}


@pytest.fixture(scope="module")
def news() -> InteractionData:
    return generate_news_dataset(seed=7, **SMALL)


def _merged(data: InteractionData) -> pd.DataFrame:
    return data.interactions.merge(data.items, on="item_id", validate="many_to_one")


def test_same_seed_writes_byte_identical_parquet(tmp_path: Path, news: InteractionData) -> None:
    news.save(tmp_path / "a")
    generate_news_dataset(seed=7, **SMALL).save(tmp_path / "b")
    for name in ("users", "items", "interactions"):
        first = (tmp_path / "a" / f"{name}.parquet").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.parquet").read_bytes(), name


def test_different_seed_gives_different_clicks(news: InteractionData) -> None:
    other = generate_news_dataset(seed=8, **SMALL)
    assert not news.interactions.equals(other.interactions)


def test_site_has_the_requested_shape_and_id_formats(news: InteractionData) -> None:
    assert news.source == "synthetic-news"
    assert list(news.users["user_id"][:2]) == ["u0001", "u0002"]
    assert list(news.items["item_id"][:2]) == ["a00001", "a00002"]
    assert len(news.users) == 200 and len(news.items) == 300
    assert len(news.interactions) == 8000
    assert set(news.items["category"]) <= set(CATEGORIES)
    assert news.items["title"].str.len().min() > 10
    assert str(news.interactions["ts"].dt.tz) == "UTC"
    span = news.items["published_at"].max() - news.items["published_at"].min()
    assert pd.Timedelta(days=25) < span <= pd.Timedelta(days=30)


def test_a_reader_clicks_an_article_at_most_once(news: InteractionData) -> None:
    assert not news.interactions.duplicated(["user_id", "item_id"]).any()


def test_clicks_follow_publication_mostly_within_a_day(news: InteractionData) -> None:
    delay = _merged(news).eval("ts - published_at")
    assert (delay > pd.Timedelta(0)).all()
    assert delay.median() < pd.Timedelta(hours=12)
    assert (delay < pd.Timedelta(days=1)).mean() > 0.75


def test_a_few_articles_draw_most_clicks(news: InteractionData) -> None:
    counts = news.interactions["item_id"].value_counts()
    top_tenth = counts.head(len(news.items) // 10).sum() / counts.sum()
    assert top_tenth > 0.25  # a uniform site would give 0.10


def test_readers_concentrate_on_a_few_categories(news: InteractionData) -> None:
    merged = _merged(news)
    top_share = merged.groupby("user_id")["category"].agg(
        lambda c: c.value_counts(normalize=True).iloc[0]
    )
    # Against the same clicks with categories shuffled across articles: no taste left.
    shuffled = news.items.assign(
        category=news.items["category"].sample(frac=1, random_state=0).to_numpy()
    )
    baseline = news.interactions.merge(shuffled, on="item_id").groupby("user_id")["category"]
    baseline_share = baseline.agg(lambda c: c.value_counts(normalize=True).iloc[0])
    assert top_share.mean() > 0.4
    assert top_share.mean() > 1.5 * baseline_share.mean()


def test_generator_rejects_more_clicks_than_the_site_can_hold() -> None:
    with pytest.raises(ConfigError, match="n_clicks"):
        generate_news_dataset(n_users=10, n_articles=10, n_clicks=1000)


def test_dataset_round_trips_through_parquet(tmp_path: Path, news: InteractionData) -> None:
    loaded = InteractionData.load(news.save(tmp_path / "data"))
    assert loaded.source == "synthetic-news"
    for name in ("users", "items", "interactions"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(news, name))


def test_loading_a_dataset_names_the_missing_file(tmp_path: Path, news: InteractionData) -> None:
    news.save(tmp_path)
    (tmp_path / "items.parquet").unlink()
    with pytest.raises(ConfigError, match=r"items\.parquet"):
        InteractionData.load(tmp_path)


# --- MovieLens: tiny hand-written files in the three public layouts ---------------------

ML_1M_RATINGS = (
    "1::10::5::978300760\n1::20::3::978300761\n2::20::4::978300800\n2::30::4::978300900\n"
)
ML_1M_MOVIES = "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action|Crime|Thriller\n"
ML_LATEST_RATINGS = (
    "userId,movieId,rating,timestamp\n1,10,4.5,964982703\n1,20,2.0,964981247\n2,20,4.0,964982224\n"
)
ML_LATEST_MOVIES = (
    "movieId,title,genres\n"
    '10,"American President, The (1995)",Comedy|Drama|Romance\n'
    "20,Ghost (1990),(no genres listed)\n"
)
ML_100K_DATA = "196\t242\t3\t881250949\n186\t302\t5\t891717742\n22\t377\t4\t878887116\n"


def _u_item(movie: int, title: str, genre_positions: list[int]) -> str:
    flags = ["1" if i in genre_positions else "0" for i in range(19)]
    return "|".join([str(movie), title, "01-Jan-1995", "", "http://example.invalid", *flags])


def _write(directory: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding=encoding)
    return directory


def test_reads_ml_1m_dat_files_with_latin1_titles(tmp_path: Path) -> None:
    ml = _write(
        tmp_path / "ml-1m", {"ratings.dat": ML_1M_RATINGS, "movies.dat": ML_1M_MOVIES}, "latin-1"
    )
    data = read_movielens(ml)
    assert data.source == "movielens"
    pairs = list(zip(data.interactions["user_id"], data.interactions["item_id"], strict=True))
    assert pairs == [("1", "10"), ("2", "20"), ("2", "30")]  # the 3-star rating is dropped
    items = data.items.set_index("item_id")
    assert items.loc["10", "category"] == "Comedy" and items.loc["10", "title"] == "Amélie (2001)"
    assert items.loc["20", "category"] == "Action"
    assert items.loc["30", "category"] == "unknown"  # rated but not in movies.dat
    # No release time in MovieLens: the first rating of any value stands in for it.
    assert items.loc["20", "published_at"] == pd.Timestamp(978300761, unit="s", tz="UTC")
    assert list(data.users["user_id"]) == ["1", "2"]  # MovieLens' own ids, no prefix


def test_reads_ml_latest_csv_with_quoted_titles(tmp_path: Path) -> None:
    ml = _write(tmp_path, {"ratings.csv": ML_LATEST_RATINGS, "movies.csv": ML_LATEST_MOVIES})
    data = read_movielens(ml / "ratings.csv")
    assert list(data.interactions["item_id"]) == ["20", "10"]  # sorted by time
    assert list(data.interactions["rating"]) == [4.0, 4.5]
    items = data.items.set_index("item_id")
    assert items.loc["10", "title"] == "American President, The (1995)"
    assert items.loc["10", "category"] == "Comedy"
    assert items.loc["20", "category"] == "unknown"  # "(no genres listed)"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_ml_latest_csv_files_without_header_lines_read_the_same(
    tmp_path: Path, line_end: str
) -> None:
    with_header = read_movielens(
        _write(tmp_path / "a", {"ratings.csv": ML_LATEST_RATINGS, "movies.csv": ML_LATEST_MOVIES})
    )
    bare = {
        name: line_end.join(text.splitlines()[1:]) + line_end
        for name, text in (("ratings.csv", ML_LATEST_RATINGS), ("movies.csv", ML_LATEST_MOVIES))
    }
    without = read_movielens(_write(tmp_path / "b", bare))
    pd.testing.assert_frame_equal(with_header.interactions, without.interactions)
    # The first movie is a movie, not a header: its title and genre are kept.
    pd.testing.assert_frame_equal(with_header.items, without.items)
    assert without.items.set_index("item_id").loc["10", "category"] == "Comedy"


def test_reads_ml_100k_u_data_with_u_item_genre_flags(tmp_path: Path) -> None:
    u_item = "\n".join(
        [_u_item(302, "L.A. Confidential (1997)", [6, 16]), _u_item(377, "Heavyweights", [5])]
    )
    ml = _write(tmp_path / "ml-100k", {"u.data": ML_100K_DATA, "u.item": u_item + "\n"}, "latin-1")
    data = read_movielens(ml, min_rating=3.0)
    assert sorted(data.interactions["user_id"]) == ["186", "196", "22"]
    items = data.items.set_index("item_id")
    assert items.loc["302", "category"] == "Crime"
    assert items.loc["377", "category"] == "Comedy"
    assert items.loc["242", "category"] == "unknown"


def test_without_a_movies_file_every_category_is_unknown(tmp_path: Path) -> None:
    data = read_movielens(_write(tmp_path, {"u.data": ML_100K_DATA}))
    assert set(data.items["category"]) == {"unknown"}
    assert len(data.interactions) == 2


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("ratings.dat", "1::10::5::978300760\n\n1::20::x::978300761\n", "ratings.dat:3"),
        ("ratings.dat", "1::10::5::978300760\n1::20::4\n", "ratings.dat:2"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,10,4,1\n1,2.5,4,2\n", "ratings.csv:3"),
        (
            "ratings.csv",
            "user,movie,rating,timestamp\n1,10,4,1\n",
            "ratings.csv:1: expected the header",
        ),
        ("u.data", "196\t242\t3\t881250949\n186 302\n", "u.data:2"),
    ],
)
def test_malformed_ratings_line_is_named_by_file_and_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    _write(tmp_path, {name: text})
    with pytest.raises(ConfigError, match=where):
        read_movielens(tmp_path)


def test_malformed_movies_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"ratings.dat": ML_1M_RATINGS, "movies.dat": "10::Heat (1995)::Action\nbroken line\n"},
    )
    with pytest.raises(ConfigError, match=r"movies\.dat:2"):
        read_movielens(tmp_path)


def test_missing_or_unknown_movielens_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_movielens(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no MovieLens ratings file"):
        read_movielens(tmp_path)
    with pytest.raises(ConfigError, match=">= min_rating"):
        read_movielens(_write(tmp_path, {"u.data": ML_100K_DATA}), min_rating=6)
