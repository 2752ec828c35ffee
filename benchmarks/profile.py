"""Where the time goes: a py-spy profile of a replica under load, and the cost of the
blending DAG alone, in process, without Ray or HTTP.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``);
:func:`summarize` charges each sample to the layer of its innermost Python frame
(blendserve, model maths, HTTP framework, Ray Serve, serialization, ...). Samples
whose innermost Python frame is a thread's or Ray's worker loop ran native code
under it (uvloop, gRPC's C core, Ray's core worker).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import re
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.variants import ROOT

__all__ = ["DagCost", "ProfileSummary", "dag_cost", "profile_json", "record", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?):\d+\)$")
_NATIVE_LOOPS = ("Worker.main_loop", "Thread.run", "BaseEventLoop.run_forever")
_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("blendserve: blending DAG and maths", ("blending/",)),
    ("blendserve: model adapters", ("models/",)),
    ("blendserve: ingress, schemas, gateway", ("deployments/",)),
    ("benchmark apps", ("benchmarks/",)),
    ("model maths: torch, sklearn, numpy, pandas", ("torch/", "sklearn/", "numpy/", "pandas/")),
    (
        "serialization: cloudpickle, pickle",
        ("ray/cloudpickle/", "pickle", "copyreg", "ray/serve/_private/serialization.py"),
    ),
    (
        "HTTP: FastAPI, Starlette, pydantic, JSON",
        ("fastapi/", "starlette/", "pydantic", "json/", "uvicorn/", "h11/", "anyio/"),
    ),
    ("Ray Serve: replica, router, handles, metrics", ("ray/serve/",)),
    ("Ray core, gRPC, OpenTelemetry", ("ray/", "grpc/", "opentelemetry/", "google/")),
    ("asyncio, threads, logging", ("asyncio/", "threading", "concurrent/", "logging/", "uvloop")),
)
NATIVE = "native code under a loop (uvloop, gRPC C core, Ray core worker)"


@dataclass(frozen=True)
class ProfileSummary:
    """Shares of samples by layer (innermost frame) and the busiest functions."""

    samples: int
    layers: dict[str, float]
    """Layer -> share of samples, largest first."""
    top_functions: list[tuple[str, float]]
    """``function (file)`` -> share of samples as the innermost frame."""


def _layer(frame: str) -> str:
    match = _FRAME.match(frame)
    func, path = (match["func"], match["path"]) if match else (frame, "")
    if func in _NATIVE_LOOPS:
        return NATIVE
    for layer, prefixes in _LAYERS:
        if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
            return layer
    return "other Python"


def summarize(collapsed: str, top: int = 10) -> ProfileSummary:
    """A :class:`ProfileSummary` of py-spy's raw (collapsed-stack) output."""
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        innermost = stack.split(";")[-1]
        total += n
        layers[_layer(innermost)] += n
        match = _FRAME.match(innermost)
        name = f"{match['func']} ({match['path']})" if match else innermost
        functions[name] += n
    if not total:
        return ProfileSummary(0, {}, [])
    return ProfileSummary(
        total,
        {k: v / total for k, v in layers.most_common()},
        [(k, v / total) for k, v in functions.most_common(top)],
    )


def record(py_spy: Path, pid: int, duration_s: float, out: Path, rate_hz: int = 200) -> str:
    """Sample ``pid`` for ``duration_s`` without pausing it; the collapsed stacks."""
    target = ["--pid", str(pid), "--duration", f"{duration_s:g}", "--output", str(out)]
    options = ["--rate", str(rate_hz), "--format", "raw", "--nonblocking"]
    result = subprocess.run(
        [str(py_spy), "record", *target, *options],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
    )
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({result.returncode}): {result.stderr[-1000:]}")
    return out.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class DagCost:
    """The in-process cost of one use case's DAG for one request, without Ray or HTTP."""

    use_case: str
    requests: int
    ms_per_request: float
    top_functions: list[tuple[str, float]]
    """``function (file)`` -> ms per request spent in it (own time, cProfile)."""


def dag_cost(config: Path, home: Path, use_case: str, user_id: str, n: int = 300) -> DagCost:
    """Run ``use_case`` of ``config`` ``n`` times in process with every model loaded here.

    Models placed in replicas are loaded in process too, so this is the DAG's and
    the models' compute alone: the floor if serving cost nothing.
    """
    os.environ.setdefault("BLENDSERVE_HOME", str(home))
    from blending.candidates import BlendContext
    from blending.catalog import StaticCatalog
    from blending.dag import BlendPlan
    from blending.gateway import LocalModels
    from deployments.config import load_serve_config, resolve_store
    from models.registry import load_model
    from models.store import ArtifactStore

    (app,) = load_serve_config(config).values()
    spec = app.live.use_cases[use_case]
    store = ArtifactStore(resolve_store(app.args.store))
    names = {node.model for node in spec.sources().values()}
    models = LocalModels(
        {
            name: load_model(store, name, app.rollouts[name].version, app.args.models[name].options)
            for name in names
        }
    )
    catalog = (
        StaticCatalog.from_parquet(resolve_store(app.args.catalog)) if app.args.catalog else None
    )
    plan = BlendPlan(use_case, spec)
    gc.freeze()  # as the ingress does once its models are loaded

    async def serve(count: int) -> None:
        for _ in range(count):
            ctx = BlendContext(user_id, 10, frozenset(), {}, uuid.uuid4().hex, catalog)
            outcome = await plan.run(ctx, models)
            for item in outcome.items:
                _ = item.components  # provenance is built for what is returned

    asyncio.run(serve(20))  # warm-up
    started = time.perf_counter()
    asyncio.run(serve(n))
    elapsed = time.perf_counter() - started
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(serve(n))
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows: list[tuple[str, float]] = []
    for (path, _, func), entry in stats.stats.items():  # type: ignore[attr-defined]
        own_s = float(entry[2])
        rows.append((f"{func} ({_short(path)})", 1000 * own_s / n))
    rows.sort(key=lambda row: -row[1])
    return DagCost(use_case, n, 1000 * elapsed / n, rows[:8])


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def profile_json(summary: ProfileSummary) -> dict[str, Any]:
    """A summary as JSON."""
    return {"samples": summary.samples, "layers": summary.layers, "top": summary.top_functions}
