"""``blendserve batch-score``: every user's top N, precomputed on the Ray cluster."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from deployments.config import resolve_store
from models.errors import BlendserveError
from models.store import ArtifactStore

__all__ = ["add_batch_commands"]


def _cmd_batch_score(args: argparse.Namespace) -> int:
    import ray

    from deployments.batch.scoring import batch_score, model_users, read_users

    store = ArtifactStore(resolve_store(args.store))
    name = args.name or f"{args.model}_precomputed"
    try:
        version = args.version or store.latest(args.model)
        users = read_users(args.users) if args.users else model_users(store, args.model, version)
        local = args.address is None
        ray.init(
            address=args.address,
            num_cpus=args.num_cpus if local else None,
            include_dashboard=False if local else None,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        try:
            scored = batch_score(
                store,
                args.model,
                users,
                name,
                version=version,
                top=args.top,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                num_cpus=args.actor_cpus,
            )
        finally:
            ray.shutdown()
    except BlendserveError as exc:
        print(f"blendserve batch-score: {exc}\nnothing was published", file=sys.stderr)
        return 2
    manifest = scored.manifest
    rate = scored.users / max(scored.seconds, 1e-9)
    print(
        f"scored {scored.users} users with {args.model} version {version} in "
        f"{scored.seconds:.1f} s ({rate:,.0f} users/s); published {manifest.name} version "
        f"{manifest.version} (precomputed) to {store.root}\n\n"
        f"Serve it as a source that scores on request the users it lacks:\n"
        f'  models:  {manifest.name}: {{version: "{manifest.version}"}}\n'
        f"  node:    {{kind: source, model: {manifest.name}, fallback_model: {args.model}}}"
    )
    return 0


def add_batch_commands(sub: Any) -> None:
    """Register ``batch-score`` on the ``blendserve`` sub-parsers."""
    batch = sub.add_parser(
        "batch-score",
        help="precompute every user's top N with Ray Data and publish it as a model",
        description=(
            "Score users in bulk with a recommender from the store, on the Ray cluster "
            "(Ray Data map_batches: a local Ray by default, --address auto for the "
            "cluster this node belongs to), write the lists as Parquet and publish them "
            "as a new version of a `precomputed` model."
        ),
    )
    batch.add_argument("--model", required=True, help="the recommender to score with")
    batch.add_argument("--version", default=None, help="default: its latest version")
    batch.add_argument("--top", type=int, default=100, help="items per user (default 100)")
    batch.add_argument(
        "--users",
        type=Path,
        default=None,
        help="a Parquet or CSV file with a user_id column (default: the model's users)",
    )
    batch.add_argument("--name", default=None, help="the published model (MODEL_precomputed)")
    batch.add_argument("--store", default="artifacts", help="relative to $BLENDSERVE_HOME")
    batch.add_argument(
        "--address", default=None, help="a running Ray cluster (default: start a local one)"
    )
    batch.add_argument("--num-cpus", type=float, default=None, help="CPUs of a local Ray")
    batch.add_argument("--batch-size", type=int, default=1024, help="users per model call")
    batch.add_argument("--concurrency", type=int, default=1, help="scoring actors")
    batch.add_argument("--actor-cpus", type=float, default=1.0, help="CPUs per scoring actor")
    batch.set_defaults(func=_cmd_batch_score)
