"""Serve configs: the shipped ones load, bad ones fail with a precise message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import publish_tiny_mf

from deployments.cli.main import main
from deployments.config import load_serve_config, misplaced_versions, move_model, resolve_store
from models.errors import ConfigError
from models.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(config: Path) -> None:
    apps = load_serve_config(config)
    assert apps


def test_default_config_serves_home_with_three_sources() -> None:
    (app,) = load_serve_config(ROOT / "configs" / "default.yaml").values()
    home = app.live.use_cases["home"]
    assert len(home.sources()) >= 3
    # Measured on CPUs: inline does 1.5x more than its own replica (BENCHMARKS.md).
    assert app.args.models["mf"].placement == "inline"
    assert app.live.models["mf"].version == "1"


def test_default_config_shows_an_experiment_and_an_interleaving() -> None:
    (app,) = load_serve_config(ROOT / "configs" / "default.yaml").values()
    kinds = {node.kind for node in app.live.use_cases["discover"].nodes.values()}
    assert {"experiment", "interleave"} <= kinds
    every_kind = {n.kind for uc in app.live.use_cases.values() for n in uc.nodes.values()}
    assert every_kind == {
        "source",
        "blend",
        "rerank",
        "stack",
        "slots",
        "filter",
        "diversify",
        "experiment",
        "interleave",
        "fallback",
        "fresh",
        "bandit",
    }


def _write(tmp_path: Path, mutate: object, live: object = None) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    app = data["applications"][0]
    assert callable(mutate)
    mutate(app["args"])
    if live is not None:
        assert callable(live)
        ingress = next(d for d in app["deployments"] if d["name"] == "Ingress")
        live(ingress["user_config"]["use_cases"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _no_change(args: object) -> None:
    return None


def test_unknown_model_in_a_source_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _no_change, lambda u: u["home"]["nodes"]["cf"].update(model="nope"))
    with pytest.raises(ConfigError) as info:
        load_serve_config(path)
    message = str(info.value)
    assert "deployments.0.user_config" in message  # the Ingress
    assert "use case 'home', node 'cf': unknown model 'nope'" in message


def test_use_cases_in_args_are_pointed_to_the_user_config(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda a: a.update(use_cases={}))
    with pytest.raises(ConfigError, match="move them to the 'Ingress' deployment's user_config"):
        load_serve_config(path)


def test_missing_ingress_user_config_is_named(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    data["applications"][0]["deployments"] = []
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="expected a deployment named 'Ingress'"):
        load_serve_config(path)


def test_bad_field_error_names_file_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda a: a["models"]["mf"].update(num_cpus=-1))
    with pytest.raises(ConfigError) as info:
        load_serve_config(path)
    message = str(info.value)
    assert str(path) in message and "models.mf.num_cpus" in message and "-1" in message


def test_validate_cli_exits_nonzero_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        _no_change,
        lambda u: u["home"]["nodes"]["blended"].update(weights={"cf": 0}),
    )
    assert main(["validate", str(path), "--skip-store"]) == 2
    assert "node 'blended': all weights are zero" in capsys.readouterr().err


def test_validate_cli_reports_missing_artifacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, lambda a: a.update(store=str(tmp_path / "empty")))
    assert main(["validate", str(path)]) == 1
    assert "model 'mf' version '1' is not in" in capsys.readouterr().err


def test_relative_store_resolves_against_blendserve_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLENDSERVE_HOME", "/srv/blend")
    assert resolve_store("artifacts") == Path("/srv/blend/artifacts")
    assert resolve_store("/abs/store") == Path("/abs/store")


def test_the_benchmarks_replica_mf_variant_moves_its_versions_to_its_deployment(
    tmp_path: Path,
) -> None:
    from benchmarks.variants import blendserve_config, load_yaml

    config = blendserve_config(
        load_yaml(ROOT / "configs" / "default.yaml"), 8123, mf_placement="replica"
    )
    path = tmp_path / "replica.yaml"
    path.write_text(yaml.safe_dump(config))
    (app,) = load_serve_config(path).values()
    assert app.rollouts["mf"].version == "1" and "mf" not in app.live.models
    assert app.args.models["mf"].placement == "replica"
    back = tmp_path / "inline.yaml"
    move_model(config["applications"][0], "mf", "inline")
    back.write_text(yaml.safe_dump(config))
    (again,) = load_serve_config(back).values()
    assert again.live.models["mf"].version == "1"


def _edited(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    assert callable(edit)
    edit(data["applications"][0])
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _mf_deployment(app: dict[str, Any]) -> dict[str, object]:
    """``mf``'s own deployment, after moving it to a replica as a GPU setup would."""
    if not any(d["name"] == "model-mf" for d in app["deployments"]):
        move_model(app, "mf", "replica")
    deployments = app["deployments"]
    assert isinstance(deployments, list)
    found: dict[str, object] = next(d for d in deployments if d["name"] == "model-mf")
    return found


def test_a_version_set_twice_is_refused_naming_both_places(tmp_path: Path) -> None:
    def twice(app: dict[str, object]) -> None:
        app["args"]["models"]["mf"]["version"] = "1"  # type: ignore[index]

    with pytest.raises(ConfigError, match=r"model 'mf': version set twice, in args\.models\.mf"):
        load_serve_config(_edited(tmp_path, twice))


def test_a_model_without_a_version_is_refused_saying_where_to_set_it(tmp_path: Path) -> None:
    def missing_inline(app: dict[str, Any]) -> None:
        ingress = next(d for d in app["deployments"] if d["name"] == "Ingress")
        del ingress["user_config"]["models"]["mf"]

    def missing_in_replica(app: dict[str, Any]) -> None:
        _mf_deployment(app).pop("user_config")

    for missing in (missing_inline, missing_in_replica):
        with pytest.raises(ConfigError, match="model 'mf' has no version: set it in the user"):
            load_serve_config(_edited(tmp_path, missing))


def test_a_bad_canary_is_refused_naming_the_field(tmp_path: Path) -> None:
    def bad(app: dict[str, Any]) -> None:
        _mf_deployment(app)["user_config"] = {
            "version": "1",
            "canary": {"version": "1", "percent": 150},
        }

    with pytest.raises(ConfigError) as info:
        load_serve_config(_edited(tmp_path, bad))
    assert "deployments.0.user_config: canary.percent" in str(info.value)


def test_a_cpu_pool_must_serve_the_same_versions(tmp_path: Path) -> None:
    def pool(app: dict[str, Any]) -> None:
        _mf_deployment(app)
        app["args"]["models"]["mf"]["cpu_pool"] = {"num_cpus": 0.5}

    with pytest.raises(ConfigError, match="give deployment model-mf-cpu the same user_config"):
        load_serve_config(_edited(tmp_path, pool))


def test_versions_in_the_wrong_deployment_are_found_with_the_store(
    tmp_path: Path, store: ArtifactStore, scratch: Path
) -> None:
    publish_tiny_mf(store, scratch)  # TorchScript: its own replica by default

    def inline_versions(app: dict[str, Any]) -> None:
        # The demo's versions are in the Ingress; without `placement: inline` a
        # TorchScript model gets a replica, which then has no version.
        del app["args"]["models"]["mf"]["placement"]

    (app,) = load_serve_config(_edited(tmp_path, inline_versions)).values()
    (problem,) = misplaced_versions(app, store)
    assert "model 'mf' runs in deployment 'model-mf'" in problem
