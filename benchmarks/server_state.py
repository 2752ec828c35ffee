"""What a running blendserve says about itself after a load: the mean time of each
request stage and DAG node (from its Prometheus metrics) and each replica's
resident memory (from ``/proc``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.systems import RayServeSystem

__all__ = ["memory_kib", "replica_memory_mb", "stage_means_ms"]

_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.eE+-]+)$")


def _samples(text: str, use_case: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """``(metric, labels, value)`` of every Prometheus sample of ``use_case``."""
    for line in text.splitlines():
        match = _SAMPLE.match(line.removeprefix("ray_"))  # the exporter may add `ray_`
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            if labels.get("use_case") == use_case:
                yield match.group(1), labels, float(match.group(3))


def _totals(text: str, metric: str, label: str, use_case: str) -> dict[str, float]:
    """``label`` value -> total of ``metric`` (a counter, or a histogram's ``_sum`` or
    ``_count``) for ``use_case``, added over every replica that reports it."""
    found: dict[str, float] = {}
    for name, labels, value in _samples(text, use_case):
        if name == metric and label in labels:
            found[labels[label]] = found.get(labels[label], 0.0) + value
    return found


def stage_means_ms(
    system: RayServeSystem, use_case: str, min_count: int, timeout_s: float = 30.0
) -> dict[str, float]:
    """Mean milliseconds per request of each stage and each DAG node of ``use_case``
    (keys ``stage:<name>`` and ``node:<name>``), once the metrics count ``min_count``
    requests (Ray exports every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(system.cluster.metrics_url, timeout=10.0).text
        requests = _totals(text, "blendserve_recommend_latency_ms_count", "use_case", use_case)
        counted = requests.get(use_case, 0.0)
        if counted >= min_count or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    stages = _totals(text, "blendserve_stage_time_ms_total", "stage", use_case)
    node_ms = _totals(text, "blendserve_node_latency_ms_sum", "node", use_case)
    node_calls = _totals(text, "blendserve_node_latency_ms_count", "node", use_case)
    means = {f"stage:{k}": total / counted for k, total in stages.items() if counted}
    means.update(
        {f"node:{k}": ms / node_calls[k] for k, ms in node_ms.items() if node_calls.get(k)}
    )
    return means


def replica_memory_mb(system: RayServeSystem) -> dict[str, float]:
    """Resident memory (MiB) of each live Serve replica, by ``deployment#n``."""
    memory: dict[str, float] = {}
    for actor in system.cluster.list_actors():
        name = str(actor.get("class_name", ""))
        pid = actor.get("pid")
        if not name.startswith("ServeReplica:") or not pid or actor.get("state") != "ALIVE":
            continue
        deployment = name.rsplit(":", 1)[1]
        rss_kb = memory_kib(int(pid))
        if rss_kb is None:
            continue
        n = sum(key.startswith(f"{deployment}#") for key in memory) + 1
        memory[f"{deployment}#{n}"] = round(rss_kb / 1024, 1)
    return memory


def memory_kib(pid: int, field: str = "VmRSS") -> int | None:
    """One memory figure of a process, in KiB, ``None`` once it is gone: ``VmRSS``
    (resident, from ``/proc/<pid>/status``) or ``Pss`` (resident with each shared
    page split between the processes that map it, from ``smaps_rollup``)."""
    source = "smaps_rollup" if field == "Pss" else "status"
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
