"""The HTTP half of ``make bench-scale``: one size served as ``make run`` serves the
demo, measured through the real port (issue 20, item 1).

:func:`serve_size` writes a ``BLENDSERVE_HOME`` (the size's catalogue, the published
``mf`` with its index, popularity and staff picks from the same clicks), deploys
``configs/default.yaml``'s ``home`` use case on a local Ray, and measures:

* cold start: ``serve deploy`` to every replica up and ``home`` answering;
* ``home`` p50 / p99 at concurrency 1 and 16 and requests/s at 16 (wrk);
* resident memory of each ingress replica: RSS, and PSS (shared pages split between
  the processes that map them, so two replicas sharing an array count it once);
* the catalogue's apply cost: CPU seconds per second the ingress replicas spend while
  the catalogue changes 10 times a second, above the same replicas idle;
* delete-to-invisible: an item the model retrieved for a user is deleted, and the
  user's lists are fetched until no ingress replica shows it any more.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from scipy import sparse

from benchmarks.cpu import parse_stat
from benchmarks.loadgen import run_wrk
from benchmarks.server_state import memory_kib
from benchmarks.systems import RayServeSystem
from benchmarks.tooling import ensure_wrk
from models.publish import publish_artifact
from models.store import ArtifactStore

__all__ = ["ServingRow", "serve_config", "serve_size", "serving_markdown", "write_home"]

ROOT = Path(__file__).resolve().parent.parent
USE_CASE = "home"
STAFF_PICKS = 20
CHANGES_PER_S = 10.0
APPLY_S = 20.0
DELETES = 20
WATCH_S = 2.0
"""How long a deleted item's user is watched after the delete is acknowledged."""
LOAD_S = 10.0


@dataclass
class ServingRow:
    """One size served over HTTP."""

    items: int
    users: int
    ingress_replicas: int
    retrieval: str
    """How ``mf`` finds its candidates: ``exact`` or ``approximate`` (its index)."""
    cold_start_s: float
    c1_p50_ms: float
    c1_p99_ms: float
    c16_p50_ms: float
    c16_p99_ms: float
    c16_rps: float
    errors: int
    ingress_rss_mib: list[float]
    ingress_pss_mib: list[float]
    apply_cpu_s_per_s: float
    delete_p99_ms: float
    delete_max_ms: float


def write_home(home: Path, store: ArtifactStore, clicks: sparse.csr_matrix) -> None:
    """The catalogue (``data/items.parquet``), popularity and staff picks of ``clicks``
    beside the ``mf`` already published in ``store`` (``home/artifacts``)."""
    n_items = clicks.shape[1]
    counts = np.asarray(clicks.sum(axis=0)).ravel().astype(np.int64)
    ids = np.array([f"a{j}" for j in range(n_items)], dtype=object)
    (home / "data").mkdir(parents=True, exist_ok=True)
    published = np.datetime64("2026-01-01T00:00:00") + np.arange(n_items).astype("timedelta64[s]")
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(ids, pa.string()),
                "category": pa.array([f"topic-{j % 64}" for j in range(n_items)], pa.string()),
                "published_at": pa.array(published, pa.timestamp("s", tz="UTC")),
                "title": pa.array([f"Item {j}" for j in range(n_items)], pa.string()),
            }
        ),
        home / "data" / "items.parquet",
    )
    export = home / "export"
    (export / "popularity").mkdir(parents=True)
    clicked = np.flatnonzero(counts)
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(ids[clicked], pa.string()),
                "count": pa.array(counts[clicked], pa.int64()),
            }
        ),
        export / "popularity" / "counts.parquet",
    )
    publish_artifact(store, export / "popularity", "popularity", "popularity", version="1")
    (export / "staff_picks").mkdir()
    picks = ids[np.argsort(-counts, kind="stable")[100 : 100 + STAFF_PICKS]].tolist()
    (export / "staff_picks" / "items.json").write_text(json.dumps({"items": picks}))
    publish_artifact(store, export / "staff_picks", "staff_picks", "curated", version="1")


def serve_config(
    home: Path, mf_version: str, ingress_replicas: int = 2, exact_below: int | None = None
) -> dict[str, Any]:
    """``configs/default.yaml`` reduced to its ``home`` use case and the three models
    it blends, over ``home``'s store and catalogue; ``exact_below`` is ``mf``'s option
    (the size from which it retrieves through its index)."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    (app,) = config["applications"]
    app["args"]["store"] = str(home / "artifacts")
    app["args"]["catalog"] = str(home / "data" / "items.parquet")
    models = app["args"]["models"]
    app["args"]["models"] = {name: models[name] for name in ("mf", "popularity", "staff_picks")}
    if exact_below is not None:
        app["args"]["models"]["mf"]["options"] = {"exact_below": exact_below}
    for deployment in app["deployments"]:
        if deployment["name"] == "Ingress":
            deployment["num_replicas"] = ingress_replicas
            user_config = deployment["user_config"]
            user_config["models"] = {"mf": {"version": mf_version}}
            user_config["use_cases"] = {USE_CASE: user_config["use_cases"][USE_CASE]}
    return config


def serve_size(
    home: Path,
    n_items: int,
    n_users: int,
    ingress_replicas: int = 2,
    exact_below: int | None = None,
) -> ServingRow:
    """Serve ``home`` (see :func:`write_home`) and measure it (installs wrk, Debian's
    package, when it is missing)."""
    ensure_wrk()
    path = f"/v1/recommend/{USE_CASE}"
    body = {"user_id": "u1", "k": 10}
    version = ArtifactStore(home / "artifacts").latest("mf")
    config = serve_config(home, version, ingress_replicas, exact_below)
    system = RayServeSystem(
        f"scale-{n_items}", config, home, (path, body), ready_path="/readyz", timeout_s=600
    )
    try:
        system.start()
        assert system.deploy_to_serving_s is not None
        cold_start_s = system.deploy_to_serving_s
        url = system.base_url + path
        retrieval = httpx.get(
            f"{system.base_url}/v1/models", headers=system.headers, timeout=10
        ).json()
        c1 = run_wrk(url, body, 1, LOAD_S, None, system.headers)
        c16 = run_wrk(url, body, 16, LOAD_S, None, system.headers)
        pids = system.replica_pids("Ingress")
        rss = [(memory_kib(pid) or 0) / 1024 for pid in pids]
        pss = [(memory_kib(pid, "Pss") or 0) / 1024 for pid in pids]
        with httpx.Client(base_url=system.base_url, headers=system.headers, timeout=10) as client:
            apply_cost = _apply_cost(client, pids, n_items)
            delays = _delete_delays(client, path, n_users)
    finally:
        system.stop()
    return ServingRow(
        items=n_items,
        users=n_users,
        ingress_replicas=ingress_replicas,
        retrieval=_retrieval(retrieval),
        cold_start_s=round(cold_start_s, 1),
        c1_p50_ms=round(c1.p50_ms, 2),
        c1_p99_ms=round(c1.p99_ms, 2),
        c16_p50_ms=round(c16.p50_ms, 2),
        c16_p99_ms=round(c16.p99_ms, 2),
        c16_rps=round(c16.rps),
        errors=c1.status_errors + c1.socket_errors + c16.status_errors + c16.socket_errors,
        ingress_rss_mib=[round(m) for m in rss],
        ingress_pss_mib=[round(m) for m in pss],
        apply_cpu_s_per_s=round(apply_cost, 3),
        delete_p99_ms=round(float(np.percentile(delays, 99)), 1),
        delete_max_ms=round(float(np.max(delays)), 1),
    )


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    return sum(parse_stat(Path(f"/proc/{pid}/stat").read_text())[1] for pid in pids)


def _paced(seconds: float, rate: float, call: Callable[[int], None]) -> None:
    """``call(i)`` ``rate`` times a second for ``seconds`` (no call when none is due)."""
    started = time.monotonic()
    for i in range(int(seconds * rate)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        call(i)


def _apply_cost(client: httpx.Client, pids: list[int], n_items: int) -> float:
    """CPU seconds per second of the ingress replicas with the catalogue changing
    ``CHANGES_PER_S`` times a second (titles of random items), less the same replicas'
    idle CPU over as long."""
    before = _cpu_s(pids)
    time.sleep(APPLY_S)
    idle = _cpu_s(pids) - before
    rng = np.random.default_rng(3)
    targets = rng.integers(0, n_items, int(APPLY_S * CHANGES_PER_S))

    def change(i: int) -> None:
        answer = client.patch(f"/v1/catalog/items/a{targets[i]}", json={"title": f"Edit {i}"})
        answer.raise_for_status()

    before = _cpu_s(pids)
    _paced(APPLY_S, CHANGES_PER_S, change)
    busy = _cpu_s(pids) - before
    return (busy - idle) / APPLY_S


def _delete_delays(client: httpx.Client, path: str, n_users: int) -> list[float]:
    """For ``DELETES`` users: delete the best item the model (``cf``) put in their list,
    then fetch the list from two threads (reaching either replica) for ``WATCH_S``; the
    delay is from the delete's acknowledgement to the end of the last answer that
    still held the item (0 when none did)."""
    delays = []
    for i in range(DELETES):
        body = {"user_id": f"u{(i * 7919) % n_users}", "k": 10}
        answer = client.post(path, json=body)
        answer.raise_for_status()
        item = next(
            row["item_id"]
            for row in answer.json()["items"]
            if any(part["source"] == "cf" for part in row["components"])
        )
        client.delete(f"/v1/catalog/items/{item}").raise_for_status()
        acknowledged = time.monotonic()
        last_seen = [acknowledged]
        watch = (str(client.base_url), dict(client.headers), path, body, item, last_seen)
        threads = [
            threading.Thread(target=_watch, args=(*watch, acknowledged + WATCH_S)) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        delays.append(1000.0 * (max(last_seen) - acknowledged))
    return delays


def _watch(
    base_url: str,
    headers: dict[str, str],
    path: str,
    body: dict[str, Any],
    item: str,
    seen_at: list[float],
    until: float,
) -> None:
    """Fetch ``body``'s list until ``until``; append to ``seen_at`` when each answer
    that still held ``item`` arrived."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        while time.monotonic() < until:
            listed = client.post(path, json=body).json()["items"]
            if any(row["item_id"] == item for row in listed):
                seen_at.append(time.monotonic())


def _retrieval(models: Any) -> str:
    """``mf``'s retrieval as ``GET /v1/models`` describes its live version."""

    def found(value: Any) -> str | None:
        if isinstance(value, dict):
            if isinstance(value.get("retrieval"), str):
                return str(value["retrieval"])
            return next((r for v in value.values() if (r := found(v))), None)
        if isinstance(value, list):
            return next((r for v in value if (r := found(v))), None)
        return None

    return found(models["models"]["mf"]) or "unknown"


def serving_markdown(rows: list[ServingRow]) -> str:
    """The served half of the ``scale`` section: a row per size, then the targets."""
    lines = [
        f"Served over HTTP (`{USE_CASE}` of configs/default.yaml with `mf` inline, its "
        "popularity and staff picks; wrk, one connection then 16, "
        f"{LOAD_S:.0f} s each; the catalogue changing {CHANGES_PER_S:.0f} times a second "
        f"for {APPLY_S:.0f} s; {DELETES} deletes of an item `mf` had put in a user's list):",
        "",
        "| items | users | ingress replicas | mf retrieval | cold start | c=1 p50 / p99 "
        "| c=16 p50 / p99 | c=16 req/s | errors | ingress RSS | ingress PSS "
        "| catalogue apply (CPU s/s) | delete to invisible p99 / max |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.items:,} | {r.users:,} | {r.ingress_replicas} | {r.retrieval} "
            f"| {r.cold_start_s} s | {r.c1_p50_ms} / {r.c1_p99_ms} ms "
            f"| {r.c16_p50_ms} / {r.c16_p99_ms} ms | {r.c16_rps:,.0f} | {r.errors} "
            f"| {' + '.join(f'{m:.0f}' for m in r.ingress_rss_mib)} MiB "
            f"| {' + '.join(f'{m:.0f}' for m in r.ingress_pss_mib)} MiB "
            f"| {r.apply_cpu_s_per_s:.3f} | {r.delete_p99_ms:.0f} / {r.delete_max_ms:.0f} ms |"
        )
    two = [r for r in rows if r.ingress_replicas == 2]
    one = [r for r in rows if r.ingress_replicas == 1]
    if len(two) >= 2:
        small, large = two[0], two[-1]
        lines += [
            "",
            f"Targets, {large.items:,} against {small.items:,} items: c=1 p50 "
            f"{large.c1_p50_ms / small.c1_p50_ms:.2f}x (at most 2x); c=16 req/s "
            f"{large.c16_rps / small.c16_rps:.2f}x (at least 0.5x); delete to invisible "
            f"p99 at most {max(r.delete_p99_ms for r in two):.0f} ms at any size (at most "
            f"1,000); cold start {large.cold_start_s} s (under 60).",
        ]
        if one and one[-1].items == large.items:
            lines[-1] += (
                f" Two ingress replicas use {sum(large.ingress_pss_mib):.0f} MiB (PSS), "
                f"{sum(large.ingress_pss_mib) / sum(one[-1].ingress_pss_mib):.2f}x one "
                f"replica's {sum(one[-1].ingress_pss_mib):.0f} MiB (at most 1.3x)."
            )
    return "\n".join(lines)
