"""Publishing artifacts: which files, which version, and the smoke test before the store."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import publish_curated, publish_failing_mf, publish_tiny_mf, publish_tiny_sklearn

from models import registry
from models.base import ModelAdapter
from models.errors import (
    ArtifactNotFoundError,
    ConfigError,
    ModelError,
    UnknownFormatError,
    VersionExistsError,
)
from models.publish import (
    EXAMPLES_KEY,
    next_version,
    parse_extra,
    parse_metrics,
    publish_artifact,
    read_examples,
)
from models.registry import load_model
from models.store import ArtifactStore, sha256_of


def _built(tmp: Path, kind: str) -> Path:
    """A directory holding the files of one of builders' tiny models, not yet published.

    The builders write their files into a directory, then publish them into a store;
    the throwaway store here is only a side effect.
    """
    directory = tmp / kind
    directory.mkdir()
    side = ArtifactStore(tmp / f"built-{kind}")
    if kind == "mf":
        publish_tiny_mf(side, directory)
    elif kind == "sklearn":
        publish_tiny_sklearn(side, directory)
    elif kind == "curated":
        publish_curated(side, directory, ["i3", "i1", "i2"])
    elif kind == "broken":
        publish_failing_mf(side, directory)
        (directory / "broken.pt").rename(directory / "model.pt")
    else:
        raise AssertionError(kind)
    return directory


def test_directory_is_published_after_it_loads_and_passes_its_smoke_test(
    store: ArtifactStore, scratch: Path
) -> None:
    source = _built(scratch, "mf")
    manifest, tried, _ = publish_artifact(store, source, "mf", "torchscript")
    assert (manifest.version, manifest.format) == ("1", "torchscript")
    assert manifest.files == {
        "model.pt": sha256_of(source / "model.pt"),
        "ids.json": sha256_of(source / "ids.json"),
    }
    assert tried == ["recommend (6 items)", "score"]
    assert load_model(store, "mf", "1").version == "1"


@pytest.mark.parametrize(
    ("kind", "format", "source_name", "stored_as"),
    [
        ("sklearn", "sklearn", "model.joblib", "model.joblib"),
        ("curated", "curated", "items.json", "items.json"),
    ],
)
def test_lone_file_is_stored_under_the_formats_primary_file(
    store: ArtifactStore, scratch: Path, kind: str, format: str, source_name: str, stored_as: str
) -> None:
    lone = scratch / "trained.bin"
    shutil.copyfile(_built(scratch, kind) / source_name, lone)
    manifest, *_ = publish_artifact(store, lone, "m", format)
    assert list(manifest.files) == [stored_as]
    load_model(store, "m", "1")  # loads from the renamed file


def test_lone_python_spec_becomes_model_json_and_is_smoke_tested(
    store: ArtifactStore, scratch: Path
) -> None:
    spec = scratch / "scorer.json"
    spec.write_text(json.dumps({"class": "support_models:ConstantScorer", "kwargs": {}}))
    manifest, tried, _ = publish_artifact(store, spec, "const", "python")
    assert list(manifest.files) == ["model.json"]
    assert tried == ["score"]


class _NotesAdapter(ModelAdapter):
    """A format with no main file, to check a lone file keeps its name."""

    format = "notes"

    def load(self) -> None:
        self.text = next(self.directory.glob("*.txt")).read_text()

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        return [self.text for _ in instances]


def test_lone_file_keeps_its_name_when_the_format_has_no_primary_file(
    store: ArtifactStore, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._registry, "notes", _NotesAdapter)
    (scratch / "readme.txt").write_text("hello")
    manifest, *_ = publish_artifact(store, scratch / "readme.txt", "notes", "notes")
    assert list(manifest.files) == ["readme.txt"]


def test_next_version_follows_the_highest_numeric_one(store: ArtifactStore, scratch: Path) -> None:
    source = _built(scratch, "curated")
    assert next_version(store, "picks") == "1"
    for version in ("1", "7", "beta"):
        publish_artifact(store, source, "picks", "curated", version=version, check=False)
    manifest, *_ = publish_artifact(store, source, "picks", "curated")
    assert manifest.version == "8"
    assert store.versions("picks") == ["1", "7", "8", "beta"]


def test_existing_version_is_refused_and_the_store_untouched(
    store: ArtifactStore, scratch: Path
) -> None:
    publish_artifact(store, _built(scratch, "curated"), "picks", "curated")
    before = (store.path("picks", "1") / "items.json").read_bytes()
    other = scratch / "other.json"
    other.write_text(json.dumps({"items": ["x"]}))
    with pytest.raises(VersionExistsError, match=r"'picks' version '1' already exists"):
        publish_artifact(store, other, "picks", "curated", version="1")
    assert (store.path("picks", "1") / "items.json").read_bytes() == before
    assert store.versions("picks") == ["1"]


def test_failing_smoke_test_publishes_nothing(store: ArtifactStore, scratch: Path) -> None:
    with pytest.raises(ModelError, match=r"(?s)'broken'.*smoke test: recommend.*catalogue"):
        publish_artifact(store, _built(scratch, "broken"), "broken", "torchscript")
    assert store.versions("broken") == []
    assert not (store.root / "broken").exists()


def test_unloadable_artifact_fails_as_a_model_error_and_publishes_nothing(
    store: ArtifactStore, scratch: Path
) -> None:
    garbage = scratch / "model.pt"
    garbage.write_bytes(b"\x00 not a model \xff" * 10)
    with pytest.raises(ModelError, match=r"'mf' version '1' failed to load"):
        publish_artifact(store, garbage, "mf", "torchscript")
    assert store.models() == []


def test_extra_is_merged_into_the_manifest(store: ArtifactStore, scratch: Path) -> None:
    source = _built(scratch, "curated")
    manifest, *_ = publish_artifact(store, source, "p", "curated", extra={"owner": "editorial"})
    assert manifest.extra == {"owner": "editorial"}


def test_no_check_publishes_without_loading(store: ArtifactStore, scratch: Path) -> None:
    garbage = scratch / "model.pt"
    garbage.write_bytes(b"needs a GPU to load, say")
    manifest, tried, _ = publish_artifact(store, garbage, "mf", "torchscript", check=False)
    assert (manifest.version, tried) == ("1", [])
    assert store.versions("mf") == ["1"]


def test_examples_are_stored_and_predicted_by_the_smoke_test(
    store: ArtifactStore, scratch: Path
) -> None:
    source = _built(scratch, "sklearn")
    examples = [[0.9, 0.9], {"affinity": 0.1, "freshness": 0.2}]
    manifest, tried, _ = publish_artifact(store, source, "clicks", "sklearn", examples=examples)
    assert manifest.extra[EXAMPLES_KEY] == examples
    assert tried == ["predict (2 examples)"]
    assert load_model(store, "clicks", "1").example_instances() == examples


def test_examples_the_model_cannot_answer_publish_nothing(
    store: ArtifactStore, scratch: Path
) -> None:
    with pytest.raises(ModelError, match=r"smoke test: predict.*expected 2 features, got 3"):
        publish_artifact(store, _built(scratch, "sklearn"), "c", "sklearn", examples=[[1, 2, 3]])
    assert store.models() == []


def test_extra_reaches_the_manifest_and_the_adapter(store: ArtifactStore, scratch: Path) -> None:
    linear = torch.jit.script(torch.nn.Linear(2, 1))
    linear.save(str(scratch / "linear.pt"))  # type: ignore[no-untyped-call]
    manifest, tried, _ = publish_artifact(
        store, scratch / "linear.pt", "lin", "torchscript", extra={"n_features": 2}
    )
    assert manifest.extra == {"n_features": 2}
    assert tried == ["predict (1 examples)"]  # a row of zeros, as wide as n_features


def test_examples_given_twice_are_refused(store: ArtifactStore, scratch: Path) -> None:
    with pytest.raises(ConfigError, match="examples given twice"):
        publish_artifact(
            store,
            _built(scratch, "curated"),
            "picks",
            "curated",
            examples=[1],
            extra={EXAMPLES_KEY: [2]},
        )


def test_metrics_are_recorded_and_non_finite_ones_refused(
    store: ArtifactStore, scratch: Path
) -> None:
    source = _built(scratch, "curated")
    manifest, *_ = publish_artifact(store, source, "p", "curated", metrics={"auc": 0.91})
    assert manifest.metrics == {"auc": 0.91}
    with pytest.raises(ConfigError, match=r"metric 'auc': expected a finite number"):
        publish_artifact(store, source, "p", "curated", metrics={"auc": float("nan")})


@pytest.mark.parametrize("bad", ["auc", "auc=high", "=0.5", "auc="])
def test_metric_that_is_not_name_equals_number_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"metric {bad!r}: expected name=number")):
        parse_metrics([bad])


def test_metrics_parse_to_floats() -> None:
    assert parse_metrics(["auc=0.91", "ndcg@10=3"]) == {"auc": 0.91, "ndcg@10": 3.0}


def test_extra_must_be_a_json_object() -> None:
    assert parse_extra('{"n_features": 2}') == {"n_features": 2}
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        parse_extra("[1]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        parse_extra("{oops")


def test_examples_file_must_hold_a_non_empty_list(scratch: Path) -> None:
    (scratch / "ok.json").write_text("[[1, 2]]")
    assert read_examples(scratch / "ok.json") == [[1, 2]]
    (scratch / "dict.json").write_text('{"a": 1}')
    with pytest.raises(ConfigError, match=r"non-empty JSON list.*got dict"):
        read_examples(scratch / "dict.json")
    with pytest.raises(ConfigError, match="expected a JSON list"):
        read_examples(scratch / "missing.json")


def test_unknown_format_is_refused_listing_the_known_ones(
    store: ArtifactStore, scratch: Path
) -> None:
    with pytest.raises(UnknownFormatError, match=r"'keras'.*curated.*torchscript"):
        publish_artifact(store, _built(scratch, "curated"), "p", "keras")
    assert store.models() == []


def test_subdirectory_is_refused_naming_it(store: ArtifactStore, scratch: Path) -> None:
    source = _built(scratch, "mf")
    (source / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="subdirectory 'checkpoints'"):
        publish_artifact(store, source, "mf", "torchscript")
    assert store.models() == []


def test_hidden_files_are_skipped(store: ArtifactStore, scratch: Path) -> None:
    source = _built(scratch, "curated")
    (source / ".DS_Store").write_bytes(b"finder")
    (source / ".cache").mkdir()
    manifest, *_ = publish_artifact(store, source, "picks", "curated")
    assert list(manifest.files) == ["items.json"]


def test_directory_without_the_formats_main_file_is_refused(
    store: ArtifactStore, scratch: Path
) -> None:
    source = _built(scratch, "mf")
    (source / "model.pt").rename(source / "weights.pt")
    with pytest.raises(ConfigError, match=r"expected 'model.pt'.*found ids.json, weights.pt"):
        publish_artifact(store, source, "mf", "torchscript", check=False)


def test_missing_path_and_bad_names_are_refused(store: ArtifactStore, scratch: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="does not exist"):
        publish_artifact(store, scratch / "nowhere", "m", "curated")
    source = _built(scratch, "curated")
    with pytest.raises(ConfigError, match="invalid model name"):
        publish_artifact(store, source, "../escape", "curated")
    with pytest.raises(ConfigError, match="invalid version"):
        publish_artifact(store, source, "m", "curated", version="v/1")
