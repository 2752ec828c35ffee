"""``blendserve explain`` and ``blendserve replay``: one served list, from the event log."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from deployments.config import load_app
from models.errors import BlendserveError

__all__ = ["add_debugging_commands"]


def _cmd_explain(args: argparse.Namespace) -> int:
    from deployments.offline.explain import explain, find_served, render_explanation

    try:
        name, app = load_app(args.deployment, args.app)
        report = explain(find_served(app, name, args.request_id))
    except BlendserveError as exc:
        print(f"blendserve explain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str) if args.json else render_explanation(report))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from deployments.offline.explain import find_served
    from deployments.offline.replay import replay

    try:
        name, app = load_app(args.deployment, args.app)
        served = find_served(app, name, args.request_id)
        under = load_app(args.config, name)[1] if args.config else None
        result = asyncio.run(replay(served, app, name, args.user, under))
    except BlendserveError as exc:
        print(f"blendserve replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
        return 0 if result.same else 1
    how = f"under {args.config}" if args.config else "with the logged plan and versions"
    versions = ", ".join(f"{m} {v}" for m, v in sorted(result.model_versions.items()))
    print(f"replayed request {args.request_id} {how} (plan {result.plan_version}; {versions})")
    if result.same:
        print(f"same list: {len(result.served)} items, same order, scores within 1e-6")
    else:
        print("DIFFERENT:")
        width = max(len(result.served), len(result.replayed))
        for n in range(width):
            then = result.served[n] if n < len(result.served) else ("-", float("nan"))
            now = result.replayed[n] if n < len(result.replayed) else ("-", float("nan"))
            mark = " " if then[0] == now[0] and abs(then[1] - now[1]) <= 1e-6 else "*"
            print(f"  {mark}{n + 1:>3}. served {then[0]} {then[1]:.6f}  now {now[0]} {now[1]:.6f}")
    for reason in result.differences:
        print(f"  why: {reason}")
    return 0 if result.same else 1


def add_debugging_commands(sub: Any) -> None:
    """Register ``explain`` and ``replay`` on the ``blendserve`` sub-parsers."""
    for name, helptext, func in (
        (
            "explain",
            "what produced a served list: plan, arm, versions, nodes, timings",
            _cmd_explain,
        ),
        ("replay", "run a served request again in process and compare the lists", _cmd_replay),
    ):
        command = sub.add_parser(name, help=helptext, description=helptext)
        command.add_argument("request_id", help="the answer's request_id")
        command.add_argument(
            "--deployment",
            default="configs/default.yaml",
            help="the Serve config that served it: where its event log, store and "
            "catalogue are (default: configs/default.yaml)",
        )
        command.add_argument("--app", default=None, help="its application (default: the first)")
        command.add_argument("--json", action="store_true", help="print JSON, for tools")
        if name == "replay":
            command.add_argument(
                "--user", required=True, help="the user id the request was for (checked)"
            )
            command.add_argument(
                "--config",
                default=None,
                help="replay under this Serve config's use case and model versions "
                "instead of the logged ones: check a fix before deploying it",
            )
        command.set_defaults(func=func)
