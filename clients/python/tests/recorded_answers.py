"""Answers as the service gives them: the shapes of deployments/api/schemas.py,
http_errors.py and edge.py, with values from the README's examples. Tests build
their fake service from these, so a change of shape shows up here in one place."""

from __future__ import annotations

from typing import Any

RESULT_ID_1 = (
    "eyJpIjoiYTAxODA2IiwibSI6eyJtZiI6IjEiLCJwb3B1bGFyaXR5IjoiMSIsInN0YWZmX3BpY2tzIjoiMSJ9"
    "LCJwIjoxLCJyIjoiNzg0OTMzN2IzMGM5NDA2MjkwZWNjZjU2NjllODgwZmMiLCJzIjoxNzk1ODg5NDQyLCJ1"
    "IjoiaG9tZSIsInYiOjF9.hGR379mwIxyE0WXX"
)
RESULT_ID_2 = (
    "eyJpIjoiYTAxNzUzIiwibSI6eyJtZiI6IjEiLCJwb3B1bGFyaXR5IjoiMSIsInN0YWZmX3BpY2tzIjoiMSJ9"
    "LCJwIjoyLCJyIjoiNzg0OTMzN2IzMGM5NDA2MjkwZWNjZjU2NjllODgwZmMiLCJzIjoxNzk1ODg5NDQyLCJ1"
    "IjoiaG9tZSIsInYiOjF9.tNPdCPxUfINDe0B8"
)

# POST /v1/recommend/home {"user_id": "u0042", "k": 2} (README "Try it").
RECOMMEND_HOME: dict[str, Any] = {
    "request_id": "7849337b30c9406290eccf5669e880fc",
    "use_case": "home",
    "items": [
        {
            "item_id": "a01806",
            "result_id": RESULT_ID_1,
            "score": 1.0,
            "pinned": True,
            "components": [
                {
                    "source": "cf",
                    "model": "mf",
                    "version": "1",
                    "weight": 0.6,
                    "score": 0.5611607276458769,
                    "raw_score": 2.893418550491333,
                },
                {
                    "source": "picks",
                    "model": "staff_picks",
                    "version": "1",
                    "weight": None,
                    "score": 1.0,
                    "raw_score": 1.0,
                    "slot": 1,
                    "curated": True,
                },
            ],
        },
        {
            "item_id": "a01753",
            "result_id": RESULT_ID_2,
            "score": 0.8257920065039491,
            "pinned": False,
            "components": [
                {
                    "source": "popular",
                    "model": "popularity",
                    "version": "1",
                    "weight": 0.25,
                    "score": 0.7386363636363636,
                    "raw_score": 451,
                }
            ],
        },
    ],
    "model_versions": {"mf": "1", "popularity": "1", "staff_picks": "1"},
    "degraded": False,
}

# POST /v1/recommend/discover for a user in the interleaved arm (abridged).
RECOMMEND_DISCOVER: dict[str, Any] = {
    "request_id": "0c1d2e3f405162738495a6b7c8d9e0f1",
    "use_case": "discover",
    "items": [
        {
            "item_id": "a01665",
            "result_id": RESULT_ID_1,
            "score": 0.93,
            "pinned": False,
            "team": "taste",
            "components": [
                {
                    "source": "rerank",
                    "model": "click_model",
                    "version": "1",
                    "weight": None,
                    "score": 0.93,
                    "raw_score": 0.93,
                    "role": "rerank",
                }
            ],
        }
    ],
    "model_versions": {"mf": "1", "click_model": "1"},
    "variant": {"ab": "interleaved"},
    "degraded": True,
}

PREDICT_CLICK_MODEL: dict[str, Any] = {
    "model": "click_model",
    "version": "1",
    "predictions": [0.9808552861213684],
}

FEEDBACK_STORED: dict[str, Any] = {"accepted": 2, "duplicates": 0, "rejected": []}

# 422 of POST /v1/feedback: one entry refused, the other stored (ingress.feedback).
FEEDBACK_PARTLY_REFUSED: dict[str, Any] = {
    "error": {
        "code": "invalid_input",
        "message": "1 of 2 events refused; events.1.result_id: forged or mangled",
        "field": "events.1.result_id",
    },
    "accepted": 1,
    "duplicates": 0,
    "rejected": [{"index": 1, "field": "events.1.result_id", "message": "forged or mangled"}],
}

MODELS: dict[str, Any] = {
    "replica": "r1a2b3",
    "models": {
        "mf": {
            "name": "mf",
            "placement": "replica",
            "version": "1",
            "format": "torchscript",
            "status": "serving",
            "versions": [
                {
                    "version": "1",
                    "role": "live",
                    "status": "serving",
                    "traffic_percent": 80.0,
                    "loaded_at": "2026-11-28T23:00:00+00:00",
                    "load_ms": 41.2,
                },
                {
                    "version": "2",
                    "role": "canary",
                    "status": "rolled_back",
                    "traffic_percent": 0.0,
                    "loaded_at": "2026-11-28T23:09:00+00:00",
                    "load_ms": 39.0,
                    "reason": "error rate 100.0% > 5.0% (20 of 20 calls in 60 s)",
                    "window": {"calls": 20, "errors": 20},
                },
            ],
            "events": [{"at": "2026-11-28T23:10:04+00:00", "message": "canary 2 rolled back"}],
        },
        "broken": {"name": "broken", "placement": "replica", "error": "TimeoutError: status"},
    },
}

EXPERIMENTS: dict[str, Any] = {"experiments": ["discover.ab", "discover.head_to_head"]}


def _arm(weight: float, requests: int, impressions: int, clicks: int) -> dict[str, Any]:
    ctr = clicks / impressions
    return {
        "weight": weight,
        "requests": requests,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": ctr,
        "ctr_low": ctr * 0.8,
        "ctr_high": ctr * 1.2,
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "p_value": None,
        "prob_beat_control": None,
        "significant": False,
    }


EXPERIMENT_AB: dict[str, Any] = {
    "name": "discover.ab",
    "kind": "experiment",
    "control": "control",
    "arms": {
        "control": _arm(40, 1200, 4800, 150),
        "clicky": {
            **_arm(40, 1190, 4790, 298),
            "lift": 0.98,
            "lift_low": 0.6,
            "lift_high": 1.4,
            "p_value": 0.001,
            "prob_beat_control": 0.999,
            "significant": True,
        },
    },
    "srm": {"p_value": 0.9, "mismatch": False},
    "winner": "clicky",
    "verdict": "clicky beats control: CTR +98.0% (p = 0.001, 99.9% to beat control)",
}

INTERLEAVE: dict[str, Any] = {
    "name": "discover.head_to_head",
    "kind": "interleave",
    "teams": ["taste", "clicky"],
    "requests_with_clicks": 30,
    "wins": {"taste": 8, "clicky": 20},
    "ties": 2,
    "p_value": 0.036,
    "preferred": "clicky",
    "verdict": "clicky preferred over taste: won 20 of 28 decided requests (71%, p = 0.036)",
}

CATALOG_ITEM: dict[str, Any] = {
    "item_id": "a09999",
    "title": "Breaking: a new article",
    "category": "tech",
    "published_at": "2026-11-28T23:00:00Z",
    "available": True,
    "attributes": {"author": "desk"},
}

CATALOG_STATUS: dict[str, Any] = {
    "version": 2001,
    "items": 2000,
    "replica_version": 2001,
    "unknown_model_items": {"mf": {"count": 0, "examples": []}},
}

READY: dict[str, Any] = {"ready": True, "models": ["popularity", "staff_picks", "mf"]}
NOT_READY: dict[str, Any] = {
    "ready": False,
    "not_ready": {"model:mf": "ArtifactNotFoundError: mf/3: no such version"},
    "degraded_use_cases": {"home": ["mf"]},
}


def error(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The body of a /v1 error answer (deployments/http_errors.error_body)."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return {"error": {**detail, **extra}}


K_TOO_SMALL = error(
    "invalid_request",
    "k: Input should be greater than or equal to 1",
    "k",
    problems=[
        {
            "field": "k",
            "message": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ],
)
UNAUTHENTICATED = error("unauthenticated", "invalid API key")
FORBIDDEN = error("forbidden", "key 'storefront' lacks the 'admin' scope")
UNKNOWN_USE_CASE = error(
    "not_found", "unknown use case 'nope'; expected one of ['discover', 'home']", "use_case"
)
RATE_LIMITED = error("rate_limited", "key 'storefront' is over its rate limit")
BODY_TOO_LARGE = error("body_too_large", "the body is larger than 1048576 bytes", "body")
EVERY_SOURCE_FAILED = error(
    "unavailable", "every source failed", failed={"cf": "late", "popular": "error"}
)
OVERLOADED = error("overloaded", "model-mf is overloaded")
MODEL_TIMEOUT = error("model_timeout", "mf did not answer within 1.0 s")
