"""``make bench``: every system, one load generator, one report.

Systems are started one at a time (each alone on the machine), loaded with wrk
(one thread, pinned to one core) after a warm-up, and stopped before the next:

* ``echo``: a bare one-deployment Ray Serve app (c);
* ``blendserve``: the demo config, ``/v1/recommend/home`` (a), ``/v1/predict`` and
  ``/v2/models/click_model/infer`` (d), plus a py-spy profile at c=16;
* ``naive``: the same use case as one deployment per DAG node (b);
* ``mlserver``: the click model in MLServer (e);
* ``haproxy``, ``replicas``, ``replica``: blendserve without HAProxy, with one
  ingress replica instead of the default two (``home`` and the OIP infer), with
  ``mf`` in its own replica (calls coalesced), with ``max_ongoing_requests: 4`` per
  Ingress replica (c=16 only);
* ``nodes``: two Ray nodes (head two logical CPUs, worker one), ``mf`` on the second (c=16 only);
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
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.markdown import render
from benchmarks.report import assess_targets, keep_findings, results_json, write_json
from benchmarks.steps import HOME_BODY, OIP_BODY, PREDICT_BODY, STEPS, Plan, run_step
from benchmarks.tooling import ensure_bench_venv, ensure_wrk, tool_versions
from benchmarks.variants import (
    ADAPTIVE_BATCHING,
    ROOT,
    UNBATCHED,
    budget_ms,
    load_yaml,
)

__all__ = ["main"]


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
    dag = plan.profiles.get("dag_in_process")
    targets = assess_targets(plan.results, budget, dag["ms_per_request"] if dag else None)
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
