"""The shape of the integration cluster: its config and how to redeploy it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployments.local import LocalRay

ROOT = Path(__file__).resolve().parents[2]


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
    return next(a for a in config["applications"] if a["name"] == name)


def serve_config(port: int) -> dict[str, Any]:
    """The default config on ``port``, plus the ``flaky`` and ``pending`` applications."""
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["http_options"]["port"] = port
    main = config["applications"][0]
    main["deployments"][0]["ray_actor_options"]["num_cpus"] = 0.25

    flaky = copy.deepcopy(main)
    flaky.update(name="flaky", route_prefix="/flaky")
    flaky["args"]["models"]["broken"] = {**main["args"]["models"]["mf"], "num_cpus": 0.25}
    del flaky["args"]["models"]["mf"]
    flaky["args"]["use_cases"]["home"]["nodes"]["cf"]["model"] = "broken"

    pending = copy.deepcopy(main)
    pending.update(name="pending", route_prefix="/pending")
    pending["args"]["models"]["mf"]["num_cpus"] = 64  # more than the cluster has
    config["applications"] += [flaky, pending]
    return config
