"""`blendserve up` (what `make run` ends with): serves, then stops all it started on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from local_up import start_up, stop_up, wait_for_line
from serving_cluster import ROOT, deployment

from deployments.local.cluster import free_port

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def test_up_serves_then_sigterm_stops_everything(serve_home: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    http_port, dashboard_port = free_port(), free_port()
    config["http_options"]["port"] = http_port
    config["applications"][0]["args"]["store"] = str(serve_home / "artifacts")
    config["applications"][0]["args"]["catalog"] = str(serve_home / "data" / "items.parquet")
    deployment(config["applications"][0])["ray_actor_options"]["num_cpus"] = 0.25
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log = tmp_path / "up.log"
    command = [sys.executable, "-m", "deployments.cli.main", "up", str(config_path)]
    command += ["--dashboard-port", str(dashboard_port), "--num-cpus", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for_line(log, "is ready at", process, timeout_s=300)
        printed = log.read_text()
        curl = re.search(r"^  (curl .*?\}')$", printed, re.S | re.M)
        assert curl, f"no curl example printed:\n{printed}"
        assert f"http://127.0.0.1:{http_port}/v1/recommend/home" in curl.group(1)
        # The printed command, as a user would paste it (the development key included).
        answer = subprocess.run(
            ["bash", "-c", curl.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert answer.returncode == 0, answer
        assert len(json.loads(answer.stdout).get("items", [])) == 10, answer.stdout
        refused = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/recommend/home", json={"user_id": "u1"}, timeout=30
        )
        assert refused.status_code == 401, "the API answered without a key"
        metrics = re.search(r"Prometheus metrics.*: (http://\S+)", printed)
        assert metrics and httpx.get(metrics.group(1), timeout=10).status_code == 200
        # The front door takes the public port; Serve's own HAProxy serves it on another.
        behind = re.search(rf"front door on port {http_port} .*HAProxy on (\d+)", printed)
        assert behind, f"no front door printed:\n{printed}"
        serve_port = int(behind.group(1))
        assert serve_port != http_port and _port_open(serve_port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            # SIGTERM first: a SIGKILL would leave its Ray cluster running (own sessions).
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    assert not _port_open(http_port), "the HTTP port still answers after SIGTERM"
    assert not _port_open(serve_port), "Serve's own port still answers after SIGTERM"
    assert not _port_open(dashboard_port), "the Ray dashboard still answers after SIGTERM"


def test_catalogue_changes_and_learned_state_survive_a_restart_of_the_whole_service(
    serve_home: Path, tmp_path: Path
) -> None:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    http_port, dashboard_port = free_port(), free_port()
    config["http_options"]["port"] = http_port
    app = config["applications"][0]
    app["args"]["store"] = str(serve_home / "artifacts")
    app["args"]["catalog"] = str(serve_home / "data" / "items.parquet")
    deployment(app)["ray_actor_options"]["num_cpus"] = 0.25
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config))
    base = f"http://127.0.0.1:{http_port}"
    process = start_up(config_path, tmp_path, tmp_path / "up1.log", dashboard_port)
    try:
        key = (tmp_path / ".blendserve" / "api_key").read_text().strip()
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        added = http.put("/v1/catalog/items/kept", json={"title": "kept", "category": "tech"})
        assert added.status_code == 200, added.text
        served = http.post("/v1/recommend/home", json={"user_id": "u0001", "k": 3}).json()
        removed = served["items"][0]["item_id"]
        assert http.delete(f"/v1/catalog/items/{removed}").status_code == 200
        clicked = served["items"][1]
        events = [
            {"result_id": clicked["result_id"], "event": "impression"},
            {"result_id": clicked["result_id"], "event": "click"},
        ]
        assert http.post("/v1/feedback", json={"events": events}).status_code == 202
        version = http.get("/v1/catalog").json()["version"]
        # No wait: a 202 means the feedback is in the fsync'ed write-ahead log, which
        # the next start writes to Parquet before it serves.
    finally:
        stop_up(process)
    process = start_up(config_path, tmp_path, tmp_path / "up2.log", dashboard_port)
    try:
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert http.get("/v1/catalog").json()["version"] == version
        assert http.get("/v1/catalog/items/kept").json()["title"] == "kept"
        assert http.get(f"/v1/catalog/items/{removed}").status_code == 404
        again = http.post("/v1/recommend/home", json={"user_id": "u0001", "k": 10}).json()
        assert removed not in [i["item_id"] for i in again["items"]]
        learned = http.get("/v1/online").json()
        assert learned["clicks"].get(clicked["item_id"], 0) > 0.9, learned
    finally:
        stop_up(process)
