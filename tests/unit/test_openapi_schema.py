"""The checked-in OpenAPI schema (docs/openapi.json) is the code's."""

from __future__ import annotations

import json

from deployments.openapi_schema import SCHEMA_PATH, current_schema, render


def test_the_checked_in_schema_matches_the_code() -> None:
    checked_in = SCHEMA_PATH.read_text(encoding="utf-8")
    assert checked_in == render(current_schema()), (
        "docs/openapi.json drifted from the code: run `make openapi` and review the diff"
    )


def test_every_operation_documents_its_errors_and_a_summary() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)
            needs_key = bool(operation.get("responses", {}).keys() - {"200", "202", "422"})
            if path.startswith("/v1/") or method == "post":
                assert needs_key and "401" in operation["responses"], (method, path)
