"""``blendserve publish`` and ``blendserve models``: the artifact store from the command
line."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from deployments.config import (
    INGRESS_DEPLOYMENT,
    ModelConfig,
    resolve_store,
)
from deployments.config.rollout import model_deployment
from models.catalogue_share import read_item_ids
from models.errors import ArtifactNotFoundError, BlendserveError, ConfigError
from models.registry import formats
from models.store import ArtifactStore, Manifest

__all__ = ["add_store_commands"]


def _cmd_publish(args: argparse.Namespace) -> int:
    from models.publish import (
        ANN_MIN_ITEMS,
        parse_extra,
        parse_metrics,
        publish_artifact,
        read_examples,
    )

    store = ArtifactStore(resolve_store(args.store))
    try:
        with tempfile.TemporaryDirectory(prefix="blendserve-publish-") as scratch:
            source = _source(args, Path(scratch))
            catalogue, catalogue_source = _catalogue(args.catalog)
            examples = read_examples(args.example) if args.example else source.examples
            extra = parse_extra(args.extra) if args.extra is not None else {}
            if source.provenance:
                extra = {"mlflow": source.provenance, **extra}
            manifest, tried, share = publish_artifact(
                store,
                source.path,
                args.model,
                source.format,
                version=args.version,
                examples=examples,
                metrics={**source.metrics, **parse_metrics(args.metric)},
                description=args.description or source.description,
                extra=extra or None,
                check=not args.no_check,
                catalogue=catalogue,
                ann_min_items=None if args.no_ann else ANN_MIN_ITEMS,
            )
    except BlendserveError as exc:
        print(f"blendserve publish: {exc}\nnothing was published to {store.root}", file=sys.stderr)
        return 2
    smoke = "skipped (--no-check)" if args.no_check else _smoke_summary(tried, manifest.format)
    print(_publish_summary(manifest, store.path(manifest.name, manifest.version), smoke))
    if share is not None:
        print(f"  catalogue ({catalogue_source}): {share}")
    elif not args.no_check:
        print(f"  catalogue: {catalogue_source}")
    print()
    print(_serve_snippet(manifest.name, manifest.version, manifest.format))
    return 0


class _Source(NamedTuple):
    """What to publish: files on disk, or a model fetched from MLflow, with what it
    brings (examples, metrics, provenance)."""

    path: Path
    format: str
    examples: list[Any] | None = None
    metrics: dict[str, float] = {}  # noqa: RUF012 - a NamedTuple default, never mutated
    provenance: dict[str, Any] = {}  # noqa: RUF012
    description: str = ""


def _source(args: argparse.Namespace, scratch: Path) -> _Source:
    """The artifact ``publish`` was pointed at: a path with ``--format``, or
    ``--from-mlflow`` (the format then follows from the model's flavour)."""
    if (args.path is None) == (args.from_mlflow is None):
        raise ConfigError("give a path or --from-mlflow URI (one of them)")
    if args.path is not None:
        if args.format is None:
            raise ConfigError(f"--format: required for a path; one of {', '.join(formats())}")
        return _Source(args.path, args.format)
    from models.mlflow_import import fetch_mlflow_model

    fetched = fetch_mlflow_model(args.from_mlflow, scratch, args.tracking_uri)
    if args.format is not None and args.format != fetched.format:
        raise ConfigError(
            f"--format {args.format}: the MLflow model is a {fetched.provenance['flavour']} "
            f"model, published as {fetched.format}; leave --format out"
        )
    run = fetched.provenance["run_id"]
    return _Source(
        fetched.directory,
        fetched.format,
        fetched.examples,
        fetched.metrics,
        fetched.provenance,
        f"from MLflow {args.from_mlflow} (run {run})",
    )


_DEFAULT_LIVE_CATALOGUE = ".blendserve/catalog/blendserve.sqlite"
"""The default application's live catalogue under ``$BLENDSERVE_HOME``."""


def _catalogue(given: str | None) -> tuple[set[str] | None, str]:
    """The item ids to check a model against, and where they came from: ``given`` (an
    item table, a live catalogue's ``.sqlite`` or its PostgreSQL URL), else the default
    app's live catalogue when there is one; ``None`` and why when there is nothing to
    read."""
    from deployments.catalog.backends import is_postgres_url, live_item_ids  # when publishing

    if given is None:
        live = resolve_store(_DEFAULT_LIVE_CATALOGUE)
        if not live.is_file():
            return None, (
                f"not checked (no live catalogue at {live}; give --catalog an item table or "
                "a live catalogue's .sqlite)"
            )
        return live_item_ids(live), f"live, {live}"
    if is_postgres_url(given):
        return live_item_ids(given), "live, PostgreSQL"
    path = resolve_store(given)
    if path.suffix == ".sqlite":
        return live_item_ids(path), f"live, {path}"
    return read_item_ids(path), str(path)


def _smoke_summary(tried: Sequence[str], format: str) -> str:
    if tried:
        return f"passed: {', '.join(tried)}"
    if format in ("torchscript", "onnx"):
        # A lone model file loads as a tensor model: it takes feature rows, not users.
        return (
            "loaded, but nothing to try: without ids.json beside it this is not a "
            "recommender (README 'Bring your own model'); for a feature model, publish "
            "with --example to check predictions"
        )
    return "loaded; nothing to try (publish with --example to check predictions)"


def _publish_summary(manifest: Manifest, directory: Path, smoke: str) -> str:
    """What was published: name, version, format, files with short checksums, smoke test."""
    width = max(len(f) for f in manifest.files)
    lines = [
        f"published {manifest.name} version {manifest.version} ({manifest.format}) to {directory}"
    ]
    for filename, digest in sorted(manifest.files.items()):
        lines.append(f"  {filename:<{width}}  sha256 {digest[:12]}")
    if manifest.metrics:
        lines.append(f"  metrics: {_metrics_text(manifest.metrics)}")
    lines.append(f"  smoke test: {smoke}")
    return "\n".join(lines)


def _serve_snippet(name: str, version: str, format: str) -> str:
    """What a Serve config must say to serve ``name`` at ``version``, as a live swap."""
    quoted = json.dumps(version)
    deployment = model_deployment(name)
    if ModelConfig(version=version).resolved_placement(format) == "replica":
        lines = [
            f"To serve it: {name} ({format}) runs in its own replicas by default. Set the",
            f"version in the user_config of deployment {deployment} (a live swap, no restart):",
            "",
            "  applications[].deployments:",
            f"    - name: {deployment}",
            f"      user_config: {{version: {quoted}}}",
            "",
            f"A cpu_pool's {deployment}-cpu takes the same user_config. To try it on a share",
            f"of users first: user_config: {{version: OLD, canary: {{version: {quoted}, "
            "percent: 5}}.",
            f"With placement: inline, set {INGRESS_DEPLOYMENT} user_config.models.{name} instead.",
        ]
    else:
        lines = [
            f"To serve it: {name} ({format}) runs inline in the ingress by default. Set the",
            f"version in the {INGRESS_DEPLOYMENT} deployment's user_config, beside use_cases "
            "(a live swap, no restart):",
            "",
            "  applications[].deployments:",
            f"    - name: {INGRESS_DEPLOYMENT}",
            "      user_config:",
            f"        models: {{{name}: {{version: {quoted}}}}}",
            "",
            f"With placement: replica, set the user_config of {deployment} instead "
            f"({{version: {quoted}}}).",
        ]
    lines += [
        f"args.models must list {name} without a version (e.g. {name}: {{}}); adding it",
        "there, or moving a fixed version out of it, restarts the replicas once.",
        "Then: RAY_AUTH_MODE=token serve deploy CONFIG",
    ]
    return "\n".join(lines)


def _metrics_text(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def _cmd_models(args: argparse.Namespace) -> int:
    store = ArtifactStore(resolve_store(args.store))
    if args.name is not None and not store.versions(args.name):
        known = ", ".join(store.models()) or "none"
        raise ArtifactNotFoundError(
            f"model {args.name!r} has no published version in {store.root} (models: {known})"
        )
    names = store.models() if args.name is None else [args.name]
    if args.json:
        rows = [store.manifest(n, v).to_json() for n in names for v in store.versions(n)]
        print(json.dumps(rows, indent=2))
        return 0
    if not names:
        print(f"no models in {store.root}")
        return 0
    print(_models_table(store, names))
    return 0


_DESCRIPTION_WIDTH = 40


def _models_table(store: ArtifactStore, names: Sequence[str]) -> str:
    """Every version of ``names`` as a table; ``*`` marks each model's newest version."""
    header = ["MODEL", "VERSION", "FORMAT", "CREATED_AT", "METRICS", "DESCRIPTION"]
    rows: list[list[str]] = []
    for name in names:
        versions = store.versions(name)
        for version in versions:
            marker = " *" if version == versions[-1] else ""
            try:
                manifest = store.manifest(name, version)
            except (BlendserveError, ValueError, OSError) as exc:  # one bad manifest
                rows.append([name, version + marker, "?", "?", "", f"unreadable: {exc}"])
                continue
            description = " ".join(manifest.description.split())
            if len(description) > _DESCRIPTION_WIDTH:
                description = description[: _DESCRIPTION_WIDTH - 3] + "..."
            rows.append(
                [
                    name,
                    version + marker,
                    manifest.format,
                    manifest.created_at,
                    _metrics_text(manifest.metrics),
                    description,
                ]
            )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.append("* newest version")
    return "\n".join(lines)


def add_store_commands(sub: Any) -> None:
    """Register ``publish`` and ``models`` on the ``blendserve`` sub-parsers."""
    publish = sub.add_parser(
        "publish",
        help="check a trained artifact, copy it into the store, print the config to serve it",
        description=(
            "Copy a trained artifact (a file, or a flat directory of files) into the "
            "artifact store with its manifest and checksums. It is first loaded and "
            "smoke-tested from a temporary store; if that fails nothing is published. "
            "Existing versions are never overwritten."
        ),
    )
    publish.add_argument(
        "path",
        type=Path,
        nargs="?",
        default=None,
        help="a file (stored under the format's main file name, e.g. model.pt) or a "
        "directory of files (hidden files skipped, no subdirectories)",
    )
    publish.add_argument(
        "--from-mlflow",
        default=None,
        metavar="URI",
        help="instead of a path: a model in MLflow, models:/NAME/VERSION or "
        "runs:/RUN_ID/PATH (sklearn and onnx flavours); its run id, params, metrics and "
        "input example go into the manifest",
    )
    publish.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow's tracking store, e.g. sqlite:///mlflow.db (default: $MLFLOW_TRACKING_URI)",
    )
    publish.add_argument("--model", required=True, help="the model's name in the store")
    publish.add_argument(
        "--format",
        default=None,
        help=f"the artifact format: one of {', '.join(formats())} (from MLflow: implied)",
    )
    publish.add_argument(
        "--version", default=None, help="default: one more than the highest numeric version"
    )
    publish.add_argument("--store", default="artifacts", help="relative to $BLENDSERVE_HOME")
    publish.add_argument(
        "--example",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="a JSON list of example instances, kept in the manifest; every smoke test "
        "(here and before a new version takes traffic) predicts them",
    )
    publish.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME=NUMBER",
        help="an offline metric to record, e.g. auc=0.91 (repeatable)",
    )
    publish.add_argument("--description", default="", help="what this version is")
    publish.add_argument(
        "--extra",
        default=None,
        metavar="JSON",
        help="a JSON object merged into the manifest's extra, e.g. '{\"n_features\": 2}'",
    )
    publish.add_argument(
        "--catalog",
        default=None,
        metavar="ITEMS",
        help="the catalogue to check the model's item ids against: an item table "
        "(Parquet or CSV with item_id), a live catalogue's .sqlite or its postgresql:// "
        "URL (default: "
        f"{_DEFAULT_LIVE_CATALOGUE} when it exists); none known refuses the model",
    )
    publish.add_argument(
        "--no-check",
        action="store_true",
        help="publish without loading and smoke-testing first: for artifacts that need "
        "hardware this machine lacks (e.g. a GPU), or a service it cannot reach (an "
        "http model's endpoint)",
    )
    publish.add_argument(
        "--no-ann",
        action="store_true",
        help="no approximate index for a factor model (by default one of 10,000 items or "
        "more gets ann.faiss, tuned to recall@100 >= 0.95; serving uses it from the "
        "model option exact_below, 50,000 items, on)",
    )
    publish.set_defaults(func=_cmd_publish)

    models = sub.add_parser("models", help="list the artifact store")
    models.add_argument("name", nargs="?", default=None, help="show only this model's versions")
    models.add_argument("--store", default="artifacts", help="relative to $BLENDSERVE_HOME")
    models.add_argument(
        "--json", action="store_true", help="every manifest as a JSON list, for scripts"
    )
    models.set_defaults(func=_cmd_models)
