"""Models kept in MLflow, brought into the artifact store as blendserve artifacts.

``blendserve publish --from-mlflow models:/NAME/VERSION`` (or ``runs:/RUN_ID/PATH``)
downloads the model from the tracking store or registry (a database such as
``sqlite:///mlflow.db``, a tracking server, ...; ``--tracking-uri`` or
``MLFLOW_TRACKING_URI``), turns it into one of blendserve's formats, and hands
:func:`models.publish.publish_artifact` a flat directory, the run's metrics, its
input example (which the smoke test then predicts) and its provenance (tracking URI,
run id, params, flavour, registered name and version) for the manifest's
``extra["mlflow"]``.

Flavours: ``sklearn`` (loaded with MLflow, whichever serialisation it used, and
saved with joblib: the ``sklearn`` format) and ``onnx`` (its ``model.onnx``: the
``onnx`` format). Other flavours are refused naming what is supported. MLflow is
imported only here, only when asked for.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.errors import ArtifactNotFoundError, ConfigError

__all__ = ["FLAVOURS", "MlflowArtifact", "fetch_mlflow_model"]

FLAVOURS = {"sklearn": "sklearn", "onnx": "onnx"}
"""MLflow flavour -> the blendserve format it is published as."""


@dataclass(frozen=True)
class MlflowArtifact:
    """A model fetched from MLflow, ready to publish."""

    directory: Path
    """A flat directory of the format's files."""
    format: str
    provenance: dict[str, Any]
    """For the manifest's ``extra["mlflow"]``: uri, tracking_uri, run_id, params, flavour,
    registered_model and version (for ``models:/`` URIs), model_id."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The run's latest value of each metric (finite ones)."""
    examples: list[Any] | None = None
    """The model's logged input example, as instances (``None``: none logged)."""


def _parse_uri(uri: str) -> tuple[str, str, str]:
    """``("models", name, version)`` or ``("runs", run_id, path)``."""
    scheme, _, rest = uri.partition(":/")
    parts = rest.split("/", 1)
    if scheme not in ("models", "runs") or len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"--from-mlflow {uri!r}: expected models:/NAME/VERSION or runs:/RUN_ID/PATH"
        )
    return scheme, parts[0], parts[1]


def _examples(directory: Path, mlmodel: dict[str, Any]) -> list[Any] | None:
    """The logged input example as a list of instances (rows)."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = directory / str(info.get("artifact_path", ""))
    if not info or not path.is_file():
        return None
    example = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(example, dict) and "data" in example:  # a DataFrame, "split" orient
        example = example["data"]
    if isinstance(example, dict) and "inputs" in example:
        example = example["inputs"]
    return example if isinstance(example, list) and example else None


def fetch_mlflow_model(uri: str, workdir: Path, tracking_uri: str | None = None) -> MlflowArtifact:
    """Download ``uri`` into ``workdir`` and convert it to a blendserve format.

    Raises ``ConfigError`` for a malformed URI, a missing MLflow or an unsupported
    flavour, and ``ArtifactNotFoundError`` when the store has no such model or run.
    """
    scheme, first, second = _parse_uri(uri)
    try:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise ConfigError("--from-mlflow needs MLflow: pip install 'blendserve[mlflow]'") from exc
    with _tracking(mlflow, tracking_uri):
        return _fetch(mlflow, MlflowClient, MlflowException, uri, (scheme, first, second), workdir)


@contextmanager
def _tracking(mlflow: Any, tracking_uri: str | None) -> Iterator[None]:
    """MLflow pointed at ``tracking_uri`` (its registry too) for the block, and back:
    MLflow keeps both in globals and in environment variables, which would otherwise
    outlive the call (and reach every process started after it)."""
    if tracking_uri is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fetch(
    mlflow: Any,
    client_class: Any,
    mlflow_error: type[Exception],
    uri: str,
    parts: tuple[str, str, str],
    workdir: Path,
) -> MlflowArtifact:
    scheme, first, second = parts
    MlflowException = mlflow_error
    client = client_class()
    try:
        registered = client.get_model_version(first, second) if scheme == "models" else None
        # A run's model is a logged model of its own in MLflow 3: resolve either URI.
        info = mlflow.models.get_model_info(uri)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=info.model_uri, dst_path=str(workdir / "mlflow")
            )
        )
        mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
        run_id = str(info.run_id or mlmodel.get("run_id") or "")
        run = client.get_run(run_id) if run_id else None
    except MlflowException as exc:
        message = getattr(exc, "message", str(exc))
        raise ArtifactNotFoundError(f"--from-mlflow {uri}: {message}") from exc
    except OSError as exc:
        raise ArtifactNotFoundError(f"--from-mlflow {uri}: no MLmodel file: {exc}") from exc
    flavours = sorted((mlmodel.get("flavors") or {}).keys())
    flavour = next((f for f in FLAVOURS if f in flavours), None)
    if flavour is None:
        raise ConfigError(
            f"--from-mlflow {uri}: its flavours are {flavours}; blendserve imports "
            f"{sorted(FLAVOURS)} models from MLflow. Save other models in a blendserve "
            "format (README 'Bring your own model') and publish the files"
        )
    out = workdir / "artifact"
    out.mkdir(parents=True)
    if flavour == "sklearn":
        import joblib
        import mlflow.sklearn

        joblib.dump(mlflow.sklearn.load_model(str(local)), out / "model.joblib")
    else:
        data = str(mlmodel["flavors"]["onnx"].get("data", "model.onnx"))
        shutil.copyfile(local / data, out / "model.onnx")
    params = dict(run.data.params) if run else {}
    metrics = {
        key: float(value)
        for key, value in (run.data.metrics if run else {}).items()
        if isinstance(value, int | float) and math.isfinite(value)
    }
    provenance: dict[str, Any] = {
        "uri": uri,
        "tracking_uri": mlflow.get_tracking_uri(),
        "run_id": run_id,
        "params": params,
        "flavour": flavour,
        "model_id": mlmodel.get("model_id"),
    }
    if registered is not None:
        provenance.update(registered_model=first, version=str(registered.version))
    return MlflowArtifact(out, FLAVOURS[flavour], provenance, metrics, _examples(local, mlmodel))
