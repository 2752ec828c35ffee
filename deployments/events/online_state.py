"""The online learning state the event log keeps: time-decayed impressions and clicks
per item, learned from live feedback, checkpointed to the artifact store.

Ingresses fetch a snapshot of it every second (``bandit`` samples from it, ``fresh``
reads which items have had no feedback yet). A checkpoint is a model version in the
store, ``online_<app>/<unix ms>/state.json``, so ``blendserve models`` shows it and
its checksum is verified when it is read back. On start the newest checkpoint is
restored and the feedback logged after it is replayed from the dataset, so a
restart loses nothing that reached Parquet.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from blending.online import DecayedCounts, OnlineSnapshot
from deployments.config.data import OnlineConfig
from models.errors import BlendserveError
from models.store import ArtifactStore

__all__ = ["OnlineState"]

logger = logging.getLogger("ray.serve")

_CHECKPOINTS_KEPT = 3
_FORMAT = "online_state"
FORGET_BELOW = 0.01
"""An item whose decayed impressions and clicks are both below this is forgotten
(at a 6-hour half-life, one impression goes after 40 hours without another)."""


class OnlineState:
    """Decayed counts per item, with their checkpoints."""

    def __init__(self, config: OnlineConfig, store: ArtifactStore, app: str) -> None:
        self.config = config
        self.store = store
        self.name = f"online_{app}"
        self.counts = DecayedCounts(config.half_life_hours * 3600.0)
        self.restored_at: float | None = None
        self._dirty = False
        self._last_checkpoint = time.monotonic()

    def observe(self, item_id: str, event: str, at: float) -> None:
        """Learn from one impression or click (other events teach nothing here)."""
        if event in ("impression", "click"):
            self.counts.observe(item_id, event, at)  # type: ignore[arg-type]
            self._dirty = True

    def snapshot(self) -> OnlineSnapshot:
        """What ingresses fetch: the most seen items' decayed counts."""
        snapshot: OnlineSnapshot = self.counts.snapshot(time.time(), self.config.snapshot_items)
        return snapshot

    def restore(self, feedback: pa.Table) -> int:
        """Load the newest checkpoint, then replay ``feedback`` logged after it (all of
        it without a checkpoint); return the events replayed."""
        since = 0.0
        try:
            version = self.store.latest(self.name)
            self.store.verify(self.name, version)
            data = json.loads((self.store.path(self.name, version) / "state.json").read_text())
            self.counts = DecayedCounts.from_json(data["counts"])
            since = float(data["at"])
            self.restored_at = since
        except BlendserveError:
            pass  # no checkpoint yet
        except (OSError, ValueError, KeyError) as exc:
            logger.error("online state: checkpoint unreadable (%s); replaying all feedback", exc)
        replayed = 0
        rows = feedback.select(["ts", "item_id", "event"]).to_pylist()
        for row in rows:
            at = row["ts"].timestamp() if isinstance(row["ts"], datetime) else float(row["ts"])
            if at > since:
                self.observe(row["item_id"], row["event"], at)
                replayed += 1
        logger.info(
            "online state: %d items (checkpoint %s, %d events replayed)",
            len(self.counts),
            "none" if self.restored_at is None else f"of {self.restored_at:.0f}",
            replayed,
        )
        return replayed

    def bound(self, now: float) -> int:
        """Forget items whose counts have decayed to nothing, then the least seen
        beyond ``max_items``; how many went. Bounds the state whatever the catalogue's
        size or churn (it keeps an entry per item ever seen otherwise)."""
        forgotten = self.counts.prune(now, FORGET_BELOW)
        forgotten += self.counts.trim(now, self.config.max_items)
        return forgotten

    def checkpoint_due(self) -> bool:
        """Whether it changed and the checkpoint interval has passed."""
        elapsed = time.monotonic() - self._last_checkpoint
        return self._dirty and elapsed >= self.config.checkpoint_every_s

    def checkpoint(self) -> str:
        """Publish the state as a new version of ``online_<app>``; keep the last three."""
        return self.write_checkpoint(self.checkpoint_data())

    def checkpoint_data(self) -> dict[str, Any]:
        """The state to checkpoint, copied where feedback changes it (the event loop):
        a thread iterating the live dictionary would race the next event."""
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        return {"at": time.time(), "counts": self.counts.to_json()}

    def write_checkpoint(self, data: dict[str, Any]) -> str:
        """Publish ``data`` (``checkpoint_data``) as a new version; keep the last three.
        Blocking: run it in a thread."""
        at = float(data["at"])
        version = str(int(at * 1000))
        with tempfile.TemporaryDirectory(prefix="blendserve-online-") as tmp:
            path = Path(tmp) / "state.json"
            path.write_text(json.dumps(data), encoding="utf-8")
            self.store.publish(
                self.name,
                version,
                _FORMAT,
                {"state.json": path},
                description="Online learning state: decayed impressions and clicks per item.",
            )
        for old in self.store.versions(self.name)[:-_CHECKPOINTS_KEPT]:
            shutil.rmtree(self.store.path(self.name, old), ignore_errors=True)
        return version
