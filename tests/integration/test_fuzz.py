"""Schemathesis against the running service's own OpenAPI schema.

For every operation, Hypothesis generates requests that fit the schema (positive)
and requests that break it (negative), once with any path parameters and once with
served use cases and models so bodies reach the handlers. No answer may be a 5xx,
invalid requests must be refused with a 4xx, and every answer must match the schema
(documented status, content type and body).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from serving_cluster import Deployed

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 30
SERVED = {"use_case": "home", "model": "click_model", "version": "1"}


def _fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], path_parameters: Any
) -> None:
    strategy = operation.as_strategy(mode, path_parameters=path_parameters)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure reproduces
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=checks, timeout=30)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("served_paths", [False, True], ids=["any-path", "served-path"])
def test_no_5xx_and_answers_match_the_schema(
    deployed: Deployed, client: httpx.Client, mode: GenerationMode, served_paths: bool
) -> None:
    schema = schemathesis.openapi.from_url(f"{deployed.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    failures: list[str] = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        fixed = {n: v for n, v in SERVED.items() if n in names} if served_paths else None
        if served_paths and not names:
            continue
        try:
            _fuzz(operation, mode, dict(client.headers), fixed or None)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.path  # nothing to break
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
