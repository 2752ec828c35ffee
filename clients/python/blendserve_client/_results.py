"""The serving API's answers (recommend, predict, feedback) and feedback events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from blendserve_client._errors import RejectedEvent
from blendserve_client._json import Reader

__all__ = [
    "Component",
    "EventKind",
    "FeedbackEvent",
    "FeedbackResult",
    "Prediction",
    "Recommendation",
    "RecommendedItem",
    "add_to_cart",
    "click",
    "conversion",
    "dwell",
    "impression",
    "purchase",
]

EventKind: TypeAlias = Literal[
    "impression", "click", "add_to_cart", "conversion", "purchase", "dwell"
]
"""What a user did with a served item."""


@dataclass(frozen=True)
class Component:
    """One source's part in an item's score: which model and version, with what weight.

    >>> rec.items[0].components[0].model  # doctest: +SKIP
    'mf'
    """

    source: str
    """The DAG node that produced it (``cf``, ``picks``...)."""
    model: str
    """The model behind the node."""
    version: str
    """The model version that answered."""
    weight: float | None
    """Its weight in the blend; None for a pinned slot."""
    score: float
    """The normalised score."""
    raw_score: float
    """The score the model gave."""
    slot: int | None = None
    """1-based position when a curated slot pinned the item."""
    curated: bool = False
    """Whether it came from a human-curated list."""
    role: str | None = None
    """``rerank`` or ``stack`` when a model re-scored the item; None for sources."""

    @classmethod
    def _from_json(cls, data: Reader) -> Component:
        return cls(
            source=data.text("source"),
            model=data.text("model"),
            version=data.text("version"),
            weight=data.opt_number("weight"),
            score=data.number("score"),
            raw_score=data.number("raw_score"),
            slot=data.opt_integer("slot"),
            curated=data.flag("curated", False),
            role=data.opt_text("role"),
        )


@dataclass(frozen=True)
class RecommendedItem:
    """A recommended item with its provenance; send ``result_id`` back with feedback.

    >>> item = rec.items[0]  # doctest: +SKIP
    >>> client.feedback([impression(item.result_id)])  # doctest: +SKIP
    """

    item_id: str
    """The catalogue's id of the item."""
    result_id: str
    """Signed id of this item in this answer (request, position, arm, team, versions)."""
    score: float
    """Blended score; the list order is authoritative."""
    pinned: bool
    """Whether a curated slot placed it."""
    team: str | None
    """The interleaving team that drafted it; None outside interleaving."""
    components: list[Component]
    """Every source's part in the score."""

    @classmethod
    def _from_json(cls, data: Reader) -> RecommendedItem:
        return cls(
            item_id=data.text("item_id"),
            result_id=data.text("result_id"),
            score=data.number("score"),
            pinned=data.flag("pinned", False),
            team=data.opt_text("team"),
            components=[Component._from_json(c) for c in data.objects("components", True)],
        )


@dataclass(frozen=True)
class Recommendation:
    """The answer of :meth:`Client.recommend`: top-k items, best first.

    >>> rec = client.recommend("home", "u0042", k=2)  # doctest: +SKIP
    >>> [item.item_id for item in rec.items], rec.degraded  # doctest: +SKIP
    (['a01806', 'a01753'], False)
    """

    request_id: str
    """The service's id of this request (in its logs and every ``result_id``)."""
    use_case: str
    """The use case that answered."""
    items: list[RecommendedItem]
    """Best first."""
    model_versions: dict[str, str]
    """Every model that answered, and its version."""
    variant: dict[str, str]
    """Experiment node -> this user's arm; empty outside experiments."""
    degraded: bool
    """True when a source failed or missed the latency budget (the others answered)."""

    @classmethod
    def _from_json(cls, data: Reader) -> Recommendation:
        return cls(
            request_id=data.text("request_id"),
            use_case=data.text("use_case"),
            items=[RecommendedItem._from_json(item) for item in data.objects("items")],
            model_versions=data.str_map("model_versions", True),
            variant=data.str_map("variant", True),
            degraded=data.flag("degraded", False),
        )


@dataclass(frozen=True)
class Prediction:
    """The answer of :meth:`Client.predict`: one prediction per instance.

    >>> client.predict("click_model", [{"hour_of_day": 20}]).predictions  # doctest: +SKIP
    [0.98]
    """

    model: str
    """The model that answered."""
    version: str
    """Its version."""
    predictions: list[Any]
    """One per instance, in order."""

    @classmethod
    def _from_json(cls, data: Reader) -> Prediction:
        return cls(
            model=data.text("model"),
            version=data.text("version"),
            predictions=data.array("predictions"),
        )


@dataclass(frozen=True)
class FeedbackEvent:
    """One thing a user did with a served item, by its ``result_id``.

    ``event_id`` makes resending safe (the service stores an id once). Build events
    with :func:`impression`, :func:`click`, :func:`add_to_cart`, :func:`conversion`,
    :func:`purchase` and :func:`dwell`, which give each a
    fresh id; an event built without one gets one when it is first sent.

    >>> FeedbackEvent("eyJp...", "click", event_id="b7c1-2").event
    'click'
    """

    result_id: str
    """The served item's ``result_id``."""
    event: EventKind
    """``impression`` (seen), or an outcome: ``click``, ``add_to_cart``, ``conversion``,
    ``purchase``, ``dwell``."""
    value: float | None = None
    """A purchase's amount; a dwell's seconds (required for ``dwell``)."""
    event_id: str | None = None
    """The client's id of this event: a resent id is stored once."""
    ts: datetime | None = None
    """When it happened (with a UTC offset); default: when the service receives it."""

    def _to_json(self, event_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "result_id": self.result_id,
            "event": self.event,
            "event_id": event_id,
        }
        if self.value is not None:
            body["value"] = self.value
        if self.ts is not None:
            body["ts"] = self.ts.isoformat()
        return body


def _new_event_id() -> str:
    return uuid.uuid4().hex


def impression(result_id: str, *, ts: datetime | None = None) -> FeedbackEvent:
    """An impression (the user saw the item), with a fresh ``event_id``.

    >>> impression("eyJp...").event
    'impression'
    """
    return FeedbackEvent(result_id, "impression", event_id=_new_event_id(), ts=ts)


def click(result_id: str, *, ts: datetime | None = None) -> FeedbackEvent:
    """A click on the item, with a fresh ``event_id``.

    >>> click("eyJp...").event
    'click'
    """
    return FeedbackEvent(result_id, "click", event_id=_new_event_id(), ts=ts)


def conversion(
    result_id: str, value: float | None = None, *, ts: datetime | None = None
) -> FeedbackEvent:
    """A conversion (a purchase, a subscription...), optionally its value, with a fresh
    ``event_id``.

    >>> conversion("eyJp...", 12.5).value
    12.5
    """
    return FeedbackEvent(result_id, "conversion", value=value, event_id=_new_event_id(), ts=ts)


def add_to_cart(result_id: str, *, ts: datetime | None = None) -> FeedbackEvent:
    """The item put in the cart, with a fresh ``event_id``.

    >>> add_to_cart("eyJp...").event
    'add_to_cart'
    """
    return FeedbackEvent(result_id, "add_to_cart", event_id=_new_event_id(), ts=ts)


def purchase(
    result_id: str, value: float | None = None, *, ts: datetime | None = None
) -> FeedbackEvent:
    """The item bought, optionally for ``value``, with a fresh ``event_id``.

    >>> purchase("eyJp...", 49.9).value
    49.9
    """
    return FeedbackEvent(result_id, "purchase", value=value, event_id=_new_event_id(), ts=ts)


def dwell(result_id: str, seconds: float, *, ts: datetime | None = None) -> FeedbackEvent:
    """Time spent on the item (0 to 86,400 seconds), with a fresh ``event_id``.

    >>> dwell("eyJp...", 31.5).value
    31.5
    """
    return FeedbackEvent(result_id, "dwell", value=seconds, event_id=_new_event_id(), ts=ts)


def as_event(entry: FeedbackEvent | Mapping[str, Any]) -> FeedbackEvent:
    """An event given as a :class:`FeedbackEvent` or a mapping of its fields."""
    if isinstance(entry, FeedbackEvent):
        return entry
    if isinstance(entry, Mapping):
        return FeedbackEvent(**entry)
    raise TypeError(f"expected a FeedbackEvent or a mapping, got {type(entry).__name__}")


@dataclass(frozen=True)
class FeedbackResult:
    """The answer of :meth:`Client.feedback`: what was stored.

    >>> client.feedback([impression(rid), click(rid)])  # doctest: +SKIP
    FeedbackResult(accepted=2, duplicates=0, rejected=[], event_ids=['9f2c...', '41ab...'])
    """

    accepted: int
    """Events stored durably."""
    duplicates: int
    """Events whose ``event_id`` had been stored before (not stored again)."""
    rejected: list[RejectedEvent] = field(default_factory=list)
    """Always empty here: a batch with refused events raises ``InvalidRequest``."""
    event_ids: list[str] = field(default_factory=list)
    """The ``event_id`` sent with each event, in order (resend with the same ids)."""

    @classmethod
    def _from_json(cls, data: Reader, event_ids: list[str]) -> FeedbackResult:
        return cls(
            accepted=data.integer("accepted"),
            duplicates=data.integer("duplicates", 0),
            rejected=rejected_events(data),
            event_ids=event_ids,
        )


def rejected_events(data: Reader) -> list[RejectedEvent]:
    """The ``rejected`` entries of a feedback answer."""
    return [
        RejectedEvent(entry.integer("index"), entry.text("field"), entry.text("message"))
        for entry in data.objects("rejected", True)
    ]
