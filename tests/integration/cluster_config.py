"""The Serve config of the session's cluster (:func:`serve_config`): the demo config
as the main app (mf in its own replica, plus the use cases only tests send to) and
the applications beside it: ``flaky`` (failing and slow models), ``pending`` (never
ready), ``damaged`` (corrupt artifacts), ``lifecycle`` (version swaps, canaries, code
updates) and ``shared`` (state off the node: PostgreSQL, S3, a small WAL disk).
Helpers to read and change a config, and the names tests use, are in
``serving_cluster``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from serving_cluster import (
    ALLOWED_ORIGIN,
    EXPLORE,
    EXPLORE_USE_CASE,
    FLAKY_MAX_K,
    FLAKY_MAX_ONGOING,
    LIFECYCLE_PREFIX,
    PRECOMPUTED_MODEL,
    PRECOMPUTED_USE_CASE,
    ROOT,
    SHARED_PREFIX,
    SHOP_ATTRIBUTES,
    SHOP_USE_CASE,
    SLEEPY_DELAY_S,
    SLOW_BUDGET_MS,
    TRIAL_USE_CASE,
    deployment,
    mf_in_its_own_replica,
    only_ingress,
    use_cases,
)

from benchmarks.power_sim import RUN_KINDS, serve_use_cases

STAGED_USE_CASE = "staged_trial"
"""The main app's staged experiment (``benchmarks/power_sim.py``'s ``staged`` kind)."""
STAGED_MAX_SESSIONS = 40
"""Its first stage ends after this many clicked lists at the latest."""


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


def _lifecycle(main: dict[str, Any], traces_url: str) -> dict[str, Any]:
    """An app whose model versions the lifecycle tests change: mf (TorchScript, two
    replicas) in its own deployment, popularity inline, both versions set live. It
    sends traces to ``traces_url``, of the requests whose caller samples them only."""
    app = copy.deepcopy(main)
    app.update(name="lifecycle", route_prefix=LIFECYCLE_PREFIX)
    app["args"]["tracing"] = {"endpoint": traces_url, "sample": 0.0, "flush_interval_s": 0.2}
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
    only_ingress(damaged)
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


def serve_config(port: int, shared: SharedState, traces_url: str) -> dict[str, Any]:
    """The default config on ``port``, plus the ``flaky``, ``pending``, ``damaged``,
    ``lifecycle`` and ``shared`` applications; the last keeps its state off the node:
    its live catalogue in PostgreSQL (two catalogue replicas), its events on S3. The
    ``lifecycle`` app sends traces to ``traces_url``."""
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
    use_cases(main)[EXPLORE_USE_CASE] = {
        **copy.deepcopy(use_cases(main)["home"]),
        "explore": EXPLORE,
    }
    flaky = copy.deepcopy(main)
    flaky.update(name="flaky", route_prefix="/flaky")
    flaky["args"]["events"] = None  # only the main app keeps an event log
    flaky["args"]["live_catalog"] = None  # and a live catalogue
    flaky["args"]["ingress"]["max_k"] = FLAKY_MAX_K  # above the API's default of 100
    models = flaky["args"]["models"]
    models["broken"] = {**models.pop("mf"), "num_cpus": 0.25, "version": "1"}
    only_ingress(flaky)
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
    # a staged experiment as `make power` runs them (four candidates, then the survivor
    # against the control), stopping its first stage early;
    staged = [(STAGED_USE_CASE, RUN_KINDS["staged"])]
    use_cases(main).update(serve_use_cases(staged, STAGED_MAX_SESSIONS))
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
        _lifecycle(main, traces_url),
        _shared_state(main, shared),
    ]
    return config
