"""Training a stack node's combiner from logged feedback, and `blendserve train-stack`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from builders import publish_curated, publish_popularity

from blending.dag import BlendPlan
from blending.gateway import LocalModels
from blending.spec import UseCaseSpec
from blending.stacking import collect_stack_examples, publish_stacker, read_feedback
from deployments.cli.main import main
from models.errors import ConfigError, ModelError
from models.formats.sklearn_adapter import SklearnAdapter
from models.registry import load_model
from models.store import ArtifactStore

USE_CASE = {
    "output": "out",
    "nodes": {
        "pop": {"kind": "source", "model": "popularity"},
        "picks": {"kind": "source", "model": "picks"},
        "learned": {"kind": "stack", "inputs": ["pop", "picks"], "model": "combiner"},
        "out": {"kind": "filter", "input": "learned"},
    },
}


@pytest.fixture
def models(store: ArtifactStore, scratch: Path) -> LocalModels:
    # popularity minmax: a 1, b 0.5, c 0; picks (x, a): x 1 -> 1, a 0.5 -> 0
    publish_popularity(store, scratch, {"a": 10, "b": 5, "c": 0})
    publish_curated(store, scratch, ["x", "a"])
    return LocalModels({m: load_model(store, m, "1") for m in ("popularity", "picks")})


def _feedback(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "label"])


def test_examples_are_the_serving_features_of_each_logged_item(models: LocalModels) -> None:
    plan = BlendPlan("home", UseCaseSpec.model_validate(USE_CASE))
    feedback = _feedback([("u1", "a", 1), ("u1", "x", 0), ("u2", "b", 0), ("u2", "nope", 0)])
    examples = collect_stack_examples(plan, "learned", feedback, models)
    assert examples.feature_names == ["pop", "picks"]
    assert examples.features.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.5, 0.0], [0.0, 0.0]]
    assert examples.labels.tolist() == [1, 0, 0, 0]
    assert examples.users.tolist() == ["u1", "u1", "u2", "u2"]


def test_the_published_combiner_learns_which_input_predicts_clicks(
    models: LocalModels, store: ArtifactStore
) -> None:
    plan = BlendPlan("home", UseCaseSpec.model_validate(USE_CASE))
    # Users click popular items and never the curated-only one.
    rows = []
    for n in range(30):
        rows += [(f"u{n}", "a", 1), (f"u{n}", "b", n % 2), (f"u{n}", "x", 0), (f"u{n}", "c", 0)]
    examples = collect_stack_examples(plan, "learned", _feedback(rows), models)
    manifest = publish_stacker(examples, store, "combiner", "1")
    assert manifest.format == "sklearn" and 0.5 < manifest.metrics["auc"] <= 1.0
    assert manifest.extra["coefficients"]["pop"] > 0 > manifest.extra["coefficients"]["picks"]
    combiner = load_model(store, "combiner", "1")
    assert isinstance(combiner, SklearnAdapter)
    assert combiner.feature_names == ["pop", "picks"]
    high, low = combiner.predict([[1.0, 0.0], [0.0, 1.0]])
    assert high > low


def test_feedback_without_clicks_cannot_train(models: LocalModels, store: ArtifactStore) -> None:
    plan = BlendPlan("home", UseCaseSpec.model_validate(USE_CASE))
    examples = collect_stack_examples(plan, "learned", _feedback([("u", "a", 0)]), models)
    with pytest.raises(ConfigError, match="both clicks and non-clicks"):
        publish_stacker(examples, store, "combiner", "1")


def test_bad_feedback_files_are_refused_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "feedback.parquet"
    _feedback([("u", "a", 2)]).to_parquet(path)
    with pytest.raises(ConfigError, match="label must be 0 or 1, row 0"):
        read_feedback(path)
    pd.DataFrame({"user_id": ["u"]}).to_parquet(path)
    with pytest.raises(ConfigError, match="expected Parquet with"):
        read_feedback(path)


def test_train_stack_command_publishes_once(
    models: LocalModels,
    store: ArtifactStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {
        "applications": [
            {
                "name": "app",
                "import_path": "deployments.app:build_app",
                "args": {
                    "store": str(store.root),
                    "models": {m: {"version": "1"} for m in ("popularity", "picks", "combiner")},
                },
                "deployments": [
                    {"name": "Ingress", "user_config": {"use_cases": {"home": USE_CASE}}}
                ],
            }
        ]
    }
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config))
    feedback = tmp_path / "feedback.parquet"
    rows = [(f"u{n}", item, int(item == "a")) for n in range(20) for item in "abx"]
    _feedback(rows).to_parquet(feedback)
    command = ["train-stack", str(config_path), "--use-case", "home", "--node", "learned"]
    command += ["--feedback", str(feedback)]
    assert main(command) == 0
    assert "combiner v1" in capsys.readouterr().out
    assert store.versions("combiner") == ["1"]
    assert main(command) == 2
    assert "already published" in capsys.readouterr().err
    assert main([*command, "--skip-existing"]) == 0
    assert main([*command[:-4], "--node", "out", "--feedback", str(feedback)]) == 2
    assert "no stack node 'out'" in capsys.readouterr().err


def test_the_vectorised_path_matches_predict(models: LocalModels, store: ArtifactStore) -> None:
    import numpy as np

    plan = BlendPlan("home", UseCaseSpec.model_validate(USE_CASE))
    rows = [(f"u{n}", item, int(item == "a")) for n in range(10) for item in "abx"]
    examples = collect_stack_examples(plan, "learned", _feedback(rows), models)
    publish_stacker(examples, store, "combiner", "1")
    combiner = load_model(store, "combiner", "1")
    assert isinstance(combiner, SklearnAdapter)
    matrix = np.asarray([[1.0, 0.0], [0.2, 0.7]], dtype=np.float32)
    assert combiner.predict_array(matrix).tolist() == pytest.approx(
        combiner.predict(matrix.tolist())
    )
    with pytest.raises(ModelError, match="takes 2 features"):
        combiner.predict_array(np.zeros((1, 3), dtype=np.float32))
