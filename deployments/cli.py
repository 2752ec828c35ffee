"""The ``blendserve`` command line: train the demo, publish models, validate configs, serve
locally."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from deployments.config import (
    INGRESS_DEPLOYMENT,
    ModelConfig,
    load_serve_config,
    misplaced_versions,
    resolve_store,
)
from deployments.versions import model_deployment
from models.errors import ArtifactNotFoundError, BlendserveError, ConfigError
from models.registry import formats
from models.store import ArtifactStore, Manifest

__all__ = ["main"]


def _cmd_validate(args: argparse.Namespace) -> int:
    apps = load_serve_config(args.config)
    problems: list[str] = []
    for app_name, app in apps.items():
        if args.skip_store:
            continue
        store = ArtifactStore(resolve_store(app.args.store))
        for model, rollout in app.rollouts.items():
            for version in rollout.versions():
                try:
                    store.verify(model, version)
                except BlendserveError as exc:
                    problems.append(f"application {app_name!r}: {exc}")
        problems += [f"application {app_name!r}: {p}" for p in misplaced_versions(app, store)]
        if app.args.catalog is not None and not resolve_store(app.args.catalog).is_file():
            problems.append(f"application {app_name!r}: catalog {app.args.catalog} is missing")
    if problems:
        for problem in problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 1
    summary = ", ".join(
        f"{n} ({len(a.args.models)} models, use cases {sorted(a.live.use_cases)})"
        for n, a in apps.items()
    )
    print(f"{args.config}: ok: {summary}")
    return 0


def _cmd_demo_train(args: argparse.Namespace) -> int:
    from models.demo.train import demo_train  # deferred: pulls in torch

    manifests = demo_train(
        Path(args.store),
        Path(args.data),
        seed=args.seed,
        movielens=args.movielens,
        version=args.version,
    )
    for manifest in manifests:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
        print(f"{manifest.name} v{manifest.version} ({manifest.format}): {metrics}")
    return 0


def _cmd_train_stack(args: argparse.Namespace) -> int:
    from deployments.training import train_stack  # deferred: pulls in torch

    apps = load_serve_config(args.config)
    app_name = args.app or next(iter(apps))
    if app_name not in apps:
        raise ConfigError(f"{args.config}: no blendserve application {app_name!r} ({sorted(apps)})")
    result = train_stack(
        apps[app_name],
        args.use_case,
        args.node,
        args.feedback,
        version=args.version,
        seed=args.seed,
        skip_existing=args.skip_existing,
    )
    if result is None:
        print(f"{args.use_case}.{args.node}: that version is already published; not retraining")
        return 0
    manifest, n_examples = result
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    print(
        f"{manifest.name} v{manifest.version} (stack over {manifest.extra['feature_names']}, "
        f"{n_examples} examples): {metrics}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from deployments.report import dataset_reports, format_report

    apps = load_serve_config(args.config)
    app_name = args.app or next(iter(apps))
    if app_name not in apps:
        raise ConfigError(f"{args.config}: no blendserve application {app_name!r} ({sorted(apps)})")
    reports = dataset_reports(apps[app_name], app_name, args.events, args.experiment)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n\n".join(format_report(r) for r in reports) or "no experiments configured")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from deployments.evaluate import evaluate, write_html  # deferred: pulls in torch

    report = evaluate(
        args.config,
        args.data,
        use_case=args.use_case,
        k=args.k,
        app=args.app,
        train=args.train,
    )
    print(report.table())
    if args.out is not None:
        print(f"wrote {write_html(report, args.out)}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from models.publish import parse_extra, parse_metrics, publish_artifact, read_examples

    store = ArtifactStore(resolve_store(args.store))
    try:
        manifest, tried = publish_artifact(
            store,
            args.path,
            args.model,
            args.format,
            version=args.version,
            examples=None if args.example is None else read_examples(args.example),
            metrics=parse_metrics(args.metric),
            description=args.description,
            extra=None if args.extra is None else parse_extra(args.extra),
            check=not args.no_check,
        )
    except BlendserveError as exc:
        print(f"blendserve publish: {exc}\nnothing was published to {store.root}", file=sys.stderr)
        return 2
    smoke = "skipped (--no-check)" if args.no_check else _smoke_summary(tried)
    print(_publish_summary(manifest, store.path(manifest.name, manifest.version), smoke))
    print()
    print(_serve_snippet(manifest.name, manifest.version, manifest.format))
    return 0


def _smoke_summary(tried: Sequence[str]) -> str:
    if not tried:
        return "loaded; nothing to try (publish with --example to check predictions)"
    return f"passed: {', '.join(tried)}"


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


def _cmd_up(args: argparse.Namespace) -> int:
    from deployments.local import LocalRay, wait_ready

    load_serve_config(args.config)  # a bad config fails here, before Ray starts
    port = _http_port(args.config)
    cluster = LocalRay(home=Path.cwd(), num_cpus=args.num_cpus, dashboard_port=args.dashboard_port)
    # SIGTERM takes Ctrl-C's path, so it also cleans up while Ray is still starting.
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"starting Ray on 127.0.0.1 (dashboard {cluster.dashboard_url}, loopback only)...",
        flush=True,
    )
    try:
        cluster.start()
        cluster.deploy(Path(args.config))
        print("deployed; waiting until every model is ready...", flush=True)
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=args.timeout_s)
        base = f"http://127.0.0.1:{port}"
        key_file = os.path.relpath(cluster.api_key_path)
        print(
            f"\nblendserve is ready at {base}  (API docs: {base}/docs)\n"
            f"API key (development, every scope): {key_file}  (git-ignored)\n\n"
            f"  curl -s -X POST {base}/v1/recommend/home \\\n"
            f'       -H "Authorization: Bearer $(cat {key_file})" \\\n'
            "       -H 'Content-Type: application/json' \\\n"
            '       -d \'{"user_id": "u0042", "k": 10}\'\n\n'
            f"Dashboard: {base}/dashboard  (it asks for the key in {key_file})\n"
            f"Prometheus metrics (Ray's metrics agent): {cluster.metrics_url}\n"
            f"Data scientists: RAY_AUTH_MODE=token serve deploy {args.config} "
            f"--address {cluster.dashboard_url}\nCtrl-C stops everything started here.",
            flush=True,
        )
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("stopping...", flush=True)
    finally:
        cluster.stop()
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from deployments.security import add_key

    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = add_key(path, args.name, args.scopes, args.requests_per_s, args.burst)
    print(key)
    print(
        f"added {args.name!r} ({', '.join(args.scopes)}) to {path}; the key above is not "
        "stored anywhere: hand it over now",
        file=sys.stderr,
    )
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _http_port(config: str) -> int:
    import yaml

    data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    return int((data.get("http_options") or {}).get("port", 8000))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blendserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check a Serve config without Ray")
    validate.add_argument("config")
    validate.add_argument(
        "--skip-store", action="store_true", help="do not check that the artifacts exist"
    )
    validate.set_defaults(func=_cmd_validate)

    train = sub.add_parser("demo-train", help="generate demo data, train and publish models")
    train.add_argument("--store", default="artifacts")
    train.add_argument("--data", default="data")
    train.add_argument("--seed", type=int, default=7)
    train.add_argument("--movielens", type=Path, default=None, help="train on MovieLens files")
    train.add_argument(
        "--version",
        default="1",
        help="version to publish; existing versions are never overwritten, use a new one",
    )
    train.set_defaults(func=_cmd_demo_train)

    stack = sub.add_parser(
        "train-stack", help="fit a stack node's combiner from logged feedback and publish it"
    )
    stack.add_argument("config", help="the Serve config holding the use case")
    stack.add_argument("--use-case", required=True)
    stack.add_argument("--node", required=True, help="the stack node to train")
    stack.add_argument(
        "--feedback", required=True, type=Path, help="Parquet: user_id, item_id, label (0/1)"
    )
    stack.add_argument("--app", default=None, help="application name (default: the first)")
    stack.add_argument(
        "--version", default=None, help="version to publish (default: the config's version)"
    )
    stack.add_argument("--seed", type=int, default=7)
    stack.add_argument(
        "--skip-existing",
        action="store_true",
        help="exit quietly when that version is already published (for `make run`)",
    )
    stack.set_defaults(func=_cmd_train_stack)

    report = sub.add_parser(
        "report", help="experiment statistics from the event log's Parquet dataset"
    )
    report.add_argument("config", help="the Serve config holding the experiments")
    report.add_argument("--app", default=None, help="application name (default: the first)")
    report.add_argument("--experiment", default=None, help="one `<use case>.<node>` only")
    report.add_argument("--events", default=None, help="dataset URI (default: the app's)")
    report.add_argument("--json", action="store_true", help="the reports as JSON")
    report.set_defaults(func=_cmd_report)

    evaluate = sub.add_parser(
        "evaluate",
        help="replay held-out interactions through each blend of a use case, offline",
        description=(
            "Load the use case's models in this process and rank k items for every "
            "held-out user with each blend (the output, each experiment arm, each "
            "interleaving team), then compare precision, recall, nDCG, MAP, catalogue "
            "coverage and novelty."
        ),
    )
    evaluate.add_argument("--config", required=True, help="the Serve config holding the use case")
    evaluate.add_argument(
        "--data",
        required=True,
        type=Path,
        help="held-out interactions: Parquet (user_id, item_id, optional label > 0) or "
        "MovieLens ratings (ratings.dat, ratings.csv, u.data; rating >= 4 is relevant)",
    )
    evaluate.add_argument(
        "--use-case", default=None, help="default: the application's only use case"
    )
    evaluate.add_argument("--k", type=int, default=10, help="list length scored")
    evaluate.add_argument("--app", default=None, help="application name (default: the first)")
    evaluate.add_argument(
        "--train",
        type=Path,
        default=None,
        help="training interactions, same formats: item popularity for novelty "
        "(default: the held-out data's)",
    )
    evaluate.add_argument(
        "--out", type=Path, default=None, help="also write a self-contained HTML report"
    )
    evaluate.set_defaults(func=_cmd_evaluate)

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
        help="a file (stored under the format's main file name, e.g. model.pt) or a "
        "directory of files (hidden files skipped, no subdirectories)",
    )
    publish.add_argument("--model", required=True, help="the model's name in the store")
    publish.add_argument(
        "--format", required=True, help=f"the artifact format: one of {', '.join(formats())}"
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
        "--no-check",
        action="store_true",
        help="publish without loading and smoke-testing first: for artifacts that need "
        "hardware this machine lacks (e.g. a GPU), or a service it cannot reach (an "
        "http model's endpoint)",
    )
    publish.set_defaults(func=_cmd_publish)

    models = sub.add_parser("models", help="list the artifact store")
    models.add_argument("name", nargs="?", default=None, help="show only this model's versions")
    models.add_argument("--store", default="artifacts", help="relative to $BLENDSERVE_HOME")
    models.add_argument(
        "--json", action="store_true", help="every manifest as a JSON list, for scripts"
    )
    models.set_defaults(func=_cmd_models)

    up = sub.add_parser("up", help="start a local Ray on 127.0.0.1 and serve a config")
    up.add_argument("config", nargs="?", default="configs/default.yaml")
    up.add_argument("--num-cpus", type=float, default=2)
    up.add_argument("--dashboard-port", type=int, default=8265)
    up.add_argument("--timeout-s", type=float, default=600)
    up.set_defaults(func=_cmd_up)

    keys = sub.add_parser(
        "keys", help="add an API key: prints it once, stores only its SHA-256 digest"
    )
    keys.add_argument("action", choices=["add"])
    keys.add_argument("name", help="who the key is for, e.g. storefront")
    keys.add_argument(
        "--scope", action="append", choices=["infer", "admin"], required=True, dest="scopes"
    )
    keys.add_argument("--file", default=".blendserve/api_keys.yaml", help="the keys file")
    keys.add_argument("--requests-per-s", type=float, help="this key's own rate limit")
    keys.add_argument("--burst", type=int)
    keys.set_defaults(func=_cmd_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blendserve`` console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BlendserveError as exc:
        print(f"blendserve {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
