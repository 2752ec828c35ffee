"""The ``blendserve`` command line: train the demo, publish models, validate configs, serve
locally."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from deployments.cli.batch import add_batch_commands
from deployments.cli.debugging import add_debugging_commands
from deployments.cli.evaluation import add_evaluation_commands
from deployments.cli.store import add_store_commands
from deployments.config import (
    AppConfig,
    load_app,
    load_serve_config,
    misplaced_versions,
    resolve_store,
)
from deployments.local import front_door
from models.errors import BlendserveError
from models.store import ArtifactStore

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
    if args.load and not _load_models(args.config, apps):
        return 1
    summary = ", ".join(
        f"{n} ({len(a.args.models)} models, use cases {sorted(a.live.use_cases)})"
        for n, a in apps.items()
    )
    print(f"{args.config}: ok: {summary}")
    return 0


def _load_models(config: str, apps: dict[str, AppConfig]) -> bool:
    """``validate --load``: print what loading each model found; False on any error."""
    from deployments.offline.model_checks import check_models  # deferred: loads the models

    clean = True
    for app_name, app in apps.items():
        for finding in check_models(config, app_name, app):
            line = f"{config}: application {app_name!r}: {finding}"
            print(line, file=sys.stdout if finding.level == "ok" else sys.stderr)
            clean = clean and finding.level != "error"
    return clean


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


def _cmd_train(args: argparse.Namespace) -> int:
    from models.training.pipeline import train_from_config  # deferred: pulls in torch

    report = train_from_config(
        args.data_config, Path(args.store), Path(args.data), version=args.version
    )
    for manifest in report.manifests:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
        print(f"{manifest.name} v{manifest.version} ({manifest.format}): {metrics}")
    print()
    print(report.table())
    return 0


def _cmd_train_stack(args: argparse.Namespace) -> int:
    from deployments.offline.training import train_stack  # deferred: pulls in torch

    _, application = load_app(args.config, args.app)
    result = train_stack(
        application,
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


def _cmd_up(args: argparse.Namespace) -> int:
    from deployments.local.cluster import LocalRay, wait_ready
    from deployments.local.ports import port_is_free

    load_serve_config(args.config)  # a bad config fails here, before Ray starts
    port = _http_port(args.config)
    if not port_is_free(port):
        # The front door shares its port (SO_REUSEPORT): a second service would split it.
        raise BlendserveError(f"port {port} is in use (another `blendserve up`?); free it first")
    cluster = LocalRay(home=Path.cwd(), num_cpus=args.num_cpus, dashboard_port=args.dashboard_port)
    # SIGTERM takes Ctrl-C's path, so it also cleans up while Ray is still starting.
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"starting Ray on 127.0.0.1 (dashboard {cluster.dashboard_url}, loopback only)...",
        flush=True,
    )
    try:
        cluster.start()
        if args.no_front_door:
            cluster.deploy(Path(args.config))
        else:
            door = cluster.deploy_behind_front_door(Path(args.config))
            print(
                f"front door on port {port} (two HAProxy, {door.admission}); Serve's own "
                f"HAProxy on {door.serve_port}",
                flush=True,
            )
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
    from deployments.api.keys import add_key

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
    validate.add_argument(
        "--load",
        action="store_true",
        help="also load every model (with the code the replicas import) and check that "
        "each can play its role in the DAG and knows the catalogue's item ids",
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

    own = sub.add_parser(
        "train",
        help="train and publish the standard models on your own tables (a data config)",
    )
    own.add_argument(
        "--data-config", required=True, help="YAML: where the tables are, what columns mean"
    )
    own.add_argument("--store", default="artifacts")
    own.add_argument(
        "--data", default="data", help="where the dataset and its split are written (Parquet)"
    )
    own.add_argument(
        "--version",
        default="1",
        help="version to publish; existing versions are never overwritten, use a new one",
    )
    own.set_defaults(func=_cmd_train)

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

    add_evaluation_commands(sub)
    add_store_commands(sub)
    add_batch_commands(sub)
    add_debugging_commands(sub)

    up = sub.add_parser("up", help="start a local Ray on 127.0.0.1 and serve a config")
    up.add_argument("config", nargs="?", default="configs/default.yaml")
    up.add_argument("--num-cpus", type=float, default=2)
    up.add_argument("--dashboard-port", type=int, default=8265)
    up.add_argument("--timeout-s", type=float, default=600)
    up.add_argument(
        "--no-front-door",
        action="store_true",
        help="let Serve's own HAProxy take the HTTP port, without the front door: no "
        "admission control, and its death stops the service for ~24 s (docs/RELIABILITY.md)",
    )
    up.set_defaults(func=_cmd_up)

    front = sub.add_parser(
        "front-door",
        help="run the front door (two HAProxy with admission control) on this node's "
        "public HTTP port, in front of Serve's (docs/ops.md)",
    )
    front_door.add_arguments(front)
    front.set_defaults(func=front_door.run)

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
