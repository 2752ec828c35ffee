"""DAG validation: every mistake is caught at load time, naming the node."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from blending.spec import UseCaseSpec
from models.errors import ConfigError


def _spec(**nodes: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "a": {"kind": "source", "model": "mf"},
        "b": {"kind": "source", "model": "pop"},
        "mix": {"kind": "blend", "weights": {"a": 0.5, "b": 0.5}},
        "out": {"kind": "filter", "input": "mix"},
    }
    base.update(nodes)
    return {"nodes": base, "output": "out"}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        UseCaseSpec.model_validate(data)
    return str(info.value)


def test_valid_spec_orders_nodes_after_their_inputs() -> None:
    spec = UseCaseSpec.model_validate(_spec())
    order = spec.topological_order()
    assert order.index("a") < order.index("mix") < order.index("out")
    assert set(spec.sources()) == {"a", "b"}


def test_unknown_reference_names_the_node() -> None:
    message = _error(_spec(mix={"kind": "blend", "weights": {"a": 1, "ghost": 1}}))
    assert "node 'mix' reads unknown node 'ghost'" in message


def test_cycle_is_reported_with_its_path() -> None:
    data = _spec(
        x={"kind": "filter", "input": "y"},
        y={"kind": "filter", "input": "x"},
        out={"kind": "blend", "weights": {"mix": 1, "x": 1}},
    )
    message = _error(data)
    assert "cycle" in message and "x" in message and "y" in message


def test_negative_weight_names_the_node() -> None:
    message = _error(_spec(mix={"kind": "blend", "weights": {"a": -0.1, "b": 1}}))
    assert "node 'mix'" in message and ">= 0" in message


def test_all_zero_weights_name_the_node() -> None:
    message = _error(_spec(mix={"kind": "blend", "weights": {"a": 0, "b": 0.0}}))
    assert "node 'mix': all weights are zero" in message


def test_unknown_kind_and_unknown_keys_are_rejected() -> None:
    assert "kind" in _error(_spec(a={"kind": "magic", "model": "mf"}))
    assert "Extra inputs are not permitted" in _error(
        _spec(a={"kind": "source", "model": "mf", "wieght": 1})
    )


def test_unused_node_is_rejected() -> None:
    message = _error(_spec(stray={"kind": "source", "model": "mf"}))
    assert "['stray'] do not feed the output" in message


def test_repeated_slot_position_is_rejected() -> None:
    data = _spec(
        pins={"kind": "slots", "input": "mix", "curated": "b", "positions": [1, 1]},
        out={"kind": "filter", "input": "pins"},
    )
    assert "node 'pins'" in _error(data)


def test_unknown_model_names_use_case_and_node() -> None:
    spec = UseCaseSpec.model_validate(_spec())
    with pytest.raises(ConfigError, match="use case 'home', node 'b': unknown model 'pop'"):
        spec.check_models("home", ["mf"])


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            {"kind": "slots", "input": "mix", "curated": "b", "positions": [1], "share": 0.2},
            "node 'out': set exactly one of `positions` and `share`",
        ),
        (
            {"kind": "slots", "input": "mix", "curated": "b"},
            "node 'out': set exactly one of `positions` and `share`",
        ),
        (
            {"kind": "experiment", "arms": {"x": {"node": "mix", "weight": 0}}},
            "node 'out': all weights are zero",
        ),
        (
            {"kind": "experiment", "arms": {"x": {"node": "nowhere", "weight": 1}}},
            "node 'out' reads unknown node 'nowhere'",
        ),
        ({"kind": "interleave", "teams": ["mix", "mix"]}, "node 'out': interleaves 'mix'"),
        ({"kind": "fallback", "primary": "a", "fallback": "a"}, "node 'out': primary and"),
        ({"kind": "stack", "inputs": ["a", "a"], "model": "lr"}, "node 'out': inputs"),
        ({"kind": "diversify", "input": "mix", "max_per_category": 0}, "max_per_category"),
        ({"kind": "rerank", "input": "mix", "model": "ctr", "depth": 0}, "depth"),
    ],
)
def test_new_node_kinds_are_checked_naming_the_node(node: dict[str, Any], expected: str) -> None:
    message = _error(_spec(out=node))
    assert expected in message


def test_every_node_kind_loads_from_config() -> None:
    spec = UseCaseSpec.model_validate(
        {
            "budget_ms": 120,
            "output": "out",
            "nodes": {
                "a": {"kind": "source", "model": "mf"},
                "b": {"kind": "source", "model": "pop"},
                "mix": {"kind": "blend", "method": "rrf", "weights": {"a": 1, "b": 1}},
                "learned": {"kind": "stack", "inputs": ["a", "b"], "model": "lr"},
                "clicks": {"kind": "rerank", "input": "learned", "model": "ctr"},
                "pins": {"kind": "slots", "input": "clicks", "curated": "b", "share": 0.2},
                "both": {"kind": "interleave", "teams": ["mix", "pins"]},
                "ab": {
                    "kind": "experiment",
                    "arms": {"x": {"node": "mix", "weight": 1}, "y": {"node": "both", "weight": 1}},
                },
                "safe": {"kind": "fallback", "primary": "ab", "fallback": "b"},
                "varied": {"kind": "diversify", "input": "safe", "max_per_category": 2},
                "out": {"kind": "filter", "input": "varied", "drop": ["excluded"]},
            },
        }
    )
    assert spec.models() == {"mf", "pop", "lr", "ctr"}
    assert spec.budget_ms == 120
    with pytest.raises(ConfigError, match="node 'clicks': unknown model 'ctr'"):
        spec.check_models("home", ["mf", "pop", "lr"])
