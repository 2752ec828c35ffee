"""Serve configs for each system under test, generated from the checked-in ones.

blendserve's variants are copies of ``configs/default.yaml`` with one thing changed
(the Ingress's replicas, where ``mf`` runs, its batching, an extra use case), so the
comparison stays tied to the demo as it is today. Every config gets a free port.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployments.config import move_model

__all__ = [
    "ADAPTIVE_BATCHING",
    "ROOT",
    "TORCH_ONLY",
    "UNBATCHED",
    "Batching",
    "blendserve_config",
    "budget_ms",
    "load_yaml",
    "with_port",
]

ROOT = Path(__file__).resolve().parents[1]

TORCH_ONLY = "torch_only"
"""A use case whose only source is the torch ``mf`` model (for the batching runs)."""


@dataclass(frozen=True)
class Batching:
    """The ``mf`` model's batching settings (``args.models.mf``)."""

    max_batch_size: int
    batch_wait_timeout_s: float
    batch_target_ms: float
    coalesce: bool = True
    """Whether each ingress replica coalesces its calls to ``mf`` (``hosting/coalescing.py``)."""

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"max_batch_size {self.max_batch_size}, batch_wait_timeout_s "
            f"{self.batch_wait_timeout_s:g}, batch_target_ms {self.batch_target_ms:g}, "
            f"coalesce {str(self.coalesce).lower()}"
        )


UNBATCHED = Batching(max_batch_size=1, batch_wait_timeout_s=0.0, batch_target_ms=20, coalesce=False)
ADAPTIVE_BATCHING = Batching(max_batch_size=64, batch_wait_timeout_s=0.002, batch_target_ms=20)


def load_yaml(path: Path) -> dict[str, Any]:
    """A Serve config as plain data."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def with_port(config: dict[str, Any], port: int) -> dict[str, Any]:
    """A copy of ``config`` served on 127.0.0.1:``port``."""
    out = copy.deepcopy(config)
    out.setdefault("http_options", {}).update(host="127.0.0.1", port=port)
    return out


def ingress_deployment(app: dict[str, Any]) -> dict[str, Any]:
    """The Ingress deployment of one application of a Serve config (to change)."""
    for deployment in app.get("deployments") or []:
        if deployment.get("name") == "Ingress":
            found: dict[str, Any] = deployment
            return found
    raise ValueError("configs/default.yaml: no deployment named Ingress")


def blendserve_config(
    base: dict[str, Any],
    port: int,
    *,
    ingress_replicas: int | None = None,
    ingress_max_ongoing: int | None = None,
    mf_placement: str | None = None,
    mf_resources: dict[str, float] | None = None,
    mf_batching: Batching | None = None,
    torch_only_use_case: bool = False,
) -> dict[str, Any]:
    """``configs/default.yaml`` (``base``) on ``port`` with the given changes.

    ``torch_only_use_case`` adds :data:`TORCH_ONLY`, the ``home`` budget with ``mf``
    as its only source and a filter on top.
    """
    config = with_port(base, port)
    app = config["applications"][0]
    # The per-key rate limit (1,000 req/s per replica) would answer 429 above it: the
    # benchmark measures what the service can do, not the limit the demo config sets.
    app["args"].setdefault("ingress", {})["rate_limit"] = {
        "requests_per_s": 1_000_000,
        "burst": 1_000_000,
    }
    ingress = ingress_deployment(app)
    mf = app["args"]["models"]["mf"]
    if ingress_replicas is not None:
        ingress["num_replicas"] = ingress_replicas
    if ingress_max_ongoing is not None:
        ingress["max_ongoing_requests"] = ingress_max_ongoing
    if mf_placement is not None and mf_placement != mf.get("placement"):
        move_model(app, "mf", mf_placement)
        if mf_placement == "replica":  # as the demo config's comment says
            mf.update(num_cpus=0.5, num_gpus=0, timeout_s=1.0)
    if mf_resources is not None:
        mf["resources"] = dict(mf_resources)
    if mf_batching is not None:
        if mf.get("placement") != "replica":
            raise ValueError("batching settings need mf in its own replica (mf_placement)")
        mf.update(
            max_batch_size=mf_batching.max_batch_size,
            batch_wait_timeout_s=mf_batching.batch_wait_timeout_s,
            batch_target_ms=mf_batching.batch_target_ms,
            coalesce=mf_batching.coalesce,
        )
    if torch_only_use_case:
        use_cases = ingress["user_config"]["use_cases"]
        use_cases[TORCH_ONLY] = {
            "budget_ms": use_cases["home"]["budget_ms"],
            "output": "final",
            "nodes": {
                "cf": {"kind": "source", "model": "mf", "candidates": 200},
                "final": {"kind": "filter", "input": "cf"},
            },
        }
    return config


def budget_ms(config: dict[str, Any], use_case: str) -> float:
    """The latency budget of ``use_case`` in a blendserve config."""
    ingress = ingress_deployment(config["applications"][0])
    return float(ingress["user_config"]["use_cases"][use_case]["budget_ms"])
