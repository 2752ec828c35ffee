"""`blendserve train` on a MovieLens-shaped file: the collaborative model beats
popularity, the manifests record every candidate, and `blendserve evaluate` agrees
with the manifests on the same split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from movielens_like import MOVIELENS_DATA_CONFIG, write_movielens_like

from deployments.cli.main import main
from deployments.offline.evaluate import evaluate
from models.base import RecommendQuery
from models.registry import load_model
from models.store import ArtifactStore
from models.training.pipeline import TrainingReport, train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingReport]:
    root = tmp_path_factory.mktemp("movielens-like")
    write_movielens_like(root / "files", header=False, line_end="\r\n")
    config = root / "files" / "data.yaml"
    config.write_text(MOVIELENS_DATA_CONFIG, encoding="utf-8")
    report = train_from_config(config, root / "artifacts", root / "data")
    return root, report


def _serve_config(root: Path) -> Path:
    use_case: dict[str, Any] = {
        "output": "final",
        "nodes": {
            "cf": {"kind": "source", "model": "mf", "candidates": 50},
            "pop": {"kind": "source", "model": "popularity", "candidates": 50},
            "mix": {"kind": "blend", "method": "rrf", "weights": {"cf": 1, "pop": 1}},
            "final": {"kind": "filter", "input": "mix"},
        },
    }
    document = {
        "applications": [
            {
                "name": "app",
                "import_path": "deployments.app:build_app",
                "args": {
                    "store": str(root / "artifacts"),
                    "catalog": str(root / "data" / "items.parquet"),
                    "models": {m: {"version": "1"} for m in ("mf", "popularity")},
                },
                "deployments": [
                    {"name": "Ingress", "user_config": {"use_cases": {"home": use_case}}}
                ],
            }
        ]
    }
    path = root / "serve.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_the_collaborative_model_beats_popularity_by_a_fifth(
    trained: tuple[Path, TrainingReport],
) -> None:
    root, report = trained
    store = ArtifactStore(root / "artifacts")
    mf = store.manifest("mf", "1")
    popularity = store.manifest("popularity", "1")
    assert mf.metrics["recall_at_10"] >= 1.2 * popularity.metrics["recall_at_10"]
    assert mf.metrics["popularity_recall_at_10"] == popularity.metrics["recall_at_10"]
    # Every candidate is recorded with its chosen point and both splits' numbers.
    candidates = mf.extra["candidates"]
    assert set(candidates) == {"ease", "als", "bpr"}
    for record in candidates.values():
        assert record["params"] and "recall_at_10" in record["validation"]
        assert "recall_at_10" in record["test"]
    best = max(candidates, key=lambda n: candidates[n]["validation"]["recall_at_10"])
    assert mf.extra["algorithm"] == best
    assert mf.format == {"ease": "item_item", "als": "factors", "bpr": "torchscript"}[best]
    assert mf.extra["split"] == "time" and mf.extra["heldout_pairs"] > 0
    table = report.table()
    for name in ("mf", "popularity", "mf candidate ease", "mf candidate als", "mf candidate bpr"):
        assert name in table


def test_ids_are_the_files_own(trained: tuple[Path, TrainingReport]) -> None:
    root, _ = trained
    store = ArtifactStore(root / "artifacts")
    ids = json.loads((store.path("mf", "1") / "ids.json").read_text())
    assert "1" in ids["users"] and all(u.isdigit() for u in ids["users"])
    model = load_model(store, "mf", "1")
    (top,) = model.top_items([RecommendQuery("1")], 5)  # type: ignore[attr-defined]
    movies = (root / "files" / "movies.csv").read_text().split()
    assert all(any(line.startswith(f"{item},") for line in movies) for item in top.id_list())


def test_the_evaluator_agrees_with_the_manifests_and_ranks_cf_above_popularity(
    trained: tuple[Path, TrainingReport],
) -> None:
    root, _ = trained
    store = ArtifactStore(root / "artifacts")
    report = evaluate(_serve_config(root), root / "data", use_case="home", k=10)
    rows = {row.blend.node: row for row in report.rows}
    for node, model in (("cf", "mf"), ("pop", "popularity")):
        manifest = store.manifest(model, "1")
        for metric in ("recall", "ndcg", "precision", "map", "coverage"):
            assert rows[node].metrics[metric] == pytest.approx(
                manifest.metrics[f"{metric}_at_10"], abs=1e-12
            ), (node, metric)
        assert all(len(items) == 10 for items in rows[node].lists.values())
    assert rows["cf"].metrics["recall"] > rows["pop"].metrics["recall"]
    # The same split from the data config gives the same numbers.
    again = evaluate(
        _serve_config(root), data_config=root / "files" / "data.yaml", use_case="home", k=10
    )
    assert {r.blend.node: r.metrics for r in again.rows} == {n: r.metrics for n, r in rows.items()}


def test_the_command_prints_every_model_against_popularity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_movielens_like(tmp_path / "files", users=120, movies=150)
    config = tmp_path / "files" / "data.yaml"
    config.write_text(
        MOVIELENS_DATA_CONFIG + "training: {collaborative: [ease]}\n", encoding="utf-8"
    )
    store, data = tmp_path / "artifacts", tmp_path / "data"
    command = ["train", "--data-config", str(config), "--store", str(store), "--data", str(data)]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "mf v1 (item_item)" in printed and "VS POPULARITY" in printed
    assert (data / "train.parquet").is_file() and (data / "heldout.parquet").is_file()
