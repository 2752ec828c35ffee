"""The onnx format on tiny real ONNX graphs, run by onnxruntime."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from format_builders import (
    ONNX_ITEMS,
    publish_tiny_onnx_mf,
    publish_tiny_onnx_regressor,
)

from models.base import RecommendQuery
from models.errors import ChecksumMismatchError, InputError, ModelError
from models.formats.onnx_adapter import OnnxAdapter
from models.registry import adapter_class, load_model
from models.smoke import smoke_test
from models.store import ArtifactStore, Manifest


def _load(store: ArtifactStore, name: str, **options: object) -> OnnxAdapter:
    model = load_model(store, name, "1", options)
    assert isinstance(model, OnnxAdapter)
    return model


def test_onnx_format_is_registered() -> None:
    assert adapter_class("onnx") is OnnxAdapter


def test_recommender_ranks_by_user_taste(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_mf(store, scratch)
    model = _load(store, "onnx-mf")
    alice, bob = model.recommend([RecommendQuery("alice"), RecommendQuery("bob")], 2)
    assert [item for item, _ in alice] == ["i0", "i1"]
    assert [item for item, _ in bob] == ["i5", "i4"]
    assert alice[0][1] == pytest.approx(5.0)
    assert (model.input_name, model.output_name) == ("user_index", "scores")


def test_unknown_user_gets_the_cold_start_row(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_mf(store, scratch)
    (row,) = _load(store, "onnx-mf").recommend([RecommendQuery("never-seen")], 1)
    assert row[0][0] == "i2"


def test_recommender_predict_returns_top_items_per_user(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_onnx_mf(store, scratch)
    model = _load(store, "onnx-mf", predict_top_n=3)
    (answer,) = model.predict([{"user_id": "alice"}])
    assert answer["items"] == ["i0", "i1", "i2"]
    with pytest.raises(InputError, match=r"instances\.0"):
        model.predict([42])


def test_scores_that_do_not_fit_the_catalogue_are_a_model_error(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_onnx_mf(store, scratch, items=ONNX_ITEMS[:5])
    model = _load(store, "onnx-mf")
    with pytest.raises(ModelError, match=r"'onnx-mf'.*shape \(1, 5\), got \(1, 6\)"):
        model.recommend([RecommendQuery("alice")], 3)
    with pytest.raises(ModelError, match="failed its smoke test"):
        smoke_test(model)


def test_tensor_model_predicts_rows_and_named_features(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_regressor(store, scratch)
    model = _load(store, "onnx-reg")
    rows = model.predict([[1.0, 0.0], [0.0, 1.0], {"affinity": 1.0, "freshness": 2.0}])
    assert rows == [[pytest.approx(3.0)], [pytest.approx(4.0)], [pytest.approx(9.0)]]
    assert model.predict([]) == []
    assert model.describe()["recommender"] is False


def test_predict_array_is_one_score_per_row(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_regressor(store, scratch)
    model = _load(store, "onnx-reg")
    scores = model.predict_array(np.array([[1.0, 1.0], [0.5, 0.0]]))
    assert scores.dtype == np.float64 and scores.tolist() == pytest.approx([6.0, 2.0])
    with pytest.raises(ModelError, match=r"takes 2 features, got shape \(1, 3\)"):
        model.predict_array(np.zeros((1, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        ([0.1], "instances.1"),
        ({"affinity": 0.2}, "instances.1"),
        ([0.1, "x"], "instances.1.freshness"),
        ([0.1, float("inf")], "instances.1.freshness"),
        ("text", "instances.1"),
    ],
)
def test_bad_instance_names_the_field(
    store: ArtifactStore, scratch: Path, instance: object, field: str
) -> None:
    publish_tiny_onnx_regressor(store, scratch)
    with pytest.raises(InputError) as info:
        _load(store, "onnx-reg").predict([[0.0, 0.0], instance])
    assert info.value.field == field


def test_width_comes_from_the_graph_when_the_manifest_is_silent(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_onnx_regressor(store, scratch, extra={})
    model = _load(store, "onnx-reg")
    assert model.n_features == 2 and model.example_instances() == [[0.0, 0.0]]


def test_a_width_nobody_declares_is_refused_at_load(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_regressor(store, scratch, declared_width="width", extra={})
    with pytest.raises(ModelError, match=r"extra\.n_features"):
        load_model(store, "onnx-reg", "1")


@pytest.mark.parametrize("publish", [publish_tiny_onnx_mf, publish_tiny_onnx_regressor])
def test_smoke_test_passes_for_both_shapes(
    store: ArtifactStore, scratch: Path, publish: Callable[[ArtifactStore, Path], Manifest]
) -> None:
    manifest = publish(store, scratch)
    tried = smoke_test(_load(store, manifest.name))
    # A recommender also scores given items (it can rerank); a tensor model predicts.
    expected = ["recommend", "score"] if manifest.name == "onnx-mf" else ["predict"]
    assert [t.split(" ")[0] for t in tried] == expected


def test_a_recommender_scores_given_items_and_unknown_ones_last(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_onnx_mf(store, scratch)
    model = _load(store, "onnx-mf")
    (ranked,) = model.recommend([RecommendQuery("alice")], 6)
    scores = model.score(RecommendQuery("alice"), ["i1", "no-such-item", "i0"])
    assert scores[0] == pytest.approx(dict(ranked)["i1"])
    assert scores[2] == pytest.approx(dict(ranked)["i0"])
    assert scores[1] < min(s for _, s in ranked)
    assert model.describe()["scorer"] is True


def test_load_verifies_checksums(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_mf(store, scratch)
    (store.path("onnx-mf", "1") / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ChecksumMismatchError, match=r"model\.onnx"):
        load_model(store, "onnx-mf", "1")


def test_runs_on_the_cpu_with_one_thread_by_default(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_onnx_mf(store, scratch)
    model = _load(store, "onnx-mf", device="cpu")
    assert model.device == "cpu" and model.describe()["device"] == "cpu"
    assert model._session.get_session_options().intra_op_num_threads == 1
    model.check_health()


def test_cuda_without_a_cuda_provider_is_a_model_error(
    store: ArtifactStore, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    publish_tiny_onnx_mf(store, scratch)
    with pytest.raises(ModelError, match=r"'cuda' requested but onnxruntime offers no"):
        load_model(store, "onnx-mf", "1", {"device": "cuda"})
    assert _load(store, "onnx-mf").device == "cpu"  # auto falls back quietly


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "tpu"}, "device: expected 'auto', 'cpu'"),
        ({"intra_op_threads": -1}, "intra_op_threads: expected an integer >= 0"),
        ({"threads": 2}, r"unknown options \['threads'\]"),
    ],
)
def test_bad_options_are_refused_at_load(
    store: ArtifactStore, scratch: Path, options: dict[str, object], message: str
) -> None:
    publish_tiny_onnx_mf(store, scratch)
    with pytest.raises(ModelError, match=message):
        load_model(store, "onnx-mf", "1", options)


def test_missing_onnxruntime_says_which_extra_to_install(
    store: ArtifactStore, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_tiny_onnx_mf(store, scratch)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import` raise ImportError
    with pytest.raises(ModelError, match=r"pip install 'blendserve\[onnx\]'"):
        load_model(store, "onnx-mf", "1")


def test_a_file_that_is_not_a_graph_is_a_model_error(store: ArtifactStore, scratch: Path) -> None:
    (scratch / "model.onnx").write_bytes(b"\x00 not a graph")
    store.publish("junk", "1", "onnx", {"model.onnx": scratch / "model.onnx"})
    with pytest.raises(ModelError, match=r"'junk': cannot load model\.onnx"):
        load_model(store, "junk", "1")
