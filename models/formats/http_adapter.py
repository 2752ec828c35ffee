"""A model behind an existing REST service (``endpoint.json``), so a legacy service
can join a blend.

The artifact is one file, ``endpoint.json``::

    {"url": "http://legacy:8080/v1/models/ctr:predict", "protocol": "v1",
     "timeout_s": 1.0, "recommender": false, "model_name": "ctr",
     "headers_from_env": {"Authorization": "LEGACY_TOKEN"}}

Only ``url`` is required (see :class:`EndpointSpec` for each field). The model's
config ``options`` may override ``url`` and ``timeout_s``, so one artifact serves
every environment. Header values are read from the named environment variables at
load, so no secret lives in the store. Loading does not call the service: the smoke
test does.

Protocol ``v1`` (TF-Serving, KServe v1) posts ``{"instances": [...]}`` and expects
``{"predictions": [...]}``, one per instance. Protocol ``v2`` (Open Inference
Protocol) posts one input tensor named ``input``, ``FP32 [B, F]`` for numeric rows or
``BYTES [B]`` for strings, and splits ``outputs[0]`` along its first dimension. A
``recommender`` endpoint (v1 only) gets ``{"user_id", "context", "n"}`` instances and
answers ``{"items": [...], "scores": [...]}`` per instance.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem
from models.errors import InputError, ModelError
from models.formats._inputs import to_feature_matrix, to_user_ids

__all__ = ["EndpointSpec", "HttpModelAdapter"]

_OVERRIDABLE = ("url", "timeout_s")
_OPTIONS = frozenset({*_OVERRIDABLE, "predict_top_n"})


class EndpointSpec(BaseModel):
    """``endpoint.json``: where the service is and how to talk to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="The URL every call is POSTed to (http or https).")
    protocol: Literal["v1", "v2"] = Field(
        "v1", description="`v1` (instances/predictions) or `v2` (Open Inference Protocol)."
    )
    timeout_s: float = Field(
        1.0, gt=0, le=600, description="Seconds each step of a call (connect, send, read) may take."
    )
    recommender: bool = Field(
        False, strict=True, description="Whether the service recommends items for users (v1 only)."
    )
    model_name: str | None = Field(
        None, min_length=1, description="The service's own name for the model, for people."
    )
    headers_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers, each read from the environment variable named here.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"expected an http(s) URL with a host, got {url!r}: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"expected an http(s) URL with a host, got {url!r}")
        return url

    @model_validator(mode="after")
    def _recommender_speaks_v1(self) -> EndpointSpec:
        if self.recommender and self.protocol != "v1":
            raise ValueError("a recommender endpoint must use protocol 'v1'")
        return self


def _shown_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: safe to log and show."""
    return str(httpx.URL(url).copy_with(username="", password="", query=None, fragment=None))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


class HttpModelAdapter(ModelAdapter, Recommender):
    """Calls a remote service over HTTP; one connection pool per adapter."""

    format = "http"
    known_options = _OPTIONS
    primary_file = "endpoint.json"
    blocking = True

    def load(self) -> None:
        """Read ``endpoint.json`` and the options, resolve headers, open the client."""
        try:
            raw = json.loads((self.directory / "endpoint.json").read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise TypeError(f"expected an object, got {type(raw).__name__}")
            overrides = {k: self.options[k] for k in _OVERRIDABLE if k in self.options}
            self.endpoint = EndpointSpec.model_validate({**raw, **overrides})
        except ValidationError as exc:
            raise ModelError(
                f"model {self.name!r}: endpoint.json (with options): {_validation_message(exc)}"
            ) from exc
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"model {self.name!r}: malformed endpoint.json: {exc}") from exc
        top_n = self.options.get("predict_top_n", 10)
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise ModelError(f"model {self.name!r}: predict_top_n: expected an integer >= 1")
        self.top_n: int = top_n
        headers: dict[str, str] = {}
        for header, variable in self.endpoint.headers_from_env.items():
            value = os.environ.get(variable)
            if not value:
                raise ModelError(
                    f"model {self.name!r}: header {header!r} needs environment variable "
                    f"{variable!r}, which is not set"
                )
            headers[header] = value
        self.url = _shown_url(self.endpoint.url)
        self._client = httpx.Client(timeout=httpx.Timeout(self.endpoint.timeout_s), headers=headers)

    def close(self) -> None:
        """Close the connection pool (garbage collection does it too)."""
        self._client.close()

    def _post(self, body: Mapping[str, Any]) -> Any:
        """POST ``body`` as JSON and return the decoded answer, or raise naming the call."""
        where = f"model {self.name!r} at {self.url}"
        try:
            response = self._client.post(self.endpoint.url, json=body)
        except httpx.TimeoutException as exc:
            raise TimeoutError(
                f"{where}: no answer within {self.endpoint.timeout_s} s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"{where}: request failed: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise ModelError(
                f"{where}: answered status {response.status_code}: {response.text[:200]!r}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ModelError(
                f"{where}: status {response.status_code} but the body is not JSON: "
                f"{response.text[:200]!r}"
            ) from exc

    def _malformed(self, expected: str, got: Any) -> ModelError:
        return ModelError(
            f"model {self.name!r} at {self.url}: expected {expected}, got {str(got)[:200]!r}"
        )

    def _predictions(self, answer: Any, count: int) -> list[Any]:
        """A v1 answer's ``predictions``, checked to hold ``count`` entries."""
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != count:
            raise self._malformed(f'{{"predictions": [...]}} with {count} entries', answer)
        return predictions

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """One prediction per instance from the service; a recommender endpoint gives the
        top ``predict_top_n`` items per user id, as ``{"items", "scores"}``."""
        if self.endpoint.recommender:
            queries = [RecommendQuery(u) for u in to_user_ids(instances)]
            return [
                {"items": [i for i, _ in row], "scores": [s for _, s in row]}
                for row in self.recommend(queries, self.top_n)
            ]
        if not instances:
            return []
        if self.endpoint.protocol == "v1":
            return self._predictions(self._post({"instances": list(instances)}), len(instances))
        return self._infer_v2(instances)

    def _v2_input(self, instances: Sequence[Any]) -> dict[str, Any]:
        """The one input tensor of a v2 request: BYTES ``[B]`` or FP32 ``[B, F]``."""
        if isinstance(instances[0], str):
            for index, instance in enumerate(instances):
                if not isinstance(instance, str):
                    raise InputError(f"instances.{index}", "expected a string, as instances.0")
            data: list[Any] = list(instances)
            return {"name": "input", "shape": [len(data)], "datatype": "BYTES", "data": data}
        names = self.manifest.extra.get("feature_names")
        width = self.manifest.extra.get("n_features") or (len(names) if names else None)
        if width is None:
            if not isinstance(instances[0], list | tuple):
                raise InputError("instances.0", "expected a list of numbers or a string")
            width = len(instances[0])
        matrix = to_feature_matrix(instances, int(width), names)
        data = matrix.reshape(-1).tolist()
        return {"name": "input", "shape": list(matrix.shape), "datatype": "FP32", "data": data}

    def _infer_v2(self, instances: Sequence[Any]) -> list[Any]:
        """An Open Inference Protocol call: ``outputs[0]`` split into one row per instance."""
        answer = self._post({"inputs": [self._v2_input(instances)]})
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        output = outputs[0] if isinstance(outputs, list) and outputs else None
        expected = f'{{"outputs": [{{"shape": [{len(instances)}, ...], "data": [...]}}]}}'
        if not isinstance(output, dict):
            raise self._malformed(expected, answer)
        shape, data = output.get("shape"), output.get("data")
        try:
            rows = np.asarray(data).reshape(shape)
        except (TypeError, ValueError) as exc:
            raise self._malformed(expected, output) from exc
        if rows.ndim == 0 or rows.shape[0] != len(instances):
            raise self._malformed(expected, output)
        return rows.tolist()  # type: ignore[no-any-return]

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """Up to ``n`` items per query from the service, checked: items and finite
        scores of the same length."""
        if not self.endpoint.recommender:
            raise ModelError(f"model {self.name!r} at {self.url} is not a recommender endpoint")
        if not queries:
            return []
        instances = [{"user_id": q.user_id, "context": dict(q.context), "n": n} for q in queries]
        predictions = self._predictions(self._post({"instances": instances}), len(queries))
        return [self._scored_items(p, n) for p in predictions]

    def _scored_items(self, prediction: Any, n: int) -> list[ScoredItem]:
        """One recommendation, checked and cut to ``n`` items."""
        items = prediction.get("items") if isinstance(prediction, dict) else None
        scores = prediction.get("scores") if isinstance(prediction, dict) else None
        if not (
            isinstance(items, list)
            and isinstance(scores, list)
            and len(items) == len(scores)
            and all(isinstance(i, str | int) and not isinstance(i, bool) for i in items)
            and all(_finite(s) for s in scores)
        ):
            raise self._malformed(
                '{"items": [...], "scores": [...]} of equal length with finite scores',
                prediction,
            )
        return [(str(i), float(s)) for i, s in zip(items, scores, strict=True)][:n]

    def describe(self) -> dict[str, Any]:
        """Add where the service is (no query string) and how it is spoken to."""
        return {
            **super().describe(),
            "recommender": self.endpoint.recommender,
            "url": self.url,
            "protocol": self.endpoint.protocol,
            "remote_model": self.endpoint.model_name,
            "timeout_s": self.endpoint.timeout_s,
        }
