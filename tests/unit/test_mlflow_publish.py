"""`blendserve publish --from-mlflow`: models from a real MLflow tracking store and
registry (SQLite backend, no server) into the artifact store, with their run id,
params, metrics and input example in the manifest."""

from __future__ import annotations

import os
from typing import Any

import mlflow
import numpy as np
import pytest

from deployments.cli.main import main
from models.registry import load_model
from models.store import ArtifactStore


class _Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A custom pyfunc: a flavour blendserve does not import."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input * 2


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite tracking store with a registered logistic regression (`clicks`, v1)
    and a custom pyfunc run."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # The artifacts under the temporary directory, not the working directory's mlruns/;
    # the experiment passed to each run (set_experiment would leave MLFLOW_EXPERIMENT_ID
    # in the environment, for every later subprocess to trip on).
    experiment = mlflow.create_experiment("clicks", artifact_location=(root / "artifacts").as_uri())
    rng = np.random.default_rng(3)
    features = rng.random((200, 3))
    labels = (features[:, 0] + 0.3 * features[:, 1] > 0.6).astype(int)
    with mlflow.start_run(experiment_id=experiment) as run:
        fitted = LogisticRegression(C=0.5).fit(features, labels)
        mlflow.log_params({"C": 0.5, "features": "age,clicks,hour"})
        mlflow.log_metric("auc", 0.93)
        mlflow.sklearn.log_model(
            fitted, name="model", registered_model_name="clicks", input_example=features[:3]
        )
    with mlflow.start_run(experiment_id=experiment) as custom:
        mlflow.pyfunc.log_model(name="model", python_model=_Doubler())
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # set_tracking_uri leaves it behind
    return {"uri": uri, "run": run.info.run_id, "custom": custom.info.run_id, "fitted": fitted}


def _publish(store: ArtifactStore, tracking: dict[str, Any], source: str, *extra: str) -> int:
    command = ["publish", "--from-mlflow", source, "--tracking-uri", tracking["uri"]]
    return main([*command, "--model", "clicks", "--store", str(store.root), *extra])


def test_a_registered_model_is_published_with_its_run(
    store: ArtifactStore, tracking: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(store, tracking, "models:/clicks/1") == 0, capsys.readouterr().err
    manifest = store.manifest("clicks", "1")
    assert manifest.format == "sklearn"
    assert manifest.metrics == {"auc": 0.93}
    origin = manifest.extra["mlflow"]
    assert origin["run_id"] == tracking["run"]
    assert (origin["registered_model"], origin["version"]) == ("clicks", "1")
    assert origin["params"] == {"C": "0.5", "features": "age,clicks,hour"}
    assert origin["flavour"] == "sklearn" and origin["tracking_uri"] == tracking["uri"]
    assert len(manifest.extra["example_instances"]) == 3  # the logged input example
    assert "smoke test: passed" in capsys.readouterr().out
    # The published model answers what the data scientist's fitted model answers.
    rows = [[0.1, 0.2, 0.3], [0.9, 0.8, 0.1]]
    served = load_model(store, "clicks", "1").predict(rows)
    expected = tracking["fitted"].predict_proba(np.array(rows))[:, 1]
    assert np.allclose(np.asarray(served, dtype=float), expected)


def test_a_run_uri_works_too_and_records_no_registry_version(
    store: ArtifactStore, tracking: dict[str, Any]
) -> None:
    assert _publish(store, tracking, f"runs:/{tracking['run']}/model", "--version", "r1") == 0
    origin = store.manifest("clicks", "r1").extra["mlflow"]
    assert origin["run_id"] == tracking["run"] and "registered_model" not in origin


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("models:/clicks/9", "--from-mlflow models:/clicks/9:"),
        ("models:/clicks", "expected models:/NAME/VERSION or runs:/RUN_ID/PATH"),
        ("custom", "its flavours are ['python_function']; blendserve imports ['onnx', 'sklearn']"),
    ],
)
def test_what_cannot_be_imported_is_refused_and_nothing_is_published(
    store: ArtifactStore,
    tracking: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    source: str,
    message: str,
) -> None:
    if source == "custom":
        source = f"runs:/{tracking['custom']}/model"
    assert _publish(store, tracking, source) == 2
    assert message in capsys.readouterr().err
    assert store.versions("clicks") == []
