"""The durable catalogue: versioned writes, tombstones in the change feed, batches all
or nothing, survival across a reopen, seeding once, writers on several connections,
and request validation that names the field. Every store test runs on both backends:
a real SQLite file and a real PostgreSQL server (Debian's, started for the run). No Ray."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deployments.catalog.backends import open_catalog_store
from deployments.catalog.items import (
    CatalogItem,
    ItemNotFoundError,
    ItemPatch,
    parse_batch,
    parse_item,
    parse_patch,
)
from deployments.catalog.store import CatalogStore
from models.errors import BlendserveError, ConfigError, InputError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _item(item_id: str, **fields: Any) -> CatalogItem:
    return CatalogItem(item_id=item_id, **fields)


@dataclass(frozen=True)
class Backend:
    """Where a test's catalogue lives; :meth:`open` opens it again, as another replica
    or a restarted one would."""

    kind: str
    location: str
    app: str

    def open(self) -> CatalogStore:
        return open_catalog_store(self.location, self.app)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "nested" / "catalog.sqlite"), "blendserve")
    # One server for the run; each test gets an application (a schema) of its own.
    url = request.getfixturevalue("postgres").url
    return Backend("postgres", url, f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(backend: Backend) -> Iterator[CatalogStore]:
    with backend.open() as opened:
        yield opened


def _refuse_inserts_of(store: CatalogStore, backend: Backend, item_id: str) -> None:
    """A trigger that fails inserting ``item_id`` inside the transaction (it stands in
    for a full disk or a lost connection mid-batch)."""
    if backend.kind == "sqlite":
        store._conn.execute(  # type: ignore[attr-defined]
            f"CREATE TRIGGER boom BEFORE INSERT ON items WHEN NEW.item_id = '{item_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        return
    store._conn.execute(  # type: ignore[attr-defined]
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
        f"IF NEW.item_id = '{item_id}' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    store._conn.execute(  # type: ignore[attr-defined]
        "CREATE TRIGGER boom BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION refuse()"
    )


def test_each_write_bumps_the_version_and_is_readable(store: CatalogStore) -> None:
    assert store.version() == 0
    assert store.put(_item("a", title="A", category="news", published_at=T0)) == 1
    assert store.put(_item("b")) == 2
    assert store.patch("a", ItemPatch(available=False, category=None)) == 3
    item = store.get("a")
    assert item is not None
    assert (item.title, item.category, item.available, item.published_at) == ("A", None, False, T0)
    assert store.count() == 2 and store.version() == 3


def test_put_replaces_an_item_whole(store: CatalogStore) -> None:
    store.put(_item("a", title="old", attributes={"x": 1}))
    store.put(_item("a", category="sport"))
    assert store.get("a") == _item("a", category="sport")
    assert store.count() == 1


def test_delete_leaves_a_tombstone_in_the_change_feed(store: CatalogStore) -> None:
    store.put(_item("a"))
    store.put(_item("b"))
    assert store.delete("a") == 3
    assert store.get("a") is None and store.count() == 1
    reached, changes = store.changes_since(0)
    assert reached == 3
    assert [(c.item_id, c.version, c.deleted, c.item) for c in changes] == [
        ("b", 2, False, _item("b")),
        ("a", 3, True, None),
    ]
    assert changes[1].as_update() == ("a", None)


def test_a_deleted_item_can_be_created_again(store: CatalogStore) -> None:
    store.put(_item("a"))
    store.delete("a")
    assert store.put(_item("a", title="back")) == 3
    assert store.get("a") == _item("a", title="back") and store.count() == 1


@pytest.mark.parametrize("deleted_first", [False, True])
def test_patch_or_delete_of_a_missing_item_is_not_found(
    store: CatalogStore, deleted_first: bool
) -> None:
    if deleted_first:
        store.put(_item("a"))
        store.delete("a")
    version = store.version()
    with pytest.raises(ItemNotFoundError, match="'a'") as caught:
        store.delete("a")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, BlendserveError)
    with pytest.raises(ItemNotFoundError):
        store.patch("a", ItemPatch(title="x"))
    assert store.version() == version


def test_changes_since_pages_by_limit_and_reports_the_version_reached(store: CatalogStore) -> None:
    store.upsert_batch([_item(f"i{n}") for n in range(5)])
    assert store.changes_since(0, limit=2)[0] == 2
    seen: list[str] = []
    at = 0
    while True:
        reached, changes = store.changes_since(at, limit=2)
        if not changes:
            break
        seen += [c.item_id for c in changes]
        at = reached
    assert seen == [f"i{n}" for n in range(5)] and at == 5
    assert store.changes_since(5) == (5, [])


def test_changes_since_reports_an_item_once_in_its_latest_state(store: CatalogStore) -> None:
    store.put(_item("a", title="1"))
    store.put(_item("b"))
    store.patch("a", ItemPatch(title="2"))
    _, changes = store.changes_since(0)
    assert [(c.item_id, c.version) for c in changes] == [("b", 2), ("a", 3)]
    assert changes[1].item is not None and changes[1].item.title == "2"


def test_a_batch_takes_one_version_per_item(store: CatalogStore) -> None:
    store.put(_item("z"))
    assert store.upsert_batch([_item("a"), _item("b"), _item("z", title="again")]) == 4
    assert [c.version for c in store.changes_since(1)[1]] == [2, 3, 4]
    assert store.upsert_batch([]) == 4


def test_a_batch_with_a_repeated_id_writes_nothing(store: CatalogStore) -> None:
    with pytest.raises(InputError) as caught:
        store.upsert_batch([_item("a"), _item("b"), _item("a")])
    assert caught.value.field == "items.2.item_id" and "items.0" in caught.value.message
    assert store.version() == 0 and store.get("a") is None


def test_a_failing_batch_rolls_back_every_item(store: CatalogStore, backend: Backend) -> None:
    store.put(_item("keep", title="before"))
    _refuse_inserts_of(store, backend, "bad")
    with pytest.raises((sqlite3.IntegrityError, psycopg.Error), match="refused"):
        store.upsert_batch([_item("keep", title="after"), _item("new"), _item("bad")])
    assert store.version() == 1 and store.count() == 1
    kept = store.get("keep")
    assert kept is not None and kept.title == "before"


def test_items_tombstones_and_version_survive_a_reopen(backend: Backend) -> None:
    first = backend.open()
    first.upsert_batch([_item("a", published_at=T0, attributes={"n": 1.5}), _item("b")])
    first.delete("b")
    first.close()
    with backend.open() as reopened:
        assert reopened.version() == 3
        assert reopened.get("a") == _item("a", published_at=T0, attributes={"n": 1.5})
        assert reopened.get("b") is None
        assert [(c.item_id, c.deleted) for c in reopened.changes_since(2)[1]] == [("b", True)]
        assert reopened.put(_item("c")) == 4


def test_replicas_writing_at_once_share_one_version_sequence_and_a_follower_misses_none(
    backend: Backend,
) -> None:
    """Three writers on connections of their own (as catalogue replicas are) and an
    ingress following the change feed meanwhile: every write gets its own version, no
    gap, and the follower, paging as it goes, sees every item (a version committed out
    of order would be skipped for good: each item is written once)."""
    writers = [backend.open() for _ in range(3)]
    follower = backend.open()
    seen: dict[str, int] = {}
    acknowledged: list[int] = []

    def write(n: int, store: CatalogStore) -> None:
        for i in range(30):
            acknowledged.append(store.put(_item(f"w{n}-{i}")))

    threads = [threading.Thread(target=write, args=(n, w)) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    version = 0
    while any(thread.is_alive() for thread in threads):
        version, changes = follower.changes_since(version, limit=7)
        seen.update((change.item_id, change.version) for change in changes)
    for thread in threads:
        thread.join()
    while changes := follower.changes_since(version, limit=7)[1]:
        version = changes[-1].version
        seen.update((change.item_id, change.version) for change in changes)
    assert sorted(acknowledged) == list(range(1, 91))
    assert len(seen) == 90 and sorted(seen.values()) == list(range(1, 91))
    for store in (*writers, follower):
        store.close()


def test_a_published_time_keeps_its_offset(store: CatalogStore) -> None:
    paris = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=1)))
    store.put(_item("a", published_at=paris))
    item = store.get("a")
    assert item is not None and item.published_at == paris
    assert item.info().published_at == paris.timestamp()


def _write_seed(path: Path, ids: list[str], **columns: pa.Array) -> Path:
    pq.write_table(pa.table({"item_id": ids, **columns}), path)
    return path


def test_seed_imports_into_a_new_store_only(store: CatalogStore, tmp_path: Path) -> None:
    published = pa.array([T0, None], pa.timestamp("ms", tz="UTC"))
    seed = _write_seed(
        tmp_path / "items.parquet",
        ["a", "b"],
        category=pa.array(["news", None]),
        published_at=published,
        available=pa.array([True, False]),
        # The team's own columns are kept as attributes: lists joined, as in genres.
        clicks=pa.array([3, 4]),
        categories=pa.array([["news", "sport"], []]),
    )
    assert store.seed_from_parquet(seed) == 2
    assert store.get("a") == _item(
        "a",
        category="news",
        published_at=T0,
        attributes={"clicks": 3, "categories": "news|sport"},
    )
    assert store.get("b") == _item("b", available=False, attributes={"clicks": 4, "categories": ""})
    assert store.seed_from_parquet(seed) == 0 and store.version() == 2


def test_seed_is_skipped_once_the_store_had_an_item_even_if_deleted(
    store: CatalogStore, tmp_path: Path
) -> None:
    store.put(_item("x"))
    store.delete("x")
    assert store.seed_from_parquet(_write_seed(tmp_path / "items.parquet", ["a"])) == 0
    assert store.count() == 0


def test_a_seed_with_a_bad_row_names_it_and_imports_nothing(
    store: CatalogStore, tmp_path: Path
) -> None:
    seed = _write_seed(tmp_path / "items.parquet", ["a", "b/c"])
    with pytest.raises(ConfigError, match=r"row 1: item_id"):
        store.seed_from_parquet(seed)
    naive = _write_seed(
        tmp_path / "naive.parquet", ["a"], published_at=pa.array([datetime(2026, 1, 1)])
    )
    with pytest.raises(ConfigError, match="row 0: published_at"):
        store.seed_from_parquet(naive)
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "noid.parquet")
    with pytest.raises(ConfigError, match="expected an `item_id` column"):
        store.seed_from_parquet(tmp_path / "noid.parquet")
    with pytest.raises(ConfigError, match="cannot read Parquet"):
        store.seed_from_parquet(tmp_path / "missing.parquet")
    assert store.version() == 0


def test_parse_item_names_unknown_fields() -> None:
    with pytest.raises(InputError) as caught:
        parse_item({"item_id": "a", "colour": "red"}, "items.3")
    assert caught.value.field == "items.3.colour"


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"item_id": "a", "published_at": "2026-01-01T00:00:00"}, "published_at", "timezone"),
        ({"item_id": "a/b"}, "item_id", "'/'"),
        ({"item_id": "a\n"}, "item_id", "printable"),
        ({"item_id": ""}, "item_id", "at least 1"),
        ({"item_id": "a", "title": "x" * 501}, "title", "500"),
        ({"item_id": "a", "category": "x" * 101}, "category", "100"),
        ({"item_id": "a", "attributes": {"k": float("inf")}}, "attributes.k", "finite"),
        ({"item_id": "a", "attributes": {"k": [1]}}, "attributes.k", "got list"),
        ({"item_id": "a", "attributes": {"k" * 65: 1}}, "attributes", "64"),
        ({"item_id": "a", "attributes": {str(n): n for n in range(51)}}, "attributes", "50"),
        ({"item_id": "a", "attributes": {"k": "x" * 10_000}}, "attributes", "10000 bytes"),
    ],
)
def test_parse_item_names_the_field_at_fault(data: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_item(data)
    assert caught.value.field.startswith(field) and says in caught.value.message


def test_parse_item_accepts_scalars_and_unix_seconds() -> None:
    item = parse_item(
        {"item_id": "a", "published_at": 1_767_225_600, "attributes": {"s": "x", "n": 2, "b": True}}
    )
    assert item.published_at == T0 and item.attributes == {"s": "x", "n": 2, "b": True}


def test_parse_patch_needs_a_field_and_refuses_nulls_where_none_fit() -> None:
    with pytest.raises(InputError, match="at least one"):
        parse_patch({})
    with pytest.raises(InputError) as caught:
        parse_patch({"title": None})
    assert caught.value.field == "title"
    assert parse_patch({"category": None}).model_fields_set == {"category"}


def test_parse_batch_names_the_entry_and_field_at_fault() -> None:
    good = {"item_id": "a"}
    with pytest.raises(InputError) as caught:
        parse_batch({"items": [good, {"item_id": "b"}, {"item_id": "c", "category": 3}]}, 10)
    assert caught.value.field == "items.2.category"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ([], "body", "items"),
        ({}, "items", "required"),
        ({"items": {"item_id": "a"}}, "items", "list"),
        ({"items": [{"item_id": "a"}] * 3}, "items", "at most 2"),
        ({"items": [], "dry_run": True}, "dry_run", "unexpected"),
        ({"items": [{"item_id": "a"}, {"item_id": "a"}]}, "items.1.item_id", "repeats"),
    ],
)
def test_parse_batch_refuses_a_malformed_body(body: Any, field: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_batch(body, max_items=2)
    assert caught.value.field == field and says in caught.value.message


def test_an_invalid_batch_leaves_the_store_untouched(store: CatalogStore) -> None:
    body = {"items": [{"item_id": "a"}, {"item_id": "b", "published_at": "2026-01-01T00:00"}]}
    with pytest.raises(InputError) as caught:
        store.upsert_batch(parse_batch(body, 10))
    assert caught.value.field == "items.1.published_at"
    assert store.version() == 0


def test_live_item_ids_read_a_catalogue_without_creating_one(backend: Backend) -> None:
    """What `blendserve publish --catalog` reads: the live ids of either backend, and
    a clear error, not a new empty catalogue, where there is none."""
    from deployments.catalog.backends import live_item_ids

    with backend.open() as store:
        store.upsert_batch([_item("a"), _item("b"), _item("c")])
        store.delete("b")
    assert live_item_ids(backend.location, backend.app) == {"a", "c"}
    missing = backend.location.replace("catalog.sqlite", "never.sqlite")
    with pytest.raises(ConfigError, match="cannot read the live catalogue"):
        live_item_ids(missing, f"{backend.app}x")
    if backend.kind == "postgres":
        with pytest.raises(ConfigError, match="cannot read the live catalogue"):
            live_item_ids(missing, f"{backend.app}x")  # still absent: nothing was created
