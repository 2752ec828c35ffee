"""Result ids: round trip, and refusal of anything this service did not sign."""

from __future__ import annotations

import pytest

from blending.result_ids import ResultIdCodec, ResultRef
from models.errors import InputError

KEY = b"k" * 32
REF = ResultRef(
    request_id="9f1c",
    use_case="discover",
    position=3,
    item_id="a00042",
    served_at=1_790_000_000,
    variant={"discover_ab": "interleaved"},
    team="fused",
    model_versions={"mf": "1", "popularity": "2"},
)


def test_a_result_id_recovers_everything_feedback_needs() -> None:
    codec = ResultIdCodec(KEY)
    token = codec.encode(REF)
    assert codec.decode(token) == REF
    assert "u0042" not in token and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    )


def test_minimal_refs_round_trip() -> None:
    codec = ResultIdCodec(KEY)
    ref = ResultRef("r", "home", 1, "x", 0)
    assert codec.decode(codec.encode(ref)) == ref


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # tag changed
        lambda t: "f" + t[1:],  # payload changed
        lambda t: t.split(".")[0],  # no tag
        lambda t: "%%%." + t.split(".")[1],  # not base64
        lambda t: "",
    ],
)
def test_tampered_ids_are_refused_naming_the_field(mangle: object) -> None:
    codec = ResultIdCodec(KEY)
    token = mangle(codec.encode(REF))  # type: ignore[operator]
    with pytest.raises(InputError) as info:
        codec.decode(token, field_name="events.2.result_id")
    assert info.value.field == "events.2.result_id"


def test_another_key_cannot_read_our_ids() -> None:
    token = ResultIdCodec(KEY).encode(REF)
    with pytest.raises(InputError, match="not a result id this service issued"):
        ResultIdCodec(b"z" * 32).decode(token)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ResultIdCodec(b"short")
