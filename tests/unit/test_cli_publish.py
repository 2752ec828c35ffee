"""`blendserve publish` and `blendserve models`, end to end through the CLI's main()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import publish_curated, publish_failing_mf, publish_tiny_mf

from deployments.cli.main import main
from models.store import MANIFEST_NAME, ArtifactStore


@pytest.fixture(autouse=True)
def _no_live_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A home without a live catalogue: publish checks one only when given or running."""
    monkeypatch.setenv("BLENDSERVE_HOME", str(tmp_path / "home"))


def _mf_dir(tmp: Path, broken: bool = False) -> Path:
    """A directory with builders' tiny MF (or its always-failing twin) as model.pt + ids.json."""
    directory = tmp / ("broken" if broken else "mf")
    directory.mkdir()
    side = ArtifactStore(tmp / f"built-{directory.name}")
    if broken:
        publish_failing_mf(side, directory)
        (directory / "broken.pt").rename(directory / "model.pt")
    else:
        publish_tiny_mf(side, directory)
    return directory


def _items_file(tmp: Path) -> Path:
    publish_curated(ArtifactStore(tmp / "built-picks"), tmp, ["i2", "i0"])
    return tmp / "items.json"


def _publish(store: ArtifactStore, path: Path, name: str, format: str, *extra: str) -> int:
    command = ["publish", str(path), "--model", name, "--format", format]
    return main([*command, "--store", str(store.root), *extra])


def test_torchscript_publish_prints_the_model_deployments_user_config(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript") == 0
    out = capsys.readouterr().out
    assert "published mf version 1 (torchscript)" in out
    assert "model.pt  sha256 " in out and "smoke test: passed: recommend (6 items), score" in out
    assert '- name: model-mf\n      user_config: {version: "1"}' in out
    assert "RAY_AUTH_MODE=token serve deploy CONFIG" in out
    assert store.versions("mf") == ["1"]


def _live_catalogue(path: Path, ids: list[str]) -> Path:
    from deployments.catalog.items import CatalogItem
    from deployments.catalog.sqlite_store import SqliteCatalogStore as CatalogStore

    with CatalogStore(path) as catalogue:
        catalogue.upsert_batch([CatalogItem(item_id=i) for i in ids])
        catalogue.delete(ids[-1])  # a deleted item is not in the catalogue
    return path


def test_publish_reports_the_share_of_the_live_catalogue_the_model_knows(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tiny model knows i0..i5; the catalogue holds i0..i3, i9 (and a deleted i5).
    live = _live_catalogue(scratch / "live.sqlite", ["i0", "i1", "i2", "i3", "i9", "i5"])
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript", "--catalog", str(live)) == 0
    out = capsys.readouterr().out
    assert "catalogue (live, " in out
    assert "4 of 6 items in the catalogue (4 of the catalogue's 5 scorable)" in out
    assert "unknown ids e.g. i4, i5" in out


def test_the_running_apps_live_catalogue_is_checked_by_default(
    store: ArtifactStore, scratch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home" / ".blendserve" / "catalog"
    home.mkdir(parents=True)
    _live_catalogue(home / "blendserve.sqlite", ["1", "2", "3"])
    # A model trained on ids written another way: refused before anything is published.
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript") == 2
    err = capsys.readouterr().err
    assert "0 of 6 items in the catalogue" in err and "nothing was published" in err
    assert store.models() == []


def test_an_item_table_is_a_catalogue_too(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = scratch / "items.csv"
    table.write_text("item_id,title\ni0,A\ni1,B\n", encoding="utf-8")
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript", "--catalog", str(table)) == 0
    assert "2 of 6 items in the catalogue" in capsys.readouterr().out


def test_a_lone_model_file_is_not_a_recommender_and_publish_says_so(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = _mf_dir(scratch) / "model.pt"
    assert _publish(store, lone, "mf", "torchscript") == 0
    out = capsys.readouterr().out
    assert "without ids.json beside it this is not a recommender" in out
    assert "catalogue: not checked" in out


def test_a_fitted_decomposition_is_pointed_to_the_factors_format(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import joblib
    import numpy as np
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(n_components=2, random_state=0).fit(np.eye(6))
    joblib.dump(svd, scratch / "model.joblib")
    assert _publish(store, scratch / "model.joblib", "svd", "sklearn") == 2
    err = capsys.readouterr().err
    assert "TruncatedSVD has no predict" in err and "`factors` format" in err


def test_curated_publish_prints_the_ingress_user_config_models(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = _items_file(scratch)
    assert _publish(store, items, "picks", "curated") == 0
    assert _publish(store, items, "picks", "curated") == 0
    out = capsys.readouterr().out
    assert '- name: Ingress\n      user_config:\n        models: {picks: {version: "2"}}' in out
    assert "model-picks" not in out.split("With placement")[0]
    assert store.versions("picks") == ["1", "2"]


def test_failing_smoke_test_exits_2_and_publishes_nothing(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, _mf_dir(scratch, broken=True), "broken", "torchscript") == 2
    err = capsys.readouterr().err
    assert "failed its smoke test: recommend" in err
    assert f"nothing was published to {store.root}" in err
    assert store.models() == []


def test_no_check_skips_loading(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, _mf_dir(scratch, broken=True), "gpu", "torchscript", "--no-check") == 0
    assert "smoke test: skipped (--no-check)" in capsys.readouterr().out
    assert store.versions("gpu") == ["1"]


def test_no_check_help_names_missing_hardware(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "--help"])
    assert exit_info.value.code == 0
    assert "a GPU" in capsys.readouterr().out


def test_examples_metrics_description_and_extra_reach_the_manifest(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = scratch / "examples.json"
    examples.write_text(json.dumps(["alice", {"user_id": "nobody"}]))
    options = ["--example", str(examples), "--metric", "ndcg=0.31", "--metric", "auc=0.9"]
    options += ["--description", "tiny", "--extra", '{"trained_on": "2025-03"}']
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript", *options, "--version", "a") == 0
    assert "predict (2 examples)" in capsys.readouterr().out
    manifest = store.manifest("mf", "a")
    assert manifest.metrics == {"ndcg": 0.31, "auc": 0.9} and manifest.description == "tiny"
    assert manifest.extra == {
        "trained_on": "2025-03",
        "example_instances": ["alice", {"user_id": "nobody"}],
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--metric", "auc=high"], "metric 'auc=high': expected name=number"),
        (["--format", "keras"], "unknown model format 'keras': expected one of"),
        (["--extra", "[1]"], "extra: expected a JSON object"),
        (["--example", "/nonexistent/examples.json"], "examples /nonexistent"),
        (["--version", "1"], "'picks' version '1' already exists"),
    ],
)
def test_bad_publish_exits_2_naming_the_problem(
    store: ArtifactStore,
    scratch: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    items = _items_file(scratch)
    assert _publish(store, items, "picks", "curated") == 0
    capsys.readouterr()
    assert _publish(store, items, "picks", "curated", *options) == 2
    assert message in capsys.readouterr().err
    assert store.versions("picks") == ["1"]


def test_relative_store_resolves_against_blendserve_home(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLENDSERVE_HOME", str(tmp_path))
    items = _items_file(scratch)
    assert main(["publish", str(items), "--model", "p", "--format", "curated"]) == 0
    assert ArtifactStore(tmp_path / "artifacts").versions("p") == ["1"]


def test_models_table_marks_each_models_newest_version(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = _items_file(scratch)
    long = "an editorial list picked by the newsroom every morning at nine"
    for version in ("2", "10"):
        options = ["--version", version, "--metric", "ctr=0.125", "--description", long]
        assert _publish(store, items, "picks", "curated", *options) == 0
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript") == 0
    capsys.readouterr()
    assert main(["models", "--store", str(store.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "MODEL",
        "VERSION",
        "FORMAT",
        "CREATED_AT",
        "METRICS",
        "DESCRIPTION",
    ]
    rows = [line.split()[:3] for line in lines[1:-1]]
    assert rows == [["mf", "1", "*"], ["picks", "2", "curated"], ["picks", "10", "*"]]
    assert "ctr=0.125" in lines[2] and long[:37] + "..." in lines[2] and long not in lines[2]
    assert lines[-1] == "* newest version"


def test_models_name_shows_one_models_versions(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, _items_file(scratch), "picks", "curated") == 0
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript") == 0
    capsys.readouterr()
    assert main(["models", "mf", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "mf" in out and "picks" not in out
    assert main(["models", "nope", "--store", str(store.root)]) == 2
    assert "model 'nope' has no published version" in capsys.readouterr().err


def test_models_json_lists_every_manifest(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = _items_file(scratch)
    assert _publish(store, items, "picks", "curated") == 0
    assert _publish(store, items, "picks", "curated") == 0
    assert _publish(store, _mf_dir(scratch), "mf", "torchscript") == 0
    capsys.readouterr()
    assert main(["models", "--store", str(store.root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["version"]) for r in rows] == [
        ("mf", "1"),
        ("picks", "1"),
        ("picks", "2"),
    ]
    assert rows[0] == store.manifest("mf", "1").to_json()
    assert main(["models", "picks", "--store", str(store.root), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_models_table_survives_an_unreadable_manifest(
    store: ArtifactStore, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, _items_file(scratch), "picks", "curated") == 0
    (store.path("picks", "1") / MANIFEST_NAME).write_text("{not json")
    capsys.readouterr()
    assert main(["models", "--store", str(store.root)]) == 0
    assert "unreadable" in capsys.readouterr().out


def test_models_on_an_empty_store_says_so(
    store: ArtifactStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--store", str(store.root)]) == 0
    assert "no models in" in capsys.readouterr().out
    assert main(["models", "--store", str(store.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
