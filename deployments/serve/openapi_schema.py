"""The API's OpenAPI schema, checked into ``docs/openapi.json`` so that frontend teams
and client generators have it without a running service, and so that a change of
the API shows in review. ``python -m deployments.serve.openapi_schema`` (``make openapi``)
rewrites it; a unit test and an integration test fail when it drifts from the
code or from the running service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deployments.json_types import JsonObject

__all__ = ["SCHEMA_PATH", "current_schema", "render"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def current_schema() -> JsonObject:
    """The schema the ingress's FastAPI app builds from the code."""
    from deployments.serve.ingress import api  # deferred: imports Ray Serve

    schema: JsonObject = api.openapi()
    return schema


def render(schema: JsonObject) -> str:
    """The file's text: sorted keys, two-space indents, a final newline (stable diffs)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Rewrite ``docs/openapi.json`` from the code."""
    SCHEMA_PATH.write_text(render(current_schema()), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
