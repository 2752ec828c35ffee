"""Open Inference Protocol tensors: requests to rows, predictions to a reply."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.api.oip import OipError, infer_response, parse_infer_request

FEATURES = ["a", "b"]


def _tensor(name: str, shape: list[int], data: list[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_one_matrix_input_gives_one_row_per_instance() -> None:
    body = {"id": "r1", "inputs": [_tensor("input-0", [2, 2], [1, 2, 3, 4])]}
    request, rows = parse_infer_request(body, FEATURES, 100)
    assert rows == [[1.0, 2.0], [3.0, 4.0]] and request.id == "r1"
    nested = {"inputs": [_tensor("x", [2, 2], [[1, 2], [3, 4]])]}
    assert parse_infer_request(nested, None, 100)[1] == rows


def test_per_feature_inputs_join_in_the_models_feature_order() -> None:
    body = {"inputs": [_tensor("b", [2], [10, 20]), _tensor("a", [2, 1], [1, 2])]}
    assert parse_infer_request(body, FEATURES, 100)[1] == [[1.0, 10.0], [2.0, 20.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [_tensor("x", [2, 2], [1, 2, 3])]}, "needs 4 values, data has 3"),
        ({"inputs": [_tensor("x", [1, 2], ["a", "b"])]}, "inputs.0: data is not FP32"),
        ({"inputs": [_tensor("x", [1], [1], "FP99")]}, "inputs.0.datatype"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [_tensor("a", [1], [1]), _tensor("zz", [1], [2])]}, "named after"),
        ({"inputs": [_tensor("x", [3, 1], [1, 2, 3])]}, "at most 2 rows"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: dict[str, Any], message: str) -> None:
    with pytest.raises(OipError, match=message) as info:
        parse_infer_request(body, FEATURES, 2)
    assert info.value.status == 400


def test_reply_types_its_output_tensor() -> None:
    request, _ = parse_infer_request({"id": "q", "inputs": [_tensor("x", [1], [1])]}, None, 10)
    reply = infer_response("m", "3", request, [0.25, 1])
    assert reply == {
        "model_name": "m",
        "model_version": "3",
        "id": "q",
        "outputs": [{"name": "predict", "shape": [2], "datatype": "FP64", "data": [0.25, 1.0]}],
    }
    assert infer_response("m", "3", request, [1, 2])["outputs"][0]["datatype"] == "INT64"
    assert infer_response("m", "3", request, [["x"]])["outputs"][0]["datatype"] == "BYTES"
