"""The ``shared`` app's event log off the node, through the HTTP API: its Parquet on a
real S3-compatible server, its write-ahead log on a small tmpfs that fills up."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pyarrow.fs as pafs
from cluster_config import SharedState
from serving_cluster import SHARED_PREFIX, until
from small_disk import fill

from deployments.events.store import read_events


def _s3_events(shared: SharedState, kind: str, column: str) -> list[str]:
    filesystem, root = pafs.FileSystem.from_uri(shared.events_uri)
    return [str(v) for v in read_events(filesystem, f"{root}/shared", kind).column(column)]


def _recommend(client: httpx.Client, user: str) -> dict[str, Any]:
    answer = client.post(f"{SHARED_PREFIX}/v1/recommend/home", json={"user_id": user, "k": 3})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _click(result_id: str) -> dict[str, Any]:
    return {"result_id": result_id, "event": "click", "event_id": f"disk-{uuid.uuid4().hex}"}


def test_served_lists_and_feedback_reach_the_object_store(
    client: httpx.Client, shared_state: SharedState
) -> None:
    served = _recommend(client, "s3-reader")
    event = _click(served["items"][0]["result_id"])
    answer = client.post(f"{SHARED_PREFIX}/v1/feedback", json={"events": [event]})
    assert answer.status_code == 202, answer.text
    until(
        lambda: (
            event["event_id"] in _s3_events(shared_state, "feedback", "event_id")
            and served["request_id"] in _s3_events(shared_state, "served", "request_id")
        ),
        what="the click and its served list in Parquet on S3",
    )


def test_a_full_wal_disk_refuses_feedback_by_name_keeps_serving_and_loses_nothing(
    client: httpx.Client, shared_state: SharedState
) -> None:
    before = _recommend(client, "before-the-disk-fills")
    ballast = fill(shared_state.wal_dir)
    try:
        during = _recommend(client, "while-the-disk-is-full")  # reads keep working
        event = _click(during["items"][0]["result_id"])
        refused = client.post(f"{SHARED_PREFIX}/v1/feedback", json={"events": [event]})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "event_log_unavailable", error
        assert "No space left on device" in error["message"], error
        assert refused.headers.get("retry-after"), "a client is told when to try again"
    finally:
        ballast.unlink()
    stored = client.post(f"{SHARED_PREFIX}/v1/feedback", json={"events": [event]})
    assert stored.status_code == 202 and stored.json()["accepted"] == 1, stored.text

    def all_in_s3() -> bool:
        served = _s3_events(shared_state, "served", "request_id")
        clicks = _s3_events(shared_state, "feedback", "event_id")
        return (
            before["request_id"] in served
            and during["request_id"] in served  # buffered while the disk was full
            and clicks.count(event["event_id"]) == 1
        )

    until(all_in_s3, timeout_s=60, what="every served list and the click, once, on S3")
