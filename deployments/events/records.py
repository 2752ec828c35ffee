"""The two event records that travel from an ingress to the event log, typed.

They cross the deployment handle as these structs and become rows (plain mappings)
only at the storage edge: the write-ahead log and the Parquet dataset.
"""

from __future__ import annotations

import msgspec

from blending.evaluation.credit import CreditTotals
from deployments.json_types import JsonObject

__all__ = ["FeedbackRecord", "FeedbackStored", "InterleavingWins", "ServedList"]


class ServedList(msgspec.Struct, frozen=True):
    """One recommendation list as served (the user already pseudonymised)."""

    ts: float
    request_id: str
    user: str
    variant: dict[str, str]
    items: list[str]
    teams: list[str]
    model_versions: dict[str, str]
    latency_ms: float
    degraded: bool
    use_case: str
    plan_version: str = ""
    """The hash of the use case's spec that served it (``BlendPlan.version``)."""
    plan: str = ""
    """That spec as JSON (the same text object for every list of one plan, so it
    crosses a handle once per batch), for ``blendserve replay``."""
    inputs: str = ""
    """What a replay needs and an explanation shows (``events/replay_record.py``)."""
    propensities: list[float] = []
    """Per position, the chance the use case's policy shows that item there (1 for a
    deterministic blend; arm weights, exploration): what counterfactual evaluation
    weighs each logged click by."""

    def row(self) -> JsonObject:
        """The record as the event store writes it."""
        return msgspec.structs.asdict(self)


class FeedbackRecord(msgspec.Struct, frozen=True):
    """One checked feedback event, with the facts its result id carried."""

    ts: float
    event_id: str
    event: str
    value: float | None
    result_id: str
    request_id: str
    item_id: str
    position: int
    served_at: int
    variant: dict[str, str]
    team: str | None
    model_versions: dict[str, str]
    use_case: str
    unit: int | None = None
    """The user's unit (``blending/result_ids.py``), for lists served in experiments."""

    def row(self) -> JsonObject:
        """The record as the event store writes it."""
        return msgspec.structs.asdict(self)


class FeedbackStored(msgspec.Struct, frozen=True):
    """What the event log did with a feedback batch."""

    accepted: int
    duplicates: int


class InterleavingWins(msgspec.Struct, frozen=True):
    """Requests each team of an interleaving node won (more clicked items), and ties."""

    wins: dict[str, int]
    ties: int
    pairs: dict[str, dict[str, int]] = {}
    """Team -> other team -> clicked lists where the first beat the second."""
    clicked: int = 0
    """Lists with a click on any team's item."""
    credit: CreditTotals | None = None
    """The first two teams' credited clicks per clicked list (two teams only)."""
