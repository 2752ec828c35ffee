"""The durable event log: a write-ahead log on local disk, flushed to partitioned Parquet.

Every event is appended to the current WAL segment (``<wal_dir>/<segment>.jsonl``)
and fsync'ed *before* the caller is told it is stored, so an acknowledged event
survives the process being killed. Within ``flush_interval_s`` (or after
``flush_max_events``) the segment is closed and written as Parquet to the dataset
at ``uri``::

    <uri>/served/date=2026-11-28/use_case=home/part-<segment>-0.parquet
    <uri>/feedback/date=2026-11-28/use_case=home/part-<segment>-0.parquet

and only then deleted. The Parquet file names come from the segment, so writing a
segment again (after a crash between the write and the delete) replaces the same
files: every event lands exactly once. On start, ``recover`` writes whatever
segments a killed process left behind.

``uri`` is a local path or anything ``pyarrow.fs.FileSystem.from_uri`` opens
(``s3://bucket/events``, ``gs://...``); the WAL is always local (fsync semantics).
Plain Python: no Ray.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from deployments.json_types import JsonObject

__all__ = [
    "FEEDBACK_SCHEMA",
    "SERVED_SCHEMA",
    "EventStore",
    "open_dataset_root",
    "read_events",
]

logger = logging.getLogger("ray.serve")

_STRING_MAP = pa.map_(pa.string(), pa.string())

SERVED_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("request_id", pa.string()),
        ("user", pa.string()),
        ("variant", _STRING_MAP),
        ("items", pa.list_(pa.string())),
        ("teams", pa.list_(pa.string())),
        ("model_versions", _STRING_MAP),
        ("latency_ms", pa.float64()),
        ("degraded", pa.bool_()),
        ("plan_version", pa.string()),
        ("plan", pa.string()),
        ("inputs", pa.string()),
        ("propensities", pa.list_(pa.float64())),
        ("date", pa.string()),
        ("use_case", pa.string()),
    ]
)
"""One served list: who (pseudonymised), what in which order, by which variant or
team (``teams[i]`` is item i's interleaving team, ``""`` for none), which versions,
how fast, whether degraded, which plan with which inputs (for ``blendserve
explain`` and ``replay``), and each position's propensity (for counterfactual
evaluation); null in lists stored before they were recorded."""

FEEDBACK_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("event_id", pa.string()),
        ("event", pa.string()),
        ("value", pa.float64()),
        ("result_id", pa.string()),
        ("request_id", pa.string()),
        ("item_id", pa.string()),
        ("position", pa.int32()),
        ("served_at", pa.timestamp("s", tz="UTC")),
        ("variant", _STRING_MAP),
        ("team", pa.string()),
        ("model_versions", _STRING_MAP),
        ("unit", pa.int32()),
        ("date", pa.string()),
        ("use_case", pa.string()),
    ]
)
"""One feedback event (impression, click, conversion) and the served item it is
about, as its result id recorded it."""

_SCHEMAS = {"served": SERVED_SCHEMA, "feedback": FEEDBACK_SCHEMA}
_STAGING = "_staging"
"""Where a local dataset's files are written before they are renamed into place
(pyarrow's dataset discovery skips names that start with "_")."""
_PARTITIONING = ds.partitioning(
    pa.schema([("date", pa.string()), ("use_case", pa.string())]), flavor="hive"
)


def open_dataset_root(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of the dataset at ``uri`` (a path or a URI)."""
    if "://" not in uri:
        path = Path(uri).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return pafs.LocalFileSystem(), str(path)
    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path


def _to_row(kind: str, record: Mapping[str, Any]) -> JsonObject:
    """A WAL record as a table row: maps as lists of pairs, times as datetimes."""
    row = dict(record)
    row["ts"] = datetime.fromtimestamp(float(record["ts"]), UTC)
    if kind == "feedback":
        row["served_at"] = datetime.fromtimestamp(int(record["served_at"]), UTC)
    for key in ("variant", "model_versions"):
        row[key] = list((record.get(key) or {}).items())
    row["date"] = row["ts"].strftime("%Y-%m-%d")
    return row


def read_events(
    filesystem: pafs.FileSystem,
    root: str,
    kind: str,
    columns: list[str] | None = None,
    since: str | None = None,
) -> pa.Table:
    """Every event of ``kind`` (``served`` or ``feedback``) in the dataset at ``root``;
    only those dated ``since`` (``YYYY-MM-DD``) or later when given, reading only their
    date partitions."""
    directory = f"{root}/{kind}"
    if filesystem.get_file_info(directory).type == pafs.FileType.NotFound:
        return _SCHEMAS[kind].empty_table().select(columns or _SCHEMAS[kind].names)
    dataset = ds.dataset(
        directory,
        filesystem=filesystem,
        format="parquet",
        partitioning=_PARTITIONING,
        schema=_SCHEMAS[kind],
    )
    recent = None if since is None else ds.field("date") >= since
    return dataset.to_table(columns=columns, filter=recent)


class EventStore:
    """Appends events durably and flushes them to a partitioned Parquet dataset."""

    def __init__(
        self,
        uri: str,
        wal_dir: str | os.PathLike[str],
        flush_interval_s: float = 1.0,
        flush_max_events: int = 5000,
    ) -> None:
        self.uri = uri
        self.filesystem, self.root = open_dataset_root(uri)
        self.wal_dir = Path(wal_dir)
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self.flush_max_events = flush_max_events
        self._lock = threading.Lock()  # one writer of the current segment at a time
        self._flush_lock = threading.Lock()
        self._open_segment()

    def _open_segment(self) -> None:
        self._segment = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._path = self.wal_dir / f"{self._segment}.jsonl"
        self._handle = self._path.open("ab", buffering=0)
        self._records: list[tuple[str, JsonObject]] = []
        self._opened_at = time.monotonic()

    def append(self, kind: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Write ``records`` of ``kind`` (``served`` or ``feedback``) to the WAL and fsync;
        return how many. Once this returns, they survive a crash."""
        if kind not in _SCHEMAS:
            raise ValueError(f"unknown event kind {kind!r}")
        lines = [(kind, dict(r)) for r in records]
        if not lines:
            return 0
        text = "".join(json.dumps({"kind": k, **r}, separators=(",", ":")) + "\n" for k, r in lines)
        data = text.encode()
        with self._lock:
            fd = self._handle.fileno()
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError:
                # A full disk may leave part of the batch behind: cut it off, or the
                # next batch's first line would be glued to it and lost on recovery.
                # The caller was not told these were stored; it retries them.
                os.ftruncate(fd, end)
                raise
            self._records.extend(lines)
        return len(lines)

    def flush_due(self) -> bool:
        """Whether the current segment should be written to Parquet now."""
        return bool(self._records) and (
            len(self._records) >= self.flush_max_events
            or time.monotonic() - self._opened_at >= self.flush_interval_s
        )

    def flush(self) -> int:
        """Close the current segment, write it to Parquet, delete it; return events."""
        with self._flush_lock:
            with self._lock:
                if not self._records:
                    return 0
                segment, path, records = self._segment, self._path, self._records
                self._handle.close()
                self._open_segment()
            self._write(segment, records)
            path.unlink()
            return len(records)

    def recover(self) -> int:
        """Write the segments a previous process left behind (it was killed before
        flushing them); return how many events they held."""
        recovered = 0
        for path in sorted(self.wal_dir.glob("*.jsonl")):
            if path == self._path:
                continue
            records = list(self._read_segment(path))
            if records:
                self._write(path.stem, records)
            path.unlink()
            recovered += len(records)
        if recovered:
            logger.info("event log: recovered %d events from the write-ahead log", recovered)
        return recovered

    @staticmethod
    def _read_segment(path: Path) -> Iterable[tuple[str, JsonObject]]:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    # Only the last line of a killed writer can be torn, and its
                    # caller was never told it was stored.
                    logger.warning("event log: skipping a torn line in %s", path.name)
                    continue
                yield record.pop("kind"), record

    def _write(self, segment: str, records: list[tuple[str, JsonObject]]) -> None:
        # A reader (a report, `blendserve evaluate`, the tests) must never open a
        # half-written file. On a local disk each file is written in a staging
        # directory that dataset discovery skips (its name starts with "_"), then
        # renamed into place; an object store shows an object only once it is whole.
        local = isinstance(self.filesystem, pafs.LocalFileSystem)
        for kind, schema in _SCHEMAS.items():
            rows = [_to_row(kind, r) for k, r in records if k == kind]
            if not rows:
                continue
            table = pa.Table.from_pylist(rows, schema=schema)
            target = f"{self.root}/{kind}"
            staging = f"{target}/{_STAGING}/{segment}"
            ds.write_dataset(
                table,
                staging if local else target,
                filesystem=self.filesystem,
                format="parquet",
                partitioning=_PARTITIONING,
                basename_template=f"part-{segment}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
            )
            if local:
                self._publish_staged(staging, target)
                # Flushes run one at a time: what else is staged was left by a killed
                # writer, and its WAL segment, still there, is written again.
                self.filesystem.delete_dir(f"{target}/{_STAGING}")

    def _publish_staged(self, staging: str, target: str) -> None:
        """Rename every file written under ``staging`` to the same place under
        ``target`` (a rewrite after a crash replaces it)."""
        selector = pafs.FileSelector(staging, recursive=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            final = f"{target}/{info.path[len(staging) + 1 :]}"
            self.filesystem.create_dir(final.rsplit("/", 1)[0], recursive=True)
            self.filesystem.move(info.path, final)

    def read(
        self, kind: str, columns: list[str] | None = None, since: str | None = None
    ) -> pa.Table:
        """Every flushed event of ``kind`` (empty when none yet), or those dated
        ``since`` or later."""
        return read_events(self.filesystem, self.root, kind, columns, since)

    def pending(self) -> list[tuple[str, JsonObject]]:
        """Events in the current segment, not yet in Parquet."""
        with self._lock:
            return list(self._records)

    def close(self) -> None:
        """Flush what is pending and close the WAL."""
        self.flush()
        self._handle.close()
