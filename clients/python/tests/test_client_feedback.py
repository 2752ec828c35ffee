"""Feedback events: ids that make resending safe, batches partly stored."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from fake_service import reply
from recorded_answers import (
    FEEDBACK_PARTLY_REFUSED,
    FEEDBACK_STORED,
    OVERLOADED,
    RESULT_ID_1,
    RESULT_ID_2,
)

from blendserve_client import (
    Client,
    FeedbackEvent,
    InvalidRequest,
    RejectedEvent,
    add_to_cart,
    click,
    conversion,
    dwell,
    impression,
    purchase,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_event_ids_are_assigned_before_the_first_attempt_and_resent_unchanged(serve, waits):
    refusal = reply(503, OVERLOADED, {"Retry-After": "1"})
    client = serve(refusal, refusal, reply(202, FEEDBACK_STORED))
    events = [FeedbackEvent(RESULT_ID_1, "impression"), FeedbackEvent(RESULT_ID_1, "click")]
    result = client.feedback(events)
    bodies = client.script.bodies()
    assert len(bodies) == 3 and len(waits) == 2
    ids = [[event["event_id"] for event in body["events"]] for body in bodies]
    assert ids[0] == ids[1] == ids[2]  # every attempt sends the same ids
    assert all(HEX32.match(event_id) for event_id in ids[0])
    assert len(set(ids[0])) == 2  # one id per event
    assert result.event_ids == ids[0]
    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, [])


def test_an_event_id_the_caller_gave_is_kept(serve):
    client = serve(reply(202, FEEDBACK_STORED))
    client.feedback([FeedbackEvent(RESULT_ID_1, "click", event_id="b7c1-2")])
    assert client.script.bodies()[0]["events"][0]["event_id"] == "b7c1-2"


def test_helpers_build_events_each_with_a_fresh_id():
    seen, clicked, bought = impression("r"), click("r"), conversion("r", 12.5)
    assert [e.event for e in (seen, clicked, bought)] == ["impression", "click", "conversion"]
    assert bought.value == 12.5 and seen.value is None
    ids = {e.event_id for e in (seen, clicked, bought)}
    assert len(ids) == 3 and all(HEX32.match(str(i)) for i in ids)
    assert Client.click is click  # also reachable from a client
    carted, bought_for, stayed = add_to_cart("r"), purchase("r", 49.9), dwell("r", 31.5)
    assert [e.event for e in (carted, bought_for, stayed)] == ["add_to_cart", "purchase", "dwell"]
    assert (carted.value, bought_for.value, stayed.value) == (None, 49.9, 31.5)
    assert Client.dwell is dwell and Client.purchase is purchase


def test_events_are_sent_as_the_api_documents(serve):
    client = serve(reply(202, FEEDBACK_STORED))
    when = datetime(2026, 11, 28, 23, 5, tzinfo=timezone.utc)
    client.feedback([conversion(RESULT_ID_2, 9.99, ts=when), impression(RESULT_ID_1)])
    request = client.script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/feedback")
    sent = client.script.bodies()[0]["events"]
    assert sent[0] == {
        "result_id": RESULT_ID_2,
        "event": "conversion",
        "event_id": sent[0]["event_id"],
        "value": 9.99,
        "ts": "2026-11-28T23:05:00+00:00",
    }
    assert set(sent[1]) == {"result_id", "event", "event_id"}  # no nulls sent


def test_one_event_or_a_mapping_is_accepted(serve):
    client = serve(reply(202, FEEDBACK_STORED), reply(202, FEEDBACK_STORED))
    client.feedback(click(RESULT_ID_1))
    client.feedback({"result_id": RESULT_ID_1, "event": "impression"})
    events = [body["events"] for body in client.script.bodies()]
    assert [len(e) for e in events] == [1, 1]
    assert HEX32.match(events[1][0]["event_id"])


def test_an_empty_batch_is_refused_before_sending(serve):
    client = serve()
    with pytest.raises(ValueError, match="events: expected at least one event"):
        client.feedback([])
    assert client.script.requests == []


def test_a_partly_refused_batch_raises_with_what_was_stored(serve, waits):
    client = serve(reply(422, FEEDBACK_PARTLY_REFUSED))
    with pytest.raises(InvalidRequest) as caught:
        client.feedback([click(RESULT_ID_1), click("forged")])
    refused = caught.value
    assert (refused.status, refused.code, refused.field) == (
        422,
        "invalid_input",
        "events.1.result_id",
    )
    assert (refused.accepted, refused.duplicates) == (1, 0)
    assert refused.rejected == [RejectedEvent(1, "events.1.result_id", "forged or mangled")]
    assert len(client.script.requests) == 1 and waits == []  # a 422 is never retried
