"""What an ingress replica sets up once (its secrets from the environment, its
static catalogue), the log flush its housekeeping calls, and its report of a
degraded blend."""

from __future__ import annotations

import logging
import os
import secrets

from blending.catalog import ItemCatalog, StaticCatalog
from blending.dag import BlendOutcome
from blending.result_ids import ResultIdCodec
from deployments.config import PSEUDONYM_SALT_ENV, RESULT_KEY_ENV, AppArgs, resolve_store
from deployments.events.feedback import Pseudonymizer
from deployments.metrics import IngressMetrics

__all__ = ["flush_logs", "load_catalog", "pseudonymizer", "report_degraded", "result_codec"]

logger = logging.getLogger("ray.serve")


def _secret(env: str, consequence: str) -> bytes:
    """The secret in ``$env`` (at least 16 bytes), else a random one for this replica
    only, with a warning saying what that breaks."""
    value = os.environ.get(env, "").encode()
    if len(value) >= 16:
        return value
    logger.warning("%s is unset or shorter than 16 bytes: %s", env, consequence)
    return secrets.token_bytes(32)


def result_codec() -> ResultIdCodec:
    """Signs result ids with ``$BLENDSERVE_RESULT_KEY`` (the same on every replica)."""
    return ResultIdCodec(
        _secret(
            RESULT_KEY_ENV,
            "result ids are signed with a key of this replica only, so other replicas "
            "and restarts cannot verify them",
        )
    )


def pseudonymizer() -> Pseudonymizer:
    """Pseudonymises user ids with ``$BLENDSERVE_PSEUDONYM_SALT``."""
    return Pseudonymizer(
        _secret(
            PSEUDONYM_SALT_ENV,
            "user ids in the event log are hashed with a salt of this replica only, so "
            "one user gets a new pseudonym per replica and restart",
        )
    )


def flush_logs() -> None:
    """Write buffered log records now: throughput mode buffers replica logs (1000
    records, flushed on ERROR only)."""
    for handler in logger.handlers:
        handler.flush()


def load_catalog(args: AppArgs) -> ItemCatalog | None:
    """The static catalogue named by ``args.catalog``, if any."""
    if args.catalog is None:
        return None
    catalog = StaticCatalog.from_parquet(resolve_store(args.catalog), args.catalog_attributes)
    logger.info("catalogue %s: %d items", args.catalog, len(catalog))
    return catalog


def report_degraded(
    metrics: IngressMetrics, use_case: str, request_id: str, outcome: BlendOutcome
) -> None:
    """Count and log each node a request's blend left out, and why (at once: a
    degradation must reach the log now, and it is rare enough to pay a flush)."""
    for node, reason in outcome.failures.items():
        kind = "late" if node in outcome.late else "error"
        metrics.degraded_sources.inc(tags={"use_case": use_case, "node": node, "reason": kind})
        logger.warning(
            "use case %s request %s: %s left out (%s): %s", use_case, request_id, node, kind, reason
        )
    flush_logs()
