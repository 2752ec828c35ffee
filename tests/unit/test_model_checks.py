"""`blendserve validate --load`: every model loads with the code the replicas import,
can play its role in the DAG, and knows the catalogue's item ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from movielens_like import MOVIELENS_DATA_CONFIG, write_movielens_like

from deployments.cli.main import main
from models.formats.factors import save_factors
from models.formats.python_adapter import publish_python_model
from models.store import ArtifactStore
from models.training.pipeline import train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store trained by `blendserve train`, and its data (the catalogue seed)."""
    root = tmp_path_factory.mktemp("checks")
    write_movielens_like(root / "files", users=120, movies=150)
    (root / "files" / "data.yaml").write_text(MOVIELENS_DATA_CONFIG, encoding="utf-8")
    train_from_config(root / "files" / "data.yaml", root / "artifacts", root / "data")
    return root


def _config(
    root: Path,
    models: list[str],
    nodes: dict[str, Any],
    *,
    runtime_env: dict[str, Any] | None = None,
) -> Path:
    app: dict[str, Any] = {
        "name": "app",
        "import_path": "deployments.app:build_app",
        "args": {
            "store": str(root / "artifacts"),
            "catalog": str(root / "data" / "items.parquet"),
            "models": {m: {"version": "1"} for m in models},
        },
        "deployments": [
            {
                "name": "Ingress",
                "user_config": {"use_cases": {"home": {"output": "final", "nodes": nodes}}},
            }
        ],
    }
    if runtime_env is not None:
        app["runtime_env"] = runtime_env
    path = root / f"serve-{len(list(root.glob('serve-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"applications": [app]}), encoding="utf-8")
    return path


def _source(model: str) -> dict[str, Any]:
    return {"kind": "source", "model": model, "candidates": 50}


def test_the_trained_models_load_and_play_their_roles(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = {
        "cf": _source("mf"),
        "pop": _source("popularity"),
        "mix": {"kind": "blend", "method": "rrf", "weights": {"cf": 1, "pop": 1}},
        "ranked": {"kind": "rerank", "input": "mix", "model": "click_model"},
        "final": {"kind": "filter", "input": "ranked"},
    }
    config = _config(trained, ["mf", "popularity", "click_model"], nodes)
    assert main(["validate", str(config), "--load"]) == 0
    out = capsys.readouterr().out
    assert "ok: mf v1: loads" in out and "recommends" in out
    assert "ok: click_model v1: loads (click_ranker); scores items" in out
    # The catalogue is the trained items: every id of the collaborative model is in it.
    n_items = len(json.loads((trained / "artifacts/mf/1/ids.json").read_text())["items"])
    assert f"ok: mf v1: {n_items:,} of {n_items:,} items in the catalogue" in out


def test_a_model_that_cannot_recommend_is_not_a_source(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = {"cf": _source("click_model"), "final": {"kind": "filter", "input": "cf"}}
    config = _config(trained, ["click_model"], nodes)
    assert main(["validate", str(config)]) == 0  # the artifacts are fine
    assert main(["validate", str(config), "--load"]) == 1
    err = capsys.readouterr().err
    assert "error: click_model v1: cannot be the source home.cf" in err


def test_a_model_keyed_by_other_ids_than_the_catalogue_is_an_error(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A notebook's factors with ids written another way ("m3" for the catalogue's "3").
    items = json.loads((trained / "artifacts/mf/1/ids.json").read_text())["items"]
    rng = np.random.default_rng(0)
    export = tmp_path / "svd"
    export.mkdir()
    save_factors(str(export / "factors.npz"), rng.random((4, 8)), rng.random((len(items), 8)), None)
    ids = {"users": ["a", "b", "c", "d"], "items": [f"m{i}" for i in items]}
    (export / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    ArtifactStore(trained / "artifacts").publish(
        "svd", "1", "factors", {n: export / n for n in ("factors.npz", "ids.json")}
    )
    nodes = {"cf": _source("svd"), "final": {"kind": "filter", "input": "cf"}}
    assert main(["validate", str(_config(trained, ["svd"], nodes)), "--load"]) == 1
    err = capsys.readouterr().err
    assert f"error: svd v1: 0 of {len(items):,} items in the catalogue" in err
    assert "unknown ids e.g. m" in err and "its ids are not the catalogue's" in err


_OWN_MODEL = '''
class MostRecent:
    """Recommends the same three items to everyone."""

    def recommend(self, queries, n):
        return [[("3", 3.0), ("6", 2.0), ("9", 1.0)][:n] for _ in queries]
'''


def test_plain_python_code_must_ship_with_the_application(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = tmp_path / "project"
    (code / "own_models").mkdir(parents=True)
    (code / "own_models" / "__init__.py").write_text("", encoding="utf-8")
    (code / "own_models" / "recent.py").write_text(_OWN_MODEL, encoding="utf-8")
    publish_python_model(
        ArtifactStore(trained / "artifacts"), "recent", "1", "own_models.recent:MostRecent"
    )
    nodes = {"cf": _source("recent"), "final": {"kind": "filter", "input": "cf"}}
    unshipped = _config(trained, ["recent"], nodes)
    assert main(["validate", str(unshipped), "--load"]) == 1
    err = capsys.readouterr().err
    assert "recent v1: does not load" in err and "own_models" in err
    assert "runtime_env" in err  # the hint says how code reaches the replicas
    shipped = _config(
        trained, ["recent"], nodes, runtime_env={"py_modules": [str(code / "own_models")]}
    )
    assert main(["validate", str(shipped), "--load"]) == 0
    assert (
        "ok: recent v1: 3 of 3 items it recommends to a new user in the catalogue"
        in capsys.readouterr().out
    )
