"""The README's curl example, run against a real deployment, answers in the shape shown."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from serving_cluster import ROOT, whole_answer

pytestmark = pytest.mark.integration


def _readme_example() -> tuple[str, dict[str, Any], dict[str, Any]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try it", 1)[1]
    command = re.search(r"```bash\n(.*?)```", section, re.S)
    shown = re.search(r"```json\n(.*?)```", section, re.S)
    assert command and shown, "README's 'Try it' section lost its curl example"
    path = re.search(r"http://127\.0\.0\.1:8000(/\S+)", command.group(1))
    body = re.search(r"-d '(.*?)'", command.group(1))
    assert path and body
    return path.group(1), json.loads(body.group(1)), json.loads(shown.group(1))


def _shape(value: Any) -> Any:
    """Keys and list lengths, not values: the test cluster trains on smaller data."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k != "components"}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_readme_curl_example_answers_as_shown(client: httpx.Client) -> None:
    path, body, shown = _readme_example()
    answer = whole_answer(client, path, body)  # the README shows a whole answer
    assert _shape(answer) == _shape(shown)
    assert answer["use_case"] == shown["use_case"] and answer["degraded"] is shown["degraded"]
    assert answer["model_versions"] == shown["model_versions"]
    assert [i["pinned"] for i in answer["items"]] == [i["pinned"] for i in shown["items"]]
    component_keys = {frozenset(c) for i in shown["items"] for c in i["components"]}
    assert {frozenset(c) for i in answer["items"] for c in i["components"]} <= component_keys
