"""The Open Inference Protocol's binary tensor extension, with bodies built and read by
Triton's own HTTP client code (no server needed for that)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deployments.api.oip import OipError, infer_response, parse_infer_request
from deployments.api.oip_binary import binary_reply, split_body, wants_binary_output

ROWS = np.array([[0.4, 5.2, 3.0, 20.0], [0.9, 1.0, 30.0, 8.0]], dtype=np.float32)


def _triton_body(
    inputs: list[object], outputs: list[object] | None = None
) -> tuple[bytes, str | None]:
    import tritonclient.http as triton

    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, None if json_size is None else str(json_size)


def test_a_float_tensor_sent_as_binary_by_default_gives_the_same_rows() -> None:
    import tritonclient.http as triton

    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)  # the client's default: binary data
    body, header = _triton_body([tensor])
    assert header is not None
    request, binary = split_body(body, header)
    parsed, rows = parse_infer_request(request, None, 100, binary)
    assert rows == ROWS.tolist()
    assert wants_binary_output(parsed.parameters, parsed.outputs)  # no outputs named: binary


def test_a_bytes_tensor_sent_as_binary_gives_strings() -> None:
    import tritonclient.http as triton

    users = triton.InferInput("input", [3], "BYTES")
    users.set_data_from_numpy(np.array(["u1", "ü2", ""], dtype=object))
    wanted = [triton.InferRequestedOutput("predict", binary_data=False)]
    body, header = _triton_body([users], wanted)
    request, binary = split_body(body, header)
    parsed, rows = parse_infer_request(request, None, 100, binary)
    assert rows == ["u1", "ü2", ""]
    assert not wants_binary_output(parsed.parameters, parsed.outputs)


def test_a_binary_reply_reads_back_in_tritons_client() -> None:
    import tritonclient.http as triton

    tensor = triton.InferInput("input", [2, 4], "FP32")
    tensor.set_data_from_numpy(ROWS)
    body, header = _triton_body([tensor])
    request, binary = split_body(body, header)
    parsed, _ = parse_infer_request(request, None, 100, binary)
    for predictions in ([0.25, 0.75], [3, 4], ["a", "bé"], [{"items": ["x"], "scores": [1.5]}]):
        content, head = binary_reply(infer_response("m", "1", parsed, predictions))
        result = triton.InferenceServerClient.parse_response_body(content, header_length=head)
        got = result.as_numpy("predict").tolist()
        if isinstance(predictions[0], str):
            assert [g.decode() for g in got] == predictions
        elif isinstance(predictions[0], dict):
            assert [json.loads(g) for g in got] == predictions
        else:
            assert got == predictions
        assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize(
    ("size", "extra", "message"),
    [
        (40, b"", "past the body's binary part"),
        (32, b"\x00\x00", "2 bytes of binary data no input claims"),
        (30, b"", "not whole FP32 values"),
    ],
)
def test_binary_sizes_that_do_not_add_up_are_refused_naming_the_input(
    size: int, extra: bytes, message: str
) -> None:
    head = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    data = ROWS.tobytes()[:size] + extra
    with pytest.raises(OipError, match=message) as info:
        parse_infer_request(head, None, 100, data)
    assert "inputs.0" in str(info.value) or "no input claims" in str(info.value)


def test_a_header_length_outside_the_body_or_not_json_is_a_400() -> None:
    with pytest.raises(OipError, match="not within"):
        split_body(b"{}", "10")
    with pytest.raises(OipError, match="byte count"):
        split_body(b"{}", "ten")
    with pytest.raises(OipError, match="not JSON"):
        split_body(b"\xff\xfe", None)
    with pytest.raises(OipError, match="binary_data_size"):
        parse_infer_request(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}, None, 100, b""
        )
