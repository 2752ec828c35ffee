"""What a rollout records and reports: each version's state, sliding windows of its
calls, and the observer that turns them into metrics. Plain Python."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from blending.assign import bucket
from deployments.config.rollout import RollbackConfig
from deployments.json_types import JsonObject
from models.base import ModelAdapter

__all__ = [
    "CallWindow",
    "Choice",
    "NullObserver",
    "RolloutObserver",
    "Traffic",
    "VersionState",
    "WindowStats",
    "now_iso",
    "overlap_at_k",
    "rollback_reason",
]


class RolloutObserver(Protocol):
    """Where a rollout reports what happens (Prometheus metrics in a replica)."""

    def on_states(self, model: str, states: Sequence[tuple[str, str, str]]) -> None:
        """The model's versions now, as (version, role, status); any other is gone."""

    def on_call(self, model: str, version: str, role: str, ms: float, error: bool) -> None:
        """A live or canary call finished."""

    def on_shadow(
        self, model: str, version: str, ms: float, error: bool, overlap: float | None
    ) -> None:
        """A mirrored call to the shadow version finished."""

    def on_rollback(self, model: str, version: str) -> None:
        """A canary was taken out of traffic."""


class NullObserver:
    """Reports nowhere (unit tests, offline use)."""

    def on_states(self, model: str, states: Sequence[tuple[str, str, str]]) -> None:
        """Ignore."""

    def on_call(self, model: str, version: str, role: str, ms: float, error: bool) -> None:
        """Ignore."""

    def on_shadow(
        self, model: str, version: str, ms: float, error: bool, overlap: float | None
    ) -> None:
        """Ignore."""

    def on_rollback(self, model: str, version: str) -> None:
        """Ignore."""


def now_iso() -> str:
    """The time now, for people: ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def overlap_at_k(live: Sequence[Sequence[str]], other: Sequence[Sequence[str]], k: int) -> float:
    """Mean share of each live top-``k`` that ``other``'s top-``k`` also has (1 = same sets)."""
    shares = []
    for a, b in zip(live, other, strict=True):
        top = set(a[:k])
        if top:
            shares.append(len(top & set(b[:k])) / len(top))
    return float(np.mean(shares)) if shares else 1.0


@dataclass
class VersionState:
    """One version of the model in this process, as ``GET /v1/models`` shows it."""

    version: str
    role: str
    """``live``, ``canary`` or ``shadow``: what the config asked of it."""
    status: str = "loading"
    """``loading``, ``serving``, ``failed`` or ``rolled_back``."""
    reason: str | None = None
    adapter: ModelAdapter | None = None
    loaded_at: str | None = None
    load_ms: float | None = None

    def to_json(self, traffic_percent: float) -> JsonObject:
        """The version's public state."""
        data: JsonObject = {
            "version": self.version,
            "role": self.role,
            "status": self.status,
            "traffic_percent": round(traffic_percent, 3),
            "loaded_at": self.loaded_at,
            "load_ms": None if self.load_ms is None else round(self.load_ms, 1),
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class WindowStats:
    """Calls of one version over its window: counts, error rate, latency percentiles."""

    window_s: float
    calls: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None

    def to_json(self) -> JsonObject:
        """As ``GET /v1/models`` shows it."""
        return {
            "window_s": self.window_s,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


@dataclass
class CallWindow:
    """Calls of one version over the last ``window_s`` seconds: time, latency, failed."""

    window_s: float
    calls: deque[tuple[float, float, bool]] = field(default_factory=deque)

    def add(self, at: float, ms: float, error: bool) -> None:
        self.calls.append((at, ms, error))
        self.prune(at)

    def prune(self, now: float) -> None:
        while self.calls and self.calls[0][0] < now - self.window_s:
            self.calls.popleft()

    def summary(self) -> WindowStats:
        """Counts, error rate and latency percentiles of the calls in the window."""
        count = len(self.calls)
        errors = sum(1 for _, _, failed in self.calls if failed)
        latencies = [ms for _, ms, _ in self.calls]
        return WindowStats(
            window_s=self.window_s,
            calls=count,
            errors=errors,
            error_rate=round(errors / count, 4) if count else 0.0,
            p50_ms=round(float(np.percentile(latencies, 50)), 2) if count else None,
            p99_ms=round(float(np.percentile(latencies, 99)), 2) if count else None,
        )


@dataclass(frozen=True)
class Traffic:
    """Who answers calls now; replaced whole, never edited, so reads need no lock."""

    live: ModelAdapter | None = None
    canary: ModelAdapter | None = None
    canary_share: float = 0.0
    canary_salt: str = ""
    shadow: ModelAdapter | None = None
    shadow_share: float = 0.0
    shadow_k: int = 10

    def canary_choice(self, user_id: str | None) -> Choice | None:
        """The canary, for a user in its share (a salted hash: sticky per user; at
        random for calls without one); None otherwise."""
        if self.canary is None:
            return None
        point = random.random() if user_id is None else bucket(self.canary_salt, user_id)
        return Choice(self.canary, canary=True) if point < self.canary_share else None

    def percent_of(self, state: VersionState) -> float:
        """The share of calls (percent) the version of ``state`` answers now."""
        if state.status != "serving":
            return 0.0
        if state.role == "live" and state.adapter is self.live:
            return 100.0 - self.canary_share * 100.0
        return self.canary_share * 100.0 if state.role == "canary" else 0.0


@dataclass(frozen=True)
class Choice:
    """The version a call goes to, and whether it is the canary."""

    adapter: ModelAdapter
    canary: bool


def rollback_reason(stats: WindowStats, rules: RollbackConfig) -> str | None:
    """Why a canary with these recent calls must be rolled back; None while it may stay."""
    if stats.calls < rules.min_calls:
        return None
    if stats.error_rate > rules.max_error_rate:
        return (
            f"error rate {stats.error_rate:.1%} > {rules.max_error_rate:.1%} "
            f"({stats.errors} of {stats.calls} calls in {rules.window_s:g} s)"
        )
    p99 = stats.p99_ms
    if rules.max_p99_ms is not None and p99 is not None and p99 > rules.max_p99_ms:
        return (
            f"p99 latency {p99:.1f} ms > {rules.max_p99_ms:g} ms "
            f"({stats.calls} calls in {rules.window_s:g} s)"
        )
    return None
