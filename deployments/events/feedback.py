"""What the event log stores, built from requests: feedback events checked one by one,
served lists with the user pseudonymised. Plain Python.

A feedback batch is validated per entry, so one stale or forged result id does not
cost the client the rest of its batch: good entries are stored, bad ones come back
in the answer with the field at fault (``events.3.result_id``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from blending.candidates import Candidate
from blending.dag import BlendOutcome
from blending.result_ids import ResultIdCodec
from deployments.events.records import FeedbackRecord, ServedList
from models.errors import InputError

__all__ = [
    "FEEDBACK_MAX_EVENTS",
    "FeedbackEvent",
    "Pseudonymizer",
    "Rejected",
    "feedback_entries",
    "feedback_records",
    "served_record",
]

FEEDBACK_MAX_EVENTS = 1000
"""Most events one feedback request may carry."""

_CLOCK_SKEW_S = 300
"""How far a client's ``ts`` may be ahead of the server's clock."""


class FeedbackEvent(BaseModel):
    """One thing a user did with a served item."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "result_id": "eyJpIjoiYTAxODA2In0.hGR379mwIxyE0WXX",
                    "event": "click",
                    "event_id": "b7c1-2",
                }
            ]
        },
    )

    result_id: str = Field(
        min_length=1, max_length=4096, description="The served item's `result_id`."
    )
    event: Literal["impression", "click", "add_to_cart", "conversion", "purchase", "dwell"] = Field(
        description="`impression`: the item was seen; the outcomes a use case's "
        "`objective` weighs: `click`, `add_to_cart`, `conversion` (a sign-up...), "
        "`purchase`, `dwell` (seconds spent on the item, in `value`)."
    )
    value: float | None = Field(
        None,
        ge=-1e12,
        le=1e12,
        allow_inf_nan=False,
        description="A purchase's amount; a dwell's seconds (required, 0 to 86,400).",
        validate_default=True,
    )
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="The client's id for this event: a resent event with the same id is "
        "stored once. Without one, every request is a new event.",
    )
    ts: datetime | None = Field(
        None, description="When it happened (ISO 8601 with offset); default: on arrival."
    )

    @field_validator("value")
    @classmethod
    def _dwell_has_seconds(cls, value: float | None, info: ValidationInfo) -> float | None:
        if info.data.get("event") == "dwell" and (value is None or not 0 <= value <= 86_400):
            raise ValueError("a dwell needs its seconds, from 0 to 86400")
        return value


class Rejected(BaseModel):
    """An entry of a feedback batch that was not stored, and why."""

    index: int = Field(description="Position in `events` (0 for a single event).")
    field: str = Field(description="The field at fault, e.g. `events.3.result_id`.")
    message: str


class Pseudonymizer:
    """Replaces user ids by a keyed hash before they reach the event log.

    HMAC-SHA256 with a secret salt: the same user keeps one pseudonym (sessions and
    experiments stay analysable) but nobody without the salt can link it back.
    """

    def __init__(self, salt: bytes) -> None:
        if len(salt) < 16:
            raise ValueError("a pseudonym salt needs at least 16 bytes")
        self._salt = salt

    def __call__(self, user_id: str) -> str:
        """The pseudonym of ``user_id`` (32 hex characters)."""
        return hmac.new(self._salt, user_id.encode(), hashlib.sha256).hexdigest()[:32]


def _first_error(exc: ValidationError, prefix: str) -> tuple[str, str]:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{prefix}.{location}" if location else prefix, error["msg"]


def feedback_records(
    entries: Sequence[Any], prefix: str, codec: ResultIdCodec, now: float | None = None
) -> tuple[list[FeedbackRecord], list[Rejected]]:
    """Check each entry; return the event log records of the good ones and the
    rejections of the others. ``prefix`` names where entries sit (``events``)."""
    now = time.time() if now is None else now
    records: list[FeedbackRecord] = []
    rejected: list[Rejected] = []
    for index, entry in enumerate(entries):
        where = f"{prefix}.{index}" if prefix else ""
        try:
            event = FeedbackEvent.model_validate(entry)
            ref = codec.decode(event.result_id, f"{where}.result_id".lstrip("."))
        except ValidationError as exc:
            field, message = _first_error(exc, where)
            rejected.append(Rejected(index=index, field=field.lstrip("."), message=message))
            continue
        except InputError as exc:
            rejected.append(Rejected(index=index, field=exc.field, message=exc.message))
            continue
        ts = event.ts.timestamp() if event.ts is not None else now
        if event.ts is not None and event.ts.tzinfo is None:
            rejected.append(
                Rejected(index=index, field=f"{where}.ts".lstrip("."), message="needs a UTC offset")
            )
            continue
        if not math.isfinite(ts) or ts > now + _CLOCK_SKEW_S or ts < ref.served_at - _CLOCK_SKEW_S:
            message = "must lie between the item being served and now"
            rejected.append(Rejected(index=index, field=f"{where}.ts".lstrip("."), message=message))
            continue
        records.append(
            FeedbackRecord(
                ts=ts,
                event_id=event.event_id or uuid.uuid4().hex,
                event=event.event,
                value=event.value,
                result_id=event.result_id,
                request_id=ref.request_id,
                item_id=ref.item_id,
                position=ref.position,
                served_at=ref.served_at,
                variant=dict(ref.variant),
                team=ref.team,
                model_versions=dict(ref.model_versions),
                use_case=ref.use_case,
                unit=ref.unit,
            )
        )
    return records, rejected


def served_record(
    request_id: str,
    use_case: str,
    user: str,
    outcome: BlendOutcome,
    items: Sequence[Candidate],
    latency_ms: float,
    plan_version: str = "",
    plan: str = "",
    inputs: str = "",
) -> ServedList:
    """The event log record of one served list (``user`` already pseudonymised), with
    what a replay needs (``events/replay_record.py``)."""
    return ServedList(
        ts=time.time(),
        request_id=request_id,
        user=user,
        variant=dict(outcome.variant),
        items=[c.item_id for c in items],
        teams=[c.team or "" for c in items],
        model_versions=dict(outcome.model_versions),
        latency_ms=latency_ms,
        degraded=outcome.degraded,
        use_case=use_case,
        plan_version=plan_version,
        plan=plan,
        inputs=inputs,
        propensities=list(outcome.propensities),
    )


def feedback_entries(body: object) -> tuple[list[object], str]:
    """The entries of a feedback body (one event, or ``{"events": [...]}``) and the
    prefix their fields are named with."""
    if isinstance(body, dict) and "events" in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise InputError(extra[0], "unexpected field beside `events`")
        entries = body["events"]
        if not isinstance(entries, list) or not entries:
            raise InputError("events", "expected a non-empty list of events")
        if len(entries) > FEEDBACK_MAX_EVENTS:
            raise InputError("events", f"at most {FEEDBACK_MAX_EVENTS} events per request")
        return entries, "events"
    if isinstance(body, dict):
        return [body], ""
    raise InputError("body", 'expected an event object or {"events": [...]}')
