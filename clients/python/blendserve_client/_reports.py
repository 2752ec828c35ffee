"""Operational answers: hosted models and their versions, experiment reports, readiness.

Each keeps the whole answer in ``raw`` too, for the fields a dataclass does not name
(a canary's window, a model's metrics, the sample-ratio check's counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blendserve_client._json import Reader

__all__ = ["ArmStats", "ExperimentReport", "ModelStatus", "ModelVersion", "Models", "Readiness"]


@dataclass(frozen=True)
class ModelVersion:
    """One version of a hosted model, as one ingress replica sees it.

    >>> client.models().models["mf"].versions[0].role  # doctest: +SKIP
    'live'
    """

    version: str
    """The version's name in the artifact store."""
    role: str
    """``live``, ``canary`` or ``shadow``."""
    status: str
    """``loading``, ``serving``, ``failed`` or ``rolled_back``."""
    traffic_percent: float
    """Share of calls it answers."""
    reason: str | None = None
    """Why it failed or was rolled back."""
    loaded_at: str | None = None
    """When it finished loading (ISO 8601)."""
    load_ms: float | None = None
    """How long loading took."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The whole entry (``window``, ``overlap_at_k``...)."""

    @classmethod
    def _from_json(cls, data: Reader) -> ModelVersion:
        return cls(
            version=data.text("version"),
            role=data.text("role"),
            status=data.text("status"),
            traffic_percent=data.opt_number("traffic_percent") or 0.0,
            reason=data.opt_text("reason"),
            loaded_at=data.opt_text("loaded_at"),
            load_ms=data.opt_number("load_ms"),
            raw=data.data,
        )


@dataclass(frozen=True)
class ModelStatus:
    """A hosted model: where it runs, whether it serves, and its versions.

    >>> client.models().models["mf"].status  # doctest: +SKIP
    'serving'
    """

    name: str
    """The model's name in the app's config."""
    status: str
    """``serving``, or ``failed`` (see ``error``)."""
    placement: str | None
    """``inline`` (in the ingress) or ``replica`` (its own deployment)."""
    version: str | None
    """The live version, when one serves."""
    error: str | None
    """Why it does not serve, when it does not."""
    versions: list[ModelVersion]
    """Every version loaded or tried: live, canary, shadow."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The whole entry (format, metrics, events, cpu pool...)."""

    @classmethod
    def _from_json(cls, name: str, data: Reader) -> ModelStatus:
        error = data.opt_text("error")
        return cls(
            name=name,
            status=data.opt_text("status") or ("failed" if error else "serving"),
            placement=data.opt_text("placement"),
            version=data.opt_text("version"),
            error=error,
            versions=[ModelVersion._from_json(v) for v in data.objects("versions", True)],
            raw=data.data,
        )


@dataclass(frozen=True)
class Models:
    """The answer of :meth:`Client.models`: every hosted model, per one ingress replica.

    >>> sorted(client.models().models)  # doctest: +SKIP
    ['click_model', 'discover_stack', 'mf', 'popularity', 'staff_picks']
    """

    replica: str
    """The ingress replica that answered (each keeps its own versions' state)."""
    models: dict[str, ModelStatus]
    """By model name."""

    @classmethod
    def _from_json(cls, data: Reader) -> Models:
        models = data.child("models")
        return cls(
            replica=data.opt_text("replica") or "",
            models={name: ModelStatus._from_json(name, models.child(name)) for name in models.data},
        )


@dataclass(frozen=True)
class ArmStats:
    """One arm of an A/B/n experiment: traffic, CTR with its 95% interval, and the
    comparison with control (None until there are impressions on both sides).

    >>> report.arms["clicky"].ctr  # doctest: +SKIP
    0.061
    """

    weight: float
    """The arm's configured share."""
    requests: int
    """Served lists."""
    impressions: int
    """Items seen (at most one per item and list)."""
    clicks: int
    """Items clicked (at most one per item and list)."""
    ctr: float | None
    """clicks / impressions."""
    ctr_low: float | None
    """95% interval of the CTR, low end."""
    ctr_high: float | None
    """95% interval of the CTR, high end."""
    lift: float | None
    """Relative CTR lift against control."""
    lift_low: float | None
    """95% interval of the lift, low end."""
    lift_high: float | None
    """95% interval of the lift, high end."""
    p_value: float | None
    """Against control."""
    prob_beat_control: float | None
    """Probability that this arm's CTR beats control's."""
    significant: bool
    """Below the (Bonferroni-corrected) significance level."""

    @classmethod
    def _from_json(cls, data: Reader) -> ArmStats:
        return cls(
            weight=data.opt_number("weight") or 0.0,
            requests=data.integer("requests", 0),
            impressions=data.integer("impressions", 0),
            clicks=data.integer("clicks", 0),
            ctr=data.opt_number("ctr"),
            ctr_low=data.opt_number("ctr_low"),
            ctr_high=data.opt_number("ctr_high"),
            lift=data.opt_number("lift"),
            lift_low=data.opt_number("lift_low"),
            lift_high=data.opt_number("lift_high"),
            p_value=data.opt_number("p_value"),
            prob_beat_control=data.opt_number("prob_beat_control"),
            significant=data.flag("significant", False),
        )


@dataclass(frozen=True)
class ExperimentReport:
    """Live statistics of one experiment (``kind == "experiment"``: ``arms``) or
    interleaving node (``kind == "interleave"``: ``teams``, ``wins``, ``ties``).

    >>> report = client.experiment("discover.ab")  # doctest: +SKIP
    >>> report.verdict  # doctest: +SKIP
    'clicky beats control: CTR +98.0% (p = 0.001, 99.9% to beat control)'
    """

    name: str
    """``<use case>.<node>``."""
    kind: str
    """``experiment`` or ``interleave``."""
    verdict: str
    """One sentence a person can act on."""
    winner: str | None
    """The winning arm, or the preferred team of an interleaving; None while undecided."""
    control: str | None = None
    """Experiments: the control arm."""
    arms: dict[str, ArmStats] = field(default_factory=dict)
    """Experiments: each arm's statistics, control first."""
    teams: list[str] = field(default_factory=list)
    """Interleavings: the two teams."""
    wins: dict[str, int] = field(default_factory=dict)
    """Interleavings: requests each team won (more of its items clicked)."""
    ties: int = 0
    """Interleavings: clicked requests with equal credit."""
    p_value: float | None = None
    """Interleavings: the verdict's p-value, of each team's share of the credited
    clicks (the sign test's over won requests is ``raw["sign_test_p_value"]``)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The whole report (the sample-ratio check is in ``raw["srm"]``)."""

    @classmethod
    def _from_json(cls, data: Reader) -> ExperimentReport:
        kind = data.text("kind")
        arms = data.child("arms") if kind == "experiment" else None
        return cls(
            name=data.text("name"),
            kind=kind,
            verdict=data.opt_text("verdict") or "",
            winner=data.opt_text("winner") if kind == "experiment" else data.opt_text("preferred"),
            control=data.opt_text("control"),
            arms={} if arms is None else {a: ArmStats._from_json(arms.child(a)) for a in arms.data},
            teams=[str(team) for team in data.array("teams", True)],
            wins=data.int_map("wins", True),
            ties=data.integer("ties", 0),
            p_value=data.opt_number("p_value"),
            raw=data.data,
        )


@dataclass(frozen=True)
class Readiness:
    """The answer of :meth:`Client.ready`; true when every model of the service answers.

    >>> bool(client.ready())  # doctest: +SKIP
    True
    """

    ready: bool
    """Whether every model answers (``/readyz`` was 200)."""
    models: list[str] = field(default_factory=list)
    """When ready: the models that answered."""
    not_ready: dict[str, str] = field(default_factory=dict)
    """When not: what is not ready (``model:mf``, ``api_keys``...) and why."""
    degraded_use_cases: dict[str, list[str]] = field(default_factory=dict)
    """When not: use cases that answer without some models, and which."""

    def __bool__(self) -> bool:
        return self.ready

    @classmethod
    def _from_json(cls, data: Reader) -> Readiness:
        degraded = data.mapping("degraded_use_cases", True)
        return cls(
            ready=data.flag("ready"),
            models=[str(model) for model in data.array("models", True)],
            not_ready={str(k): str(v) for k, v in data.mapping("not_ready", True).items()},
            degraded_use_cases={str(k): [str(m) for m in v] for k, v in degraded.items()},
        )
