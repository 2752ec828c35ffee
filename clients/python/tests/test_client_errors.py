"""Error answers map to one exception class per kind, keeping code, field and message."""

from __future__ import annotations

import pytest
from fake_service import reply
from recorded_answers import (
    BODY_TOO_LARGE,
    FORBIDDEN,
    K_TOO_SMALL,
    MODEL_TIMEOUT,
    OVERLOADED,
    RATE_LIMITED,
    UNAUTHENTICATED,
    UNKNOWN_USE_CASE,
    error,
)

from blendserve_client import (
    BlendserveError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)


@pytest.mark.parametrize(
    ("status", "body", "expected", "code", "field"),
    [
        (400, error("invalid_json", "the body is not JSON"), InvalidRequest, "invalid_json", None),
        (401, UNAUTHENTICATED, Unauthorized, "unauthenticated", None),
        (403, FORBIDDEN, Forbidden, "forbidden", None),
        (404, UNKNOWN_USE_CASE, NotFound, "not_found", "use_case"),
        (408, error("http_error", "Request Timeout"), Unavailable, "http_error", None),
        (413, BODY_TOO_LARGE, InvalidRequest, "body_too_large", "body"),
        (422, K_TOO_SMALL, InvalidRequest, "invalid_request", "k"),
        (429, RATE_LIMITED, RateLimited, "rate_limited", None),
        (500, error("internal", "boom"), ServerError, "internal", None),
        (502, error("bad_gateway", "upstream"), ServerError, "bad_gateway", None),
        (503, OVERLOADED, Unavailable, "overloaded", None),
        (504, MODEL_TIMEOUT, Unavailable, "model_timeout", None),
        (409, error("conflict", "odd"), BlendserveError, "conflict", None),
    ],
)
def test_each_status_raises_its_class_with_code_field_and_message(
    serve, status, body, expected, code, field
):
    client = serve(reply(status, body), retries=0)
    with pytest.raises(expected) as caught:
        client.recommend("home", "u0042")
    assert type(caught.value) is expected
    assert (caught.value.status, caught.value.code, caught.value.field) == (status, code, field)
    assert caught.value.message == body["error"]["message"]


def test_validation_problems_are_kept_in_details(serve):
    with pytest.raises(InvalidRequest) as caught:
        serve(reply(422, K_TOO_SMALL)).recommend("home", "u0042", k=0)
    assert caught.value.details["problems"][0]["type"] == "greater_than_equal"


def test_the_message_says_status_code_and_field():
    with pytest.raises(NotFound) as caught:
        raise NotFound("unknown use case 'nope'", status=404, code="not_found", field="use_case")
    assert str(caught.value) == "HTTP 404 not_found (field use_case): unknown use case 'nope'"


def test_errors_also_inherit_the_nearest_builtin():
    assert issubclass(NotFound, LookupError)
    assert issubclass(InvalidRequest, ValueError)
    for cls in (Unauthorized, Forbidden, NotFound, InvalidRequest, RateLimited, Unavailable):
        assert issubclass(cls, BlendserveError)


def test_an_error_without_a_json_body_keeps_the_text(serve):
    client = serve(reply(502, text="<html>502 Bad Gateway</html>"), retries=0)
    with pytest.raises(ServerError) as caught:
        client.models()
    assert (caught.value.code, caught.value.message) == ("http_502", "<html>502 Bad Gateway</html>")


def test_an_oip_style_string_error_is_read_as_the_message(serve):
    with pytest.raises(NotFound) as caught:
        serve(reply(404, {"error": "unknown model 'x'"})).get_item("x")
    assert (caught.value.code, caught.value.message) == ("http_404", "unknown model 'x'")


def test_a_missing_catalogue_item_is_not_found_naming_it(serve):
    body = error("not_found", "unknown catalogue item 'a1'; expected one of []", "catalogue_item")
    with pytest.raises(NotFound) as caught:
        serve(reply(404, body)).get_item("a1")
    assert caught.value.field == "catalogue_item"
