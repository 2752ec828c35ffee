"""The README's "Your own data and models" examples, run as written: one model per
format published with `blendserve publish`, then a config serving them all checked
with `blendserve validate --load`."""

from __future__ import annotations

from pathlib import Path

from docs_runner import REPO, blocks, run, section

from models.base import RecommendQuery
from models.registry import load_model
from models.store import ArtifactStore

SECTION = section(REPO / "README.md", "## Your own data and models")


def test_the_section_shows_every_format_it_promises() -> None:
    published = " ".join(b.body for b in blocks(SECTION) if b.lang == "bash")
    for format in ("factors", "torchscript", "onnx", "sklearn", "python"):
        assert f"--format {format}" in published, format


def test_every_example_publishes_and_the_config_validates(tmp_path: Path) -> None:
    outputs = run(SECTION, tmp_path)
    joined = "\n".join(outputs)
    for name, format in (
        ("svd", "factors"),
        ("torch_mf", "torchscript"),
        ("onnx_mf", "onnx"),
        ("ctr", "sklearn"),
        ("seasonal", "python"),
        ("ctr_mlflow", "sklearn"),
    ):
        assert f"published {name} version 1 ({format})" in joined, name
    assert "smoke test: passed: predict (1 examples)" in joined  # the sklearn example
    validated = outputs[-1]
    assert "ok: blendserve" in validated and "error" not in validated
    assert "ok: seasonal v1: loads (python); recommends" in validated
    # The three factor models agree: the same matrix, the same taste.
    store = ArtifactStore(tmp_path / "artifacts")
    tops = [
        load_model(store, name, "1").recommend([RecommendQuery("2")], 2)[0]
        for name in ("svd", "torch_mf", "onnx_mf")
    ]
    assert {item for item, _ in tops[0]} == {"20", "40"}  # user 2 rated 20 and 40
    assert [i for i, _ in tops[0]] == [i for i, _ in tops[1]] == [i for i, _ in tops[2]]
