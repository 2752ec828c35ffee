"""The steps of ``make bench``: what each one starts, which routes it loads at which
concurrencies, and the plan of the run (durations, concurrencies, results so far).
:mod:`benchmarks.run` orders them and writes the report."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.cpu import cpu_delta, snapshot, top_processes
from benchmarks.loadgen import run_wrk
from benchmarks.profile import dag_cost, profile_json, record, summarize
from benchmarks.report import Measurement
from benchmarks.server_state import replica_memory_mb, stage_means_ms
from benchmarks.systems import MLServerSystem, RayServeSystem, System
from benchmarks.variants import (
    ADAPTIVE_BATCHING,
    ROOT,
    TORCH_ONLY,
    UNBATCHED,
    blendserve_config,
    load_yaml,
)

__all__ = ["HOME_BODY", "OIP_BODY", "PREDICT_BODY", "STEPS", "Plan", "Route", "run_step"]

HOME_BODY: dict[str, Any] = {"user_id": "u0042", "k": 10}
PREDICT_BODY: dict[str, Any] = {"instances": [[0.4, 5.2, 3.0, 20.0]]}
OIP_BODY: dict[str, Any] = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [[0.4, 5.2, 3.0, 20.0]]}
    ]
}
CLICK_MODEL = "click_model"
MODEL_NODE = "model_node"
"""The custom resource the ``nodes`` step's worker node offers and ``mf`` asks for."""

STEPS = (
    "echo",
    "blendserve",
    "naive",
    "mlserver",
    "haproxy",
    "replicas",
    "replica",
    "ongoing",
    "nodes",
    "batching",
)


@dataclass(frozen=True)
class Route:
    """One request the load generator sends: its key in the results, path and body."""

    key: str
    path: str
    body: dict[str, Any] | None

    @property
    def label(self) -> str:
        """``POST /path``."""
        return f"POST {self.path}"


HOME = Route("a", "/v1/recommend/home", HOME_BODY)
PREDICT = Route("d_predict", f"/v1/predict/{CLICK_MODEL}", PREDICT_BODY)
INFER = Route("d_infer", f"/v2/models/{CLICK_MODEL}/infer", OIP_BODY)


@dataclass
class Plan:
    """How long and how hard each run loads a system."""

    duration_s: float
    warmup_s: float
    concurrencies: tuple[int, ...]
    variant_concurrency: int
    batching_concurrencies: tuple[int, ...]
    core: int | None
    profile_s: float
    results: list[Measurement] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """One answer of (a) and of (b), to check that both compute the same thing."""


def measure(system: System, route: Route, concurrency: int, plan: Plan, key: str = "") -> None:
    """Warm up, then one measured wrk run with the server's CPU read around it."""
    url = f"{system.base_url}{route.path}"
    if plan.warmup_s > 0:
        run_wrk(url, route.body, concurrency, plan.warmup_s, plan.core, system.headers)
    before = snapshot(*system.session_ids)
    result = run_wrk(url, route.body, concurrency, plan.duration_s, plan.core, system.headers)
    after = snapshot(*system.session_ids)
    spent = cpu_delta(before, after)
    measurement = Measurement(
        key or route.key,
        system.name,
        route.label,
        concurrency,
        result,
        sum(spent.values()),
        top_processes(spent),
    )
    plan.results.append(measurement)
    print(
        f"  {measurement.key:<16} c={concurrency:<3} {result.rps:8.1f} req/s  "
        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  "
        f"cpu {measurement.cpu_ms_per_request:6.2f} ms/req",
        flush=True,
    )


def _blendserve(
    name: str,
    config: dict[str, Any],
    *,
    haproxy: bool = True,
    num_cpus: float = 2,
    worker: dict[str, Any] | None = None,
) -> RayServeSystem:
    return RayServeSystem(
        name,
        config,
        ROOT,
        (HOME.path, HOME.body),
        haproxy=haproxy,
        ready_path="/readyz",
        num_cpus=num_cpus,
        worker=worker,
    )


def _profile_under_load(
    system: RayServeSystem,
    plan: Plan,
    py_spy: Path,
    route: Route,
    deployments: Sequence[str],
    key: str = "",
) -> None:
    """py-spy ``deployments``' replicas, one after the other, while wrk loads ``route``
    at c=16; summaries land in ``plan.profiles`` as ``<deployment> (<route key>)``."""
    pids = {d: system.replica_pid(d) for d in deployments}
    share_s = plan.profile_s / len(pids)
    url = f"{system.base_url}{route.path}"
    load = threading.Thread(
        target=run_wrk,
        args=(url, route.body, 16, share_s * len(pids) + 2, plan.core, system.headers),
        daemon=True,
    )
    load.start()
    time.sleep(1)
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as scratch:
        for deployment, pid in pids.items():
            if pid is None:
                continue
            out = Path(scratch) / f"{deployment}.txt"
            summary = summarize(record(py_spy, pid, share_s, out))
            plan.profiles[f"{deployment} ({key or route.key})"] = profile_json(summary)
    load.join()


def _answer(system: System, route: Route) -> list[dict[str, Any]]:
    """The items of one answer, less what differs per request (request and result ids)."""
    body = httpx.post(
        f"{system.base_url}{route.path}", json=route.body, headers=system.headers, timeout=30
    ).json()
    return [{k: v for k, v in item.items() if k != "result_id"} for item in body["items"]]


def run_step(step: str, plan: Plan, default: dict[str, Any], venv: Path | None) -> None:
    """Start the system(s) of ``step``, measure, stop."""
    base_config = ROOT / "configs" / "default.yaml"
    if step == "echo":
        echo = RayServeSystem(
            "echo", load_yaml(ROOT / "benchmarks/configs/echo.yaml"), ROOT, ("/echo", HOME_BODY)
        )
        with echo:
            for c in plan.concurrencies:
                measure(echo, Route("c", "/echo", HOME_BODY), c, plan)
    elif step == "naive":
        naive_config = load_yaml(ROOT / "benchmarks/configs/naive.yaml")
        with RayServeSystem("naive", naive_config, ROOT, (HOME.path, HOME.body)) as naive:
            plan.answers["b"] = _answer(naive, HOME)
            for c in plan.concurrencies:
                measure(naive, HOME, c, plan, key="b")
            if venv is not None and plan.profile_s > 0:
                py_spy = venv / "bin" / "py-spy"
                try:
                    _profile_under_load(naive, plan, py_spy, HOME, ("NaiveIngress",), key="b")
                except (RuntimeError, OSError) as exc:
                    plan.failures["profile"] = str(exc)
    elif step == "blendserve":
        system = _blendserve("blendserve", blendserve_config(default, 0))
        with system:
            for route in (HOME, PREDICT, INFER):
                for c in plan.concurrencies:
                    measure(system, route, c, plan)
                if route is HOME:
                    plan.profiles["stages"] = stage_means_ms(system, "home", min_count=100)
            plan.answers["a"] = _answer(system, HOME)
            plan.profiles["memory_mb"] = replica_memory_mb(system)
            if venv is not None and plan.profile_s > 0:
                py_spy = venv / "bin" / "py-spy"
                try:
                    _profile_under_load(system, plan, py_spy, HOME, ("Ingress", "model-mf"))
                    _profile_under_load(system, plan, py_spy, INFER, ("Ingress",))
                except (RuntimeError, OSError) as exc:
                    plan.failures["profile"] = str(exc)
        if plan.profile_s > 0:
            cost = dag_cost(base_config, ROOT, "home", str(HOME_BODY["user_id"]))
            plan.profiles["dag_in_process"] = cost.__dict__
    elif step == "mlserver":
        assert venv is not None
        uri = ROOT / "artifacts" / CLICK_MODEL / "1" / "model.joblib"
        mlserver = MLServerSystem(venv, uri, CLICK_MODEL, "1", (INFER.path, INFER.body))
        with mlserver:
            for c in plan.concurrencies:
                measure(mlserver, INFER, c, plan, key="e")
    elif step in ("haproxy", "replicas", "replica", "ongoing"):
        key, config, haproxy = {
            "haproxy": ("a_no_haproxy", blendserve_config(default, 0), False),
            "replicas": ("a_ingress_x1", blendserve_config(default, 0, ingress_replicas=1), True),
            "replica": (
                "a_mf_replica",
                blendserve_config(default, 0, mf_placement="replica"),
                True,
            ),
            # Fewer slots than clients: how HAProxy and Serve queue or refuse the rest.
            "ongoing": (
                "a_max_ongoing_4",
                blendserve_config(default, 0, ingress_max_ongoing=4),
                True,
            ),
        }[step]
        with _blendserve(key, config, haproxy=haproxy) as system:
            measure(system, HOME, plan.variant_concurrency, plan, key=key)
            if step == "replicas":  # what does the second ingress replica give the click model?
                measure(system, INFER, plan.variant_concurrency, plan, key="d_infer_ingress_x1")
    elif step == "nodes":
        # Two Ray nodes on this machine, one CPU each: Ingress replicas on the head,
        # `mf` pinned to the worker by a custom resource (what a GPU node would be).
        config = blendserve_config(default, 0, mf_placement="replica", mf_resources={MODEL_NODE: 1})
        worker = {"num_cpus": 1, "resources": {MODEL_NODE: 1}}
        # The head keeps two logical CPUs: both Ingress replicas (0.5 each), Catalog and
        # EventLog must fit there once `mf` has moved to the worker.
        with _blendserve("a_two_nodes", config, num_cpus=2, worker=worker) as system:
            measure(system, HOME, plan.variant_concurrency, plan, key="a_two_nodes")
    elif step == "batching":
        route = Route("torch", f"/v1/recommend/{TORCH_ONLY}", HOME_BODY)
        for key, batching in (
            ("torch_unbatched", UNBATCHED),
            ("torch_adaptive", ADAPTIVE_BATCHING),
        ):
            config = blendserve_config(
                default,
                0,
                mf_placement="replica",
                mf_batching=batching,
                torch_only_use_case=True,
            )
            with _blendserve(key, config) as system:
                for c in plan.batching_concurrencies:
                    measure(system, route, c, plan, key=key)
    else:  # pragma: no cover - argparse restricts the names
        raise ValueError(f"unknown step {step!r}")
