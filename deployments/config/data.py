"""Settings of the application's data services: the event log (served lists,
feedback, online learning) and the live item catalogue."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    max_items: int = Field(
        200_000,
        ge=1,
        le=10_000_000,
        description=(
            "Items the state keeps at most, the least seen forgotten first (about 200 "
            "bytes each in the event log); items whose counts have decayed to nothing "
            "are forgotten anyway."
        ),
    )
    checkpoint_every_s: float = Field(
        30, gt=0, le=86_400, description="How often the state is saved to the artifact store."
    )


class SeenConfig(BaseModel):
    """How much of what users saw and did is kept for use cases with ``seen:``
    (``deployments/events/seen_feed.py``, ``blending/seen.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feed_events: int = Field(
        2_000_000,
        ge=1000,
        le=100_000_000,
        description="Events the event log keeps for ingresses to follow (~150 bytes each).",
    )
    restore_days: float = Field(
        2, ge=0, le=365, description="Days of stored events a restarted event log reloads."
    )
    max_users: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Users each ingress replica keeps a history of, the least recently "
        "active forgotten first.",
    )
    max_events_per_user: int = Field(
        1000, ge=1, le=100_000, description="Events kept per user (9 bytes each), newest."
    )
    poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often each ingress fetches new events."
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
    url: str | None = Field(
        None,
        pattern=r"^postgres(ql)?://",
        description=(
            "A PostgreSQL database (`postgresql://user@host:5432/db`) instead of the SQLite "
            "file: the catalogue then survives losing any node and may run several replicas. "
            "Each app keeps its own schema; put a password in PGPASSWORD or a PGPASSFILE, "
            "not here."
        ),
    )
    num_replicas: int = Field(
        1,
        ge=1,
        le=16,
        description="Catalogue replicas; more than one needs `url` (SQLite has one writer).",
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

    @model_validator(mode="after")
    def _one_sqlite_writer(self) -> LiveCatalogConfig:
        if self.num_replicas > 1 and self.url is None:
            raise ValueError(
                "num_replicas: several catalogue replicas need a shared database (`url`); "
                "the SQLite file belongs to one replica's disk"
            )
        return self

    def store_path(self, app: str) -> Path:
        """Application ``app``'s SQLite file."""
        return resolve_store(self.path) / f"{app}.sqlite"

    def location(self, app: str) -> str:
        """Where application ``app``'s catalogue lives: the PostgreSQL URL, else its
        SQLite file."""
        return self.url if self.url is not None else str(self.store_path(app))


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
        description=(
            "Write-ahead log directory (relative to $BLENDSERVE_HOME): a local disk with "
            "fsync. On several nodes, the same shared volume on each (or the event log "
            "pinned to one node): a replica restarted elsewhere must find what its "
            "predecessor acknowledged."
        ),
    )
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="Events reach Parquet within this many seconds, ..."
    )
    flush_max_events: int = Field(
        5000, ge=1, le=1_000_000, description="... or once this many are waiting."
    )
    served_buffer_mb: float = Field(
        64,
        gt=0,
        le=4096,
        description=(
            "Served lists each ingress replica keeps while the event log is unreachable; "
            "once full, recommendations answer 503 `event_log_backlog` (none is dropped)."
        ),
    )
    num_cpus: float = Field(0.1, gt=0, le=16, description="CPUs of the event log replica.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources of its replica, e.g. to pin it where its WAL lives.",
    )
    online: OnlineConfig = Field(
        default_factory=OnlineConfig, description="Online learning from feedback."
    )
    seen: SeenConfig = Field(
        default_factory=SeenConfig,
        description="What users were shown and acted on, for use cases' `seen` rules.",
    )

    def dataset_uri(self, app: str) -> str:
        """Application ``app``'s dataset: one per app, so two never mix use cases."""
        if "://" not in self.uri:
            return f"{resolve_store(self.uri)}/{app}"
        # The app goes into the path, before a query such as `?endpoint_override=...`.
        root, query = self.uri.partition("?")[::2]
        return f"{root.rstrip('/')}/{app}" + (f"?{query}" if query else "")

    def wal_path(self, app: str) -> Path:
        """Application ``app``'s write-ahead log directory."""
        return resolve_store(self.wal_dir) / app
