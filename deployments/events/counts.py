"""Online totals over the event log: per experiment arm and interleaving team, and the
recent traffic the dashboard shows. Plain Python.

Built once from the Parquet dataset when the event log starts, then updated with
every event as it is appended, so ``GET /v1/experiments/{name}`` never scans files.
An impression or a click counts once per served item (per result id), so a client
that sends the same event twice, with or without an ``event_id``, cannot inflate a
CTR.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from blending.evaluation.credit import CreditTotals
from blending.evaluation.stages import PruneState, prune_decision
from blending.evaluation.stats import ArmTotals
from blending.experiment_specs import PruneStageSpec
from deployments.events.recent_ids import RecentIds
from deployments.events.records import InterleavingWins
from deployments.json_types import JsonObject

__all__ = ["TRAFFIC_WINDOW_S", "EventCounts"]

TRAFFIC_WINDOW_S = 60.0
"""The dashboard's traffic numbers cover this many seconds."""

_SEEN_KEPT = 2_000_000
"""Result id and event pairs remembered for counting each item once (about 30 MB,
allocated when the counts are made)."""
OPEN_FOR_S = 2 * 86_400.0
"""How long after it was served a list's own counts are kept: its later feedback
updates its unit's sums. After that its share of the sums stays and its entry goes
(an event even later counts as a unit of its own), so memory is bounded by the lists
of the last two days, not of all time."""


@dataclass
class _Arm:
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    outcomes: dict[str, float] = field(default_factory=dict)
    """Every outcome (``blending/evaluation/objective.py``): counts, dwell seconds."""
    units: int = 0
    """Units with feedback (a user's unit in an experiment, else a served list), and
    over them the sums of clicks squared, impressions squared and clicks *
    impressions (the CTR variance's inputs), kept up to date as each unit's counts
    change, so a report never scans them."""
    clicks_sq: int = 0
    impressions_sq: int = 0
    cross: int = 0


@dataclass
class _List:
    variant: dict[str, str]
    impressions: int = 0
    clicks: int = 0


@dataclass
class EventCounts:
    """Totals per (use case, experiment node, arm), clicks per team per request, and
    the last minute of served lists."""

    arms: dict[tuple[str, str, str], _Arm] = field(default_factory=dict)
    lists: dict[tuple[str, str], _List] = field(default_factory=dict)
    """(use case, unit) -> the arms and the impressions and clicks of one unit that got
    feedback: CTR's variance is computed over these. A unit is the user's bucket
    (``blending/result_ids.py``) within one set of arms: arms are assigned by user, so
    one user's lists are correlated and must fall in one unit, or the intervals come
    out too narrow once users return (Deng, Knoblich & Lu 2018: the randomisation
    unit). Feedback without one (older result ids) counts per served list."""
    team_clicks: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    """(use case, request id) -> interleaving team -> clicked items."""
    team_patterns: dict[str, Counter[tuple[tuple[str, int], ...]]] = field(default_factory=dict)
    """Use case -> how many closed lists had each pattern of clicks per team (lists
    leave ``team_clicks`` for here ``OPEN_FOR_S`` after they were served)."""
    _opened: deque[tuple[float, str, str]] = field(default_factory=deque)
    """(served at, use case, request id) of each list in ``lists`` or ``team_clicks``,
    in the order they first had feedback."""
    _clock: float = 0.0
    """The latest feedback time counted (Unix seconds)."""
    use_cases: dict[str, list[int]] = field(default_factory=dict)
    """Use case -> [impressions, clicks], every item counted once."""
    recent: deque[tuple[float, str, float, bool]] = field(default_factory=deque)
    """(monotonic time, use case, latency ms, degraded) of recently served lists."""
    _seen: RecentIds = field(default_factory=lambda: RecentIds(_SEEN_KEPT))

    def _arm(self, use_case: str, node: str, arm: str) -> _Arm:
        key = (use_case, node, arm)
        found = self.arms.get(key)
        if found is None:
            found = self.arms[key] = _Arm()
        return found

    def add_served(self, record: Mapping[str, Any], live: bool = True) -> None:
        """Count a served list for its arms (and, ``live``, for recent traffic)."""
        use_case = str(record["use_case"])
        for node, arm in dict(record.get("variant") or {}).items():
            self._arm(use_case, node, arm).requests += 1
        if live:
            now = time.monotonic()
            self.recent.append(
                (now, use_case, float(record["latency_ms"]), bool(record["degraded"]))
            )
            # Trimmed here too, not only when the dashboard reads it: with no reader it
            # grew by every served list (about 110 MiB in a 30-minute soak).
            cutoff = now - TRAFFIC_WINDOW_S
            while self.recent[0][0] < cutoff:
                self.recent.popleft()

    def add_feedback(self, record: Mapping[str, Any]) -> bool:
        """Count one feedback event; False when its item already had such an event."""
        event = str(record["event"])
        key = (str(record["result_id"]), event)
        if not self._seen.reserve([key])[0]:
            return False
        use_case = str(record["use_case"])
        if event in ("impression", "click"):
            overall = self.use_cases.setdefault(use_case, [0, 0])
            overall[0 if event == "impression" else 1] += 1
        variant = dict(record.get("variant") or {})
        for node, arm in variant.items():
            totals = self._arm(use_case, node, arm)
            if event == "impression":
                totals.impressions += 1
                continue
            if event == "click":
                totals.clicks += 1
            amount = float(record.get("value") or 0.0) if event == "dwell" else 1.0
            totals.outcomes[event] = totals.outcomes.get(event, 0.0) + amount
        request = (use_case, str(record["request_id"]))
        opened: list[tuple[str, str]] = []
        if variant and event in ("impression", "click"):
            unit = (use_case, _unit_key(record, variant))
            if self._count_in_unit(unit, variant, event):
                opened.append(unit)
        team = record.get("team")
        if event == "click" and team:
            if request not in self.team_clicks and request not in opened:
                opened.append(request)
            clicks = self.team_clicks.setdefault(request, {})
            clicks[str(team)] = clicks.get(str(team), 0) + 1
        if opened:
            served_at = _seconds(record.get("served_at"))
            self._opened.extend((served_at, *key) for key in opened)
            # The events' own clock, not the wall's: a rebuild from the dataset closes
            # lists as the live counts did when those events came.
            self._clock = max(self._clock, _seconds(record.get("ts")))
            self._close(self._clock - OPEN_FOR_S)
        return True

    def _close(self, before: float) -> None:
        """Forget the own counts of units first counted for lists served before
        ``before`` (their share of the arms' sums stays; a later event of theirs starts
        a unit of its own), and move those lists' team clicks to the use case's
        patterns."""
        while self._opened and self._opened[0][0] < before:
            _, use_case, key = self._opened.popleft()
            self.lists.pop((use_case, key), None)
            clicks = self.team_clicks.pop((use_case, key), None)
            if clicks:
                pattern = tuple(sorted(clicks.items()))
                self.team_patterns.setdefault(use_case, Counter())[pattern] += 1

    def _count_in_unit(self, key: tuple[str, str], variant: dict[str, str], event: str) -> bool:
        """Add an impression or click to its unit, and move that unit's share of each
        arm's sums from its old counts to its new ones; True if the unit is new."""
        use_case = key[0]
        served = self.lists.get(key)
        new = served is None
        if served is None:
            served = self.lists[key] = _List(variant)
            for node, arm in variant.items():
                self._arm(use_case, node, arm).units += 1
        c, n = served.clicks, served.impressions
        if event == "impression":
            served.impressions += 1
        else:
            served.clicks += 1
        c2, n2 = served.clicks, served.impressions
        for node, arm in served.variant.items():
            totals = self._arm(use_case, node, arm)
            totals.clicks_sq += c2 * c2 - c * c
            totals.impressions_sq += n2 * n2 - n * n
            totals.cross += c2 * n2 - c * n
        return new

    def arm_totals(self, use_case: str, node: str) -> dict[str, ArmTotals]:
        """Requests, impressions and clicks of each arm of ``use_case``'s ``node``, with
        the per-list sums the CTR variance needs."""
        return {
            arm: ArmTotals(
                t.requests,
                t.impressions,
                t.clicks,
                t.units,
                float(t.clicks_sq),
                float(t.impressions_sq),
                float(t.cross),
                dict(t.outcomes),
            )
            for (case, name, arm), t in self.arms.items()
            if case == use_case and name == node
        }

    def interleaving(self, use_case: str, teams: Sequence[str]) -> InterleavingWins:
        """Per team, the clicked lists where its items got the most clicks alone; the
        ties; per pair of teams, the lists one beat the other in (multileaving); the
        clicked lists in all; and, for two teams, their credited clicks per list."""
        wins = dict.fromkeys(teams, 0)
        pairs = {a: {b: 0 for b in teams if b != a} for a in teams}
        ties = clicked = 0
        credit = CreditTotals() if len(teams) == 2 else None
        live = ((clicks, 1) for (case, _), clicks in self.team_clicks.items() if case == use_case)
        closed = ((dict(p), n) for p, n in self.team_patterns.get(use_case, Counter()).items())
        for clicks, lists in (*live, *closed):
            counts = [clicks.get(team, 0) for team in teams]
            if not any(counts):
                continue
            clicked += lists
            if credit is not None:
                credit = credit.add(counts[0], counts[1], lists)
            best = max(counts)
            leaders = [team for team, n in zip(teams, counts, strict=True) if n == best]
            if len(leaders) == 1:
                wins[leaders[0]] += lists
            else:
                ties += lists
            for a, mine in zip(teams, counts, strict=True):
                for b, theirs in zip(teams, counts, strict=True):
                    if mine > theirs:
                        pairs[a][b] += lists
        return InterleavingWins(wins, ties, pairs, clicked, credit)

    def first_stage(self, use_case: str, candidates: list[str], spec: PruneStageSpec) -> PruneState:
        """Where a staged experiment's first stage stands by these counts."""
        found = self.interleaving(use_case, candidates)
        return prune_decision(candidates, found.pairs, found.clicked, spec)

    def traffic(self, window_s: float = TRAFFIC_WINDOW_S) -> JsonObject:
        """Served lists per second, latency percentiles and degraded share over the last
        ``window_s`` seconds, overall and per use case."""
        cutoff = time.monotonic() - window_s
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.popleft()
        rows = list(self.recent)
        use_cases = sorted({use_case for _, use_case, _, _ in rows} | set(self.use_cases))
        by_use_case: JsonObject = {
            use_case: {
                **_summary([r for r in rows if r[1] == use_case], window_s),
                "ctr": self._ctr(use_case),
            }
            for use_case in use_cases
        }
        return {**_summary(rows, window_s), "by_use_case": by_use_case}

    def _ctr(self, use_case: str) -> float | None:
        """Clicks per impression of ``use_case`` since the log began; None without any."""
        impressions, clicks = self.use_cases.get(use_case, (0, 0))
        return round(clicks / impressions, 5) if impressions else None

    @classmethod
    def rebuild(cls, served: pa.Table, feedback: pa.Table) -> EventCounts:
        """The totals of everything already in the dataset (recent traffic stays empty:
        it describes this process's last minute)."""
        counts = cls()
        for record in _records(served, ("use_case", "variant")):
            counts.add_served(record, live=False)
        columns = (
            "use_case",
            "variant",
            "event",
            "value",
            "result_id",
            "team",
            "request_id",
            "served_at",
            "ts",
            "unit",
        )
        for record in _records(feedback, columns):
            counts.add_feedback(record)
        return counts


def _unit_key(record: Mapping[str, Any], variant: Mapping[str, str]) -> str:
    """The unit an event counts in: its user's unit within its arms (``~`` cannot
    start a request id), else its own served list."""
    unit = record.get("unit")
    if unit is None:
        return str(record["request_id"])
    return f"~{unit}:" + ",".join(f"{node}={arm}" for node, arm in sorted(variant.items()))


def _seconds(moment: Any) -> float:
    """A record's ``served_at`` or ``ts`` (numbers live, datetimes from Parquet) as
    Unix seconds; now when it has none."""
    if moment is None:
        return time.time()
    if isinstance(moment, datetime):
        return moment.timestamp()
    return float(moment)


def _records(table: pa.Table, columns: Sequence[str]) -> Iterable[Mapping[str, Any]]:
    data = table.select(list(columns)).to_pylist()
    for row in data:
        if "variant" in row:
            row["variant"] = dict(row["variant"] or [])
        yield row


def _summary(rows: Sequence[tuple[float, str, float, bool]], window_s: float) -> JsonObject:
    latencies = [latency for _, _, latency, _ in rows]
    return {
        "requests": len(rows),
        "requests_per_s": round(len(rows) / window_s, 3),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if rows else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if rows else None,
        "degraded_share": (
            round(sum(1 for *_, degraded in rows if degraded) / len(rows), 4) if rows else None
        ),
    }
