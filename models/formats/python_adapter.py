"""Plain Python models: any importable class, named in ``model.json``.

The artifact's ``model.json`` is ``{"class": "package.module:Class", "kwargs": {...}}``
(``kwargs`` optional). Loading imports the class and calls it with ``kwargs``, plus
``directory=`` (the artifact directory, so the object can read its own files) when
its ``__init__`` takes one. The object answers whichever of ``predict(instances)``,
``recommend(queries, n)`` and ``score(query, item_ids)`` it defines; its answers are
checked here, so a faulty object fails with a ``ModelError`` naming it.

Loading imports and runs code named by the artifact, as unpickling a joblib model
does: publish only classes you trust.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, Scorer
from models.errors import ConfigError, ModelError
from models.store import ArtifactStore, Manifest

__all__ = ["PythonAdapter", "publish_python_model"]

_METHODS = ("predict", "recommend", "score")


def _split_class_path(class_path: str) -> tuple[str, str]:
    """``"pkg.module:Class"`` as (module, class name), or ``ValueError``."""
    module, sep, name = class_path.partition(":")
    if not (sep and module and name.isidentifier()):
        raise ValueError(f"expected 'package.module:Class', got {class_path!r}")
    return module, name


def _accepts_directory(cls: type) -> bool:
    """Whether calling ``cls`` takes a ``directory`` keyword (named or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == "directory" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


class PythonAdapter(ModelAdapter, Recommender, Scorer):
    """Wraps one instance of a plain Python class.

    It is typed as both a :class:`Recommender` and a :class:`Scorer`, because its
    class is fixed before the artifact says what it wraps; :meth:`describe` reports
    what the object really does, and a missing method raises ``ModelError``.
    """

    format = "python"
    primary_file = "model.json"

    def load(self) -> None:
        """Import the class named in ``model.json`` and instantiate it."""
        try:
            spec = json.loads((self.directory / "model.json").read_text(encoding="utf-8"))
            class_path = spec["class"]
            kwargs = spec.get("kwargs", {})
            if not isinstance(class_path, str) or not isinstance(kwargs, dict):
                raise TypeError('expected {"class": str, "kwargs": object}')
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"model {self.name!r}: malformed model.json: {exc}") from exc
        self.class_path = class_path
        try:
            module_name, class_name = _split_class_path(class_path)
            cls = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:  # a module's own import-time failure, re-raised
            raise ModelError(f"model {self.name!r}: cannot import {class_path!r}: {exc}") from exc
        if not isinstance(cls, type):
            raise ModelError(
                f"model {self.name!r}: {class_path!r} is not a class, got {type(cls).__name__}"
            )
        if _accepts_directory(cls):
            kwargs = {**kwargs, "directory": self.directory}
        try:
            self.model: Any = cls(**kwargs)
        except Exception as exc:  # any failure of foreign code, re-raised
            raise ModelError(
                f"model {self.name!r}: {class_path}(**{sorted(kwargs)}) failed: {exc!r}"
            ) from exc
        self.methods = tuple(m for m in _METHODS if callable(getattr(self.model, m, None)))
        if not self.methods:
            raise ModelError(
                f"model {self.name!r}: {class_path} defines none of {', '.join(_METHODS)}"
            )

    def _call(self, method: str, *args: Any) -> list[Any]:
        """Call one of the object's methods and take its answer as a list."""
        if method not in self.methods:
            raise ModelError(f"model {self.name!r} ({self.class_path}) has no {method} method")
        answer = getattr(self.model, method)(*args)
        try:
            return list(answer)
        except TypeError as exc:
            raise ModelError(
                f"model {self.name!r}: {method} must return a list, got {type(answer).__name__}"
            ) from exc

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """The object's ``predict``, which must answer one output per instance."""
        answer = self._call("predict", instances)
        if len(answer) != len(instances):
            raise ModelError(
                f"model {self.name!r}: predict returned {len(answer)} outputs for "
                f"{len(instances)} instances"
            )
        return answer

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """The object's ``recommend``, checked: one list of (item id, score) per query."""
        answer = self._call("recommend", queries, n)
        if len(answer) != len(queries):
            raise ModelError(
                f"model {self.name!r}: recommend returned {len(answer)} lists for "
                f"{len(queries)} queries"
            )
        try:
            rows = [[(str(item), float(s)) for item, s in row][:n] for row in answer]
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"model {self.name!r}: recommend must return (item_id, score) pairs: {exc}"
            ) from exc
        if not all(math.isfinite(s) for row in rows for _, s in row):
            raise ModelError(f"model {self.name!r}: recommend returned a non-finite score")
        return rows

    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """The object's ``score``, checked: one finite number per item."""
        try:
            scores = [float(s) for s in self._call("score", query, item_ids)]
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model {self.name!r}: score must return numbers: {exc}") from exc
        if len(scores) != len(item_ids) or not all(math.isfinite(s) for s in scores):
            raise ModelError(
                f"model {self.name!r}: score must return {len(item_ids)} finite numbers, "
                f"got {len(scores)}"
            )
        return scores

    def item_ids(self) -> Sequence[str] | None:
        """The object's ``item_ids`` (a list, or a method returning one), if it has any."""
        ids = getattr(self.model, "item_ids", None)
        if callable(ids):
            ids = ids()
        if ids is None:
            return None
        return [str(item) for item in ids]

    def describe(self) -> dict[str, Any]:
        """Say which class this is and what it can really do."""
        return {
            **super().describe(),
            "class": self.class_path,
            "recommender": "recommend" in self.methods,
            "scorer": "score" in self.methods,
        }


def publish_python_model(
    store: ArtifactStore,
    name: str,
    version: str,
    class_path: str,
    kwargs: Mapping[str, Any] | None = None,
    files: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Manifest:
    """Publish a ``python`` model: ``model.json`` naming ``class_path``, plus ``files``.

    ``kwargs`` must be JSON; ``files`` (store name -> source path) land beside
    ``model.json`` in the artifact directory the object receives as ``directory``.
    The class is not imported here: publishing does not run the model's code.
    """
    try:
        _split_class_path(class_path)
    except ValueError as exc:
        raise ConfigError(f"model {name!r}: class: {exc}") from exc
    extra_files = dict(files or {})
    if "model.json" in extra_files:
        raise ConfigError(f"model {name!r}: files: 'model.json' is written by publish itself")
    try:
        spec = json.dumps({"class": class_path, "kwargs": dict(kwargs or {})}, indent=1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: kwargs: expected JSON values: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="blendserve-python-") as tmp:
        spec_path = Path(tmp) / "model.json"
        spec_path.write_text(spec + "\n", encoding="utf-8")
        return store.publish(
            name,
            version,
            PythonAdapter.format,
            {"model.json": spec_path, **extra_files},
            description=f"Python model {class_path}",
            extra={"class": class_path},
        )
