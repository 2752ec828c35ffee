"""Query-time rules and seen items through the real HTTP path: filters and boosts
over live catalogue attributes, a standing rule of the use case, a clicked item
hidden from its user (and only theirs) within seconds, ignored items demoted; bad
rules answer 422 naming the field. The ``shop`` use case of the main app
(serving_cluster.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serving_cluster import SHOP_USE_CASE, until

pytestmark = pytest.mark.integration

SHOP = f"/v1/recommend/{SHOP_USE_CASE}"


def _shop(
    client: httpx.Client, user: str | None = None, k: int = 10, **rules: Any
) -> dict[str, Any]:
    """One `shop` list; without a user, for a new one (whose lists nothing has demoted:
    a user shown the same items twice would see them demoted)."""
    user = user or f"new-{uuid.uuid4().hex[:12]}"
    response = client.post(SHOP, json={"user_id": user, "k": k, **rules})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def _version(client: httpx.Client) -> int:
    return int(client.get("/v1/catalog").json()["version"])


@pytest.fixture
def priced(client: httpx.Client) -> Iterator[dict[str, dict[str, Any]]]:
    """The first 12 items `shop` shows a new user, with prices 10, 20, ... and brands;
    their attributes are put back afterwards."""
    top = _ids(_shop(client, k=12))
    originals = {item: client.get(f"/v1/catalog/items/{item}").json() for item in top}
    attributes = {
        item: {"price": 10.0 * (n + 1), "brand": "acme" if n % 3 == 0 else "zeta"}
        for n, item in enumerate(top)
    }
    for item, extra in attributes.items():
        patched = client.patch(f"/v1/catalog/items/{item}", json={"attributes": extra})
        assert patched.status_code == 200, patched.text
    wrote = _version(client)
    # Both ingress replicas have every change once the filters hold on repeated calls:
    # the first items' prices, and the last item's (each patch is its own version, so
    # an ingress can have the first ones and not yet the last).
    last = [top[-1]]
    until(
        lambda: all(
            len(_ids(_shop(client, filters=[{"attribute": "price", "max": 30}]))) == 3
            and _ids(_shop(client, k=12, filters=[{"attribute": "price", "min": 120}])) == last
            for _ in range(6)
        ),
        10,
        f"catalogue version {wrote} in every ingress",
    )
    yield attributes
    for item, original in originals.items():
        client.put(f"/v1/catalog/items/{item}", json=original)


def test_filters_keep_only_matching_items_and_the_list_stays_full(
    client: httpx.Client, priced: dict[str, dict[str, Any]]
) -> None:
    cheap = _shop(client, k=5, filters=[{"attribute": "price", "max": 50}])
    assert _ids(cheap) == list(priced)[:5]
    # Items without a price never pass a price range; the brand filter keeps 4 of 12.
    acme = _shop(client, k=10, filters=[{"attribute": "brand", "equals": "acme"}])
    assert _ids(acme) == [item for item, a in priced.items() if a["brand"] == "acme"]
    # A negated filter: everything but acme, and the list is still 10 long.
    other = _shop(
        client, "rules-u1", k=10, filters=[{"attribute": "brand", "equals": "acme", "negate": True}]
    )
    assert len(_ids(other)) == 10 and not set(_ids(other)) & set(_ids(acme))


def test_a_boost_lifts_items_and_says_so_in_their_provenance(
    client: httpx.Client, priced: dict[str, dict[str, Any]]
) -> None:
    plain = _ids(_shop(client))
    last = list(priced)[9]
    boost = {"attribute": "price", "min": 100, "max": 100, "multiply": 1000}
    body = _shop(client, boosts=[boost])
    assert plain.index(last) == 9 and _ids(body)[0] == last
    (component,) = [c for c in body["items"][0]["components"] if c.get("role") == "boost"]
    assert component["weight"] == 1000 and "price" in component["model"]


def test_the_use_cases_standing_rule_hides_out_of_stock_items(
    client: httpx.Client, priced: dict[str, dict[str, Any]]
) -> None:
    first = next(iter(priced))
    assert _ids(_shop(client))[0] == first
    patched = client.patch(
        f"/v1/catalog/items/{first}", json={"attributes": {**priced[first], "in_stock": False}}
    )
    assert patched.status_code == 200
    until(
        lambda: all(first not in _ids(_shop(client)) for _ in range(6)),
        10,
        "the out-of-stock item gone from shop",
    )


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"filters": [{"attribute": "colour", "equals": "red"}]}, "filters.0.attribute"),
        ({"filters": [{"attribute": "price", "equals": "cheap"}]}, "filters.0.equals"),
        ({"boosts": [{"attribute": "brand", "min": 1, "multiply": 2}]}, "boosts.0.min"),
        ({"filters": [{"attribute": "price"}]}, "filters.0"),
        ({"boosts": [{"attribute": "price", "max": 3}]}, "boosts.0.multiply"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(
    client: httpx.Client, rule: dict[str, Any], field: str
) -> None:
    response = client.post(SHOP, json={"user_id": "rules-u4", **rule})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field, response.text


def test_a_clicked_item_is_hidden_from_its_user_only(client: httpx.Client) -> None:
    clicker, other = f"seen-clicker-{uuid.uuid4().hex}", f"seen-other-{uuid.uuid4().hex}"
    body = _shop(client, clicker)
    clicked = body["items"][1]
    event = {"result_id": clicked["result_id"], "event": "click"}
    assert client.post("/v1/feedback", json=event).status_code == 202
    # Every ingress replica follows the event log: a few requests reach both.
    until(
        lambda: all(clicked["item_id"] not in _ids(_shop(client, clicker)) for _ in range(6)),
        15,
        "the clicked item hidden from its user",
    )
    after = _ids(_shop(client, clicker))
    assert len(after) == 10, "sources over-fetch by what the user has seen"
    assert clicked["item_id"] in _ids(_shop(client, other))


def test_items_shown_twice_without_a_click_are_demoted(client: httpx.Client) -> None:
    ignorer = f"seen-ignorer-{uuid.uuid4().hex}"
    first = _ids(_shop(client, ignorer, k=5))
    assert _ids(_shop(client, ignorer, k=5)) == first  # shown once so far
    # After the second list reaches the event log and the ingresses, the five shown
    # twice fall below the items never shown.
    fresh = until(
        lambda: (ids := _ids(_shop(client, ignorer, k=5))) and not set(ids) & set(first) and ids,
        15,
        "items shown twice demoted",
    )
    demoted = _shop(client, ignorer, k=30)
    tail = [item for item in demoted["items"] if item["item_id"] in first]
    assert tail and all(
        any(c.get("role") == "boost" and c["source"] == "boost" for c in item["components"])
        for item in tail
    )
    assert len(fresh) == 5
