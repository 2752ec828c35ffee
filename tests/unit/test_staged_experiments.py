"""Staged experiments (issue 23, item 4): multileaving several candidates, the first
stage's decision, and the A/B of the survivor against the control."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ranked_lists import Lists
from scripted_models import Scripted, ScriptedModels

from blending.assign import PRUNE
from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.evaluation.stages import prune_decision
from blending.nodes import team_draft
from blending.spec import PruneStageSpec, UseCaseSpec
from deployments.config import EventsConfig
from deployments.events.counts import EventCounts
from deployments.events.experiments import build_report
from deployments.events.journal import EventJournal
from models.errors import ConfigError
from models.store import ArtifactStore

CANDIDATES = ("a", "b", "c", "d")


def _nodes(prune: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        f"src_{name}": {"kind": "source", "model": f"model_{name}"}
        for name in ("control", *CANDIDATES)
    }
    nodes["trial"] = {
        "kind": "experiment",
        "arms": {name: {"node": f"src_{name}", "weight": 1} for name in ("control", *CANDIDATES)},
    }
    if prune is not None:
        nodes["trial"]["prune"] = prune
    return nodes


def _models() -> ScriptedModels:
    # Each model ranks its own six items: a list's items tell which model they came from.
    return ScriptedModels(
        **{
            f"model_{name}": Scripted([(f"{name}{i}", 1.0 - i / 10) for i in range(6)])
            for name in ("control", *CANDIDATES)
        }
    )


def _plan(prune: dict[str, Any] | None) -> BlendPlan:
    spec = UseCaseSpec.model_validate({"nodes": _nodes(prune), "output": "trial"})
    return BlendPlan("home", spec)


def _serve(plan: BlendPlan, user: str, request: str) -> Any:
    ctx = BlendContext(user, 8, request_id=request)
    return asyncio.run(plan.run(ctx, _models()))


def test_team_draft_multileaves_every_team_fairly_and_shows_each_item_once() -> None:
    lists = Lists()
    shared = [f"s{i}" for i in range(4)]  # every team ranks these first
    teams = []
    for name in CANDIDATES:
        ids = [*shared, *(f"{name}{i}" for i in range(6))]
        teams.append((name, lists.source(name, *((i, 10.0 - n) for n, i in enumerate(ids)))))
    for seed in range(50):
        merged = team_draft(teams, random.Random(seed))
        ids = lists.ids(merged)
        assert len(set(ids)) == len(ids) == 4 * 10 - 3 * 4
        credited = Counter(merged.team[:12].tolist())
        assert sorted(credited.values()) == [3, 3, 3, 3], "each round every team picks once"


def test_a_first_stage_multileaves_the_candidates_then_the_survivor_faces_the_control() -> None:
    plan = _plan({"max_sessions": 500})
    first = _serve(plan, "u1", "r1")
    assert first.variant == {"trial": PRUNE}
    teams = {c.team for c in first.items}
    assert teams == set(CANDIDATES), "every candidate gets places, the control none"
    assert all(c.item_id.startswith(c.team) for c in first.items), "credited to its ranker"
    # The draft is random: the first place goes to any candidate's top item, at 1 in 4.
    assert first.propensities[0] == pytest.approx(1 / len(CANDIDATES))

    plan.set_survivor("trial", "c")
    arms = Counter(_serve(plan, f"user{n}", f"r{n}").variant["trial"] for n in range(400))
    assert set(arms) == {"control", "c"} and 150 < arms["c"] < 250, arms
    again = _serve(plan, "user7", "another request")
    assert again.variant == _serve(plan, "user7", "r7").variant, "users stick to their arm"
    assert again.propensities == [1.0] * len(again.items), "an arm's own list is certain"
    with pytest.raises(ValueError, match="not a candidate"):
        plan.set_survivor("trial", "control")


def test_a_staged_experiment_needs_two_candidates() -> None:
    nodes = _nodes({"max_sessions": 10})
    nodes["trial"]["arms"] = {
        "control": {"node": "src_control", "weight": 1},
        "a": {"node": "src_a", "weight": 1},
    }
    with pytest.raises((ConfigError, ValueError), match="prune: needs 2 to 8 arms"):
        UseCaseSpec.model_validate({"nodes": nodes, "output": "trial"})


def _pairs(wins: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    pairs: dict[str, dict[str, int]] = {}
    for (a, b), n in wins.items():
        pairs.setdefault(a, {})[b] = n
    return pairs


def test_the_first_stage_keeps_a_clear_leader_early_and_the_best_guess_at_the_cap() -> None:
    spec = PruneStageSpec(max_sessions=5000)
    clear = _pairs({("b", o): 300 for o in "acd"} | {(o, "b"): 150 for o in "acd"})
    state = prune_decision(list(CANDIDATES), clear, clicked=900, spec=spec)
    assert state.survivor == "b" and "beats every other" in state.reason
    close = _pairs({("b", o): 160 for o in "acd"} | {(o, "b"): 150 for o in "acd"})
    running = prune_decision(list(CANDIDATES), close, clicked=600, spec=spec)
    assert running.survivor is None and running.leader == "b"
    capped = prune_decision(list(CANDIDATES), close, clicked=5000, spec=spec)
    assert capped.survivor == "b" and "max_sessions" in capped.reason


def _clicked(counts: EventCounts, request: str, teams: dict[str, int]) -> None:
    for team, clicks in teams.items():
        for n in range(clicks):
            counts.add_feedback(
                {
                    "event": "click",
                    "result_id": f"{request}-{team}-{n}",
                    "use_case": "home",
                    "variant": {"trial": PRUNE},
                    "team": team,
                    "request_id": request,
                }
            )


def test_counts_give_pairwise_wins_and_the_journal_decides_once(tmp_path: Path) -> None:
    counts = EventCounts()
    _clicked(counts, "r1", {"a": 2, "b": 1})
    _clicked(counts, "r2", {"b": 1, "c": 1})
    found = counts.interleaving("home", list(CANDIDATES))
    assert found.clicked == 2 and found.ties == 1
    assert found.pairs["a"] == {"b": 1, "c": 1, "d": 1}
    assert found.pairs["b"] == {"a": 1, "c": 1, "d": 2}
    assert found.pairs["c"]["d"] == 1 and found.pairs["d"] == {"a": 0, "b": 0, "c": 0}

    config = EventsConfig(uri=str(tmp_path / "events"), wal_dir=str(tmp_path / "wal"))
    journal = EventJournal(config, ArtifactStore(tmp_path / "artifacts"), "app")
    spec = PruneStageSpec(max_sessions=3)
    for n in range(3):
        _clicked(journal.counts, f"x{n}", {"d": 1})
    decided = journal.prune_state("home", "trial", list(CANDIDATES), spec)
    assert decided.survivor == "d"
    for n in range(50):  # later stragglers cannot change a decision made
        _clicked(journal.counts, f"y{n}", {"a": 3})
    assert journal.prune_state("home", "trial", list(CANDIDATES), spec) == decided


def test_the_report_shows_the_stage_and_compares_the_survivor_with_the_control() -> None:
    plan = _plan({"max_sessions": 100})
    spec = plan.spec.nodes["trial"]
    counts = EventCounts()
    _clicked(counts, "r1", {"b": 1})
    first = counts.interleaving("home", list(CANDIDATES))
    running = prune_decision(list(CANDIDATES), first.pairs, first.clicked, spec.prune)
    report = build_report("home.trial", "trial", spec, {}, {}, 0, None, running)
    assert report["stages"]["stage"] == "prune" and report["stages"]["leader"] == "b"
    assert report["stopping"]["decision"] == "continue"
    assert set(report["arms"]) == {"control", "b"}
    assert report["verdict"].startswith("first stage")
