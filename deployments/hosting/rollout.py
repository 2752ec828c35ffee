"""One model's live versions in one process: swap, canary, shadow and rollback.

Plain Python (no Ray), shared by the model replicas (``model_server.py``) and the
ingress's inline models (``gateway.py``). A :class:`ModelRollout` holds the adapter
serving live traffic, optionally a canary that serves a sticky share of users and a
shadow that sees mirrored calls, and :meth:`ModelRollout.apply` moves between
configs:

* every version the new config needs is loaded *beside* the ones serving (in a
  worker thread: the event loop keeps answering), then put through the smoke test;
* only then does one assignment swap the traffic table, so a call sees either the
  old table or the new one, never half of each;
* a version that fails to load or to answer never takes traffic: the old one keeps
  serving and the failure is recorded (``GET /v1/models``, the log, a metric).

A canary call that raises is answered again by the live version (the user never
sees the candidate's failure) and counts against the canary; when its error rate
or p99 latency over a sliding window breaks the config's thresholds, the canary is
rolled back: out of traffic, the reason recorded, until the config changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from deployments.config.rollout import RolloutConfig
from deployments.hosting.rollout_records import (
    CallWindow,
    Choice,
    NullObserver,
    RolloutObserver,
    Traffic,
    VersionState,
    now_iso,
    rollback_reason,
)
from deployments.hosting.shadow import ShadowMirror
from deployments.json_types import JsonObject, JsonValue
from models.base import ModelAdapter
from models.errors import ModelError, VersionNotLoadedError, describe_error
from models.registry import load_failure
from models.smoke import smoke_test

__all__ = ["ModelRollout"]

logger = logging.getLogger("ray.serve")

_T = TypeVar("_T")
Loader = Callable[[str], ModelAdapter]
"""Loads one version of the model (checksums verified), or raises."""

_EVENTS_KEPT = 20


class ModelRollout:
    """The versions of one model in this process and the traffic between them."""

    def __init__(
        self,
        name: str,
        loader: Loader,
        placement: str,
        observer: RolloutObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.placement = placement
        self._loader = loader
        self._observer: RolloutObserver = observer or NullObserver()
        self._clock = clock
        self._traffic = Traffic()
        self.config: RolloutConfig | None = None
        self.states: dict[str, VersionState] = {}
        """Every version this process knows about, by ``role:version``."""
        self.events: deque[JsonObject] = deque(maxlen=_EVENTS_KEPT)
        self._canary_window: CallWindow | None = None
        self._shadow = ShadowMirror(name, self._observer, clock)
        self._apply_lock = threading.Lock()
        self._last_judged = 0.0
        self._load_meta: dict[str, tuple[str | None, float | None]] = {}

    # -- what serves ---------------------------------------------------------

    @property
    def live(self) -> ModelAdapter:
        """The live version's adapter; ``ModelError`` with the reason when none loaded."""
        adapter = self._traffic.live
        if adapter is None:
            raise ModelError(f"model {self.name!r}: {self.load_error or 'no version loaded yet'}")
        return adapter

    @property
    def load_error(self) -> str | None:
        """Why no live version serves, when none does."""
        if self._traffic.live is not None:
            return None
        failed = [s.reason for s in self.states.values() if s.role == "live" and s.reason]
        return failed[-1] if failed else None

    def versions_loaded(self) -> dict[str, ModelAdapter]:
        """Every loaded version that takes traffic or mirrors it, by version."""
        traffic = self._traffic
        loaded = [traffic.live, traffic.canary, traffic.shadow]
        return {a.version: a for a in loaded if a is not None}

    def choose(self, user_id: str | None) -> Choice:
        """Live or canary for this call: sticky per user (a salted hash), at random for
        calls without a user."""
        return self._traffic.canary_choice(user_id) or Choice(self.live, canary=False)

    def version_adapter(self, version: str) -> ModelAdapter:
        """The loaded adapter of ``version`` (an explicit version asked for by a caller)."""
        adapter = self.versions_loaded().get(version)
        if adapter is None:
            served = ", ".join(sorted(self.versions_loaded())) or "none"
            raise VersionNotLoadedError(
                f"model {self.name!r} version {version!r} is not served (loaded: {served})"
            )
        return adapter

    # -- calls ---------------------------------------------------------------

    async def run(
        self,
        user_ids: Sequence[str | None],
        call: Callable[[ModelAdapter, list[int]], Awaitable[list[_T]]],
    ) -> list[tuple[_T, str]]:
        """Answer a batch: each call's result and the version that gave it.

        Calls are grouped by the version they go to; a canary group that raises is
        answered again by the live version and counts against the canary.
        """
        if self._traffic.canary is None:  # the common case: no candidate, no choice to make
            live = self.live
            return [(answer, live.version) for answer in await call(live, [*range(len(user_ids))])]
        groups: dict[bool, tuple[ModelAdapter, list[int]]] = {}
        for index, user_id in enumerate(user_ids):
            choice = self.choose(user_id)
            groups.setdefault(choice.canary, (choice.adapter, []))[1].append(index)
        results: list[tuple[_T, str] | None] = [None] * len(user_ids)
        for canary, (adapter, indices) in groups.items():
            started = time.perf_counter()
            role = "canary" if canary else "live"
            try:
                answers = await call(adapter, indices)
            except Exception as exc:
                self._record(adapter, role, started, error=True)
                if not canary:
                    raise
                logger.warning(
                    "model %s canary %s failed, answered by live %s: %s",
                    self.name,
                    adapter.version,
                    self.live.version,
                    describe_error(exc),
                )
                adapter = self.live
                answers = await call(adapter, indices)
            else:
                self._record(adapter, role, started, error=False)
            for index, answer in zip(indices, answers, strict=True):
                results[index] = (answer, adapter.version)
        return [r for r in results if r is not None]

    async def run_one(
        self, user_id: str | None, call: Callable[[ModelAdapter], Awaitable[_T]]
    ) -> tuple[_T, str]:
        """Answer one call (see :meth:`run`)."""

        async def single(adapter: ModelAdapter, _: list[int]) -> list[_T]:
            return [await call(adapter)]

        return (await self.run([user_id], single))[0]

    def _record(self, adapter: ModelAdapter, role: str, started: float, error: bool) -> None:
        window = self._canary_window
        if window is None:
            return  # no canary: live calls are measured per DAG node and route already
        ms = (time.perf_counter() - started) * 1000.0
        self._observer.on_call(self.name, adapter.version, role, ms, error)
        if role != "canary" or adapter is not self._traffic.canary:
            return
        now = self._clock()
        window.add(now, ms, error)
        # A p99 sorts the window: judge every call until the window first fills, then on
        # each error and at most every 0.2 s.
        config = self.config
        filling = config is not None and len(window.calls) <= config.rollback.min_calls
        if error or filling or now - self._last_judged >= 0.2:
            self._last_judged = now
            self._judge_canary(window)

    def _judge_canary(self, window: CallWindow) -> None:
        config = self.config
        if config is None or config.canary is None:
            return
        reason = rollback_reason(window.summary(), config.rollback)
        if reason is not None:
            self._roll_back(config.canary.version, reason)

    def _roll_back(self, version: str, reason: str) -> None:
        traffic = self._traffic
        if traffic.canary is None or traffic.canary.version != version:
            return
        self._traffic = Traffic(
            live=traffic.live,
            shadow=traffic.shadow,
            shadow_share=traffic.shadow_share,
            shadow_k=traffic.shadow_k,
        )
        state = self.states.get(f"canary:{version}")
        if state is not None:
            state.status, state.reason, state.adapter = "rolled_back", reason, None
        self._event(f"canary {version} rolled back: {reason}")
        logger.error("model %s: canary %s rolled back: %s", self.name, version, reason)
        self._observer.on_rollback(self.name, version)
        self._publish_states()

    # -- shadow --------------------------------------------------------------

    def mirror(
        self,
        work: Callable[[ModelAdapter], _T],
        compare: Callable[[_T, int], float | None] | None = None,
    ) -> None:
        """Run ``work`` on the shadow version, if any, after the live answer and off
        the request path (``ShadowMirror``); ``compare(shadow_answer, k)`` scores
        agreement."""
        traffic = self._traffic
        self._shadow.mirror(traffic.shadow, traffic.shadow_share, traffic.shadow_k, work, compare)

    # -- config changes ------------------------------------------------------

    def apply(self, config: RolloutConfig) -> list[str]:
        """Move to ``config``: load what it needs beside what serves, smoke-test it, then
        swap the traffic table in one assignment. Blocking: run it in a worker thread.

        Never raises for a version that fails: the failure is recorded and what served
        before keeps serving. Returns one line per change, for the log.
        """
        with self._apply_lock:
            if config == self.config and self._traffic.live is not None:
                return []
            previous = self.config
            loaded = self.versions_loaded()
            roles = [("live", config.version)]
            if config.canary is not None:
                roles.append(("canary", config.canary.version))
            if config.shadow is not None:
                roles.append(("shadow", config.shadow.version))
            ready: dict[str, ModelAdapter] = {}
            states: dict[str, VersionState] = {}
            for role, version in roles:
                state = VersionState(version, role)
                states[f"{role}:{version}"] = state
                # Shown as `loading` beside what serves while it loads.
                self.states = {**self.states, f"{role}:{version}": state}
                adapter: ModelAdapter | None = ready.get(version) or loaded.get(version)
                if adapter is None:
                    self._publish_states()
                    adapter = self._load(state)
                if adapter is None:
                    continue
                ready[version] = adapter
                state.adapter, state.status = adapter, "serving"
                state.loaded_at, state.load_ms = self._load_meta.get(version, (None, None))
            return self._swap(config, previous, states, ready)

    def _load(self, state: VersionState) -> ModelAdapter | None:
        started = time.perf_counter()
        try:
            adapter = self._loader(state.version)
        except Exception as exc:  # noqa: BLE001 - recorded; what served keeps serving
            self._failed(state, load_failure(state.version, exc))
            return None
        try:
            tried = smoke_test(adapter)
        except ModelError as exc:
            self._failed(state, str(exc))
            return None
        load_ms = (time.perf_counter() - started) * 1000.0
        self._load_meta[state.version] = (now_iso(), load_ms)
        logger.info(
            "model %s version %s loaded in %.0f ms; smoke test: %s",
            self.name,
            state.version,
            load_ms,
            ", ".join(tried) or "nothing to try",
        )
        return adapter

    def _failed(self, state: VersionState, reason: str) -> None:
        state.status, state.reason = "failed", reason
        logger.error("model %s: %s %s", self.name, state.role, reason)

    def _swap(
        self,
        config: RolloutConfig,
        previous: RolloutConfig | None,
        states: dict[str, VersionState],
        ready: dict[str, ModelAdapter],
    ) -> list[str]:
        old = self._traffic
        changes: list[str] = []
        live = ready.get(config.version)
        kept: dict[str, VersionState] = {}
        if live is None and old.live is not None:
            reason = states[f"live:{config.version}"].reason
            changes.append(
                f"version {config.version} was not swapped in ({reason}); "
                f"version {old.live.version} keeps serving"
            )
            live = old.live
            keep = VersionState(live.version, "live", "serving", adapter=live)
            keep.reason = f"kept: version {config.version} failed"
            keep.loaded_at, keep.load_ms = self._load_meta.get(live.version, (None, None))
            kept[f"live:{live.version}"] = keep
        elif live is not None and (old.live is None or old.live.version != live.version):
            was = f" (was {old.live.version})" if old.live is not None else ""
            changes.append(f"version {live.version} serves live traffic{was}")
        canary = ready.get(config.canary.version) if config.canary else None
        shadow = ready.get(config.shadow.version) if config.shadow else None
        if live is None:
            canary = shadow = None  # nothing to fall back to or compare with
        self._traffic = Traffic(
            live=live,
            canary=canary,
            canary_share=(config.canary.percent / 100.0) if canary and config.canary else 0.0,
            canary_salt=(config.canary.salt or f"{self.name}-canary") if config.canary else "",
            shadow=shadow,
            shadow_share=config.shadow.percent if shadow and config.shadow else 0.0,
            shadow_k=config.shadow.k if config.shadow else 10,
        )
        if canary is not None and config.canary is not None:
            if previous is None or previous.canary != config.canary:
                self._canary_window = CallWindow(config.rollback.window_s)
                changes.append(
                    f"canary {canary.version} serves {config.canary.percent:g}% of users"
                )
        else:
            self._canary_window = None
        if shadow is not None and (previous is None or previous.shadow != config.shadow):
            self._shadow.reset(config.rollback.window_s)
            changes.append(f"shadow {shadow.version} mirrors live calls")
        elif shadow is None:
            self._shadow.reset(None)
        self.config = config
        self.states = {**states, **kept}
        in_use = {a.version for a in (live, canary, shadow) if a is not None}
        self._load_meta = {v: m for v, m in self._load_meta.items() if v in in_use}
        self._publish_states()
        for line in changes:
            self._event(line)
            logger.info("model %s: %s", self.name, line)
        return changes

    def _publish_states(self) -> None:
        self._observer.on_states(
            self.name, [(s.version, s.role, s.status) for s in self.states.values()]
        )

    def _event(self, message: str) -> None:
        self.events.append({"at": now_iso(), "message": message})

    # -- status --------------------------------------------------------------

    def describe(self) -> JsonObject:
        """Every version here: role, status (with why), traffic share, load time; the
        canary's and shadow's windows; the last events."""
        traffic = self._traffic
        versions: list[JsonValue] = []
        for state in self.states.values():
            serving = state.status == "serving"
            entry = state.to_json(traffic.percent_of(state))
            if state.role == "canary" and self._canary_window is not None and serving:
                self._canary_window.prune(self._clock())
                entry["window"] = self._canary_window.summary().to_json()
            shadow_record = self._shadow.summary()
            if state.role == "shadow" and shadow_record is not None and serving:
                entry["window"] = shadow_record[0].to_json()
                entry["overlap_at_k"], entry["k"] = shadow_record[1], traffic.shadow_k
            versions.append(entry)
        info: JsonObject = {"name": self.name, "placement": self.placement}
        if traffic.live is not None:
            info.update(traffic.live.describe())
        else:
            info["error"] = self.load_error or "no version loaded yet"
        events: list[JsonValue] = list(self.events)
        info.update(
            status="serving" if traffic.live is not None else "failed",
            versions=versions,
            events=events,
        )
        return info
