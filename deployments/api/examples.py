"""Example answers the OpenAPI documentation shows for routes that return plain JSON
(the others have response models with their own examples)."""

from __future__ import annotations

from deployments.json_types import JsonObject

__all__ = ["DASHBOARD", "EXPERIMENT", "MODELS"]

MODELS: JsonObject = {
    "replica": "3f9c2a1b",
    "models": {
        "mf": {
            "name": "mf",
            "version": "1",
            "format": "torchscript",
            "placement": "replica",
            "status": "serving",
            "versions": [
                {"version": "1", "role": "live", "status": "serving", "traffic_percent": 80.0},
                {"version": "2", "role": "canary", "status": "serving", "traffic_percent": 20.0},
            ],
            "events": [{"at": "2026-11-28T23:10:04+00:00", "message": "canary 2 serves 20%"}],
        }
    },
}
EXPERIMENT: JsonObject = {
    "name": "discover.ab",
    "kind": "experiment",
    "control": "taste",
    "arms": {
        "taste": {
            "weight": 40,
            "requests": 1200,
            "impressions": 9000,
            "clicks": 450,
            "ctr": 0.05,
            "ctr_low": 0.045,
            "ctr_high": 0.055,
            "lift": None,
            "p_value": None,
            "prob_beat_control": None,
            "significant": False,
        },
        "clicky": {
            "weight": 40,
            "requests": 1190,
            "impressions": 8900,
            "clicks": 560,
            "ctr": 0.0629,
            "ctr_low": 0.057,
            "ctr_high": 0.069,
            "lift": 0.258,
            "p_value": 0.002,
            "prob_beat_control": 0.999,
            "significant": True,
        },
    },
    "srm": {"p_value": 0.84, "mismatch": False},
    "winner": "clicky",
    "verdict": "clicky beats taste: CTR +25.8% (p = 0.002, 99.9% to beat control)",
}
DASHBOARD: JsonObject = {
    "generated_at": "2026-11-28T23:10:04+00:00",
    "window_s": 60,
    "traffic": {
        "requests_per_s": 12.5,
        "p50_ms": 8.1,
        "p99_ms": 20.3,
        "degraded_share": 0.0,
        "requests": 750,
        "by_use_case": {},
    },
    "models": {"mf": {"status": "serving", "versions": []}},
    "experiments": {"discover.ab": EXPERIMENT},
}
