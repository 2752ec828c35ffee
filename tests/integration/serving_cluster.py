"""The shape of the integration cluster: its config and how to redeploy it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from builders import api_keys_document

from deployments.config import move_model
from deployments.local.cluster import LocalRay

ROOT = Path(__file__).resolve().parents[2]
SLEEPY_DELAY_S = 2.0
"""How long the ``flaky`` app's ``sleepy`` model takes: far past its use case's budget."""
SLOW_BUDGET_MS = 300
ALLOWED_ORIGIN = "http://127.0.0.1:5173"
"""The one browser origin the main app's CORS config allows."""
FLAKY_MAX_ONGOING = 4
"""Requests one ``flaky`` ingress replica works on at once; as many more may wait."""

INFER_ONLY_KEY = "test-infer-only-key-0123456789"
ADMIN_ONLY_KEY = "test-admin-only-key-0123456789"
LIMITED_KEY = "test-limited-key-0123456789ab"
LIMITED_BURST = 5
TEST_KEYS = api_keys_document(INFER_ONLY_KEY, ADMIN_ONLY_KEY, LIMITED_KEY, 0.2, LIMITED_BURST)
"""Keys besides the development key (``$BLENDSERVE_API_KEYS``, in every replica)."""


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


def alive_replicas(
    deployed: Deployed, deployment: str, app: str = "blendserve"
) -> list[dict[str, Any]]:
    """Ray's records of the live replica actors of ``app``'s ``deployment``."""
    name = f"ServeReplica:{app}:{deployment}"
    return [
        actor
        for actor in deployed.cluster.list_actors()
        if actor.get("state") == "ALIVE" and actor.get("class_name") == name
    ]


def until(check: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (then return it); an HTTP error,
    a failed assertion or a missing key counts as not yet."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        time.sleep(0.25)
    pytest.fail(f"not within {timeout_s} s: {what} (last: {last})")


def whole_answer(
    client: httpx.Client, path: str, body: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    """The first answer to ``POST path`` that is not degraded.

    On a starved machine a model may miss its latency budget for a while, and the
    answer is then rightly degraded (other tests cover that); tests about a whole
    answer's contents wait for one instead of failing on the machine's speed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        if not answer["degraded"]:
            return answer
        assert time.monotonic() < deadline, f"every answer degraded for {timeout_s} s: {answer}"
        time.sleep(0.5)


def app_config(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The application ``name`` of a Serve config."""
    return next(a for a in config["applications"] if a["name"] == name)


def deployment(app: dict[str, Any], name: str = "Ingress") -> dict[str, Any]:
    """The deployment ``name`` of an application's config."""
    found: dict[str, Any] = next(d for d in app["deployments"] if d["name"] == name)
    return found


def use_cases(app: dict[str, Any]) -> dict[str, Any]:
    """An application's use cases (the Ingress's user_config)."""
    cases: dict[str, Any] = deployment(app)["user_config"]["use_cases"]
    return cases


def _only_ingress(app: dict[str, Any]) -> None:
    """Drop the model deployments' entries of an app copied from the main one."""
    app["deployments"] = [d for d in app["deployments"] if d["name"] == "Ingress"]


def mf_in_its_own_replica(app: dict[str, Any]) -> None:
    """The demo's ``mf`` moved to its own replica, as on a GPU machine: most tests are
    about model replicas (batching, coalescing, pools, swaps, crashes)."""
    move_model(app, "mf", "replica")
    app["args"]["models"]["mf"].update(
        num_cpus=0.5, num_gpus=0, max_batch_size=16, batch_wait_timeout_s=0.0, timeout_s=1.0
    )
    deployment(app, "model-mf")["max_surge_percent"] = 100


def serve_config(port: int, shared: SharedState) -> dict[str, Any]:
    """The default config on ``port``, plus the ``flaky``, ``pending``, ``damaged``,
    ``lifecycle`` and ``shared`` applications; the last keeps its state off the node:
    its live catalogue in PostgreSQL (two catalogue replicas), its events on S3."""
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["http_options"]["port"] = port
    main = config["applications"][0]
    mf_in_its_own_replica(main)
    deployment(main)["ray_actor_options"]["num_cpus"] = 0.25
    # Two ingress replicas, as in production: with one, Serve takes it out of HAProxy
    # while a user_config change reconfigures it, and requests meet a ~1 s gap of 503s.
    deployment(main)["num_replicas"] = 2
    # A CPU overflow pool that takes mf's calls beyond two in flight (test only: the
    # demo has no GPU pool to overflow from); it serves the same versions.
    main["args"]["models"]["mf"]["cpu_pool"] = {"num_cpus": 0.25, "spill_above": 2}
    mf_versions = deployment(main, "model-mf")["user_config"]
    main["deployments"].append({"name": "model-mf-cpu", "user_config": mf_versions})
    main["args"]["ingress"] = {"cors": {"allow_origins": [ALLOWED_ORIGIN]}}
    # Checkpoints of the online state every 2 s, so a restart test need not wait.
    main["args"]["events"] = {"online": {"checkpoint_every_s": 2}}
    # The evaluation tests' own experiment: `discover` under another name and salt, so
    # other tests' traffic (and split changes) never mix into its statistics.
    trial = copy.deepcopy(use_cases(main)["discover"])
    trial["nodes"]["ab"]["salt"] = "trial-1"
    use_cases(main)[TRIAL_USE_CASE] = trial
    flaky = copy.deepcopy(main)
    flaky.update(name="flaky", route_prefix="/flaky")
    flaky["args"]["events"] = None  # only the main app keeps an event log
    flaky["args"]["live_catalog"] = None  # and a live catalogue
    flaky["args"]["ingress"]["max_k"] = FLAKY_MAX_K  # above the API's default of 100
    models = flaky["args"]["models"]
    models["broken"] = {**models.pop("mf"), "num_cpus": 0.25, "version": "1"}
    _only_ingress(flaky)
    models["sleepy"] = {**models["broken"], "timeout_s": 10.0}
    # One call at a time and one waiting: a third caller gets BackPressureError at once.
    models["sleepy_tight"] = {
        **models["sleepy"],
        "version": "1",
        "num_cpus": 0.1,
        "max_ongoing_requests": 1,
        "max_queued_requests": 1,
        "timeout_s": 3 * SLEEPY_DELAY_S,
    }
    models["sleepy_tight"].pop("cpu_pool", None)  # no overflow pool to spill into
    for use_case in use_cases(flaky).values():
        if "cf" in use_case["nodes"]:
            use_case["nodes"]["cf"]["model"] = "broken"
    # Little room, so a burst overflows it: 503 with Retry-After past 4 + 4.
    flaky_ingress = deployment(flaky)
    flaky_ingress["num_replicas"] = 1  # the limits below are per replica
    flaky_ingress["max_ongoing_requests"] = FLAKY_MAX_ONGOING
    flaky_ingress["max_queued_requests"] = FLAKY_MAX_ONGOING
    use_cases(flaky)["tight"] = _slow_source_with_popularity(
        "sleepy_tight", 3 * SLEEPY_DELAY_S * 1000
    )
    use_cases(flaky)["slow"] = _slow_source_with_popularity("sleepy", SLOW_BUDGET_MS)

    pending = copy.deepcopy(main)
    pending.update(name="pending", route_prefix="/pending")
    pending["args"]["events"] = None
    pending["args"]["live_catalog"] = None
    pending["args"]["models"]["mf"]["num_cpus"] = 64  # more than the cluster has
    deployment(pending)["num_replicas"] = 1
    # Only in the main app (the others have no event log, or no mf):
    # mf's lists precomputed by `blendserve batch-score` (Ray Data), new users scored on
    # request by mf (tests/integration/test_batch_score.py).
    main["args"]["models"][PRECOMPUTED_MODEL] = {"version": "1", "placement": "inline"}
    use_cases(main)[PRECOMPUTED_USE_CASE] = {
        "output": "cf",
        "nodes": {
            "cf": {
                "kind": "source",
                "model": PRECOMPUTED_MODEL,
                "fallback_model": "mf",
                "candidates": 20,
            }
        },
    }
    # Product rules and seen items (tests/integration/test_rules_and_seen.py).
    main["args"]["catalog_attributes"] = SHOP_ATTRIBUTES
    use_cases(main)[SHOP_USE_CASE] = {
        "output": "final",
        "nodes": {
            "popular": {"kind": "source", "model": "popularity", "candidates": 30},
            "final": {"kind": "filter", "input": "popular"},
        },
        "rules": {"filters": [{"attribute": "in_stock", "equals": False, "negate": True}]},
        "seen": {"exclude": ["click"], "demote_after": 2, "demote_factor": 0.01},
    }

    config["applications"] += [
        flaky,
        pending,
        _damaged(main),
        _lifecycle(main),
        _shared_state(main, shared),
    ]
    return config


SHARED_PREFIX = "/shared"
"""Where the ``shared`` app answers: its state is off the node."""


@dataclass(frozen=True)
class SharedState:
    """Where the ``shared`` app keeps its state."""

    catalog_url: str
    """The live catalogue's PostgreSQL database."""
    events_uri: str
    """The event log's Parquet dataset: a prefix of a bucket on the S3 server."""
    wal_dir: Path
    """The event log's write-ahead log: a small tmpfs, which the disk-full test fills."""


def _shared_state(main: dict[str, Any], shared: SharedState) -> dict[str, Any]:
    """A small app whose live catalogue is in PostgreSQL, in two catalogue replicas, and
    whose events go to S3, as a multi-node cluster would run it: the catalogue tests run
    on it and on the main app's SQLite file alike. Its `home` blends popularity and staff
    picks, inline."""
    app = copy.deepcopy(main)
    app.update(name="shared", route_prefix=SHARED_PREFIX)
    app["args"]["events"] = {
        "uri": shared.events_uri,
        "wal_dir": str(shared.wal_dir),
        "flush_interval_s": 0.5,
    }
    app["args"]["live_catalog"] = {
        "poll_interval_s": 0.2,
        "url": shared.catalog_url,
        "num_replicas": 2,
    }
    models = main["args"]["models"]
    app["args"]["models"] = {
        "popularity": models["popularity"],
        "staff_picks": models["staff_picks"],
    }
    ingress = {
        "name": "Ingress",
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": 0.1},
        "user_config": {
            "use_cases": {
                "home": {
                    "output": "final",
                    "nodes": {
                        "popular": {"kind": "source", "model": "popularity", "candidates": 50},
                        "picks": {"kind": "source", "model": "staff_picks", "candidates": 10},
                        "blended": {"kind": "blend", "weights": {"popular": 0.8, "picks": 0.2}},
                        "final": {"kind": "filter", "input": "blended"},
                    },
                }
            }
        },
    }
    app["deployments"] = [ingress]
    return app


FLAKY_MAX_K = 300
"""The ``flaky`` app's ``max_k``: longer lists than the default limit of 100."""

PRECOMPUTED_MODEL = "mf_precomputed"
"""mf's top 50 for every user it knows, published by `blendserve batch-score`."""

PRECOMPUTED_USE_CASE = "later"
"""A use case of the main app served from the precomputed lists, mf for new users."""

SHOP_USE_CASE = "shop"
"""A use case of the main app with a standing rule (out-of-stock items never shown)
and seen items (clicked ones hidden, those shown twice without a click demoted)."""

SHOP_ATTRIBUTES = {"price": "number", "in_stock": "boolean", "brand": "text"}
"""The main app's declared catalogue attributes."""

TRIAL_USE_CASE = "trial"
"""A copy of ``discover`` in the main app that only the evaluation tests send to."""

LIFECYCLE_PREFIX = "/lifecycle"
"""Where the ``lifecycle`` app (model version swaps, canaries, code updates) answers."""


def _lifecycle(main: dict[str, Any]) -> dict[str, Any]:
    """An app whose model versions the lifecycle tests change: mf (TorchScript, two
    replicas) in its own deployment, popularity inline, both versions set live."""
    app = copy.deepcopy(main)
    app.update(name="lifecycle", route_prefix=LIFECYCLE_PREFIX)
    app["args"]["events"] = None
    app["args"]["live_catalog"] = None
    app["runtime_env"] = {"env_vars": {"BLENDSERVE_BUILD": "1"}}  # a code update changes it
    models = main["args"]["models"]
    app["args"]["models"] = {
        "mf": {"placement": "replica", "num_cpus": 0.1, "num_replicas": 2, "timeout_s": 2.0},
        "popularity": {},
        "staff_picks": models["staff_picks"],
    }
    ingress = {
        "name": "Ingress",
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 0.1},
        "user_config": {
            "models": {"popularity": {"version": "1"}},
            "use_cases": {
                "home": {
                    "budget_ms": 1000,
                    "output": "final",
                    "nodes": {
                        "cf": {"kind": "source", "model": "mf", "candidates": 50},
                        "popular": {"kind": "source", "model": "popularity", "candidates": 50},
                        "picks": {"kind": "source", "model": "staff_picks", "candidates": 10},
                        "blended": {
                            "kind": "blend",
                            "weights": {"cf": 0.6, "popular": 0.3, "picks": 0.1},
                        },
                        "final": {"kind": "filter", "input": "blended"},
                    },
                }
            },
        },
    }
    app["deployments"] = [{"name": "model-mf", "user_config": {"version": "1"}}, ingress]
    return app


def _slow_source_with_popularity(model: str, budget_ms: float) -> dict[str, Any]:
    """A use case blending a slow ``model`` half and half with popularity."""
    return {
        "budget_ms": budget_ms,
        "output": "final",
        "nodes": {
            "late": {"kind": "source", "model": model},
            "popular": {"kind": "source", "model": "popularity"},
            "mixed": {"kind": "blend", "weights": {"late": 0.5, "popular": 0.5}},
            "final": {"kind": "filter", "input": "mixed"},
        },
    }


def _damaged(main: dict[str, Any]) -> dict[str, Any]:
    """An app with two models whose artifacts are corrupt, one inline, one in a replica."""
    damaged = copy.deepcopy(main)
    damaged.update(name="damaged", route_prefix="/damaged")
    damaged["args"]["events"] = None
    damaged["args"]["live_catalog"] = None
    models = damaged["args"]["models"]
    damaged["args"]["models"] = {
        "popularity": models["popularity"],
        "staff_picks": models["staff_picks"],
        "corrupt": {"version": "1", "placement": "inline"},
        "corrupt_remote": {"version": "1", "placement": "replica", "num_cpus": 0.1},
    }
    _only_ingress(damaged)
    ingress = deployment(damaged)
    ingress["ray_actor_options"]["num_cpus"] = 0.1
    ingress["num_replicas"] = 1
    ingress["user_config"] = {
        "use_cases": {
            "home": {
                "output": "final",
                "nodes": {
                    "popular": {"kind": "source", "model": "popularity"},
                    "picks": {"kind": "source", "model": "staff_picks"},
                    "scored": {"kind": "rerank", "input": "mixed", "model": "corrupt"},
                    "remote": {"kind": "source", "model": "corrupt_remote"},
                    "mixed": {
                        "kind": "blend",
                        "weights": {"popular": 0.5, "picks": 0.3, "remote": 0.2},
                    },
                    "final": {"kind": "filter", "input": "scored"},
                },
            },
            "only_corrupt": {
                "output": "final",
                "nodes": {
                    "remote": {"kind": "source", "model": "corrupt_remote"},
                    "final": {"kind": "filter", "input": "remote"},
                },
            },
        }
    }
    return damaged


def batch_score_mf(home: Path) -> None:
    """`blendserve batch-score` mf version 1 into ``home``'s store, as a user runs it:
    a process of its own that starts a local Ray and runs Ray Data on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    command = [sys.executable, "-m", "deployments.cli.main", "batch-score", "--model", "mf"]
    options = ["--version", "1", "--top", "50", "--name", PRECOMPUTED_MODEL]
    local = ["--num-cpus", "1", "--actor-cpus", "0.5", "--batch-size", "100"]
    done = subprocess.run(
        [*command, *options, *local, "--store", str(home / "artifacts")],
        env={**env, "BLENDSERVE_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
