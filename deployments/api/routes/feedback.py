"""``POST /v1/feedback``: impressions, clicks and conversions of served items."""

# No `from __future__ import annotations`: FastAPI reads these signatures.

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deployments.api.docs import error_responses
from deployments.api.edge import require
from deployments.api.errors import error_body
from deployments.api.schemas import FEEDBACK_BODY, FeedbackRefused, FeedbackResponse
from deployments.api.state import this_ingress
from deployments.events.client import EventLogUnavailable
from deployments.events.feedback import feedback_entries, feedback_records
from deployments.events.records import FeedbackStored

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/feedback",
    status_code=202,
    response_model=FeedbackResponse,
    summary="Impressions, clicks and conversions of served items, one or a batch.",
    dependencies=[require("infer")],
    responses={
        **error_responses(400, 401, 403, 413, 429, 503),
        422: {
            "model": FeedbackRefused,
            "description": "Some entries were refused (named); the others were stored.",
        },
    },
    openapi_extra=FEEDBACK_BODY,
)
async def feedback(request: Request) -> Any:
    """Store feedback events durably (202 only once they are in the write-ahead log).

    A batch is checked entry by entry: good entries are stored even when others are
    refused. If any is refused the answer is 422, naming each refused entry's
    field, with `accepted` counting the entries stored anyway (resending the whole
    batch is safe with `event_id`s). Events whose `event_id` was seen before count
    as `duplicates` and are not stored again.
    """
    ingress = this_ingress()
    if ingress.events is None:
        raise EventLogUnavailable("the event log is off (args.events is null)")
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return JSONResponse(error_body("invalid_json", "the body is not JSON"), status_code=400)
    entries, prefix = feedback_entries(body)
    records, rejected = feedback_records(entries, prefix, ingress.result_ids)
    stored = await ingress.events.feedback(records) if records else FeedbackStored(0, 0)
    answer = {
        "accepted": stored.accepted,
        "duplicates": stored.duplicates,
        "rejected": [r.model_dump() for r in rejected],
    }
    if rejected:
        first = rejected[0]
        message = f"{len(rejected)} of {len(entries)} events refused; {first.field}: "
        error = error_body("invalid_input", message + first.message, first.field)
        return JSONResponse({**error, **answer}, status_code=422)
    return JSONResponse(answer, status_code=202)
