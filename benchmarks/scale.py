"""``make bench-scale``: what a catalogue's size costs the collaborative model, and what
two-stage retrieval buys back (issue 20).

At each size (items, users) it generates clicks with the demo's shape (items in
topics with a Zipf popularity, users who lean to a few topics, a handful of clicks
each), trains the matrix factorisation ``blendserve train`` picks for large
catalogues (implicit's ALS, published in the ``factors`` format), publishes it with
``blendserve publish``'s checks, which build and tune its approximate index, and then
measures in one process, exact scoring against the index:

* the model's answer for one user (the ``candidates: 200`` a ``home`` source asks
  for), p50 and p99, and for a coalesced batch of 16 users;
* recall@100 of the index against exact scoring (as published, and on served lists);
* publishing (smoke test, index build and tuning) and loading times, index size.

The ratios the issue targets (1M items against 10k) are in one run. Results go to
BENCHMARKS.md (the ``scale`` section) and ``benchmarks/results/scale.json``.

Usage: ``python -m benchmarks.scale [--quick] [--sizes 10000x100000,...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from benchmarks.markdown import write_section
from benchmarks.scale_serving import ServingRow, serve_size, serving_markdown, write_home
from blending.online import DecayedCounts
from models.ann import (
    INDEX_FILE,
)
from models.base import RecommendQuery
from models.formats.factors import save_factors
from models.formats.tensor_adapter import TensorModelAdapter
from models.publish import publish_artifact
from models.registry import load_model
from models.store import ArtifactStore

__all__ = [
    "ScaleRow",
    "generate_clicks",
    "home_of",
    "main",
    "measure_size",
    "online_state_bytes_per_item",
    "timed_ms",
    "train_als",
]

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((10_000, 100_000), (100_000, 100_000), (1_000_000, 1_000_000))
"""(items, users) of a full run."""
QUICK_SIZES = ((10_000, 5_000), (20_000, 5_000))
CANDIDATES = 200
"""Items a ``home`` source asks its model for (configs/default.yaml)."""
TOPICS = 64
CLICKS_PER_USER = 8
FACTORS = 32
ALS_ITERATIONS = 6
REPEATS = 300


@dataclass
class ScaleRow:
    """One size's figures."""

    items: int
    users: int
    clicks: int
    generate_s: float
    train_s: float
    publish_s: float
    index_mib: float
    probes: int
    recall_published: float
    recall_served: float
    load_exact_s: float
    load_ann_s: float
    exact_p50_ms: float
    exact_p99_ms: float
    ann_p50_ms: float
    ann_p99_ms: float
    exact_batch16_ms: float
    ann_batch16_ms: float
    user_mib_per_million: float
    """What the served model holds per million users: their ids and vectors."""


def generate_clicks(n_items: int, n_users: int, seed: int = 0) -> sparse.csr_matrix:
    """A users x items click matrix of about ``CLICKS_PER_USER`` distinct clicks per
    user: each click picks one of the user's two favourite topics four times in five
    (else any), then an item of that topic by popularity (Zipf, exponent 1)."""
    rng = np.random.default_rng(seed)
    topic_of = rng.integers(0, TOPICS, n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 1.0)
    favourites = rng.integers(0, TOPICS, (n_users, 2))
    clicks = rng.poisson(CLICKS_PER_USER - 1, n_users) + 1
    user = np.repeat(np.arange(n_users), clicks)
    topic = np.where(
        rng.random(len(user)) < 0.8,
        favourites[user, rng.integers(0, 2, len(user))],
        rng.integers(0, TOPICS, len(user)),
    )
    item = np.empty(len(user), dtype=np.int64)
    for t in range(TOPICS):
        members = np.flatnonzero(topic_of == t)
        picks = topic == t
        if len(members) and picks.any():
            weights = popularity[members] / popularity[members].sum()
            item[picks] = rng.choice(members, picks.sum(), p=weights)
    matrix = sparse.csr_matrix(
        (np.ones(len(user), dtype=np.float32), (user, item)), shape=(n_users, n_items)
    )
    matrix.data[:] = 1.0  # a click twice is one click
    return matrix


def train_als(matrix: sparse.csr_matrix, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors of ``matrix`` (implicit's ALS, ``FACTORS`` factors)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; BLAS threads under it only contend.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=FACTORS,
            regularization=0.05,
            alpha=2.0,
            iterations=ALS_ITERATIONS,
            random_state=seed,
        )
        model.fit(matrix, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def timed_ms(call: object, repeats: int) -> np.ndarray:
    """Milliseconds of each of ``repeats`` calls ``call(i)``."""
    times = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        call(i)  # type: ignore[operator]
        times[i] = (time.perf_counter() - started) * 1000.0
    return times


def home_of(work: Path, n_items: int, n_users: int) -> Path:
    """The ``BLENDSERVE_HOME`` :func:`measure_size` leaves for one size in ``work``."""
    return work / f"home-{n_items}x{n_users}"


def measure_size(n_items: int, n_users: int, work: Path) -> ScaleRow:
    """Generate, train, publish and measure one size in ``work``; leave a home
    (:func:`home_of`) that :mod:`benchmarks.scale_serving` serves."""
    started = time.perf_counter()
    matrix = generate_clicks(n_items, n_users)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    users, items = train_als(matrix)
    train_s = time.perf_counter() - started
    export = work / f"export-{n_items}"
    export.mkdir()
    save_factors(str(export / "factors.npz"), users, items, None)
    user_ids = [f"u{i}" for i in range(n_users)]
    ids = {"users": user_ids, "items": [f"a{j}" for j in range(n_items)]}
    (export / "ids.json").write_text(json.dumps(ids))
    home = home_of(work, n_items, n_users)
    store = ArtifactStore(home / "artifacts")
    started = time.perf_counter()
    manifest = publish_artifact(store, export, "mf", "factors", ann_min_items=1).manifest
    publish_s = time.perf_counter() - started
    ann = manifest.extra["ann"]

    started = time.perf_counter()
    exact = load_model(store, "mf", manifest.version, {"exact_below": n_items + 1})
    load_exact_s = time.perf_counter() - started
    started = time.perf_counter()
    approximate = load_model(store, "mf", manifest.version, {"exact_below": 0})
    load_ann_s = time.perf_counter() - started
    assert isinstance(exact, TensorModelAdapter) and exact.index is None
    assert isinstance(approximate, TensorModelAdapter) and approximate.index is not None

    rng = np.random.default_rng(1)
    asked = [RecommendQuery(user_ids[u]) for u in rng.integers(0, n_users, REPEATS)]
    batches = [asked[i : i + 16] for i in range(0, REPEATS - 16, 16)]
    exact_ms = timed_ms(lambda i: exact.top_items([asked[i]], CANDIDATES), REPEATS)
    ann_ms = timed_ms(lambda i: approximate.top_items([asked[i]], CANDIDATES), REPEATS)
    exact_batch = timed_ms(lambda i: exact.top_items(batches[i], CANDIDATES), len(batches))
    ann_batch = timed_ms(lambda i: approximate.top_items(batches[i], CANDIDATES), len(batches))
    index_bytes = (store.path("mf", manifest.version) / INDEX_FILE).stat().st_size
    found = 0
    for got, want in zip(
        approximate.top_items(asked, 100), exact.top_items(asked, 100), strict=True
    ):
        found += len(set(got.id_list()) & set(want.id_list()))
    write_home(home, store, matrix)
    return ScaleRow(
        items=n_items,
        users=n_users,
        clicks=int(matrix.nnz),
        generate_s=round(generate_s, 1),
        train_s=round(train_s, 1),
        publish_s=round(publish_s, 1),
        index_mib=round(index_bytes / 2**20, 1),
        probes=int(ann["probes"]),
        recall_published=float(ann["recall_at_100"]),
        recall_served=round(found / (100 * len(asked)), 4),
        load_exact_s=round(load_exact_s, 2),
        load_ann_s=round(load_ann_s, 2),
        exact_p50_ms=round(float(np.percentile(exact_ms, 50)), 3),
        exact_p99_ms=round(float(np.percentile(exact_ms, 99)), 3),
        ann_p50_ms=round(float(np.percentile(ann_ms, 50)), 3),
        ann_p99_ms=round(float(np.percentile(ann_ms, 99)), 3),
        exact_batch16_ms=round(float(np.percentile(exact_batch, 50)), 3),
        ann_batch16_ms=round(float(np.percentile(ann_batch, 50)), 3),
        user_mib_per_million=round(_user_bytes(approximate) / n_users * 1e6 / 2**20, 1),
    )


def _user_bytes(model: TensorModelAdapter) -> int:
    """Bytes the model holds per user: the id table and the vector rows."""
    vectors = model.item_vectors()
    assert model.users is not None and vectors is not None
    return model.users.nbytes() + int(vectors.users.nbytes)


def online_state_bytes_per_item(n_items: int = 100_000) -> float:
    """Bytes the event log's online state (decayed counts) holds per item it keeps."""
    import tracemalloc

    tracemalloc.start()
    counts = DecayedCounts(6 * 3600.0)
    for j in range(n_items):
        counts.observe(f"a{j}", "impression", 1.7e9 + j)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return held / n_items


def markdown(rows: Sequence[ScaleRow], command: str, seconds: float) -> str:
    """The ``scale`` section of BENCHMARKS.md."""
    lines = [
        f"`{command}` ({seconds:.0f} s, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
        f"The collaborative model (ALS, {FACTORS} factors) in one process, for one user "
        f"asking {CANDIDATES} candidates, exact scoring of every item against the "
        "published approximate index:",
        "",
        "| items | users | clicks | train | publish (index + tuning) | index | probes "
        "| recall@100 published / served | exact p50 / p99 | index p50 / p99 "
        "| batch of 16: exact / index | per 1M users |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.items:,} | {r.users:,} | {r.clicks:,} | {r.train_s} s | {r.publish_s} s "
            f"| {r.index_mib} MiB | {r.probes} | {r.recall_published:.3f} / "
            f"{r.recall_served:.3f} | {r.exact_p50_ms} / {r.exact_p99_ms} ms "
            f"| {r.ann_p50_ms} / {r.ann_p99_ms} ms | {r.exact_batch16_ms} / "
            f"{r.ann_batch16_ms} ms | {r.user_mib_per_million:.0f} MiB |"
        )
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        lines += [
            "",
            f"From {small.items:,} to {large.items:,} items, one user's answer: exact "
            f"{large.exact_p50_ms / small.exact_p50_ms:.1f}x the p50, with the index "
            f"{large.ann_p50_ms / small.exact_p50_ms:.2f}x the small catalogue's exact p50 "
            "(the issue's target: at most 2x).",
        ]
    lines += [
        "",
        'Per user, blendserve holds only what the model was trained with ("per 1M '
        'users": the id table and the vectors, the vectors mapped from the file and '
        "shared by the processes of a node); nothing is learned or kept per user while "
        "serving. The online state is per item: "
        f"{online_state_bytes_per_item():.0f} bytes an item, at most "
        "`events.online.max_items` of them (200,000 by default).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every size and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes (a smoke run)")
    parser.add_argument(
        "--sizes", default=None, help="ITEMSxUSERS,... instead of the default sizes"
    )
    parser.add_argument(
        "--compare",
        default=None,
        metavar="ITEMSxUSERS",
        help="only compare the inverted file with HNSW at this size, and print it",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="the file whose scale section is written (default: BENCHMARKS.md, except "
        "with --quick, which only prints it)",
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="only the in-process half (no Ray, no HTTP)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.compare:
        from benchmarks.scale_compare import compare_index_kinds

        for result in compare_index_kinds(*_size(args.compare)):
            print(json.dumps(result))
        return 0
    sizes = list(QUICK_SIZES if args.quick else SIZES)
    if args.sizes:
        sizes = [_size(text) for text in args.sizes.split(",")]
    report = args.report or (None if args.quick else ROOT / "BENCHMARKS.md")
    started = time.perf_counter()
    rows: list[ScaleRow] = []
    served: list[ServingRow] = []
    with tempfile.TemporaryDirectory(prefix="blendserve-scale-") as work:
        for n_items, n_users in sizes:
            row = measure_size(n_items, n_users, Path(work))
            print(json.dumps(asdict(row)), flush=True)
            rows.append(row)
            if args.no_serve:
                continue
            home = home_of(Path(work), n_items, n_users)
            served.append(serve_size(home, n_items, n_users))
            print(json.dumps(asdict(served[-1])), flush=True)
        if served:
            # Item 4's comparison: the largest size again with one ingress replica.
            served.append(serve_size(home, n_items, n_users, ingress_replicas=1))
            print(json.dumps(asdict(served[-1])), flush=True)
    seconds = time.perf_counter() - started
    command = "make bench-scale" + (f" SCALE_ARGS='{' '.join(argv or [])}'" if argv else "")
    text = markdown(rows, command, seconds)
    if served:
        text += "\n\n" + serving_markdown(served)
    print(text)
    if report is not None:
        write_section(report, "scale", text)
        results = ROOT / "benchmarks" / "results" / "scale.json"
        payload = {"in_process": [asdict(r) for r in rows], "served": [asdict(r) for r in served]}
        results.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def _size(text: str) -> tuple[int, int]:
    """``ITEMSxUSERS`` as two counts."""
    items, users = text.lower().split("x")
    return int(items), int(users)


if __name__ == "__main__":
    raise SystemExit(main())
