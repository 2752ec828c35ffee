"""Each format's adapter on a tiny real model, loaded through the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import (
    publish_curated,
    publish_failing_mf,
    publish_popularity,
    publish_tiny_mf,
    publish_tiny_sklearn,
)

from models.base import Recommender, RecommendQuery
from models.errors import ChecksumMismatchError, ConfigError, InputError, UnknownFormatError
from models.formats.sklearn_adapter import SklearnAdapter
from models.registry import adapter_class, formats, load_model, register_format
from models.store import ArtifactStore


def test_torchscript_recommends_by_user_taste(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_mf(store, scratch)
    model = load_model(store, "mf", "1")
    assert isinstance(model, Recommender) and model.version == "1"
    alice, bob = model.recommend([RecommendQuery("alice"), RecommendQuery("bob")], 2)
    assert [item for item, _ in alice] == ["i0", "i1"]
    assert [item for item, _ in bob] == ["i5", "i4"]
    assert alice[0][1] == pytest.approx(5.0)


def test_torchscript_unknown_user_gets_the_cold_start_row(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_mf(store, scratch)
    model = load_model(store, "mf", "1")
    assert isinstance(model, Recommender)
    (row,) = model.recommend([RecommendQuery("never-seen")], 1)
    assert row[0][0] == "i2"


def test_torchscript_runs_on_cpu_without_a_gpu(store: ArtifactStore, scratch: Path) -> None:
    import torch

    publish_tiny_mf(store, scratch)
    model = load_model(store, "mf", "1")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected  # type: ignore[attr-defined]


def test_torchscript_predict_returns_top_items_per_user(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_mf(store, scratch)
    model = load_model(store, "mf", "1", {"predict_top_n": 3})
    (answer,) = model.predict([{"user_id": "alice"}])
    assert answer["items"] == ["i0", "i1", "i2"]
    with pytest.raises(InputError, match=r"instances\.0"):
        model.predict([42])


def test_failing_torchscript_raises_instead_of_answering(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_failing_mf(store, scratch)
    model = load_model(store, "broken", "1")
    assert isinstance(model, Recommender)
    with pytest.raises(Exception, match="catalogue"):
        model.recommend([RecommendQuery("alice")], 3)


def test_sklearn_returns_click_probabilities(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_sklearn(store, scratch)
    model = load_model(store, "clicks", "1")
    low, high, named = model.predict([[0.1, 0.1], [0.9, 0.9], {"affinity": 0.9, "freshness": 0.8}])
    assert 0 <= low < 0.5 < high <= 1
    assert named > 0.5


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        ([0.1], "instances.0"),
        ({"affinity": 0.2}, "instances.0"),
        ([0.1, "x"], "instances.0.freshness"),
        ([0.1, float("nan")], "instances.0.freshness"),
        ("text", "instances.0"),
    ],
)
def test_sklearn_bad_instance_names_the_field(
    store: ArtifactStore, scratch: Path, instance: object, field: str
) -> None:
    publish_tiny_sklearn(store, scratch)
    model = load_model(store, "clicks", "1")
    with pytest.raises(InputError) as info:
        model.predict([instance])
    assert info.value.field == field


def test_curated_list_keeps_editorial_order(store: ArtifactStore, scratch: Path) -> None:
    publish_curated(store, scratch, ["i3", "i1", "i4"])
    model = load_model(store, "picks", "1")
    assert isinstance(model, Recommender)
    (row,) = model.recommend([RecommendQuery("anyone")], 2)
    assert row == [("i3", 1.0), ("i1", pytest.approx(2 / 3))]


def test_popularity_ranks_by_count_with_stable_ties(store: ArtifactStore, scratch: Path) -> None:
    publish_popularity(store, scratch, {"b": 5, "a": 5, "c": 9, "d": 1})
    model = load_model(store, "popularity", "1")
    assert isinstance(model, Recommender)
    (row,) = model.recommend([RecommendQuery("u")], 3)
    assert row == [("c", 9.0), ("a", 5.0), ("b", 5.0)]
    assert model.predict(["c", "zzz"]) == [9.0, 0.0]


def test_load_refuses_a_tampered_artifact(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_sklearn(store, scratch)
    (store.path("clicks", "1") / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ChecksumMismatchError, match=r"model\.joblib"):
        load_model(store, "clicks", "1")


def test_registry_knows_the_builtin_formats() -> None:
    builtin = {"sklearn", "torchscript", "curated", "popularity", "click_ranker", "python"}
    assert builtin <= set(formats())
    assert adapter_class("sklearn") is SklearnAdapter


def test_registry_rejects_unknown_and_duplicate_formats() -> None:
    with pytest.raises(UnknownFormatError, match="unknown model format 'onnx-x'"):
        adapter_class("onnx-x")
    with pytest.raises(ConfigError, match="already registered"):
        register_format("sklearn", SklearnAdapter)


@pytest.mark.gpu
def test_torchscript_on_cuda_matches_cpu(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_mf(store, scratch)
    on_gpu = load_model(store, "mf", "1", {"device": "cuda"})
    on_cpu = load_model(store, "mf", "1", {"device": "cpu"})
    assert on_gpu.device.type == "cuda"  # type: ignore[attr-defined]
    assert isinstance(on_gpu, Recommender) and isinstance(on_cpu, Recommender)
    queries = [RecommendQuery(u) for u in ("alice", "bob", "stranger")]
    assert on_gpu.recommend(queries, 3) == on_cpu.recommend(queries, 3)
