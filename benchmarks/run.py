"""``make bench``: every system, one load generator, one report.

Systems are started one at a time (each alone on the machine), loaded with wrk
(one thread, pinned to one core) after a warm-up, and stopped before the next:

* ``echo``: a bare one-deployment Ray Serve app (c);
* ``blendserve``: the demo config, ``/v1/recommend/home`` (a), ``/v1/predict`` and
  ``/v2/models/click_model/infer`` (d), plus a py-spy profile at c=16;
* ``naive``: the same use case as one deployment per DAG node (b);
* ``mlserver``: the click model in MLServer (e);
* ``haproxy``, ``replicas``, ``inline``: blendserve without HAProxy, with one
  ingress replica instead of the default two (``home`` and the OIP infer), with
  ``mf`` inline, with ``max_ongoing_requests: 4`` per Ingress replica (c=16 only);
* ``nodes``: two Ray nodes (one CPU each), ``mf`` on the second (c=16 only);
* ``batching``: a torch-only use case unbatched vs adaptive (c=64 and c=1).

Usage: ``python -m benchmarks.run [--quick] [--only echo,blendserve,...]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.cpu import cpu_delta, snapshot, top_processes
from benchmarks.loadgen import run_wrk
from benchmarks.markdown import render
from benchmarks.profile import dag_cost, profile_json, record, summarize
from benchmarks.report import Measurement, assess_targets, keep_findings, results_json, write_json
from benchmarks.systems import MLServerSystem, RayServeSystem, System
from benchmarks.tooling import ensure_bench_venv, ensure_wrk, tool_versions
from benchmarks.variants import (
    ADAPTIVE_BATCHING,
    ROOT,
    TORCH_ONLY,
    UNBATCHED,
    blendserve_config,
    budget_ms,
    load_yaml,
)

__all__ = ["main"]

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
    "inline",
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
            plan.answers["a"] = _answer(system, HOME)
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
    elif step in ("haproxy", "replicas", "inline", "ongoing"):
        key, config, haproxy = {
            "haproxy": ("a_no_haproxy", blendserve_config(default, 0), False),
            "replicas": ("a_ingress_x1", blendserve_config(default, 0, ingress_replicas=1), True),
            "inline": ("a_mf_inline", blendserve_config(default, 0, mf_placement="inline"), True),
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
        config = blendserve_config(default, 0, mf_resources={MODEL_NODE: 1})
        worker = {"num_cpus": 1, "resources": {MODEL_NODE: 1}}
        with _blendserve("a_two_nodes", config, num_cpus=1, worker=worker) as system:
            measure(system, HOME, plan.variant_concurrency, plan, key="a_two_nodes")
    elif step == "batching":
        route = Route("torch", f"/v1/recommend/{TORCH_ONLY}", HOME_BODY)
        for key, batching in (
            ("torch_unbatched", UNBATCHED),
            ("torch_adaptive", ADAPTIVE_BATCHING),
        ):
            config = blendserve_config(default, 0, mf_batching=batching, torch_only_use_case=True)
            with _blendserve(key, config) as system:
                for c in plan.batching_concurrencies:
                    measure(system, route, c, plan, key=key)
    else:  # pragma: no cover - argparse restricts the names
        raise ValueError(f"unknown step {step!r}")


def machine() -> dict[str, Any]:
    """CPU model, cores and memory of this machine (Linux /proc)."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if ":" in line]
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        models[0] if models else "?",
    )
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": os.uname().release,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: short, c=1 and 16")
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"comma-separated steps to run (default: all): {', '.join(STEPS)}",
    )
    parser.add_argument("--duration-s", type=float, default=None, help="measured seconds per run")
    parser.add_argument("--warmup-s", type=float, default=None, help="warm-up seconds per run")
    parser.add_argument(
        "--core",
        type=int,
        default=(os.cpu_count() or 1) - 1,
        help="CPU that wrk is pinned to (default: the last one)",
    )
    parser.add_argument("--output-md", type=Path, default=None)
    parser.add_argument("--output-json", type=Path, default=None)
    return parser


def _steps(only: str) -> list[str]:
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown:
        raise SystemExit(f"--only: unknown steps {unknown}; expected some of {list(STEPS)}")
    return [s for s in STEPS if s in chosen]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen steps and write the report; 1 when any step failed."""
    args = _parser().parse_args(argv)
    steps = _steps(args.only)
    full = not args.quick and len(steps) == len(STEPS)
    plan = Plan(
        duration_s=args.duration_s or (3.0 if args.quick else 8.0),
        warmup_s=args.warmup_s if args.warmup_s is not None else (1.0 if args.quick else 2.0),
        concurrencies=(1, 16) if args.quick else (1, 16, 64),
        variant_concurrency=16,
        batching_concurrencies=(64, 1),
        core=args.core,
        profile_s=4.0 if args.quick else 8.0,
    )
    results_dir = ROOT / "benchmarks" / "results"
    output_md = args.output_md or (ROOT / "BENCHMARKS.md" if full else results_dir / "quick.md")
    output_json = args.output_json or results_dir / ("latest.json" if full else "quick.json")
    signal.signal(signal.SIGTERM, _interrupt)  # a stop takes Ctrl-C's path: stop servers

    ensure_wrk()
    venv = ensure_bench_venv() if {"mlserver", "blendserve", "naive"} & set(steps) else None
    default = load_yaml(ROOT / "configs" / "default.yaml")
    started = dt.datetime.now(dt.UTC)
    for step in steps:
        print(f"[{step}]", flush=True)
        _guarded(step, plan, functools.partial(run_step, step, plan, default, venv))

    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": round((dt.datetime.now(dt.UTC) - started).total_seconds()),
        "command": " ".join(["python -m benchmarks.run", *map(shlex.quote, argv or sys.argv[1:])]),
        "machine": machine(),
        "versions": tool_versions(venv),
        "plan": {
            "duration_s": plan.duration_s,
            "warmup_s": plan.warmup_s,
            "concurrencies": plan.concurrencies,
            "variant_concurrency": plan.variant_concurrency,
            "batching_concurrencies": plan.batching_concurrencies,
            "wrk_core": plan.core,
            "steps": steps,
        },
        "bodies": {"home": HOME_BODY, "predict": PREDICT_BODY, "infer": OIP_BODY},
        "batching": {"unbatched": UNBATCHED.describe(), "adaptive": ADAPTIVE_BATCHING.describe()},
    }
    budget = budget_ms(default, "home")
    targets = assess_targets(plan.results, budget)
    same = plan.answers["a"] == plan.answers["b"] if {"a", "b"} <= set(plan.answers) else None
    meta["naive_answers_like_blendserve"] = same
    extra = {"profiles": plan.profiles, "failures": plan.failures}
    write_json(output_json, results_json(meta, plan.results, targets, extra))
    previous = output_md.read_text(encoding="utf-8") if output_md.exists() else None
    output_md.parent.mkdir(parents=True, exist_ok=True)
    output_md.write_text(
        render(meta, plan.results, targets, plan.profiles, plan.failures, keep_findings(previous)),
        encoding="utf-8",
    )
    print(f"wrote {output_md} and {output_json}")
    for target in targets:
        state = {True: "met", False: "MISSED", None: "not measured"}[target.met]
        print(f"  {state:>12}: {target.name}: {target.measured}")
    return 1 if plan.failures else 0


def _guarded(step: str, plan: Plan, work: Callable[[], None]) -> None:
    """Run one step; a failure is recorded and the next step still runs."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - one system failing must not lose the others' results
        traceback.print_exc()
        plan.failures[step] = f"{type(exc).__name__}: {str(exc)[:500]}"


if __name__ == "__main__":
    sys.exit(main())
