"""docs/your-data.md, run as written on a MovieLens-shaped file (no header line, CRLF
line ends): train, publish a curated list, validate, evaluate, serve, and ask for a
user by the integer id the application knows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from docs_runner import REPO, blocks, run, shell_env
from local_up import start_up, stop_up
from movielens_like import write_movielens_like

from deployments.local.cluster import free_port

pytestmark = pytest.mark.integration

TUTORIAL = (REPO / "docs" / "your-data.md").read_text(encoding="utf-8")


def test_the_data_config_in_the_tutorial_is_the_one_the_unit_tests_use() -> None:
    from movielens_like import MOVIELENS_DATA_CONFIG

    files = {b.file: b.body for b in blocks(TUTORIAL) if b.file}
    assert files["data.yaml"] == MOVIELENS_DATA_CONFIG


def test_the_tutorial_runs_from_a_ratings_file_to_a_served_blend(tmp_path: Path) -> None:
    write_movielens_like(tmp_path, header=False, line_end="\r\n")
    port = free_port()
    # The tutorial's port, moved to a free one so the test never meets a running service.
    tutorial = TUTORIAL.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "port: 8000", f"port: {port}"
    )
    outputs = run(tutorial, tmp_path, skip_shell=("blendserve up", "curl"))
    trained, published, validated, evaluated = outputs
    table = trained[trained.index("MODEL") :]
    # Models only: the indented "mf candidate" rows follow.
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line[:1].strip()}
    assert float(rows["mf"][1]) >= 1.2 * float(rows["popularity"][1]), table
    assert "2 of 2 items in the catalogue" in published
    assert "ok: mf v1: " in validated and "items in the catalogue" in validated
    # Source nodes are scored too, training items excluded: the collaborative one wins.
    ndcg = _ndcg_by_blend(evaluated)
    assert ndcg["cf"] > ndcg["popular"], evaluated
    assert (tmp_path / "report.html").is_file()

    assert "\nblendserve up serve.yaml\n" in TUTORIAL
    process = start_up(Path("serve.yaml"), tmp_path, tmp_path / "up.log", free_port())
    try:
        (curl,) = [b.body for b in blocks(tutorial) if b.body.startswith("curl")]
        answer = _bash(curl, tmp_path)
    finally:
        stop_up(process)
    items = [item["item_id"] for item in answer["items"]]
    assert len(items) == 5 and items[0] == "318", answer  # the editors' first pick, slot 1
    movies = {line.split(",")[0] for line in (tmp_path / "movies.csv").read_text().splitlines()}
    assert set(items) <= movies  # the team's own ids, unprefixed
    blended = answer["items"][1]
    assert {c["source"] for c in blended["components"]} & {"cf", "popular"}, blended
    assert answer["model_versions"] == {"mf": "1", "popularity": "1", "editors": "1"}, answer


def _ndcg_by_blend(report: str) -> dict[str, float]:
    """NDCG@10 per row of `blendserve evaluate`'s table (its third "value ±interval")."""
    found = {}
    for line in report.splitlines():
        values = re.findall(r"(\d+\.\d+) ±", line)
        if len(values) >= 3:
            found[line.split()[0]] = float(values[2])
    return found


def _bash(command: str, workdir: Path) -> dict[str, object]:
    import subprocess

    result = subprocess.run(
        ["bash", "-c", command],
        cwd=workdir,
        env=shell_env(workdir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result
    answer: dict[str, object] = json.loads(result.stdout)
    return answer
