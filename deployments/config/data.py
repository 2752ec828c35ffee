"""Settings of the application's data services: the event log (served lists,
feedback, online learning) and the live item catalogue."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from deployments.config.paths import resolve_store

__all__ = ["EventsConfig", "LiveCatalogConfig", "OnlineConfig"]


class OnlineConfig(BaseModel):
    """Online learning from live feedback, kept by the event log (``bandit`` and
    ``fresh`` nodes read it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_hours: float = Field(
        6, gt=0, le=24 * 365, description="Feedback this old counts half (time decay)."
    )
    snapshot_items: int = Field(
        2000, ge=1, le=1_000_000, description="Items (most seen) each ingress receives."
    )
    checkpoint_every_s: float = Field(
        30, gt=0, le=86_400, description="How often the state is saved to the artifact store."
    )


class LiveCatalogConfig(BaseModel):
    """The live item catalogue: an admin API, durable, seen by every ingress within a
    second (``deployments/serve/catalog.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        ".blendserve/catalog",
        min_length=1,
        description="Directory of the SQLite stores, one per app (relative to $BLENDSERVE_HOME).",
    )
    seed: str | None = Field(
        None,
        description="Parquet file imported once into a new, empty catalogue (default: `catalog`).",
    )
    poll_interval_s: float = Field(
        0.2, gt=0, le=10, description="How often each ingress fetches changes."
    )
    max_batch: int = Field(1000, ge=1, le=100_000, description="Most items in one batch upsert.")
    num_cpus: float = Field(0.05, gt=0, le=16, description="CPUs of the catalogue replica.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources of its replica, e.g. to keep it off GPU nodes.",
    )

    def store_path(self, app: str) -> Path:
        """Application ``app``'s SQLite file."""
        return resolve_store(self.path) / f"{app}.sqlite"


class EventsConfig(BaseModel):
    """Where the event log keeps served lists and feedback (``deployments/events/store.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(
        "events",
        min_length=1,
        description=(
            "The Parquet dataset: a path (relative ones resolve against $BLENDSERVE_HOME) or "
            "a pyarrow filesystem URI such as `s3://bucket/events`. One folder per app."
        ),
    )
    wal_dir: str = Field(
        ".blendserve/wal",
        min_length=1,
        description="Local write-ahead log directory (relative to $BLENDSERVE_HOME).",
    )
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="Events reach Parquet within this many seconds, ..."
    )
    flush_max_events: int = Field(
        5000, ge=1, le=1_000_000, description="... or once this many are waiting."
    )
    num_cpus: float = Field(0.1, gt=0, le=16, description="CPUs of the event log replica.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources of its replica, e.g. to pin it where its WAL lives.",
    )
    online: OnlineConfig = Field(
        default_factory=OnlineConfig, description="Online learning from feedback."
    )

    def dataset_uri(self, app: str) -> str:
        """Application ``app``'s dataset: one per app, so two never mix use cases."""
        root = self.uri.rstrip("/") if "://" in self.uri else str(resolve_store(self.uri))
        return f"{root}/{app}"

    def wal_path(self, app: str) -> Path:
        """Application ``app``'s write-ahead log directory."""
        return resolve_store(self.wal_dir) / app
