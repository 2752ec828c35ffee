"""Product rules over catalogue attributes: filters and boosts, as array operations.

A rule names an attribute and one condition: ``equals``, ``in``, a range (``min``
and/or ``max``, inclusive) or, for times, ``max_age_s`` (published within the last
that many seconds); ``negate`` inverts it. Filters keep only the items every filter
passes; boosts multiply the score of the items their condition holds for by
``multiply`` (below 1 demotes). Use cases declare rules in config (``rules:``) and
requests add their own (``filters``, ``boosts``); both are checked against the
declared attributes' kinds (:mod:`blending.attributes`) before anything runs, with
errors naming the field (``filters.0.in``).

An item without the attribute fails every condition (and passes its negation), so
"only in-stock items" drops items whose stock is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from blending.attributes import AttributeColumns, AttributeKind
from blending.ranked import Boosted, Ranked

__all__ = [
    "MAX_RULES",
    "BoostRule",
    "CompiledRules",
    "Condition",
    "FilterRule",
    "RulesSpec",
    "apply_boosts",
    "compile_rules",
]

MAX_RULES = 32
"""Most filters, and most boosts, one request or use case may carry."""

Scalar = Annotated[str, StringConstraints(max_length=256)] | bool | float
"""A value to compare with: text, a boolean or a number (JSON's own types)."""

_CONDITIONS = ("equals", "in", "min/max", "max_age_s")


class Condition(BaseModel):
    """One attribute and one condition on it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    attribute: str = Field(
        min_length=1,
        max_length=64,
        description="A declared attribute, `category` or `published_at`.",
    )
    equals: Scalar | None = Field(None, description="The attribute has this value.")
    in_: list[Scalar] | None = Field(
        None,
        alias="in",
        min_length=1,
        max_length=1000,
        description="The attribute has one of these values (at most 1,000).",
    )
    min: float | datetime | None = Field(
        None, description="At least this (numbers; times as unix seconds or ISO 8601)."
    )
    max: float | datetime | None = Field(
        None, description="At most this (numbers; times as unix seconds or ISO 8601)."
    )
    max_age_s: float | None = Field(
        None, gt=0, description="Times only: within the last this many seconds."
    )
    negate: bool = Field(False, description="Invert the condition.")

    @model_validator(mode="after")
    def _one_condition(self) -> Condition:
        given = [
            self.equals is not None,
            self.in_ is not None,
            self.min is not None or self.max is not None,
            self.max_age_s is not None,
        ]
        if sum(given) != 1:
            raise ValueError(f"set exactly one of {', '.join(_CONDITIONS)}")
        return self

    def check(self, kinds: Mapping[str, AttributeKind], where: str) -> None:
        """Raise ``ValueError`` naming ``where``'s field when the attribute is not
        declared or the condition does not suit its kind."""
        kind = kinds.get(self.attribute)
        if kind is None:
            raise ValueError(
                f"{where}.attribute: unknown attribute {self.attribute!r}; rules may use "
                f"{sorted(kinds)} (declare more in the app's `catalog_attributes`)"
            )
        values = [self.equals] if self.equals is not None else self.in_ or []
        field = "equals" if self.equals is not None else "in"
        for value in values:
            if not _suits(kind, value):
                raise ValueError(f"{where}.{field}: {self.attribute!r} is {kind}, got {value!r}")
        if (self.min is not None or self.max is not None) and kind not in ("number", "time"):
            raise ValueError(
                f"{where}.min: a range needs a number or a time, {self.attribute!r} is {kind}"
            )
        for name, bound in (("min", self.min), ("max", self.max)):
            if isinstance(bound, datetime) and kind != "time":
                raise ValueError(f"{where}.{name}: {self.attribute!r} is {kind}, not a time")
        if self.max_age_s is not None and kind != "time":
            raise ValueError(f"{where}.max_age_s: {self.attribute!r} is {kind}, not a time")

    def describe(self) -> str:
        """The condition as a short text (``brand in ['acme', 'zeta']``), for provenance."""
        if self.equals is not None:
            text = f"{self.attribute} = {self.equals!r}"
        elif self.in_ is not None:
            text = f"{self.attribute} in {self.in_!r}"
        elif self.max_age_s is not None:
            text = f"{self.attribute} within {self.max_age_s:g} s"
        else:
            low = "" if self.min is None else f"{_seconds(self.min, 0.0):g} <= "
            high = "" if self.max is None else f" <= {_seconds(self.max, 0.0):g}"
            text = f"{low}{self.attribute}{high}"
        return f"not {text}" if self.negate else text


def _suits(kind: AttributeKind, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "text":
        return isinstance(value, str) or float(value).is_integer()
    return isinstance(value, float | int)


class FilterRule(Condition):
    """Keep only the items this condition holds for."""


class BoostRule(Condition):
    """Multiply the score of the items this condition holds for."""

    multiply: float = Field(
        gt=0, le=1000, description="The factor (above 1 promotes, below 1 demotes)."
    )


class RulesSpec(BaseModel):
    """A use case's standing rules, applied to every request before the request's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filters: list[FilterRule] = Field(default_factory=list, max_length=MAX_RULES)
    boosts: list[BoostRule] = Field(default_factory=list, max_length=MAX_RULES)

    def check(self, kinds: Mapping[str, AttributeKind], where: str = "rules") -> None:
        """Check every rule against the attributes' kinds (``ValueError`` naming it)."""
        for at, rule in enumerate(self.filters):
            rule.check(kinds, f"{where}.filters.{at}")
        for at, boost in enumerate(self.boosts):
            boost.check(kinds, f"{where}.boosts.{at}")


def _seconds(bound: float | datetime | None, default: float) -> float:
    if bound is None:
        return default
    if isinstance(bound, datetime):
        return (bound if bound.tzinfo else bound.replace(tzinfo=UTC)).timestamp()
    return float(bound)


def _holds(rule: Condition, columns: AttributeColumns, items: np.ndarray, now: float) -> np.ndarray:
    """Whether ``rule``'s condition holds for each item (before ``negate``)."""
    kind = columns.kinds[rule.attribute]
    values = columns.values(rule.attribute, items)
    wanted = [rule.equals] if rule.equals is not None else rule.in_
    if wanted is not None:
        if kind == "text":
            codes = [columns.code(rule.attribute, _text(v)) for v in wanted]
            return np.isin(values, np.array(codes, dtype=np.int64))
        return np.isin(values, np.array([float(v) for v in wanted]))
    if rule.max_age_s is not None:
        return (values >= now - rule.max_age_s) & (values <= now)
    low = _seconds(rule.min, -math.inf)
    high = _seconds(rule.max, math.inf)
    holds: np.ndarray = (values >= low) & (values <= high)
    return holds


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(int(value))


def _passes(
    rule: Condition, columns: AttributeColumns, items: np.ndarray, now: float
) -> np.ndarray:
    holds = _holds(rule, columns, items, now)
    return ~holds if rule.negate else holds


@dataclass(frozen=True)
class CompiledRules:
    """The filters and boosts one request runs with, over one catalogue's columns."""

    columns: AttributeColumns
    filters: Sequence[FilterRule] = ()
    boosts: Sequence[BoostRule] = ()

    def __bool__(self) -> bool:
        return bool(self.filters or self.boosts)

    def keep(self, items: np.ndarray, now: float) -> np.ndarray | None:
        """Which of ``items`` pass every filter (``None``: no filter)."""
        if not self.filters or not len(items):
            return None
        keep = _passes(self.filters[0], self.columns, items, now)
        for rule in self.filters[1:]:
            keep &= _passes(rule, self.columns, items, now)
        return keep

    def factors(self, items: np.ndarray, now: float) -> list[tuple[str, np.ndarray, float]]:
        """Each boost that applies to some of ``items``: its rule as text, which
        items, its factor (for :func:`apply_boosts`)."""
        found = []
        for boost in self.boosts:
            applies = _passes(boost, self.columns, items, now)
            if applies.any():
                found.append((boost.describe(), applies, boost.multiply))
        return found

    def share_passing(self, now: float, sample: int = 4096) -> float:
        """About what share of the catalogue's available items pass the filters
        (from an evenly spaced sample), for sources to over-fetch by."""
        if not self.filters:
            return 1.0
        table = self.columns.table
        if not len(table):
            return 1.0
        step = max(1, len(table) // sample)
        items = np.arange(0, len(table), step)
        items = items[table.known(items) & table.available(items)]
        if not len(items):
            return 1.0
        keep = self.keep(items, now)
        return 1.0 if keep is None else float(keep.mean())


def compile_rules(
    columns: AttributeColumns | None,
    standing: RulesSpec | None,
    filters: Sequence[FilterRule] = (),
    boosts: Sequence[BoostRule] = (),
) -> CompiledRules | None:
    """A use case's standing rules followed by a request's own, or ``None`` when
    there are none. The request's rules must have been checked (``RulesSpec.check``)."""
    all_filters = [*(standing.filters if standing else ()), *filters]
    all_boosts = [*(standing.boosts if standing else ()), *boosts]
    if columns is None or not (all_filters or all_boosts):
        return None
    return CompiledRules(columns, all_filters, all_boosts)


def apply_boosts(ranked: Ranked, boosts: Sequence[tuple[str, np.ndarray, float]]) -> Ranked:
    """``ranked`` with the scores of the rows each boost applies to multiplied by its
    factor, re-sorted (stable, best first); pinned rows keep their positions.

    ``boosts`` are ``(rule, applies, factor)``, ``applies`` a mask over ``ranked``'s
    rows. Scores are multiplied, so boost lists whose scores are not negative (a
    blend's, normalised) or a boost can demote.
    """
    if not boosts or not len(ranked):
        return ranked
    factor = np.ones(len(ranked))
    for _, applies, multiply in boosts:
        factor[applies] *= multiply
    boosted = ranked.scores * factor
    if ranked.pinned is None:
        order = np.argsort(-boosted, kind="stable")
    else:
        free = np.flatnonzero(~ranked.pinned)
        order = np.arange(len(ranked))
        order[free] = free[np.argsort(-boosted[free], kind="stable")]
    why = Boosted(ranked, order, boosts, boosted[order])
    return Ranked(
        ranked.items[order],
        boosted[order],
        why,
        None if ranked.pinned is None else ranked.pinned[order],
        None if ranked.team is None else ranked.team[order],
    )
