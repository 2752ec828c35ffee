"""The Open Inference Protocol (v2) through a standard client: Triton's HTTP client
calls blendserve's models unchanged (the API key goes in its per-call headers)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from serving_cluster import Deployed

pytestmark = pytest.mark.integration

ROWS = np.array([[0.4, 5.2, 3.0, 20.0], [0.9, 1.0, 30.0, 8.0]], dtype=np.float32)


def test_tritons_http_client_reads_metadata_and_infers(
    deployed: Deployed, client: httpx.Client
) -> None:
    import tritonclient.http as triton

    headers = deployed.cluster.auth_headers()
    server = triton.InferenceServerClient(deployed.url.removeprefix("http://"))
    assert server.is_server_live() and server.is_server_ready()
    assert server.is_model_ready("click_model", headers=headers)
    assert server.is_model_ready("click_model", model_version="1", headers=headers)
    assert not _ready(server, "click_model", "9", headers)
    metadata = server.get_model_metadata("click_model", headers=headers)
    assert metadata["versions"] == ["1"] and metadata["platform"] == "blendserve-click_ranker"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]

    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=False)
    wanted = [triton.InferRequestedOutput("predict", binary_data=False)]
    result = server.infer("click_model", [tensor], outputs=wanted, headers=headers)
    predictions = client.post("/v1/predict/click_model", json={"instances": ROWS.tolist()})
    expected = predictions.json()["predictions"]
    assert result.as_numpy("predict").tolist() == pytest.approx(expected, rel=1e-5)
    versioned = server.infer(
        "click_model", [tensor], model_version="1", outputs=wanted, headers=headers
    )
    assert versioned.get_response()["model_version"] == "1"
    with pytest.raises(triton.InferenceServerException, match="API key"):
        server.infer("click_model", [tensor], outputs=wanted)  # no key


def test_a_recommender_is_described_and_called_by_user_id(
    deployed: Deployed, client: httpx.Client, known_user: str
) -> None:
    import tritonclient.http as triton

    headers = deployed.cluster.auth_headers()
    server = triton.InferenceServerClient(deployed.url.removeprefix("http://"))
    metadata = server.get_model_metadata("mf", headers=headers)
    assert metadata["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["platform"] == "blendserve-torchscript"
    users = triton.InferInput("input", [1], "BYTES")
    users.set_data_from_numpy(np.array([known_user], dtype=object), binary_data=False)
    wanted = [triton.InferRequestedOutput("predict", binary_data=False)]
    result = server.infer("mf", [users], outputs=wanted, headers=headers)
    (answer,) = result.as_numpy("predict").tolist()
    predicted = client.post("/v1/predict/mf", json={"instances": [known_user]}).json()
    assert json.loads(answer) == predicted["predictions"][0]  # the same top items, as JSON


def test_tritons_client_defaults_send_and_receive_binary_tensors(
    deployed: Deployed, client: httpx.Client, known_user: str
) -> None:
    import tritonclient.http as triton

    headers = deployed.cluster.auth_headers()
    server = triton.InferenceServerClient(deployed.url.removeprefix("http://"))
    expected = client.post("/v1/predict/click_model", json={"instances": ROWS.tolist()})
    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)  # binary, the client's default
    # No outputs named: the client asks for every output as binary data.
    result = server.infer("click_model", [tensor], headers=headers)
    assert result.as_numpy("predict").tolist() == pytest.approx(
        expected.json()["predictions"], rel=1e-5
    )
    wanted = [triton.InferRequestedOutput("predict")]  # binary, by default
    again = server.infer("click_model", [tensor], outputs=wanted, headers=headers)
    assert again.as_numpy("predict").tolist() == result.as_numpy("predict").tolist()
    users = triton.InferInput("input", [1], "BYTES")
    users.set_data_from_numpy(np.array([known_user], dtype=object))
    (answer,) = server.infer("mf", [users], headers=headers).as_numpy("predict").tolist()
    predicted = client.post("/v1/predict/mf", json={"instances": [known_user]}).json()
    assert json.loads(answer) == predicted["predictions"][0]


def _ready(server: object, model: str, version: str, headers: dict[str, str]) -> bool:
    import tritonclient.http as triton

    try:
        return bool(server.is_model_ready(model, model_version=version, headers=headers))  # type: ignore[attr-defined]
    except triton.InferenceServerException:
        return False


def test_the_running_service_serves_the_checked_in_openapi_schema(deployed: Deployed) -> None:
    from deployments.serve.openapi_schema import SCHEMA_PATH, render

    live = httpx.get(f"{deployed.url}/openapi.json", timeout=30).json()
    assert render(live) == SCHEMA_PATH.read_text(encoding="utf-8"), (
        "the service's /openapi.json differs from docs/openapi.json: run `make openapi`"
    )
