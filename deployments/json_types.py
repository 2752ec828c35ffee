"""JSON documents at the edges: HTTP bodies, status pages, reports, protocol messages,
rows of the event store and what Ray's own tools print.

``JsonObject`` is a real type, not an alias of ``dict[str, Any]``: its values must be
JSON (pydantic's recursive ``JsonValue``), which mypy checks where a document is
built. Inside the request path, typed messages travel instead (see ARCHITECTURE.md).
"""

from __future__ import annotations

from pydantic import JsonValue

__all__ = ["JsonObject", "JsonValue", "json_objects"]

JsonObject = dict[str, JsonValue]
"""A JSON object: string keys, JSON values."""


def json_objects(value: JsonValue | None) -> list[JsonObject]:
    """The objects of a JSON list (anything else in it skipped); [] when ``value`` is
    not a list. For reading documents another process wrote, defensively."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
