"""Catalogue calls send the documented bodies and read the versions they answer."""

from __future__ import annotations

from datetime import datetime, timezone

from fake_service import reply
from recorded_answers import CATALOG_ITEM, CATALOG_STATUS

from blendserve_client import UNSET, CatalogChange, CatalogItem

PUBLISHED = datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)


def test_put_item_sends_the_whole_item_and_reads_the_version(serve):
    client = serve(reply(200, {"version": 2001}))
    change = client.put_item(
        "a09999",
        title="Breaking: a new article",
        category="tech",
        published_at=PUBLISHED,
        attributes={"author": "desk"},
    )
    request = client.script.requests[0]
    assert (request.method, request.url.path) == ("PUT", "/v1/catalog/items/a09999")
    assert client.script.bodies() == [
        {
            "title": "Breaking: a new article",
            "category": "tech",
            "published_at": "2026-11-28T23:00:00+00:00",
            "available": True,
            "attributes": {"author": "desk"},
        }
    ]
    assert change == CatalogChange(version=2001, count=1, item=None)


def test_patch_item_sends_only_the_fields_given_and_none_clears(serve):
    patched = {**CATALOG_ITEM, "available": False, "category": None}
    client = serve(reply(200, {"version": 2002, "item": patched}))
    change = client.patch_item("a09999", available=False, category=None, title=UNSET)
    assert client.script.requests[0].method == "PATCH"
    assert client.script.bodies() == [{"available": False, "category": None}]
    assert change.version == 2002
    assert change.item is not None and change.item.available is False
    assert change.item.category is None


def test_delete_item_reads_the_version(serve):
    client = serve(reply(200, {"version": 2003}))
    assert client.delete_item("a00042").version == 2003
    request = client.script.requests[0]
    assert (request.method, request.url.path, request.content) == (
        "DELETE",
        "/v1/catalog/items/a00042",
        b"",
    )


def test_get_item_reads_every_field(serve):
    client = serve(reply(200, CATALOG_ITEM))
    assert client.get_item("a09999") == CatalogItem(
        item_id="a09999",
        title="Breaking: a new article",
        category="tech",
        published_at=PUBLISHED,
        available=True,
        attributes={"author": "desk"},
    )
    assert client.script.requests[0].method == "GET"


def test_upsert_items_takes_items_and_mappings_in_one_batch(serve):
    client = serve(reply(200, {"version": 2005, "count": 2}))
    change = client.upsert_items(
        [
            CatalogItem("a10000", category="sports", published_at=PUBLISHED),
            {"item_id": "a10001", "category": "tech", "published_at": PUBLISHED},
        ]
    )
    assert client.script.requests[0].url.path == "/v1/catalog/items:batch"
    items = client.script.bodies()[0]["items"]
    assert items[0] == {
        "item_id": "a10000",
        "title": "",
        "category": "sports",
        "published_at": "2026-11-28T23:00:00+00:00",
        "available": True,
        "attributes": {},
    }
    assert items[1] == {
        "item_id": "a10001",
        "category": "tech",
        "published_at": "2026-11-28T23:00:00+00:00",
    }
    assert (change.version, change.count) == (2005, 2)


def test_catalog_status_reads_versions_and_unknown_items(serve):
    status = serve(reply(200, CATALOG_STATUS)).catalog_status()
    assert (status.version, status.items, status.replica_version) == (2001, 2000, 2001)
    assert status.unknown_model_items == {"mf": {"count": 0, "examples": []}}


def test_item_ids_are_percent_encoded_in_the_path(serve):
    client = serve(reply(200, CATALOG_ITEM))
    client.get_item("a b?#")
    assert client.script.requests[0].url.raw_path == b"/v1/catalog/items/a%20b%3F%23"
