"""The hot routes' typed answers (msgspec) against their documented shapes (pydantic),
and the one parse of a request body from bytes."""

from __future__ import annotations

import msgspec
import pytest
from fastapi.exceptions import RequestValidationError

from blending.candidates import Candidate, Component
from blending.result_ids import ResultIdCodec, ResultRef
from deployments.api.answers import PredictAnswer, RecommendAnswer, item_answer, parse_bytes
from deployments.api.schemas import PredictResponse, RecommendRequest, RecommendResponse

CODEC = ResultIdCodec(b"k" * 32)


def _candidate(item: str, team: str | None = None, pinned: bool = False) -> Candidate:
    components = (
        Component("cf", "mf", "1", 0.6, 0.9, 3.2),
        Component("picks", "staff_picks", "2", None, 1.0, 1.0, slot=1, curated=True),
        Component("rr", "click_model", "1", 1.0, 0.7, 0.7, role="rerank"),
    )
    return Candidate(item, 0.75, components=components, pinned=pinned, team=team)


def _answer(variant: dict[str, str] | None) -> RecommendAnswer:
    served = ResultRef("req1", "home", 0, "", 1_700_000_000, variant or {})
    items = [
        item_answer(CODEC, served, 1, _candidate("a1", pinned=True)),
        item_answer(CODEC, served, 2, _candidate("a2", team="taste")),
    ]
    return RecommendAnswer(
        request_id="req1",
        use_case="home",
        items=items,
        model_versions={"mf": "1"},
        variant=variant,
        degraded=False,
    )


@pytest.mark.parametrize("variant", [None, {"ab": "taste"}])
def test_the_recommend_answer_is_what_the_schema_documents(
    variant: dict[str, str] | None,
) -> None:
    encoded = msgspec.json.encode(_answer(variant))
    documented = RecommendResponse.model_validate_json(encoded)
    # The documented model drops absent optional fields the same way on output.
    assert msgspec.json.decode(encoded) == documented.model_dump(mode="json")


def test_absent_optional_fields_are_left_out_and_required_ones_kept() -> None:
    body = msgspec.json.decode(msgspec.json.encode(_answer(None)))
    assert "variant" not in body
    first, second = body["items"]
    assert first["pinned"] is True and "team" not in first and second["team"] == "taste"
    cf, picks, rerank = first["components"]
    assert cf["weight"] == 0.6 and "slot" not in cf and "curated" not in cf
    assert picks["weight"] is None and picks["slot"] == 1 and picks["curated"] is True
    assert rerank["role"] == "rerank"


def test_a_result_id_carries_the_items_facts() -> None:
    item = _answer({"ab": "taste"}).items[1]
    ref = CODEC.decode(item.result_id, "result_id")
    assert (ref.item_id, ref.position, ref.team) == ("a2", 2, "taste")
    assert ref.model_versions == {"mf": "1", "staff_picks": "2", "click_model": "1"}


def test_the_predict_answer_is_what_the_schema_documents() -> None:
    encoded = msgspec.json.encode(PredictAnswer("click_model", "1", [0.25, [1, 2]]))
    assert PredictResponse.model_validate_json(encoded).predictions == [0.25, [1, 2]]


def test_a_body_is_parsed_once_from_bytes() -> None:
    parsed = parse_bytes(b'{"user_id": "u1", "k": 150}', RecommendRequest)
    # No upper bound in the schema: the ingress's configured max_k decides.
    assert (parsed.user_id, parsed.k) == ("u1", 150)


def test_integer_ids_are_the_same_ids_as_text() -> None:
    # A team whose ids are integers calls with them; models keep ids as trained ("42").
    parsed = parse_bytes(b'{"user_id": 42, "exclude": [7, "a1"]}', RecommendRequest)
    assert (parsed.user_id, parsed.exclude) == ("42", ["7", "a1"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"user_id": "u1", "k": 0}', "k"),
        (b'{"user_id": 4.5}', "user_id"),
        (b'{"user_id": true}', "user_id"),
        (b"{not json", None),
        (b"", None),
    ],
)
def test_a_bad_body_is_a_validation_error_located_in_the_body(
    body: bytes, field: str | None
) -> None:
    with pytest.raises(RequestValidationError) as raised:
        parse_bytes(body, RecommendRequest)
    location = raised.value.errors()[0]["loc"]
    assert location[0] == "body"
    if field is not None:
        assert location[1] == field
