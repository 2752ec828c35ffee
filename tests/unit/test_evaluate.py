"""`blendserve evaluate`: a use case's blends replayed offline on held-out interactions.

The tiny MF (tests/builders.py) ranks alice's i0, i1 and bob's i5, i4 on top; the
popularity model ranks i3, i2 on top. The held-out data are the MF's favourites, so
the MF-led blend `taste` must beat the popularity-led `crowd`, with their interleaving
`mix` in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from builders import publish_curated, publish_failing_mf, publish_popularity, publish_tiny_mf

from blending.spec import UseCaseSpec
from deployments.cli.main import main
from deployments.offline.evaluate import evaluate, use_case_blends
from deployments.offline.held_out import read_interactions
from models.errors import ConfigError
from models.metrics import evaluate_lists, precision_at_k
from models.store import ArtifactStore

DISCOVER: dict[str, Any] = {
    "output": "final",
    "budget_ms": 50,
    "nodes": {
        "cf": {"kind": "source", "model": "mf"},
        "pop": {"kind": "source", "model": "popularity"},
        "picks": {"kind": "source", "model": "picks"},
        "taste": {"kind": "blend", "weights": {"cf": 0.9, "pop": 0.1}},
        "crowd": {"kind": "blend", "weights": {"pop": 0.9, "picks": 0.1}},
        "mix": {"kind": "interleave", "teams": ["taste", "crowd"]},
        "ab": {
            "kind": "experiment",
            "arms": {
                "taste": {"node": "taste", "weight": 40},
                "crowd": {"node": "crowd", "weight": 40},
                "mixed": {"node": "mix", "weight": 20},
            },
        },
        "final": {"kind": "filter", "input": "ab"},
    },
}
MOVIES: dict[str, Any] = {
    "output": "both",
    "nodes": {
        "top": {"kind": "source", "model": "movie_pop"},
        "staff": {"kind": "source", "model": "picks"},
        "both": {"kind": "blend", "method": "rrf", "weights": {"top": 1, "staff": 1}},
    },
}
SHAKY: dict[str, Any] = {
    "output": "both",
    "nodes": {
        "cf": {"kind": "source", "model": "mf"},
        "bad": {"kind": "source", "model": "broken"},
        "both": {"kind": "blend", "weights": {"cf": 1, "bad": 1}},
    },
}
POPULARITY = {"i3": 100, "i2": 50, "i1": 10, "i0": 1, "i4": 1, "i5": 1}


@pytest.fixture
def config(store: ArtifactStore, scratch: Path, tmp_path: Path) -> Path:
    """A Serve config with the `discover` and `movies` use cases over tiny real models."""
    publish_tiny_mf(store, scratch)
    publish_popularity(store, scratch, POPULARITY)
    publish_popularity(store, scratch, {"1": 10, "2": 5, "3": 1}, name="movie_pop")
    publish_curated(store, scratch, ["i3", "3"])
    publish_failing_mf(store, scratch)
    document = {
        "applications": [
            {
                "name": "app",
                "import_path": "deployments.app:build_app",
                "args": {
                    "store": str(store.root),
                    "models": {
                        m: {"version": "1"}
                        for m in ("mf", "popularity", "movie_pop", "picks", "broken")
                    },
                },
                "deployments": [
                    {
                        "name": "Ingress",
                        "user_config": {
                            "use_cases": {"discover": DISCOVER, "movies": MOVIES, "shaky": SHAKY}
                        },
                    }
                ],
            }
        ]
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def held_out(tmp_path: Path) -> Path:
    """The MF's favourites, plus rows with label 0 that must not count."""
    path = tmp_path / "held_out.parquet"
    rows = [
        ("alice", "i0", 1),
        ("alice", "i1", 1),
        ("alice", "i3", 0),
        ("bob", "i5", 1),
        ("bob", "i4", 1),
        ("carol", "i3", 0),  # no relevant item: carol is not evaluated
    ]
    pd.DataFrame(rows, columns=["user_id", "item_id", "label"]).to_parquet(path)
    return path


def test_blends_are_the_output_every_arm_and_every_team_once() -> None:
    blends = use_case_blends(UseCaseSpec.model_validate(DISCOVER))
    roles = {blend.node: blend.roles for blend in blends}
    assert roles == {
        "final": ("output",),
        "taste": ("arm taste of ab", "team of mix"),
        "crowd": ("arm crowd of ab", "team of mix"),
        "mix": ("arm mixed of ab",),
        "cf": ("source (mf)",),
        "pop": ("source (popularity)",),
        "picks": ("source (picks)",),
    }
    taste = next(blend for blend in blends if blend.node == "taste")
    assert taste.spec.output == "taste" and set(taste.spec.nodes) == {"cf", "pop", "taste"}


def test_the_table_ranks_the_blend_that_finds_held_out_items_first(
    config: Path, held_out: Path
) -> None:
    report = evaluate(config, held_out, use_case="discover", k=2, exclude_seen=False)
    order = [row.blend.node for row in report.rows]
    assert set(order[:2]) == {"cf", "taste"}  # the MF source alone does as well as its blend
    ndcg = {row.blend.node: row.metrics["ndcg"] for row in report.rows}
    assert ndcg["taste"] == pytest.approx(1.0) and ndcg["cf"] == pytest.approx(1.0)
    assert ndcg["taste"] > ndcg["mix"] > ndcg["crowd"]
    assert order.index("mix") < order.index("crowd")
    taste = next(row for row in report.rows if row.blend.node == "taste")
    assert taste.lists == {"alice": ["i0", "i1"], "bob": ["i5", "i4"]}
    assert report.users == 2 and report.interactions == 4 and report.catalogue_size == 7
    table = report.table()
    lines = table.splitlines()
    assert "PRECISION@2" in table and "NDCG@2" in table
    taste_line = next(i for i, line in enumerate(lines) if line.startswith("taste "))
    crowd_line = next(i for i, line in enumerate(lines) if line.startswith("crowd "))
    assert taste_line < crowd_line
    assert "held-out data itself" in table


def test_reported_metrics_are_models_metrics_on_the_same_lists(
    config: Path, held_out: Path
) -> None:
    report = evaluate(config, held_out, use_case="discover", k=2, exclude_seen=False)
    relevant = {"alice": {"i0", "i1"}, "bob": {"i5", "i4"}}
    counts = {"i0": 1, "i1": 1, "i5": 1, "i4": 1}
    for row in report.rows:
        assert all(len(items) == 2 for items in row.lists.values())
        expected = evaluate_lists(row.lists, relevant, 2, 7, counts, n_users=2)
        assert row.metrics == pytest.approx(expected)
        precision = sum(precision_at_k(row.lists[u], relevant[u], 2) for u in relevant) / 2
        assert row.metrics["precision"] == pytest.approx(precision)
        assert row.degraded == 0


def test_training_data_sets_the_popularity_behind_novelty(
    config: Path, held_out: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train.parquet"
    # i3 seen by everyone (0 bits), the others by nobody known (log2(4) = 2 bits).
    users = ["alice", "bob", "carol", "dave"]
    pd.DataFrame({"user_id": users, "item_id": ["i3"] * 4}).to_parquet(train)
    report = evaluate(config, held_out, use_case="discover", k=2, train=train, exclude_seen=False)
    crowd = next(row for row in report.rows if row.blend.node == "crowd")
    assert crowd.lists == {"alice": ["i3", "i2"], "bob": ["i3", "i2"]}
    assert crowd.metrics["novelty"] == pytest.approx(1.0)  # (0 + 2) / 2
    assert str(train) in report.popularity_from


def test_a_failing_source_is_reported_not_hidden(config: Path, held_out: Path) -> None:
    report = evaluate(config, held_out, use_case="shaky", k=2, exclude_seen=False)
    row = next(row for row in report.rows if row.blend.node == "both")
    assert row.degraded == 2 and row.failure is not None and row.failure.startswith("bad: ")
    assert row.lists == {"alice": ["i0", "i1"], "bob": ["i5", "i4"]}  # from the MF alone
    assert "warning: both was degraded for 2 users (first: bad: " in report.table()


def test_the_command_prints_the_table_and_writes_an_html_report(
    config: Path, held_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    command = ["evaluate", "--config", str(config), "--data", str(held_out), "--include-seen"]
    assert main([*command, "--use-case", "discover", "--k", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PRECISION@2" in printed and f"wrote {out}" in printed
    page = out.read_text()
    assert page.count("<img") == 6 and "data:image/png;base64," in page
    assert str(config) in page and str(held_out) in page and "<td>taste</td>" in page


def test_movielens_ratings_of_four_or_more_are_the_held_out_items(
    config: Path, tmp_path: Path
) -> None:
    ratings = tmp_path / "u.data"
    # User 1 rated movie 1 5 (relevant) and movie 2 3 (not); user 2 rated movie 2 4.
    ratings.write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t2\t4\t881250951\n")
    frame = read_interactions(ratings)
    assert sorted(map(tuple, frame.to_numpy().tolist())) == [("1", "1"), ("2", "2")]
    # Rank fusion of (1, 2, 3) and the picks (i3, 3): 3, then 1 and i3, then 2.
    report = evaluate(config, ratings, use_case="movies", k=4, exclude_seen=False)
    both = next(row for row in report.rows if row.blend.node == "both")
    assert report.users == 2
    assert both.metrics["recall"] == pytest.approx(1.0)


def test_bad_paths_and_names_fail_with_a_clear_message(
    config: Path, held_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", "--config", str(config)]
    missing = tmp_path / "missing.parquet"
    assert main([*base, "--data", str(missing), "--use-case", "discover"]) == 2
    assert f"{missing}: interaction data does not exist" in capsys.readouterr().err
    assert main([*base, "--data", str(held_out), "--use-case", "nope"]) == 2
    assert "no use case 'nope' (have ['discover', 'movies', 'shaky'])" in capsys.readouterr().err
    assert main([*base, "--data", str(held_out)]) == 2
    assert "choose a use case with --use-case" in capsys.readouterr().err
    assert main([*base, "--data", str(held_out), "--use-case", "discover", "--app", "x"]) == 2
    assert "no blendserve application 'x'" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("alice i0\n")
    with pytest.raises(ConfigError, match="expected a Parquet file"):
        read_interactions(text)
    no_items = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": ["alice"]}).to_parquet(no_items)
    with pytest.raises(ConfigError, match=r"missing \['item_id'\]"):
        read_interactions(no_items)


def test_each_users_training_items_are_excluded_and_lists_stay_full(
    config: Path, held_out: Path, tmp_path: Path
) -> None:
    # alice already has i0 and i3, bob i5: the MF's next favourites must take their place.
    train = tmp_path / "train.parquet"
    pd.DataFrame({"user_id": ["alice", "alice", "bob"], "item_id": ["i2", "i3", "i3"]}).to_parquet(
        train
    )
    report = evaluate(config, held_out, use_case="discover", k=3, train=train)
    for row in report.rows:
        assert "i3" not in row.lists["alice"] and "i2" not in row.lists["alice"], row.blend.node
        assert "i3" not in row.lists["bob"], row.blend.node
    crowd = next(row for row in report.rows if row.blend.node == "pop")
    assert crowd.lists == {"alice": ["i1", "i0", "i4"], "bob": ["i2", "i1", "i0"]}
    assert "each user's training items" in report.table()


def test_the_train_file_beside_the_held_out_one_is_used_by_default(
    config: Path, held_out: Path
) -> None:
    pd.DataFrame({"user_id": ["bob"], "item_id": ["i3"]}).to_parquet(
        held_out.with_name("train.parquet")
    )
    report = evaluate(config, held_out, use_case="discover", k=2)
    pop = next(row for row in report.rows if row.blend.node == "pop")
    assert pop.lists["bob"] == ["i2", "i1"] and pop.lists["alice"] == ["i3", "i2"]


def test_held_out_data_that_overlaps_training_is_refused(
    config: Path, held_out: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train.parquet"
    pd.DataFrame({"user_id": ["bob"], "item_id": ["i5"]}).to_parquet(train)
    with pytest.raises(ConfigError, match=r"1 held-out interactions are also in the training"):
        evaluate(config, held_out, use_case="discover", k=2, train=train)


def test_without_training_data_the_exclusion_must_be_declined_explicitly(
    config: Path, held_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", "--config", str(config), "--data", str(held_out), "--use-case", "discover"]
    assert main(base) == 2
    assert "give --train" in capsys.readouterr().err
    assert main([*base, "--include-seen", "--k", "2"]) == 0
    assert "excluded from every list: nothing (--include-seen)" in capsys.readouterr().out


def test_two_configs_are_compared_on_the_same_users(
    config: Path, held_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other" / "serve.yaml"
    other.parent.mkdir()
    document = yaml.safe_load(config.read_text())
    use_cases = document["applications"][0]["deployments"][0]["user_config"]["use_cases"]
    use_cases["discover"]["nodes"]["taste"]["weights"] = {"cf": 0.1, "pop": 0.9}
    other.write_text(yaml.safe_dump(document))
    copy = tmp_path / "mine.yaml"
    copy.write_text(config.read_text())
    report = evaluate([copy, other], held_out, use_case="discover", k=2, exclude_seen=False)
    taste = {row.config: row for row in report.rows if row.blend.node == "taste"}
    assert set(taste) == {"mine.yaml", "serve.yaml"}
    assert taste["mine.yaml"].metrics["ndcg"] > taste["serve.yaml"].metrics["ndcg"]
    assert {len(row.lists) for row in report.rows} == {2}
    command = ["evaluate", "--config", str(copy), "--config", str(other), "--data", str(held_out)]
    assert main([*command, "--use-case", "discover", "--include-seen", "--k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "mine.yaml: taste" in printed and "serve.yaml: taste" in printed
