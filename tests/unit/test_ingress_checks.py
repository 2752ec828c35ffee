"""The ingress refuses use cases whose in-process rerank or stack models cannot serve them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from builders import publish_curated, publish_popularity, publish_tiny_sklearn

from blending.dag import BlendPlan
from blending.spec import UseCaseSpec
from deployments.config.rollout import RolloutConfig
from deployments.hosting.checks import check_node_models
from deployments.hosting.gateway import IngressModels
from deployments.hosting.rollout import ModelRollout
from models.errors import ConfigError
from models.registry import load_model
from models.store import ArtifactStore


@pytest.fixture
def models(store: ArtifactStore, scratch: Path) -> IngressModels:
    publish_popularity(store, scratch, {"a": 3, "b": 1})
    publish_curated(store, scratch, ["a"])
    publish_tiny_sklearn(store, scratch, name="clicks")
    names = ("popularity", "picks", "clicks")
    return IngressModels({n: _serving(store, n) for n in names}, {})


def _serving(store: ArtifactStore, name: str) -> ModelRollout:
    rollout = ModelRollout(name, lambda version: load_model(store, name, version), "inline")
    rollout.apply(RolloutConfig(version="1"))
    return rollout


def _plans(nodes: dict[str, object]) -> dict[str, BlendPlan]:
    base = {
        "pop": {"kind": "source", "model": "popularity"},
        "picks": {"kind": "source", "model": "picks"},
    }
    spec = UseCaseSpec.model_validate({"nodes": {**base, **nodes}, "output": "out"})
    return {"home": BlendPlan("home", spec)}


def test_a_model_that_cannot_score_is_refused_as_a_reranker(models: IngressModels) -> None:
    plans = _plans(
        {
            "mix": {"kind": "blend", "weights": {"pop": 1, "picks": 1}},
            "out": {"kind": "rerank", "input": "mix", "model": "picks"},
        }
    )
    with pytest.raises(ConfigError, match="node 'out': model 'picks' cannot score items"):
        check_node_models(plans, models)


def test_a_stack_model_trained_on_other_inputs_is_refused(models: IngressModels) -> None:
    feature_names = load_model_features(models)
    plans = _plans({"out": {"kind": "stack", "inputs": ["pop", "picks"], "model": "clicks"}})
    with pytest.raises(ConfigError, match=re.escape(f"trained on inputs {feature_names}")):
        check_node_models(plans, models)


def load_model_features(models: IngressModels) -> list[str]:
    features = getattr(models.live_adapters()["clicks"], "feature_names", None)
    assert features and features != ["pop", "picks"]
    return list(features)
