"""What a served list's record keeps so the request can be explained and replayed.

Beside the served items, the record holds the request as the blend saw it (k,
context, exclusions, rules, its time), the plan (its version and spec), the
catalogue version, what the user's seen history hid and demoted, what each ``fresh``
and ``bandit`` node answered (they depend on the catalogue and online state of that
moment; every other random draw is seeded by the request id), and what the blend
measured: scores, per-node timings and sizes, failures. One JSON text per record,
written by the ingress (``deployments/serve/ingress.py``), read by ``blendserve
explain`` and ``blendserve replay`` (``deployments/offline/replay.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ReplayInputs", "decode_inputs", "encode_inputs"]


class ReplayInputs(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request's inputs and measurements, as the event log keeps them."""

    k: int
    now: float
    """The request's wall-clock time (rules' ``max_age_s``, fresh ages)."""
    context: dict[str, Any] = {}
    exclude: list[str] = []
    filters: list[dict[str, Any]] = []
    boosts: list[dict[str, Any]] = []
    catalog_version: int | None = None
    hidden: list[str] = []
    """Items the user's seen history hid."""
    demoted: list[str] = []
    demote_factor: float = 1.0
    live: dict[str, tuple[list[str], list[float]]] = {}
    """``fresh`` and ``bandit`` nodes' lists (ids, scores) as they answered."""
    scores: list[float] = []
    """The served items' scores, in order."""
    node_ms: dict[str, float] = {}
    sizes: dict[str, int] = {}
    """How many items each node produced."""
    failures: dict[str, str] = {}
    late: list[str] = []
    fallbacks: list[str] = []
    explored: list[int] = []
    """Positions (from 1) that showed an exploration item (``blending/exploration.py``)."""
    trace_id: str | None = None
    """The request's OpenTelemetry trace, when it was traced (``args.tracing``)."""


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ReplayInputs)


def encode_inputs(inputs: ReplayInputs) -> str:
    """The record's JSON text."""
    return _ENCODER.encode(inputs).decode()


def decode_inputs(text: str) -> ReplayInputs:
    """A record's inputs back (``msgspec.ValidationError`` if it is not one)."""
    return _DECODER.decode(text)
