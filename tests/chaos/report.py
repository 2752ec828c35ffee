"""What the chaos suite measured, per fault, and the docs/RELIABILITY.md table of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from traffic import Sample

DELETE_GRACE_S = 1.0
"""The catalogue's promise: no answer contains an item a second after its delete returned."""


@dataclass
class FaultWindow:
    """One fault: what was killed, when, and when Ray had replaced it."""

    name: str
    started: float
    restored_after_s: float = 0.0
    ended: float = 0.0
    note: str = ""


@dataclass
class FaultRow:
    """The row of one fault in docs/RELIABILITY.md."""

    name: str
    requests: int
    failed: int
    degraded: int
    recovery_s: float
    restored_after_s: float
    feedback_lost: int = 0
    writes_lost: int = 0
    deleted_served: int = 0
    note: str = ""
    failures: dict[str, int] = field(default_factory=dict)
    attempts_failed: int = 0
    """Attempts on the wire (retries included) without a 2xx answer."""
    failing_s: float = 0.0
    """From the first to the last attempt on the wire that failed."""

    @property
    def failed_pct(self) -> float:
        """Failed requests, in percent of the requests sent in the window."""
        return 100.0 * self.failed / self.requests if self.requests else 0.0


def row(
    window: FaultWindow, samples: Iterable[Sample], attempts: Iterable[tuple[float, str, int]]
) -> FaultRow:
    """The fault's numbers from the requests sent between its kill and its end."""
    wire = [
        at
        for at, kind, status in attempts
        if window.started <= at < window.ended
        and not 200 <= status < 300
        and not (kind == "delete" and status == 404)
    ]
    sent = [s for s in samples if window.started <= s.sent < window.ended]
    failed = [s for s in sent if not s.ok]
    degraded = [s for s in sent if s.ok and s.degraded]
    bad = failed + degraded
    last_bad = max((s.done for s in bad), default=window.started)
    kinds: dict[str, int] = {}
    for s in failed:
        reason = f"{s.kind} {s.status or 'no answer'}"
        kinds[reason] = kinds.get(reason, 0) + 1
    return FaultRow(
        name=window.name,
        requests=len(sent),
        failed=len(failed),
        degraded=len(degraded),
        recovery_s=last_bad - window.started,
        restored_after_s=window.restored_after_s,
        note=window.note,
        failures=kinds,
        attempts_failed=len(wire),
        failing_s=max(wire) - min(wire) if wire else 0.0,
    )


def deleted_items_served(samples: list[Sample]) -> list[tuple[str, Sample]]:
    """Answers that contained an item while it had to be absent: sent at least a second
    after its delete was acknowledged, answered before its restore was sent."""
    absent: dict[str, list[tuple[float, float]]] = {}
    deleted_at: dict[str, float] = {}
    for s in sorted((s for s in samples if s.kind in ("delete", "restore")), key=_sent):
        (item_id,) = s.item_ids
        if s.kind == "delete" and s.ok:
            deleted_at.setdefault(item_id, s.done)
        elif s.kind == "restore" and item_id in deleted_at:
            absent.setdefault(item_id, []).append((deleted_at.pop(item_id), s.sent))
    for item_id, since in deleted_at.items():
        absent.setdefault(item_id, []).append((since, float("inf")))
    served = []
    for s in samples:
        if s.kind != "recommend" or not s.ok:
            continue
        for item_id in set(s.item_ids) & absent.keys():
            if any(a + DELETE_GRACE_S <= s.sent and s.done < b for a, b in absent[item_id]):
                served.append((item_id, s))
    return served


def expected_catalogue(samples: list[Sample]) -> dict[str, str | None]:
    """Each written item's state as its last acknowledged write left it (a title, or
    ``None``: deleted). An item is left out when that cannot be known: a write sent
    after it got no answer (it may or may not have happened), or another write was
    still in flight when it was sent (retries can land in either order)."""
    writes: dict[str, list[Sample]] = {}
    for s in sorted((s for s in samples if s.kind in ("delete", "restore")), key=_sent):
        writes.setdefault(s.item_ids[0], []).append(s)
    expected: dict[str, str | None] = {}
    for item_id, history in writes.items():
        acked = [s for s in history if s.ok]
        if not acked or not history[-1].ok:
            continue
        last = acked[-1]
        if any(s is not last and s.done > last.sent for s in history):
            continue
        expected[item_id] = last.title if last.kind == "restore" else None
    return expected


def _sent(sample: Sample) -> float:
    return sample.sent


def markdown(rows: list[FaultRow], setup: str) -> str:
    """The faults table of docs/RELIABILITY.md, after its setup."""
    lines = [
        setup,
        "",
        "| fault | requests | failed | degraded | recovery | replaced after "
        "| attempts failed (span) | feedback lost | writes lost | deleted served | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(r.failures.items())) or "-"
        lines.append(
            f"| {r.name} | {r.requests} | {r.failed} ({r.failed_pct:.2f}%) | {r.degraded} "
            f"| {r.recovery_s:.1f} s | {r.restored_after_s:.1f} s "
            f"| {r.attempts_failed} ({r.failing_s:.1f} s) | {r.feedback_lost} "
            f"| {r.writes_lost} | {r.deleted_served} | {failures} |"
        )
    notes = [f"- **{r.name}**: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"
