"""``blendserve validate --load``: load every model a config serves, in this process,
and check that it can do what the config asks of it.

* each loads, with the user code the replicas will import: the application's
  ``runtime_env`` ``working_dir`` and ``py_modules`` are put on the import path, as
  Ray puts them on the replicas' (a plain-Python model whose module is on neither
  fails here, with that hint, instead of in every replica);
* each can play its roles in the DAG: recommend for a ``source``, score items for a
  ``rerank``, predict a row of its inputs for a ``stack``;
* its item ids meet the catalogue: none known is an error (every answer would be
  filtered out, or every user would get a list of unknown ids), under half a warning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from blending.spec import RerankNodeSpec, SourceNodeSpec, StackNodeSpec
from deployments.config import AppConfig, resolve_store
from models.base import ModelAdapter, Recommender, RecommendQuery, Scorer
from models.catalogue_share import catalogue_share, read_item_ids
from models.errors import BlendserveError, describe_error
from models.registry import load_model
from models.smoke import SMOKE_USER
from models.store import ArtifactStore

__all__ = ["Finding", "check_models", "code_paths"]

_UNSEEN = RecommendQuery(SMOKE_USER)


@dataclass(frozen=True)
class Finding:
    """One thing ``validate --load`` found about one model."""

    level: Literal["error", "warning", "ok"]
    model: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.model}: {self.message}"


def code_paths(config: str | os.PathLike[str], app_name: str) -> list[Path]:
    """The local directories an application's ``runtime_env`` ships to its replicas
    (``working_dir`` and ``py_modules``), relative to where ``serve deploy`` runs."""
    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    for app in raw.get("applications") or []:
        if app.get("name") != app_name:
            continue
        env = app.get("runtime_env") or {}
        entries = [env.get("working_dir"), *(env.get("py_modules") or [])]
        paths = []
        for entry in entries:
            if isinstance(entry, str) and "://" not in entry:
                path = Path(entry).resolve()
                # A module directory is imported by its name: its parent goes on the path.
                paths.append(path if entry == env.get("working_dir") else path.parent)
        return paths
    return []


@contextmanager
def _importable(paths: list[Path]) -> Iterator[None]:
    before = list(sys.path)
    sys.path[:0] = [str(p) for p in paths]
    try:
        yield
    finally:
        sys.path[:] = before


def _roles(app: AppConfig, model: str) -> dict[str, list[str]]:
    """``{"source": [...], "rerank": [...], "stack": [...]}``: the nodes using ``model``."""
    roles: dict[str, list[str]] = {"source": [], "rerank": [], "stack": []}
    for use_case, spec in app.live.use_cases.items():
        for name, node in spec.nodes.items():
            where = f"{use_case}.{name}"
            if isinstance(node, SourceNodeSpec) and node.model == model:
                roles["source"].append(where)
            elif isinstance(node, RerankNodeSpec) and node.model == model:
                roles["rerank"].append(where)
            elif isinstance(node, StackNodeSpec) and node.model == model:
                roles["stack"].append(where + f"({len(node.inputs)})")
    return roles


def _try_roles(adapter: ModelAdapter, app: AppConfig, model: str) -> list[Finding]:
    found: list[Finding] = []
    roles = _roles(app, model)
    described = adapter.describe()
    for node in roles["source"]:
        try:
            if not isinstance(adapter, Recommender) or described.get("recommender") is False:
                raise TypeError(f"format {adapter.format!r} does not recommend")
            (answer,) = adapter.top_items([_UNSEEN], 10)
            if len(answer.ids) == 0:
                raise ValueError("it recommended nothing for a new user")
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            found.append(
                Finding("error", model, f"cannot be the source {node}: {describe_error(exc)}")
            )
    for node in roles["rerank"]:
        try:
            if not isinstance(adapter, Scorer) or not described.get("scorer"):
                raise TypeError(f"format {adapter.format!r} does not score items")
            ids = list(adapter.item_ids() or ["__blendserve_validate_item__"])[:3]
            adapter.score(_UNSEEN, ids)
        except Exception as exc:  # noqa: BLE001
            found.append(
                Finding("error", model, f"cannot rerank for {node}: {describe_error(exc)}")
            )
    for node in roles["stack"]:
        width = int(node.rsplit("(", 1)[1].rstrip(")"))
        try:
            adapter.predict_array(np.zeros((1, width)))
        except Exception as exc:  # noqa: BLE001
            name = node.rsplit("(", 1)[0]
            found.append(
                Finding("error", model, f"cannot combine for {name}: {describe_error(exc)}")
            )
    return found


def _load_hint(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) or "No module named" in str(exc):
        return (
            " (the replicas import user code from the application's runtime_env: add "
            "`runtime_env: {working_dir: .}` or `py_modules: [path/to/package]` to the "
            "Serve config; README 'Publish your own model')"
        )
    return ""


def check_models(config: str | os.PathLike[str], app_name: str, app: AppConfig) -> list[Finding]:
    """Every finding about every live model version of one application."""
    store = ArtifactStore(resolve_store(app.args.store))
    catalogue: set[str] | None = None
    if app.args.catalog is not None and resolve_store(app.args.catalog).is_file():
        catalogue = read_item_ids(resolve_store(app.args.catalog))
    findings: list[Finding] = []
    with _importable(code_paths(config, app_name)):
        for model, rollout in app.rollouts.items():
            for version in rollout.versions():
                label = f"{model} v{version}"
                try:
                    adapter = load_model(store, model, version, app.args.models[model].options)
                except (BlendserveError, ImportError, OSError, ValueError) as exc:
                    message = f"does not load: {describe_error(exc)}{_load_hint(exc)}"
                    findings.append(Finding("error", label, message))
                    continue
                problems = _try_roles(adapter, app, model)
                findings += [Finding(f.level, label, f.message) for f in problems]
                if catalogue is not None:
                    findings.append(_catalogue_finding(label, adapter, catalogue))
                if not problems:
                    findings.append(Finding("ok", label, _what_it_does(adapter)))
    return findings


def _catalogue_finding(label: str, adapter: ModelAdapter, catalogue: set[str]) -> Finding:
    share = catalogue_share(adapter, catalogue)
    level: Literal["error", "warning", "ok"] = (
        "error" if share.level == "error" else "warning" if share.level == "warning" else "ok"
    )
    return Finding(level, label, str(share))


def _what_it_does(adapter: ModelAdapter) -> str:
    described: dict[str, Any] = adapter.describe()
    can = [word for key, word in (("recommender", "recommends"), ("scorer", "scores items"))
           if described.get(key)]  # fmt: skip
    return f"loads ({adapter.format}); " + (", ".join(can) if can else "predicts")
