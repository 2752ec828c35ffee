"""``blendserve report``, ``evaluate`` and ``demo-traffic``: experiments online (from the
event log), blends offline (replayed on held-out data), and simulated readers."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from deployments.config import (
    load_app,
)
from models.errors import ConfigError

__all__ = ["add_evaluation_commands"]


def _cmd_report(args: argparse.Namespace) -> int:
    from deployments.offline.report import dataset_reports, format_report

    app_name, application = load_app(args.config, args.app)
    reports = dataset_reports(application, app_name, args.events, args.experiment)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n\n".join(format_report(r) for r in reports) or "no experiments configured")
    return 0


def _cmd_counterfactual(args: argparse.Namespace) -> int:
    from deployments.offline.counterfactual import evaluate_counterfactual
    from deployments.offline.html_report import write_counterfactual_html

    if len(args.config) != 1:
        raise ConfigError("--counterfactual: give the serving config once, as --config")
    run = evaluate_counterfactual(
        args.config[0],
        args.counterfactual,
        use_case=args.use_case,
        app=args.app,
        events=args.events,
        users=args.users,
        limit=args.limit,
    )
    print(run.table())
    if args.out is not None:
        print(f"wrote {write_counterfactual_html(run, args.out)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.counterfactual is not None:
        return _cmd_counterfactual(args)
    from deployments.offline.evaluate import evaluate  # deferred: pulls in torch
    from deployments.offline.html_report import write_html

    report = evaluate(
        args.config,
        args.data,
        use_case=args.use_case,
        k=args.k,
        app=args.app,
        train=args.train,
        data_config=args.data_config,
        exclude_seen=not args.include_seen,
    )
    print(report.table())
    if args.out is not None:
        print(f"wrote {write_html(report, args.out)}")
    return 0


def _cmd_demo_traffic(args: argparse.Namespace) -> int:
    from deployments.local.demo_traffic import Readers, run_demo_traffic

    key_file = Path(args.api_key_file)
    api_key = key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else None
    readers = Readers.from_demo_data(Path(args.data))
    print(
        f"{len(readers.taste)} simulated readers ask {args.url}/v1/recommend/{args.use_case} "
        f"{args.rate:g} times a second for {args.duration:g} s and click what they like; "
        f"watch {args.url}/dashboard",
        flush=True,
    )
    totals = asyncio.run(
        run_demo_traffic(
            args.url,
            api_key,
            readers,
            args.use_case,
            args.rate,
            args.duration,
            args.seed,
            report=lambda line: print(line, flush=True),
        )
    )
    print(
        f"done: {totals.requests} lists, {totals.impressions} impressions, {totals.clicks} clicks"
    )
    return 0 if totals.requests else 1


def add_evaluation_commands(sub: Any) -> None:
    """Register ``report``, ``evaluate`` and ``demo-traffic`` on the sub-parsers."""
    traffic = sub.add_parser(
        "demo-traffic", help="simulated readers who click what they like (feeds /dashboard)"
    )
    traffic.add_argument("--url", default="http://127.0.0.1:8000")
    traffic.add_argument("--use-case", default="discover")
    traffic.add_argument("--rate", type=float, default=20.0, help="readers per second")
    traffic.add_argument("--duration", type=float, default=60.0, help="seconds")
    traffic.add_argument("--data", default="data", help="the demo data (readers' tastes)")
    traffic.add_argument("--api-key-file", default=".blendserve/api_key")
    traffic.add_argument("--seed", type=int, default=7)
    traffic.set_defaults(func=_cmd_demo_traffic)

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
            "interleaving team, each source), each user's training items excluded, then "
            "compare precision, recall, nDCG, MAP (with 95% intervals over users), "
            "catalogue coverage and novelty. Give --config twice or more to compare configs."
        ),
    )
    evaluate.add_argument(
        "--config",
        required=True,
        action="append",
        help="a Serve config holding the use case (repeat to compare configs)",
    )
    evaluate.add_argument(
        "--data",
        type=Path,
        default=None,
        help="held-out interactions: Parquet (user_id, item_id, optional label > 0), a "
        "folder written by blendserve train (heldout.parquet) or MovieLens ratings "
        "(ratings.dat, ratings.csv, u.data; rating >= 4 is relevant)",
    )
    evaluate.add_argument(
        "--data-config",
        default=None,
        help="instead of --data and --train: the data config given to blendserve train "
        "(the same time split its manifests were measured on)",
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
        help="training interactions, same formats: excluded from each user's list, and "
        "item popularity for novelty (default: train.parquet beside --data)",
    )
    evaluate.add_argument(
        "--include-seen",
        action="store_true",
        help="do not exclude training items (scores a model on what users already have)",
    )
    evaluate.add_argument(
        "--out", type=Path, default=None, help="also write a self-contained HTML report"
    )
    evaluate.add_argument(
        "--counterfactual",
        default=None,
        metavar="CANDIDATE",
        help="instead of held-out data: estimate the CTR the CANDIDATE config's use case "
        "would have reached on the lists --config's app served (its event log), with "
        "IPS, SNIPS and doubly robust estimators",
    )
    evaluate.add_argument(
        "--events", default=None, help="--counterfactual: the dataset (default: the app's)"
    )
    evaluate.add_argument(
        "--users",
        type=Path,
        default=None,
        help="--counterfactual: Parquet or CSV with a user_id column, to resolve the log's "
        "pseudonyms (default: the users the models know)",
    )
    evaluate.add_argument(
        "--limit", type=int, default=None, help="--counterfactual: the latest N lists only"
    )
    evaluate.set_defaults(func=_cmd_evaluate)
