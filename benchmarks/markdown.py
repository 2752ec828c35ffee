"""``BENCHMARKS.md``: the setup, the tables, the ratios, the targets and the profiles."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Measurement, Target, find, ratios

__all__ = ["LABELS", "render", "write_section"]

LABELS = {
    "a": "(a) blendserve",
    "b": "(b) naive Serve composition",
    "c": "(c) Serve echo",
    "d_predict": "(d) blendserve predict",
    "d_infer": "(d) blendserve OIP infer",
    "e": "(e) MLServer",
    "a_no_haproxy": "blendserve, throughput mode without HAProxy",
    "a_ingress_x1": "blendserve, 1 Ingress replica",
    "a_mf_replica": "blendserve, `mf` placement: replica (coalesced calls)",
    "a_max_ongoing_4": "blendserve, Ingress `max_ongoing_requests: 4`",
    "a_two_nodes": (
        "blendserve on two Ray nodes (head two logical CPUs, worker one), `mf` on the second"
    ),
    "d_infer_ingress_x1": "blendserve, 1 Ingress replica",
    "torch_unbatched": "torch only, one call per request (`max_batch_size: 1`, no coalescing)",
    "torch_adaptive": "torch only, coalesced calls and adaptive batching",
}
MAIN_KEYS = ("a", "b", "c", "d_predict", "d_infer", "e")
VARIANTS = (
    ("a", "a"),
    ("a_no_haproxy", "a"),
    ("a_ingress_x1", "a"),
    ("a_mf_replica", "a"),
    ("a_max_ongoing_4", "a"),
    ("a_two_nodes", "a"),
    ("d_infer", "d_infer"),
    ("d_infer_ingress_x1", "d_infer"),
)
"""Variant and the default it is compared with, at c=16."""


def _num(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _row(m: Measurement) -> str:
    w = m.wrk
    return (
        f"| {LABELS.get(m.key, m.key)} | `{m.route}` | {m.concurrency} | {_num(w.rps)} | "
        f"{_num(w.p50_ms, 2)} | {_num(w.p99_ms, 2)} | {w.errors} | "
        f"{_num(m.cpu_ms_per_request, 2)} |"
    )


_HEADER = (
    "| system | request | c | req/s | p50 ms | p99 ms | errors | server CPU ms/req |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def _table(results: Sequence[Measurement], keys: Sequence[str]) -> str:
    rows = [
        _row(m)
        for key in keys
        for m in sorted(results, key=lambda r: r.concurrency)
        if m.key == key
    ]
    return "\n".join([_HEADER, *rows]) if rows else "_Not measured in this run._"


def _ratios(results: Sequence[Measurement]) -> str:
    lines = [
        "| ratio | c | throughput | p50 | p99 | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"a": "(a)", "b": "(b)", "c": "(c)", "d_infer": "(d) infer", "d_predict": "(d) predict"}
    names["e"] = "(e)"
    for r in ratios(results):
        lines.append(
            f"| {names[r.key]} / {names[r.baseline]} | {r.concurrency} | {_num(r.rps, 2)}x | "
            f"{_num(r.p50, 2)}x | {_num(r.p99, 2)}x | {_num(r.cpu_per_request, 2)}x |"
        )
    return "\n".join(lines) if len(lines) > 2 else "_Not measured in this run._"


def _targets(targets: Sequence[Target]) -> str:
    lines = ["| target | goal | status | measured | |", "|---|---|---|---|---|"]
    for t in targets:
        status = {True: "**met**", False: "**missed**", None: "not measured"}[t.met]
        lines.append(f"| {t.name} | {t.goal} | {status} | {t.measured} | {t.best} |")
    return "\n".join(lines)


def _variants(results: Sequence[Measurement]) -> str:
    lines = [
        "| variant | request | req/s | vs default | p50 ms | p99 ms | errors | server CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, baseline in VARIANTS:
        m, base = find(results, key, 16), find(results, baseline, 16)
        if m is None:
            continue
        versus = _num(m.wrk.rps / base.wrk.rps, 2) + "x" if base and base.wrk.rps else "n/a"
        name = "blendserve, default" if key == baseline else LABELS[key]
        lines.append(
            f"| {name} | `{m.route}` | {_num(m.wrk.rps)} | {versus} | {_num(m.wrk.p50_ms, 2)} | "
            f"{_num(m.wrk.p99_ms, 2)} | {m.wrk.errors} | {_num(m.cpu_ms_per_request, 2)} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "_Not measured in this run._"


_PROCESS_RUNS = (
    ("a", 16),
    ("a_mf_replica", 16),
    ("b", 16),
    ("c", 16),
    ("d_infer", 16),
    ("e", 16),
    ("torch_unbatched", 64),
    ("torch_adaptive", 64),
)


def _processes(results: Sequence[Measurement]) -> str:
    lines = []
    for key, concurrency in _PROCESS_RUNS:
        m = find(results, key, concurrency)
        if m is None or not m.wrk.requests:
            continue
        parts = ", ".join(
            f"{name.split(' [')[0]} {1000 * cpu / m.wrk.requests:.2f}"
            for name, cpu in m.processes.items()
        )
        total = _num(m.cpu_ms_per_request, 2)
        lines.append(f"- {LABELS[key]}, c={concurrency} (total {total}): {parts}")
    return "\n".join(lines) or "_Not measured in this run._"


def _profiles(profiles: dict[str, Any]) -> str:
    out = []
    for name, profile in profiles.items():
        if name in ("dag_in_process", "stages", "memory_mb") or not profile.get("samples"):
            continue
        deployment, _, key = name.partition(" (")
        load = LABELS.get(key.rstrip(")"), key.rstrip(")"))
        layers = ", ".join(f"{name} {share:.0%}" for name, share in profile["layers"].items())
        top = "; ".join(f"`{name}` {share:.0%}" for name, share in profile["top"][:6])
        out.append(
            f"- **{deployment} replica under {load}** ({profile['samples']} samples on CPU): "
            f"{layers}.\n"
            f"  Busiest functions (own time): {top}."
        )
    dag = profiles.get("dag_in_process")
    if dag:
        top = "; ".join(f"`{name}` {ms:.3f}" for name, ms in dag["top_functions"][:6])
        out.append(
            f"- **The `{dag['use_case']}` DAG in process** (every model loaded locally, no Ray, "
            f"no HTTP, {dag['requests']} requests): {dag['ms_per_request']:.2f} ms per request. "
            f"Own time per request (ms, cProfile): {top}."
        )
    return "\n".join(out) or "_No profile in this run._"


def _stages(profiles: dict[str, Any]) -> str:
    stages = profiles.get("stages")
    if not stages:
        return "_Not measured in this run._"
    rows = ["| part of a `home` request in the ingress | mean ms |", "|---|---:|"]
    for name, ms in stages.items():
        kind, _, part = name.partition(":")
        rows.append(f"| {kind} `{part}` | {ms:.3f} |")
    return "\n".join(rows)


def _memory(profiles: dict[str, Any]) -> str:
    memory = profiles.get("memory_mb")
    if not memory:
        return "_Not measured in this run._"
    return ", ".join(f"{replica} {mb:.0f} MiB" for replica, mb in sorted(memory.items()))


def _same(meta: dict[str, Any]) -> str:
    same = meta.get("naive_answers_like_blendserve")
    if same is None:
        return "Its answer was not compared with (a)'s in this run."
    verdict = "the same as" if same else "**different from**"
    return f"Its answer (items, scores, provenance; result ids aside) was {verdict} (a)'s."


def _method(meta: dict[str, Any]) -> str:
    plan = meta["plan"]
    core = plan["wrk_core"]
    return f"""\
- **Load generator**: wrk {meta["versions"].get("wrk", "?")}, closed loop, **one thread
  (`-t1`) pinned with `taskset -c {core}` to CPU {core}**, so it takes at most one core;
  the servers are not pinned and share all {meta["machine"]["cpus"]} cores (that one
  included). Concurrency = connections. Each run: a {plan["warmup_s"]:g} s warm-up
  (discarded), then {plan["duration_s"]:g} s measured: `taskset -c {core} wrk -t1 -c<C>
  -d{plan["duration_s"]:g}s --timeout=5s --latency -s post.lua <url>`.
  `post.lua` sets the method, the JSON body and `Content-Type`, and prints wrk's exact
  counters and percentiles from its `done` hook.
- **Metrics**: req/s = completed requests / measured seconds; p50, p99 from wrk's
  latency histogram; errors = answers with HTTP status >= 400 plus socket errors
  (connect, read, write, timeout); server CPU ms/req = utime + stime summed over every
  process of the server's Unix session (for Ray: every process `ray start` started,
  GCS, raylet, dashboard, controller, HAProxy and replicas; for MLServer: its process
  tree), read from `/proc` before and after the measured run, divided by the requests.
- **Systems**, one at a time, each alone on the machine, all on 127.0.0.1:
  - (a), (d) blendserve: `configs/default.yaml` on a free port, started exactly as
    `make run` does (`deployments.local.cluster.LocalRay(num_cpus=2)`: `ray start` on
    127.0.0.1 with `RAY_SERVE_THROUGHPUT_OPTIMIZED=1 RAY_SERVE_ENABLE_HA_PROXY=1`,
    then `serve deploy`). Requests:
    `POST /v1/recommend/home` `{json.dumps(meta["bodies"]["home"])}`;
    `POST /v1/predict/click_model` `{json.dumps(meta["bodies"]["predict"])}`;
    `POST /v2/models/click_model/infer` `{json.dumps(meta["bodies"]["infer"])}`.
  - (b) naive: `benchmarks/configs/naive.yaml` (`benchmarks/naive_app.py`), the same
    models and `blending.nodes` maths as one Serve deployment per DAG node (three
    sources, blend, slots, filter) behind a FastAPI ingress, chained with
    `DeploymentHandle`s; same Ray start and mode as (a). {_same(meta)}
  - (c) echo: `benchmarks/configs/echo.yaml` (`benchmarks/echo_app.py`), one FastAPI
    deployment answering `{{"ok": true}}` to `POST /echo` (same body as (a)); same Ray
    start and mode (HAProxy + direct ingress).
  - (e) MLServer {meta["versions"].get("mlserver", "?")} with `mlserver-sklearn`, from
    its own virtualenv (`benchmarks/.venv`), serving `artifacts/click_model/1/model.joblib`
    (the scikit-learn pipeline inside the click model) with default settings except
    host 127.0.0.1, free ports and `debug: false`; the same OIP request as (d). MLServer
    answers the pipeline's `predict` (the class label), blendserve its click
    probability (`predict_proba`): the same pipeline, the same work.
  - Variants (c={plan["variant_concurrency"]} only): `configs/default.yaml` copies with
    one change each: `RAY_SERVE_ENABLE_HA_PROXY` unset (Serve's throughput mode then
    answers through Serve's proxy actor); Ingress `num_replicas: 1` instead of the
    default 2 (also for the OIP infer); `mf` `placement: replica` (its own deployment,
    calls coalesced); Ingress
    `max_ongoing_requests: 4` (fewer slots than the 16 clients); two Ray nodes on
    this machine (`ray start --address`, one CPU each), `mf` in its own replica
    pinned to the second by a custom resource, as a GPU node would hold it.
  - Batching (c={", ".join(map(str, plan["batching_concurrencies"]))}): a use case
    `torch_only` (source `mf`, 200 candidates, then a filter; the `home` budget) added to
    the default config, `mf` in its own replica with {meta["batching"]["unbatched"]} vs
    {meta["batching"]["adaptive"]}.
- **Caveat**: Ray 2.60 direct-ingress replica ports and Ray's internal ports listen
  on the node's address, not only 127.0.0.1 (see ARCHITECTURE.md); all traffic here
  is to 127.0.0.1."""


def render(
    meta: dict[str, Any],
    results: Sequence[Measurement],
    targets: Sequence[Target],
    profiles: dict[str, Any],
    failures: dict[str, str],
    findings: str,
) -> str:
    """The whole report as Markdown."""
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    failed = (
        "\n## Failed steps\n\n"
        + "\n".join(f"- `{step}`: {why}" for step, why in failures.items())
        + "\n"
        if failures
        else ""
    )
    return f"""\
# Benchmarks

blendserve's HTTP ingress and in-process blending DAG against a naive Ray Serve
composition of the same models, a bare Ray Serve echo, and MLServer, measured with
the same load generator in one run. Rerun with `make bench` (about
{max(1, round(meta["elapsed_s"] / 60))} minutes here); `python -m benchmarks.run --quick` is a
smoke run and `--only echo,blendserve,...` picks steps. This file is written by the
run except the findings section; raw numbers: `benchmarks/results/latest.json`.

## Setup

- **Date**: {meta["date"]} (the run took {meta["elapsed_s"]} s).
- **Machine**: {machine["cpu_model"]}, {machine["cpus"]} CPUs, {machine["memory_gib"]} GiB
  memory, Linux {machine["kernel"]}. No GPU.
- **Versions**: {versions}.
- **Command**: `make bench` = `.venv/bin/python -m benchmarks.run` (recorded: `{meta["command"]}`).
{_method(meta)}

## Results: (a) to (e)

{_table(results, MAIN_KEYS)}

## Ratios

{_ratios(results)}

## Issue targets

{_targets(targets)}

## Variants of blendserve at c={meta["plan"]["variant_concurrency"]}

Default (`configs/default.yaml`): HAProxy, two Ingress replicas, `mf` inline.

{_variants(results)}

## Batching: the torch `mf` model alone

{_table(results, ("torch_unbatched", "torch_adaptive"))}

## Where the time goes

Server CPU ms per request by process, at c=16 (the torch-only runs at c=64), for the
busiest processes (named by Ray's process titles):

{_processes(results)}

Per-stage timings of `home` in the ingress (`blendserve_stage_time_ms_total` and
`blendserve_node_latency_ms` over `blendserve_recommend_latency_ms_count`: means over
every request of the `home` runs; sources are model calls, timed until they answered):

{_stages(profiles)}

Resident memory of each replica after the default system's runs: {_memory(profiles)}.

py-spy (`record --nonblocking`, 200 Hz) of blendserve's replicas while wrk loads them
at c=16; each sample is charged to the layer of its innermost Python frame:

{_profiles(profiles)}

## Findings

{findings}
{failed}"""


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the generated section ``name`` of ``path`` (between its markers) with
    ``text``, or append it; the hand-written rest of the file stays."""
    start, end = f"<!-- generated:{name} -->", f"<!-- end:{name} -->"
    document = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in document and end in document:
        before, rest = document.split(start, 1)
        document = before + block + rest.split(end, 1)[1]
    else:
        document = document.rstrip() + "\n\n" + block + "\n"
    path.write_text(document)
