"""The experiment node kinds: A/B/n tests (optionally staged, pruning candidates by
multileaving first) and interleaving."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from blending.node_base import NodeBase, NodeName, check_weights
from models.errors import ConfigError

__all__ = ["MAX_TEAMS", "ArmSpec", "ExperimentNodeSpec", "InterleaveNodeSpec", "PruneStageSpec"]

MAX_TEAMS = 8
"""Rankers one multileaved list may compare (each gets about k / teams places)."""


class ArmSpec(BaseModel):
    """One arm of an experiment: a node and its share of users."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(description="The node whose list this arm's users get.")
    weight: float = Field(description="Relative share of users (any non-negative scale).")


class PruneStageSpec(BaseModel):
    """The first stage of a staged experiment: every arm but the control, multileaved
    in one list for every user, until one of them leads all the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sessions: int = Field(
        gt=0,
        description=(
            "Clicked lists after which the leader (most pairwise wins) survives even if "
            "the always-valid tests have not separated it yet."
        ),
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="The always-valid tests' error rate, per pair."
    )


class ExperimentNodeSpec(NodeBase):
    """A/B/n test: each user sticks to one arm, drawn by a salted hash of their id.

    With ``prune``, a staged experiment: first every arm but the control is
    multileaved in each list (every user's clicks compare all candidates at once,
    where A/B/n splits users n ways) until one leads every other by the always-valid tests
    or ``max_sessions`` clicked lists; then the survivor is A/B tested against the
    control, each user sticking to one of the two."""

    kind: Literal["experiment"]
    arms: dict[NodeName, ArmSpec] = Field(min_length=1, description="Arm name -> arm.")
    salt: str | None = Field(
        None,
        min_length=1,
        description="Hash salt; defaults to the node name. A new salt reshuffles users.",
    )
    control: str | None = Field(
        None,
        description=(
            "The arm the others are compared with in experiment reports (default: the arm "
            "named `control`, else the first arm by name)."
        ),
    )
    prune: PruneStageSpec | None = Field(
        None,
        description=(
            "Stage the experiment: multileave the candidates (every arm but the control) "
            "until one survives, then A/B it against the control."
        ),
    )

    def candidates(self) -> list[str]:
        """The arms a first stage prunes: all but the control, by name."""
        control = self.control_arm()
        return sorted(arm for arm in self.arms if arm != control)

    def reads(self) -> list[str]:
        """Every arm's node (only the drawn one runs)."""
        return [arm.node for arm in self.arms.values()]

    def check(self, name: str) -> None:
        """Arm weights as blend weights; the control must be an arm; a staged
        experiment has two to eight candidates."""
        check_weights(name, {arm: spec.weight for arm, spec in self.arms.items()})
        if self.control is not None and self.control not in self.arms:
            raise ConfigError(
                f"node {name!r}: control {self.control!r} is not an arm ({sorted(self.arms)})"
            )
        if self.prune is not None and not 2 <= len(self.candidates()) <= MAX_TEAMS:
            raise ConfigError(
                f"node {name!r}: prune: needs 2 to {MAX_TEAMS} arms besides the control "
                f"{self.control_arm()!r}, got {len(self.candidates())}"
            )

    def control_arm(self) -> str:
        """The arm the others are compared with."""
        if self.control is not None:
            return self.control
        return "control" if "control" in self.arms else sorted(self.arms)[0]


class InterleaveNodeSpec(NodeBase):
    """Team-draft interleaving of two rankers (multileaving of up to eight); each item
    is credited to its team."""

    kind: Literal["interleave"]
    teams: list[str] = Field(
        min_length=2,
        max_length=MAX_TEAMS,
        description="The ranked nodes (two to eight); their names are teams.",
    )

    def reads(self) -> list[str]:
        """Every ranker."""
        return list(self.teams)

    def check(self, name: str) -> None:
        """Different rankers."""
        repeated = sorted({team for team in self.teams if self.teams.count(team) > 1})
        if repeated:
            raise ValueError(f"node {name!r}: interleaves {repeated[0]!r} with itself")
