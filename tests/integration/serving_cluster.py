"""The shape of the integration cluster: its config and how to redeploy it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployments.local import LocalRay

ROOT = Path(__file__).resolve().parents[2]
SLEEPY_DELAY_S = 2.0
"""How long the ``flaky`` app's ``sleepy`` model takes: far past its use case's budget."""
SLOW_BUDGET_MS = 300


@dataclass
class Deployed:
    """The running cluster, its base URL and the config it serves."""

    url: str
    cluster: LocalRay
    config: dict[str, Any]
    config_path: Path

    def redeploy(self, config: dict[str, Any]) -> None:
        """Write ``config`` and ``serve deploy`` it, as a data scientist would."""
        self.config_path.write_text(yaml.safe_dump(config))
        self.cluster.deploy(self.config_path)
        self.config = config


def app_config(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The application ``name`` of a Serve config."""
    return next(a for a in config["applications"] if a["name"] == name)


def use_cases(app: dict[str, Any]) -> dict[str, Any]:
    """An application's use cases (the Ingress's user_config)."""
    ingress = next(d for d in app["deployments"] if d["name"] == "Ingress")
    cases: dict[str, Any] = ingress["user_config"]["use_cases"]
    return cases


def serve_config(port: int) -> dict[str, Any]:
    """The default config on ``port``, plus the ``flaky`` and ``pending`` applications."""
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["http_options"]["port"] = port
    main = config["applications"][0]
    main["deployments"][0]["ray_actor_options"]["num_cpus"] = 0.25
    # One ingress replica: tests read per-replica state (spill counts) back.
    main["deployments"][0]["num_replicas"] = 1
    # A CPU overflow pool that takes mf's calls beyond two in flight (test only: the
    # demo has no GPU pool to overflow from).
    main["args"]["models"]["mf"]["cpu_pool"] = {"num_cpus": 0.25, "spill_above": 2}

    flaky = copy.deepcopy(main)
    flaky.update(name="flaky", route_prefix="/flaky")
    models = flaky["args"]["models"]
    models["broken"] = {**models.pop("mf"), "num_cpus": 0.25}
    models["sleepy"] = {**models["broken"], "timeout_s": 10.0}
    for use_case in use_cases(flaky).values():
        use_case["nodes"]["cf"]["model"] = "broken"
    use_cases(flaky)["slow"] = {
        "budget_ms": SLOW_BUDGET_MS,
        "output": "final",
        "nodes": {
            "late": {"kind": "source", "model": "sleepy"},
            "popular": {"kind": "source", "model": "popularity"},
            "mixed": {"kind": "blend", "weights": {"late": 0.5, "popular": 0.5}},
            "final": {"kind": "filter", "input": "mixed"},
        },
    }

    pending = copy.deepcopy(main)
    pending.update(name="pending", route_prefix="/pending")
    pending["args"]["models"]["mf"]["num_cpus"] = 64  # more than the cluster has
    config["applications"] += [flaky, pending]
    return config
