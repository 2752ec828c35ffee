"""The python format: a plain class named in model.json, loaded and checked at its edges."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from builders import publish_sleepy_model

from models.base import RecommendQuery
from models.errors import ConfigError, ModelError
from models.formats.python_adapter import PythonAdapter, publish_python_model
from models.registry import adapter_class, load_model
from models.store import ArtifactStore


def _load(store: ArtifactStore, name: str = "m") -> PythonAdapter:
    model = load_model(store, name, "1")
    assert isinstance(model, PythonAdapter)
    return model


def test_python_format_is_registered() -> None:
    assert adapter_class("python") is PythonAdapter


def test_sleepy_recommender_sleeps_then_ranks_its_items(store: ArtifactStore) -> None:
    manifest = publish_sleepy_model(store, "slow", delay_s=0.05, items=["a", "b", "c"])
    assert manifest.format == "python"
    model = _load(store, "slow")
    started = time.perf_counter()
    rows = model.recommend([RecommendQuery("u1"), RecommendQuery("u2")], 2)
    assert time.perf_counter() - started >= 0.05
    assert rows == [[("a", 3.0), ("b", 2.0)]] * 2
    assert model.predict([None]) == [["a", "b", "c"]]


def test_describe_reports_what_the_wrapped_object_can_do(store: ArtifactStore) -> None:
    publish_sleepy_model(store, "slow", delay_s=0.0, items=["a"])
    publish_python_model(store, "const", "1", "support_models:ConstantScorer")
    recommender, scorer = _load(store, "slow").describe(), _load(store, "const").describe()
    assert (recommender["recommender"], recommender["scorer"]) == (True, False)
    assert (scorer["recommender"], scorer["scorer"]) == (False, True)
    assert scorer["class"] == "support_models:ConstantScorer" and scorer["format"] == "python"


def test_missing_methods_raise_model_errors_naming_them(store: ArtifactStore) -> None:
    publish_python_model(store, "const", "1", "support_models:ConstantScorer")
    publish_python_model(store, "files", "1", "support_models:TakesAnyKeyword")
    with pytest.raises(ModelError, match=r"'const'.*has no recommend method"):
        _load(store, "const").recommend([RecommendQuery("u")], 3)
    with pytest.raises(ModelError, match="has no score method"):
        _load(store, "files").score(RecommendQuery("u"), ["a"])


def test_kwargs_reach_the_constructor(store: ArtifactStore) -> None:
    kwargs = {"value": 0.25, "boosted": ["b"]}
    publish_python_model(store, "m", "1", "support_models:ConstantScorer", kwargs)
    model = _load(store)
    assert model.score(RecommendQuery("u"), ["a", "b"]) == [0.25, 1.25]
    assert model.predict([1, 2]) == [0.25, 0.25]


def test_the_object_gets_its_artifact_directory_and_files(
    store: ArtifactStore, scratch: Path
) -> None:
    (scratch / "items.txt").write_text("x\ny\nz\n")
    publish_python_model(
        store, "m", "1", "support_models:ListFromFile", files={"items.txt": scratch / "items.txt"}
    )
    model = _load(store)
    assert model.recommend([RecommendQuery("u")], 2) == [[("x", 1.0), ("y", 0.5)]]
    assert sorted(store.manifest("m", "1").files) == ["items.txt", "model.json"]


def test_directory_is_passed_through_var_keyword(store: ArtifactStore) -> None:
    publish_python_model(store, "m", "1", "support_models:TakesAnyKeyword", {"k": 1})
    assert _load(store).predict([None]) == [["directory", "k"]]


@pytest.mark.parametrize(
    ("class_path", "message"),
    [
        ("support_models:NoSuchClass", "cannot import 'support_models:NoSuchClass'"),
        ("no_such_module_xyz:Thing", "cannot import 'no_such_module_xyz:Thing'"),
        ("support_models:NOT_A_CLASS", "'support_models:NOT_A_CLASS' is not a class"),
        ("support_models:FailsToBuild", "FailsToBuild.*weights file is missing"),
        ("support_models:DoesNothing", "DoesNothing defines none of"),
    ],
)
def test_load_failures_name_the_class(store: ArtifactStore, class_path: str, message: str) -> None:
    publish_python_model(store, "m", "1", class_path)
    with pytest.raises(ModelError, match=message):
        load_model(store, "m", "1")


def test_malformed_model_json_is_a_model_error(store: ArtifactStore, scratch: Path) -> None:
    (scratch / "model.json").write_text(json.dumps({"kwargs": {}}))
    store.publish("m", "1", "python", {"model.json": scratch / "model.json"})
    with pytest.raises(ModelError, match=r"malformed model\.json"):
        load_model(store, "m", "1")


def test_wrong_answers_from_the_object_are_model_errors(store: ArtifactStore) -> None:
    publish_python_model(store, "m", "1", "support_models:Misbehaves")
    model = _load(store)
    with pytest.raises(ModelError, match="predict returned 1 outputs for 2 instances"):
        model.predict([1, 2])
    with pytest.raises(ModelError, match="finite"):
        model.score(RecommendQuery("u"), ["a"])
    with pytest.raises(ModelError, match="recommend must return a list"):
        model.recommend([RecommendQuery("u")], 1)


@pytest.mark.parametrize(
    ("class_path", "kwargs", "files", "message"),
    [
        ("support_models.SleepyRecommender", None, None, "expected 'package.module:Class'"),
        ("support_models:", None, None, "expected 'package.module:Class'"),
        ("support_models:ConstantScorer", {"value": object()}, None, "kwargs"),
        ("support_models:ConstantScorer", None, {"model.json": "x"}, "written by publish"),
    ],
)
def test_publish_refuses_what_could_never_load(
    store: ArtifactStore,
    class_path: str,
    kwargs: dict[str, object] | None,
    files: dict[str, str] | None,
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        publish_python_model(store, "m", "1", class_path, kwargs, files)
    assert store.versions("m") == []
