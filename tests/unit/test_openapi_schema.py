"""The checked-in OpenAPI schema (docs/openapi.json) is the code's."""

from __future__ import annotations

import json

from deployments.serve.openapi_schema import SCHEMA_PATH, current_schema, render


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


def _has_example(schema: dict[str, object], components: dict[str, dict[str, object]]) -> bool:
    if "$ref" in schema:
        schema = components[str(schema["$ref"]).rsplit("/", 1)[-1]]
    if schema.get("examples") or schema.get("example"):
        return True
    return any(_has_example(s, components) for s in schema.get("anyOf", []))  # type: ignore[attr-defined]


def test_every_request_body_has_an_example() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    components = schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody")
            if body is None or path.startswith("/v2/"):
                continue  # the Open Inference Protocol's bodies are the protocol's
            media = body["content"]["application/json"]
            assert media.get("example") or _has_example(media["schema"], components), (
                method,
                path,
            )


def test_every_v1_success_answer_has_an_example() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    components = schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            status = "202" if "202" in operation["responses"] else "200"
            media = operation["responses"][status]["content"]["application/json"]
            example = media.get("example") or _has_example(media.get("schema", {}), components)
            assert example, (method, path)
