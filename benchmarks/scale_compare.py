"""``make bench-scale SCALE_ARGS='--compare ITEMSxUSERS'``: the approximate indexes
this project chose between, on the same trained vectors (issue 20, item 2)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from benchmarks.scale import CANDIDATES, REPEATS, generate_clicks, timed_ms, train_als
from models.ann import (
    OVERFETCH,
    TARGET_RECALL,
    ItemIndex,
    ItemVectors,
    Retriever,
    ranked,
    recall_against_exact,
)

__all__ = ["compare_index_kinds"]


def compare_index_kinds(n_items: int, n_users: int) -> list[dict[str, float | str]]:
    """Four faiss indexes on the same trained vectors, each searched harder until
    recall@100 >= 0.95 (or its last setting): the graph this project builds (HNSW over
    vectors where the best scored is the nearest), HNSW built for inner products, and
    inverted files over the raw and the transformed vectors."""
    import faiss

    users, items = train_als(generate_clicks(n_items, n_users))
    vectors = ItemVectors(
        np.vstack([users, users.mean(axis=0, keepdims=True)]).astype(np.float32),
        items.astype(np.float32),
        np.zeros(n_items, dtype=np.float32),
    )
    searchable = vectors.searchable_items()
    raw = np.ascontiguousarray(searchable[:, :-1])  # [item, bias]: inner product as is
    cells = ItemIndex.cells_for(n_items)
    sample = np.sort(np.random.default_rng(0).choice(n_items, min(n_items, 64 * cells), False))

    def hnsw(metric: int, data: np.ndarray) -> Any:
        index = faiss.IndexHNSWFlat(data.shape[1], 32, metric)
        index.hnsw.efConstruction = 80
        index.add(data)
        return index

    def ivf(metric: int, data: np.ndarray) -> Any:
        index = faiss.IndexIVFFlat(
            faiss.IndexFlat(data.shape[1], metric), data.shape[1], cells, metric
        )
        index.train(data[sample])
        index.add(data)
        return index

    def set_ef(index: Any, value: int) -> None:
        index.hnsw.efSearch = value

    def set_probes(index: Any, value: int) -> None:
        index.nprobe = value

    inner, l2 = faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2
    kinds = [
        (
            "HNSW32, transformed",
            lambda: hnsw(l2, searchable),
            set_ef,
            "efSearch",
            True,
        ),
        ("HNSW32, inner product", lambda: hnsw(inner, raw), set_ef, "efSearch", False),
        (f"IVF{cells}, inner product", lambda: ivf(inner, raw), set_probes, "probes", False),
        (
            f"IVF{cells}, transformed (ours)",
            lambda: ItemIndex.build(vectors).index,
            set_probes,
            "probes",
            True,
        ),
    ]
    efforts = {"efSearch": (128, 256, 512, 1024, 2048), "probes": (8, 32, 128, 256, 512, 1024)}
    users = np.arange(min(REPEATS, n_users))
    results: list[dict[str, float | str]] = []
    for name, make, set_effort, effort, transformed in kinds:
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # every core to build
        started = time.perf_counter()
        index = make()  # type: ignore[no-untyped-call]
        build_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)  # one thread to serve, as a replica does
        # Ours as served (items without a vector beside the index); the others with
        # the same second stage: OVERFETCH times the candidates, scored exactly.
        probe: Retriever | _Searcher = (
            Retriever(ItemIndex(index, 1), vectors)
            if "ours" in name
            else _Searcher(index, transformed, vectors)
        )
        for value in efforts[effort]:
            set_effort(index, value)
            recall = recall_against_exact(probe)  # type: ignore[arg-type]
            if recall >= TARGET_RECALL:
                break
        times = timed_ms(lambda i, p=probe: p.columns(users[i : i + 1], CANDIDATES), len(users))
        results.append(
            {
                "index": name,
                "build_s": round(build_s, 1),
                "effort": f"{effort} {value}",
                "recall_at_100": round(recall, 3),
                "query_p50_ms": round(float(np.percentile(times, 50)), 3),
            }
        )
    return results


class _Searcher:
    """Any faiss index answering :meth:`Retriever.columns`'s way, for the comparison (an
    index over the raw vectors is given the user rows without the last column)."""

    def __init__(self, index: Any, transformed: bool, vectors: ItemVectors) -> None:
        self.index, self.transformed, self.vectors = index, transformed, vectors

    def columns(self, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self.vectors.searchable_users(rows)
        if not self.transformed:
            queries = np.ascontiguousarray(queries[:, :-1])
        _, found = self.index.search(queries, OVERFETCH * n)
        found = np.asarray(found, dtype=np.int64)
        columns, scores = ranked(self.vectors.scores(rows, np.maximum(found, 0)), found)
        return columns[:, :n], scores[:, :n]
